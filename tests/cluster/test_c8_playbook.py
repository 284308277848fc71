"""playbooks/ipam_cleanup_daemonset.yml (catalog C-8) on the double and on the real kube-apiserver (issue 15).

Ported from tests/lab (it was double-only, kind `audit`: "no write request at all" was read from the double's record
of every request; the real server's now comes from its audit log, the ``audit`` fixture). The spine (change ticket,
window, Lease netmedic-ipam-gc, health gate) around role ipam_cleanup_daemonset, then a verified rollout: on the real
server the DaemonSet controller makes the pods and the simulated kubelets (nodesim) run them. Check mode creates
nothing and says what would change; apply deploys; a second run is changed=false; absent removes; bad input, a held
lock and outside the window stop before any write. Each test works in a namespace of its own (the DaemonSet's and the
Lease's: ``netmedic_ipam_cleanup_namespace``, the role's ``change_guard_lock_namespace``), so kube-system stays as
the seed made it.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from tests.cluster.conftest import Audit

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'ipam_cleanup_daemonset.yml'
NAME = 'cleanup-ipam-dir'
LEASE = 'netmedic-ipam-gc'
IMAGE = 'registry.example/netmedic/gc-tools@sha256:' + '3f' * 32
ROLLOUT = 'Check the rollout'
KINDS = ('ServiceAccount', 'ConfigMap', 'DaemonSet')


@pytest.fixture
def run(playbook_file, scratch):
    return lambda cluster, *extra, check=False: playbook_file(
        cluster, PLAYBOOK, '-e', 'netmedic_ipam_cleanup_image=%s' % IMAGE, '-e', 'netmedic_ipam_cleanup_namespace=%s' % scratch,
        '-e', 'change_guard_lock_namespace=%s' % scratch, *extra, check=check)


def objects(cluster, ns):
    return {kind: cluster.find(kind, ns, NAME) for kind in KINDS}


def writes(audit):
    """Every request that is not a read, nor the lock's Lease (acquired and released)."""
    return [e for e in audit.entries() if e['verb'] not in ('get', 'list', 'watch') and e['resource'] != 'leases']


def _ago(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    return t.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def test_c8_check_apply_rerun_and_absent(writable, scratch, run, audit):
    cluster = writable
    rc, tasks, output = run(cluster, check=True)
    assert rc == 0, output
    (ds_task,) = [r for name, r in tasks.items() if name.split(' : ')[-1] == 'DaemonSet']
    assert ds_task['changed'] is True                                  # says what would change
    assert all(obj is None for obj in objects(cluster, scratch).values()), 'check mode created objects'
    assert not [e for e in writes(audit) if not e['dryRun']], writes(audit)     # dry runs at most

    rc, tasks, output = run(cluster, '-e', 'netmedic_ipam_cleanup_grace_minutes=15')
    assert rc == 0, output
    made = objects(cluster, scratch)
    assert all(made.values())
    assert '--grace-period=900' in made['DaemonSet']['spec']['template']['spec']['containers'][0]['command']
    assert 'rolled out: 3/3' in tasks[ROLLOUT]['msg'], output
    # The record is not blind: the apply's own writes are in it (so "no write" above and below means none was made).
    assert {('create', r) for r in ('serviceaccounts', 'configmaps', 'daemonsets')} <= {
        (e['verb'], e['resource']) for e in writes(audit) if not e['dryRun'] and e['namespace'] == scratch}, writes(audit)
    pods = [p for p in cluster.items('Pod', scratch, label_selector='app.kubernetes.io/name=%s' % NAME)
            if not p['metadata'].get('deletionTimestamp')]
    assert sorted(p['spec']['nodeName'] for p in pods) == ['lab-node-1', 'lab-node-2', 'lab-node-3']
    assert cluster.find('Lease', scratch, LEASE) is None              # released

    rc, tasks, output = run(cluster, '-e', 'netmedic_ipam_cleanup_grace_minutes=15')
    assert rc == 0, output
    assert not [name for name, r in tasks.items() if r.get('changed')], output
    assert objects(cluster, scratch)['DaemonSet']['metadata']['resourceVersion'] == made['DaemonSet']['metadata']['resourceVersion']

    rc, _tasks, output = run(cluster, '-e', 'netmedic_ipam_cleanup_state=absent')
    assert rc == 0, output
    assert all(obj is None for obj in objects(cluster, scratch).values())


@pytest.mark.parametrize('extra, message', [
    (['-e', 'netmedic_ipam_cleanup_image=busybox:latest'], 'pinned by digest'),
    (['-e', 'netmedic_ipam_cleanup_state=gone'], 'netmedic_ipam_cleanup_state'),
])
def test_c8_bad_input_fails_before_any_change(writable, scratch, run, audit, extra, message):
    cluster = writable
    rc, _tasks, output = run(cluster, *extra)
    assert rc != 0 and message in output, output
    assert all(obj is None for obj in objects(cluster, scratch).values()) and not writes(audit)
    assert cluster.find('Lease', scratch, LEASE) is None


def test_c8_refuses_while_another_run_holds_the_lock(writable, scratch, run):
    cluster = writable
    spec = {'holderIdentity': 'awx-job-77', 'leaseDurationSeconds': 3600, 'renewTime': _ago(10), 'acquireTime': _ago(10)}
    cluster.create({'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease', 'metadata': {'name': LEASE}, 'spec': spec},
                   namespace=scratch)
    before = cluster.get('Lease', scratch, LEASE)
    audit = Audit(cluster)                                            # from here: the planted Lease is not the run's
    rc, _tasks, output = run(cluster)
    assert rc != 0 and "held by 'awx-job-77'" in output, output
    assert all(obj is None for obj in objects(cluster, scratch).values()) and not writes(audit)
    after = cluster.get('Lease', scratch, LEASE)
    assert after['spec']['holderIdentity'] == 'awx-job-77'
    assert after['metadata']['resourceVersion'] == before['metadata']['resourceVersion']


def test_c8_refuses_outside_the_window(writable, scratch, run, audit):
    cluster = writable
    window = json.dumps({'netmedic_window': {'days': ['mon'], 'start': '02:00', 'end': '03:00', 'timezone': 'UTC'}})
    rc, _tasks, output = run(cluster, '-e', window, '-e', 'netmedic_now=2026-12-01T12:00:00+00:00')
    assert rc != 0 and 'outside' in output, output
    assert all(obj is None for obj in objects(cluster, scratch).values()) and not writes(audit)
    assert cluster.find('Lease', scratch, LEASE) is None
