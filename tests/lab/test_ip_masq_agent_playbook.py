"""playbooks/ip_masq_agent.yml (catalog C-4) against the API double: the edit, the verified rollout (the double's
DaemonSet controller rolls RollingUpdate one pod at a time), rollback from the DaemonSet backup when the rollout
does not complete, the addon-manager refusal (issue 10 C-4), bad input and the lock."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from lab.kubedouble.logs import CrashLoop, make_log_provider
from tests.lab.playbook_run import run_playbook

DOUBLE_ONLY = ('portable: the edit, a RollingUpdate rollout by the real DaemonSet controller verified by Ready pods, the addon-manager refusal, bad '
               'input and a held Lease')

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'ip_masq_agent.yml'
NS = 'kube-system'
OLD = 'registry.lab.invalid/ip-masq-agent:v2.10.1'
NEW = 'registry.lab.invalid/ip-masq-agent:v2.11.0'
UPGRADE = ['-e', 'netmedic_masq_image=%s' % NEW]


@pytest.fixture
def run(tmp_path):
    return lambda double, *extra, check=False: run_playbook(double, tmp_path, PLAYBOOK, *extra, check=check)


def agent(double):
    return double.store.get('daemonsets', NS, 'ip-masq-agent')['spec']['template']['spec']['containers'][0]


def pods(double):
    found, _rv = double.store.list('pods', NS, label_selector='k8s-app=ip-masq-agent')
    return {p['metadata']['uid']: p for p in found if not p['metadata'].get('deletionTimestamp')}


def test_c4_check_apply_rollout_verified_then_idempotent(double, run):
    before, uids = agent(double), set(pods(double))
    rc, _tasks, output = run(double, *UPGRADE, check=True)
    assert rc == 0, output
    assert agent(double) == before and set(pods(double)) == uids

    rc, _tasks, output = run(double, *UPGRADE)
    assert rc == 0, output
    assert agent(double)['image'] == NEW and agent(double)['args'].count('--random-fully=false') == 1
    rolled = pods(double)
    assert len(rolled) == 3 and set(rolled).isdisjoint(uids)                 # the playbook waited for every pod
    assert all(p['spec']['containers'][0]['image'] == NEW for p in rolled.values())

    rc, tasks, output = run(double, *UPGRADE)
    assert rc == 0, output
    assert not any(t.get('changed') for t in tasks.values()), [n for n, t in tasks.items() if t.get('changed')]
    assert set(pods(double)) == set(rolled)


@pytest.mark.double_only("kubelet: the new agent pod crash-loops on the new configuration (the double's log provider raises CrashLoop); simulated "
                         'nodes start every pod Running and Ready')
def test_c4_rollout_that_does_not_complete_is_rolled_back_from_the_backup(make_double, run):
    default = make_log_provider()

    def provider(pod, store):
        if pod['spec']['containers'][0].get('image') == NEW:
            raise CrashLoop('F1202 ip-masq-agent test fault\n')
        return default(pod, store)

    double = make_double(log_provider=provider)
    before = agent(double)
    rc, _tasks, output = run(double, *UPGRADE, '-e', 'netmedic_masq_rollout_timeout=20')
    assert rc != 0, output
    assert 'Rolled back' in output, output
    restored = agent(double)
    assert (restored['image'], restored['args']) == (before['image'], before['args'])   # exactly the backed-up fields
    assert double.store.find('leases', NS, 'netmedic-ip-masq-agent') is None


def test_issue10_c4_reconcile_mode_bad_input_and_lock_change_nothing(double, run):
    before = agent(double)
    rc, _tasks, output = run(double, '-e', 'netmedic_masq_rollout_timeout=soon')
    assert rc != 0 and 'netmedic_masq_rollout_timeout' in output, output

    ds = double.store.get('daemonsets', NS, 'ip-masq-agent')
    ds['metadata'].setdefault('labels', {})['addonmanager.kubernetes.io/mode'] = 'Reconcile'
    double.store.update('daemonsets', NS, 'ip-masq-agent', ds)
    rc, _tasks, output = run(double, *UPGRADE)
    assert rc != 0 and 'addon manager reconciles it' in output, output
    assert agent(double) == before

    now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    double.store.create('leases', NS, {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                                       'metadata': {'name': 'netmedic-ip-masq-agent', 'namespace': NS},
                                       'spec': {'holderIdentity': 'awx-job-3', 'leaseDurationSeconds': 3600,
                                                'renewTime': now, 'acquireTime': now}})
    rc, _tasks, output = run(double, *UPGRADE, '-e', 'netmedic_masq_allow_addon_manager_reconcile=true')
    assert rc != 0 and "held by 'awx-job-3'" in output, output
    assert agent(double) == before
