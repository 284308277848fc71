"""Issue 9 spine gap (finding 4, lock families): C-5 (playbooks/flannel_config.yml) and W-2
(playbooks/flannel_datadir_migration.yml) both edit kube-system/kube-flannel-cfg, so they must take the same Lease:
a C-5 run must not edit kube-flannel-cfg while W-2 migrates, and the other way round.

The Lease each playbook takes is read from the playbook itself (its change_guard_family), held by a foreign run in
the API double, and C-5 must refuse with nothing changed (W-2 refusing on the same Lease:
test_flannel_datadir_migration.py::test_issue9_f4_w2_stops_when_another_run_holds_the_flannel_lock). Check mode takes no lock.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest

from tests.lab.playbook_run import run_playbook

DOUBLE_ONLY = 'portable: a held Lease refuses C-5, check mode takes none; nothing the real server does differently'

ROOT = Path(__file__).resolve().parents[2]
C5 = ROOT / 'playbooks' / 'flannel_config.yml'
W2 = ROOT / 'playbooks' / 'flannel_datadir_migration.yml'
NS = 'kube-system'


def _families(path):
    return set(re.findall(r'^\s*change_guard_family:\s*([\w-]+)\s*$', path.read_text(), re.M))


def _lease_of(path):
    families = _families(path)
    assert len(families) == 1, (path, families)
    return 'netmedic-%s' % families.pop()


def _hold(double, name, holder='awx-job-41'):
    now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    double.store.create('leases', NS, {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                                       'metadata': {'name': name, 'namespace': NS},
                                       'spec': {'holderIdentity': holder, 'leaseDurationSeconds': 3600,
                                                'renewTime': now, 'acquireTime': now}})


@pytest.mark.double_only('no-cluster: reads the playbooks only')
def test_issue9_f4_every_kube_flannel_cfg_editor_shares_one_lock_family():
    """Every playbook that changes kube-flannel-cfg (C-5 and W-2, and any other that names it) takes one family."""
    editors = [p for p in sorted((ROOT / 'playbooks').glob('*.yml'))
               if 'netmedic.k8s.flannel_config' in p.read_text() or 'kube-flannel-cfg' in p.read_text()]
    assert C5 in editors and W2 in editors, editors
    assert {frozenset(_families(p)) for p in editors} == {frozenset({'flannel'})}, {p.name: _families(p) for p in editors}


def test_issue9_f4_c5_refuses_while_w2_holds_the_flannel_lock(double, tmp_path):
    """W-2's Lease held by a live W-2 run: C-5 stops before the ConfigMap or any pod is touched."""
    _hold(double, _lease_of(W2))
    before = double.store.get('configmaps', NS, 'kube-flannel-cfg')
    rc, _results, output = run_playbook(double, tmp_path, C5, '-e', 'netmedic_flannel_cni_version=0.3.1')
    assert rc != 0 and "held by 'awx-job-41'" in output, output
    assert double.store.get('configmaps', NS, 'kube-flannel-cfg') == before
    assert double.store.get('leases', NS, _lease_of(W2))['spec']['holderIdentity'] == 'awx-job-41'


def test_issue9_f4_c5_check_mode_takes_no_lock(double, tmp_path):
    """C-5 in check mode writes no Lease (and changes nothing)."""
    before = double.store.get('configmaps', NS, 'kube-flannel-cfg')
    rc, _results, output = run_playbook(double, tmp_path, C5, '-e', 'netmedic_flannel_cni_version=0.3.1', check=True)
    assert rc == 0, output
    assert double.store.find('leases', NS, _lease_of(C5)) is None
    assert double.store.get('configmaps', NS, 'kube-flannel-cfg') == before
