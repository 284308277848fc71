"""playbooks/terway_config.yml (catalog C-6) against the API double: eni-config edit, Terway pods recreated node by
node with the policy container's log line checked, the version gate, rollback and the lock."""

from __future__ import annotations

import datetime
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


@pytest.mark.double_only('portable: stops before anything the double alone can do (bad input, a held Lease, a closed window); the real server '
                         'refuses the same')
def test_issue10_c6_playbook_refuses_in_cluster_loadbalance_on_old_terway(double, run):
    ds = double.store.get('daemonsets', NS, 'terway-eniip')
    for container in ds['spec']['template']['spec']['containers']:
        container['image'] = 'registry.lab.invalid/acs/terway:v1.1.9'
    double.store.update('daemonsets', NS, 'terway-eniip', ds)
    before = data(double)          # (the image change itself makes the double's controller roll the pods)
    rc, _tasks, output = run(double, '-e', 'netmedic_terway_in_cluster_loadbalance=true')
    assert rc != 0 and 'Terway v1.1.9 is older than v1.2.0' in output, output
    assert data(double) == before
    backups, _rv = double.store.list('configmaps', NS, label_selector='netmedic.k8s/backup-of=eni-config')
    assert backups == [] and 'Recreate the Terway pods node by node' not in output
    assert double.store.find('leases', NS, 'netmedic-terway') is None


@pytest.mark.double_only('portable: stops before anything the double alone can do (bad input, a held Lease, a closed window); the real server '
                         'refuses the same')
def test_c6_bad_input_and_lock_held_change_nothing(double, run):
    before, pods = data(double), uids(double)
    rc, _tasks, output = run(double, '-e', 'netmedic_terway_disable_network_policy=sometimes')
    assert rc != 0 and 'netmedic_terway_disable_network_policy' in output, output
    now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    double.store.create('leases', NS, {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                                       'metadata': {'name': 'netmedic-terway', 'namespace': NS},
                                       'spec': {'holderIdentity': 'awx-job-9', 'leaseDurationSeconds': 3600,
                                                'renewTime': now, 'acquireTime': now}})
    rc, _tasks, output = run(double, '-e', 'netmedic_terway_disable_network_policy=true')
    assert rc != 0 and "held by 'awx-job-9'" in output, output
    assert data(double) == before and uids(double) == pods


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
