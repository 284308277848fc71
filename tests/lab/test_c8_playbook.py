"""playbooks/ipam_cleanup_daemonset.yml (catalog C-8, issue 9: every cluster fix is one AWX job template) against the
API double: the spine (change ticket, window, Lease kube-system/netmedic-ipam-gc shared with W-7, health gate) around
role ipam_cleanup_daemonset, then a verified rollout (every node's pod updated and Ready). Check mode creates nothing and
says what would change; apply deploys; a second run is changed=false; absent removes; bad input, a held lock and
outside the window stop before any write."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

DOUBLE_ONLY = ("audit: 'no write request at all' (or 'only dry runs and the Lease') is read from the double's record of every request; "
               "the real one's audit log (k8sctl NETMEDIC_K8S_AUDIT_POLICY, off by default) is read by no test yet")

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'ipam_cleanup_daemonset.yml'
NS = 'kube-system'
NAME = 'cleanup-ipam-dir'
LEASE = 'netmedic-ipam-gc'
IMAGE = 'registry.example/netmedic/gc-tools@sha256:' + '3f' * 32
ROLLOUT = 'Check the rollout'


@pytest.fixture
def run(playbook_file):
    return lambda double, *extra, check=False: playbook_file(double, PLAYBOOK, '-e', 'netmedic_ipam_cleanup_image=%s' % IMAGE,
                                                             *extra, check=check)


def objects(double):
    return {kind: double.store.find(kind, NS, NAME) for kind in ('serviceaccounts', 'configmaps', 'daemonsets')}


def writes(double):
    return [e for e in double.audit if e['verb'] not in ('get', 'list', 'watch') and e['resource'] != 'leases']


def _ago(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    return t.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def test_c8_check_apply_rerun_and_absent(make_double, run):
    double = make_double(audit=True)
    rc, tasks, output = run(double, check=True)
    assert rc == 0, output
    (ds_task,) = [r for name, r in tasks.items() if name.split(' : ')[-1] == 'DaemonSet']
    assert ds_task['changed'] is True                                  # says what would change
    assert all(obj is None for obj in objects(double).values()), 'check mode created objects'
    assert not [e for e in writes(double) if not e.get('dryRun')]

    rc, tasks, output = run(double, '-e', 'netmedic_ipam_cleanup_grace_minutes=15')
    assert rc == 0, output
    made = objects(double)
    assert all(made.values())
    assert '--grace-period=900' in made['daemonsets']['spec']['template']['spec']['containers'][0]['command']
    assert 'rolled out: 3/3' in tasks[ROLLOUT]['msg'], output
    pods, _rv = double.store.list('pods', NS, label_selector='app.kubernetes.io/name=%s' % NAME)
    assert sorted(p['spec']['nodeName'] for p in pods) == ['lab-node-1', 'lab-node-2', 'lab-node-3']
    assert double.store.find('leases', NS, LEASE) is None            # released

    rc, tasks, output = run(double, '-e', 'netmedic_ipam_cleanup_grace_minutes=15')
    assert rc == 0, output
    assert not [name for name, r in tasks.items() if r.get('changed')], output
    assert objects(double)['daemonsets']['metadata']['resourceVersion'] == made['daemonsets']['metadata']['resourceVersion']

    rc, _tasks, output = run(double, '-e', 'netmedic_ipam_cleanup_state=absent')
    assert rc == 0, output
    assert all(obj is None for obj in objects(double).values())


@pytest.mark.parametrize('extra, message', [
    (['-e', 'netmedic_ipam_cleanup_image=busybox:latest'], 'pinned by digest'),
    (['-e', 'netmedic_ipam_cleanup_state=gone'], 'netmedic_ipam_cleanup_state'),
])
def test_c8_bad_input_fails_before_any_change(make_double, run, extra, message):
    double = make_double(audit=True)
    rc, _tasks, output = run(double, *extra)
    assert rc != 0 and message in output, output
    assert all(obj is None for obj in objects(double).values()) and not writes(double)
    assert double.store.find('leases', NS, LEASE) is None


def test_c8_refuses_while_another_run_holds_the_lock(make_double, run):
    double = make_double(audit=True)
    spec = {'holderIdentity': 'awx-job-77', 'leaseDurationSeconds': 3600, 'renewTime': _ago(10), 'acquireTime': _ago(10)}
    double.store.create('leases', NS, {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                                       'metadata': {'name': LEASE, 'namespace': NS}, 'spec': spec})
    rc, _tasks, output = run(double)
    assert rc != 0 and "held by 'awx-job-77'" in output, output
    assert all(obj is None for obj in objects(double).values()) and not writes(double)
    assert double.store.get('leases', NS, LEASE)['spec']['holderIdentity'] == 'awx-job-77'


def test_c8_refuses_outside_the_window(make_double, run):
    double = make_double(audit=True)
    window = json.dumps({'netmedic_window': {'days': ['mon'], 'start': '02:00', 'end': '03:00', 'timezone': 'UTC'}})
    rc, _tasks, output = run(double, '-e', window, '-e', 'netmedic_now=2026-12-01T12:00:00+00:00')
    assert rc != 0 and 'outside' in output, output
    assert all(obj is None for obj in objects(double).values()) and not writes(double)
    assert double.store.find('leases', NS, LEASE) is None
