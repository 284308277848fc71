"""playbooks/terway_config.yml (catalog C-6) against the API double: eni-config edit, Terway pods recreated node by
node with the policy container's log line checked, and rollback on a crash loop (the double's log provider).

The runs that stop before any change (the version gate, bad input, a held Lease) run on both servers in
tests/cluster/test_terway_config_playbook.py (issue 15).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.kubedouble.logs import CrashLoop, make_log_provider
from tests.lab.playbook_run import run_playbook

DOUBLE_ONLY = ("kubelet: Terway's restart is verified by its policy container's log line, written by the double's log provider (or a crash loop); "
               'the simulated nodes serve no logs')

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'terway_config.yml'
NS = 'kube-system'


@pytest.fixture
def run(tmp_path):
    return lambda double, *extra, check=False: run_playbook(double, tmp_path, PLAYBOOK, *extra, check=check)


def data(double):
    return double.store.get('configmaps', NS, 'eni-config')['data']


def uids(double):
    pods, _rv = double.store.list('pods', NS, label_selector='app=terway-eniip')
    return {p['metadata']['uid'] for p in pods}


def test_c6_check_apply_verified_then_idempotent(double, run):
    before, pods = data(double), uids(double)
    lb = ['-e', 'netmedic_terway_in_cluster_loadbalance=true',
          '-e', '{"netmedic_terway_eni_conf": {"vswitches": {"cn-hangzhou-j": ["vsw-lab00000000000000002"]}}}']
    rc, _tasks, output = run(double, *lb, check=True)
    assert rc == 0, output
    assert data(double) == before and uids(double) == pods

    rc, _tasks, output = run(double, *lb)
    assert rc == 0, output
    assert data(double)['in_cluster_loadbalance'] == 'true'
    assert json.loads(data(double)['eni_conf'])['vswitches'] == {'cn-hangzhou-i': ['vsw-lab00000000000000001'],
                                                                 'cn-hangzhou-j': ['vsw-lab00000000000000002']}
    new = uids(double)
    assert len(new) == 3 and new.isdisjoint(pods)
    for pod in double.store.list('pods', NS, label_selector='app=terway-eniip')[0]:
        assert 'enable-in-cluster-loadbalance=true' in double.store.logs[pod['metadata']['uid']]['policy']

    rc, tasks, output = run(double, *lb)
    assert rc == 0, output
    assert not any(t.get('changed') for t in tasks.values()), [n for n, t in tasks.items() if t.get('changed')]
    assert uids(double) == new


def test_c6_failed_restart_rolls_back_the_exact_bytes(make_double, run):
    default = make_log_provider()

    def provider(pod, store):
        labels = pod['metadata'].get('labels') or {}
        cm = store.find('configmaps', NS, 'eni-config') or {}
        if labels.get('app') == 'terway-eniip' and (cm.get('data') or {}).get('disable_network_policy') == 'true':
            raise CrashLoop('level=fatal msg="terway test fault"\n')
        return default(pod, store)

    double = make_double(log_provider=provider)
    before = data(double)
    rc, _tasks, output = run(double, '-e', 'netmedic_terway_disable_network_policy=true',
                             '-e', 'netmedic_terway_restart_timeout=20')
    assert rc != 0, output
    assert data(double) == before and 'rolled back' in output
    assert double.store.find('leases', NS, 'netmedic-terway') is None
