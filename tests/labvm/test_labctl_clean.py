"""`labctl up --clean` and `labctl release` on the running lab: "someone's lab: give it back clean".

`make lab-test`, `make demo` and `make realnode-test` start with `labctl up --clean` and end with `labctl release`
(before, each had its own shell copy of "the lab was up -> reset, else down"). This lab was up before the test
(pytest runs inside `make lab-test` or against a lab someone started), so: `up --clean` must put the running nodes back
to the clean saved state and record that the lab was up; `release` must then reset it and leave it up - never take it
down under the rest of the session. A file planted on a node is the dirt each step must remove.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.labvm.vm_playbook import labctl  # noqa: E402

DIRT = '/root/netmedic-labctl-clean-test'


def _dirty(ssh, node):
    return ssh(node, 'test -e %s && echo yes || echo no' % DIRT).stdout.strip() == 'yes'


def test_up_clean_resets_a_running_lab_and_release_gives_it_back_up(lab, lab_reset, ssh):
    state = Path(os.environ['NETMEDIC_LAB_INVENTORY']).parent
    record = state / 'found-up'
    # The session's own record (`make lab-test` began with `up --clean`): put back afterwards, or its `release` would
    # take what this test writes for the truth and leave the lab up.
    session_record = record.read_text() if record.exists() else None
    node = lab['nodes'][0]
    try:
        ssh(node, 'touch %s' % DIRT)
        assert _dirty(ssh, node)
        out = labctl('up', '--nodes', str(len(lab['nodes'])), '--clean')
        assert 'the lab was up' in out and 'back to the clean saved state' in out, out
        assert record.read_text() == '1'
        assert not _dirty(ssh, node), 'up --clean left the running node as it was'

        ssh(node, 'touch %s' % DIRT)
        out = labctl('release')
        assert 'reset to the clean state and left up' in out, out
        assert (state / 'inventory.yml').exists() and (state / 'found-up').read_text() == '1'
        assert not _dirty(ssh, node), 'release left the node dirty'
        assert ssh(lab['nodes'][-1], 'echo up').stdout.strip() == 'up'       # every node still answers
    finally:
        if session_record is None:
            record.unlink(missing_ok=True)
        else:
            record.write_text(session_record)
        lab_reset()
