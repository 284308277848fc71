"""Least privilege, proved (issue 10 hole 13): each playbook runs against the API double with a token
bound to exactly its rbac/<playbook>.yml grants (the double enforces RBAC for non-admin tokens).

The read-only role, conntrack_tuning, udp_timeout and the fix playbooks run on both servers (the real RBAC
authorizer too) in tests/cluster/test_rbac_playbooks.py (issue 15); what stays here is below, each with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.kubedouble import StaticNodeState
from tests.lab.w3_run import reboot_vars, run_role

ROOT = Path(__file__).resolve().parents[2]


RBAC_DIR = ROOT / 'rbac'
PLAYBOOKS = ROOT / 'playbooks'
NS = 'kube-system'


def denied(double):
    return [e for e in double.audit if not e['allowed']]


@pytest.fixture
def audited(make_double):
    return lambda **kwargs: make_double(audit=True, **kwargs)


@pytest.mark.double_only('no-cluster: compares playbooks/ with rbac/')
def test_every_cluster_playbook_has_a_manifest():
    names = {p.stem for p in PLAYBOOKS.glob('*.yml')}
    node_only = {'diagnose', 'remediate_node'}
    assert {p.stem for p in RBAC_DIR.glob('*.yml')} >= names - node_only


@pytest.mark.double_only("kubelet: W-3's verification reads kube-proxy's log lines per node's kernel modules (lab-node-2 "
                         'without ip_vs_sh), and the reboot stand-in needs a new bootID; nodesim has neither')
def test_ipvs_scheduler_change_runs_with_its_role(audited, as_identity, tmp_path):
    """W-3's API calls are all in its cluster half (role ipvs_scheduler, which takes the kube-proxy Lease itself when
    run alone); the playbook's node play (N-4, modprobe on real hosts) makes none and needs nodes this inventory has
    not (the playbook refuses a run without them). One run with the SA's token covers every grant: the change to sh
    is written and lab-node-1 restarted and verified, lab-node-2 (no ip_vs_sh) falls back to iptables, so the exact
    rollback and the reboot after the fallback (role node_rotation: node-disruption Lease, cordon, drain via the
    Eviction API, PDB and Node reads) run with exactly these grants too - the drain's grants were missing from
    rbac/ipvs_scheduler_change.yml when the reboot was added."""
    double = audited(node_state=StaticNodeState({'lab-node-1': {'ip_vs', 'ip_vs_rr', 'ip_vs_lc', 'ip_vs_sh', 'nf_conntrack'},
                                                 'lab-node-2': {'ip_vs', 'ip_vs_rr', 'ip_vs_lc', 'nf_conntrack'}}),
                     nodes=[('lab-node-1', '10.10.0.11'), ('lab-node-2', '10.10.0.12')])
    sa = as_identity(double, RBAC_DIR / 'ipvs_scheduler_change.yml')
    before = double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf']
    rc, output = run_role(sa, tmp_path, 'rbac-sh', ipvs_scheduler_name='sh', **reboot_vars(double, tmp_path))
    assert rc != 0 and 'rolled back' in output, output
    assert double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf'] == before   # restored exactly
    assert double.store.get('nodes', None, 'lab-node-2')['status']['nodeInfo'].get('bootID') == 'rebooted-lab-node-2', output
    assert not denied(double)
    assert {e['user'] for e in double.audit} >= {'system:serviceaccount:netmedic:netmedic-ipvs-scheduler-change'}
