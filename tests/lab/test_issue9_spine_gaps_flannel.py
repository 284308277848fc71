"""Issue 9 spine gap (finding 4, lock families): C-5 (playbooks/flannel_config.yml) and W-2
(playbooks/flannel_datadir_migration.yml) both edit kube-system/kube-flannel-cfg, so they must take the same Lease:
a C-5 run must not edit kube-flannel-cfg while W-2 migrates, and the other way round.

Here: the static check that every playbook editing kube-flannel-cfg takes one family. C-5 refusing while W-2's Lease
is held, and C-5's check mode taking no Lease, are tests/cluster/test_issue9_spine_gaps_flannel.py, on the double and
on the real kube-apiserver (ported from here, issue 15); W-2 refusing on the same Lease:
test_flannel_datadir_migration.py::test_issue9_f4_w2_stops_when_another_run_holds_the_flannel_lock.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
C5 = ROOT / 'playbooks' / 'flannel_config.yml'
W2 = ROOT / 'playbooks' / 'flannel_datadir_migration.yml'


def _families(path):
    return set(re.findall(r'^\s*change_guard_family:\s*([\w-]+)\s*$', path.read_text(), re.M))


@pytest.mark.double_only('no-cluster: reads the playbooks only')
def test_issue9_f4_every_kube_flannel_cfg_editor_shares_one_lock_family():
    """Every playbook that changes kube-flannel-cfg (C-5 and W-2, and any other that names it) takes one family."""
    editors = [p for p in sorted((ROOT / 'playbooks').glob('*.yml'))
               if 'netmedic.k8s.flannel_config' in p.read_text() or 'kube-flannel-cfg' in p.read_text()]
    assert C5 in editors and W2 in editors, editors
    assert {frozenset(_families(p)) for p in editors} == {frozenset({'flannel'})}, {p.name: _families(p) for p in editors}
