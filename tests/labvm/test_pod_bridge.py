"""pod_bridge (catalog N-8) on a lab VM: the bridge `labctl inject N-8` leaves down, brought back up."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LABCTL = ROOT / 'lab' / 'vm' / 'labctl'


def _cbr0(ssh, node):
    (link,) = json.loads(ssh(node, 'ip -j -d link show dev cbr0').stdout)
    return 'UP' in link['flags'], link['mtu']


def test_bridge_down_brought_up_check_mode_first(lab, ssh, run_module, lab_reset):
    node = lab['nodes'][0]
    lab_reset()
    try:
        proc = subprocess.run([str(LABCTL), 'inject', '--nodes', node, 'N-8'], capture_output=True, text=True,
                              timeout=600, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        up, mtu = _cbr0(ssh, node)
        assert up is False                                                  # the planted fault

        checked = run_module(node, 'pod_bridge', {'name': 'cbr0'}, check=True, diff=True)
        assert not checked.failed, checked.output
        assert checked['changed'] is True and checked['after']['admin_up'] is True
        assert _cbr0(ssh, node) == (False, mtu)                            # check mode changed nothing

        applied = run_module(node, 'pod_bridge', {'name': 'cbr0'})
        assert not applied.failed and applied['changed'] is True, applied.output
        assert _cbr0(ssh, node) == (True, mtu)                             # fixed, seen by ip itself

        again = run_module(node, 'pod_bridge', {'name': 'cbr0'})
        assert not again.failed and again['changed'] is False, again.output

        missing = run_module(node, 'pod_bridge', {'name': 'cbr9'})
        assert missing.failed and 'cbr9' in missing['msg']
    finally:
        lab_reset()
