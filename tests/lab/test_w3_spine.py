"""playbooks/ipvs_scheduler_change.yml (catalog W-3) under the safety spine (issue 9 findings 4, 5, 13), API double.

The node play (N-4, ipvs_modules) runs on stub nodes here (tests/lab/w3_run.py, the runner shared with tests/cluster):
the double's simulated kube-proxy logs ``Using ipvs Proxier.`` on a node only where StaticNodeState has ``ip_vs_lc``.
Everything asserted is read back from the double's store (ConfigMaps, pods, the Lease) and from the change report the
callback writes. The held-Lease case runs on the double and the real kube-apiserver in tests/cluster/test_w3_spine.py
(ported from here, issue 15 item 4).
"""

from __future__ import annotations

import datetime
import json

import pytest
import yaml

from lab.kubedouble import StaticNodeState
from tests.lab.w3_run import CM, LEASE, NODES, NS, ROOT
from tests.lab.w3_run import run_playbook as run

DOUBLE_ONLY = ("kubelet: the restart is verified by kube-proxy's log line ('Using ipvs Proxier.', or the fallback when a node lacks the scheduler's "
               "kernel module), written by the double's simulated kube-proxy; the simulated nodes serve no pod logs")

# Monday 02:00-03:00 UTC; 2026-12-01 12:00 UTC is a Tuesday noon: outside.
WINDOW = {'days': ['mon'], 'start': '02:00', 'end': '03:00', 'timezone': 'UTC'}
OUTSIDE = '2026-12-01T12:00:00+00:00'


def _ago(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    return t.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def _hold(double, holder, age=10, duration=3600):
    double.store.create('leases', NS, {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                                       'metadata': {'name': LEASE[1], 'namespace': NS},
                                       'spec': {'holderIdentity': holder, 'leaseDurationSeconds': duration,
                                                'renewTime': _ago(age), 'acquireTime': _ago(age)}})


def _uids(double):
    pods, _rv = double.store.list('pods', NS, label_selector='k8s-app=kube-proxy-worker')
    return {p['spec']['nodeName']: p['metadata']['uid'] for p in pods}


def _pods(double):
    pods, _rv = double.store.list('pods', NS, label_selector='k8s-app=kube-proxy-worker')
    return {p['spec']['nodeName']: p for p in pods}


def _logs(double, pod):
    return ''.join((double.store.logs.get(pod['metadata']['uid']) or {}).values())


def _text(double):
    return double.store.get('configmaps', NS, CM)['data']['config.conf']


def _holder(double):
    lease = double.store.find('leases', *LEASE)
    return None if lease is None else (lease.get('spec') or {}).get('holderIdentity')


@pytest.fixture
def lc_everywhere():
    return StaticNodeState({n: {'ip_vs', 'ip_vs_rr', 'ip_vs_lc'} for n in NODES})


@pytest.fixture
def lc_missing_on_node_3():
    return StaticNodeState({'lab-node-1': {'ip_vs', 'ip_vs_rr', 'ip_vs_lc'}, 'lab-node-2': {'ip_vs', 'ip_vs_rr', 'ip_vs_lc'},
                            'lab-node-3': {'ip_vs', 'ip_vs_rr'}})


def test_issue9_f4_w3_outside_the_window_changes_nothing_then_override_is_recorded(make_double, lc_everywhere, tmp_path):
    """Issue 9 finding 4: outside netmedic_window nothing changes and no Lease is written; with
    netmedic_window_override the run goes on, the change report records the override, the lock is released."""
    double = make_double(node_state=lc_everywhere)
    text, uids = _text(double), _uids(double)
    rc, output = run(double, tmp_path, 'closed', netmedic_window=WINDOW, netmedic_now=OUTSIDE)
    assert rc != 0 and 'outside the change window' in output, output
    assert _text(double) == text and _uids(double) == uids
    assert double.store.find('leases', *LEASE) is None

    rc, output = run(double, tmp_path, 'override', netmedic_window=WINDOW, netmedic_now=OUTSIDE,
                     netmedic_window_override=True)
    assert rc == 0, output
    assert 'scheduler: lc' in _text(double)
    assert all(_uids(double)[n] != uids[n] for n in NODES)
    reports = [json.loads(p.read_text()) for p in (tmp_path / 'report').glob('change-report-*.json')]
    report = next(r for r in reports if r['playbook'] == 'play-override.yml')
    assert any('OVERRIDDEN' in w for e in report['entries'] for w in e.get('warnings') or []), report
    assert double.store.find('leases', *LEASE) is None                                                     # released
    # Progress while it runs (issue 9 finding 13) and a summary at the end, not just "changed".
    for i, node in enumerate(NODES, 1):
        assert 'kube-proxy-worker node %d/3 %s: restarting' % (i, node) in output, output
        assert 'kube-proxy-worker node %d/3 %s: restarted, verified' % (i, node) in output
    assert 'W-3 IPVS scheduler lc:' in output and 'changed ipvs.scheduler rr lc' in output, output
    assert '3 node(s) restarted and verified in this run' in output


def test_issue9_f4_w3_lock_released_after_a_failure(make_double, lc_missing_on_node_3, tmp_path):
    """The rollout fails on lab-node-3 and rolls back; the Lease is released on the failure path too, so the next
    job (a new AWX container, a new holder) is not blocked until the TTL passes."""
    double = make_double(node_state=lc_missing_on_node_3)
    text = _text(double)
    rc, output = run(double, tmp_path, 'fails', '-v', env={'AWX_JOB_ID': '43'})
    assert rc != 0 and 'rolled back' in output, output
    assert _text(double) == text                                                   # the exact old bytes
    assert double.store.find('leases', *LEASE) is None                          # released, not left to expire
    assert "held by awx-job-43: released (deleted)" in output, output           # ... by this run, which held it
    assert 'kube-proxy-worker node 3/3 lab-node-3: FAILED' in output, output


def test_issue9_f5_w3_job_killed_midway_is_rerun_and_finishes(make_double, lc_everywhere, tmp_path, playbook):
    """A job killed mid-way: the ConfigMap already says lc (backup present), lab-node-1 already restarted, and the dead
    job's Lease has expired. The re-run (a new AWX job) takes the expired lock over, restarts only lab-node-2 and
    lab-node-3, verifies lab-node-1's pod, and releases the lock."""
    double = make_double(node_state=lc_everywhere)
    killed = yaml.safe_dump([
        {'name': 'C-2 (the job dies after it)', 'netmedic.k8s.kube_proxy_config': {
            'names': [CM], 'settings': {'ipvs.scheduler': 'lc'}}},
        {'name': 'node 1 restarted before the kill', 'netmedic.k8s.daemonset_restart': {
            'name': CM, 'nodes': ['lab-node-1'], 'timeout': 60}}])
    rc, _results, output = playbook(double, killed, extra_env={'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections')})
    assert rc == 0, output
    assert double.store.list('configmaps', NS, label_selector='netmedic.k8s/backup-of=%s' % CM)[0]
    _hold(double, 'awx-job-44', age=7200, duration=3600)                          # the killed job's, expired
    before = _uids(double)

    rc, output = run(double, tmp_path, 'rerun', env={'AWX_JOB_ID': '45'},
                     ipvs_scheduler_configmaps=[CM], ipvs_scheduler_daemonsets=[CM])
    assert rc == 0, output
    after = _uids(double)
    assert after['lab-node-1'] == before['lab-node-1']                              # not restarted twice
    assert after['lab-node-2'] != before['lab-node-2'] and after['lab-node-3'] != before['lab-node-3']
    assert 'kube-proxy-worker node 1/3 lab-node-1: already restarted' in output, output
    assert 'kube-proxy-worker node 2/3 lab-node-2: restarting' in output
    pods = _pods(double)
    assert all('Using ipvs Proxier.' in _logs(double, pods[n]) for n in NODES)
    assert 'scheduler: lc' in _text(double)
    assert double.store.find('leases', *LEASE) is None


def test_issue9_f5_w3_job_killed_midway_rerun_rolls_back_where_it_cannot_finish(
        make_double, lc_missing_on_node_3, tmp_path, playbook):
    """Killed after C-2 (backup present, no pod restarted); the re-run cannot finish (lab-node-3 lacks ip_vs_lc):
    although the ConfigMap does not change in the re-run, it rolls back to the exact backed-up bytes."""
    double = make_double(node_state=lc_missing_on_node_3)
    text = _text(double)
    killed = yaml.safe_dump([{'name': 'C-2 (the job dies after it)', 'netmedic.k8s.kube_proxy_config': {
        'names': [CM], 'settings': {'ipvs.scheduler': 'lc'}}}])
    rc, _results, output = playbook(double, killed, extra_env={'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections')})
    assert rc == 0 and 'scheduler: lc' in _text(double), output
    rc, output = run(double, tmp_path, 'rerun-fails', ipvs_scheduler_configmaps=[CM], ipvs_scheduler_daemonsets=[CM])
    assert rc != 0 and 'rolled back' in output, output
    assert _text(double) == text
    pods = _pods(double)
    assert all('Using ipvs Proxier.' in _logs(double, pods[n]) for n in NODES)    # every node runs rr again
    assert double.store.find('leases', *LEASE) is None


def test_issue9_f4_w3_lock_lost_between_nodes_stops_cleanly_and_the_rerun_goes_on(make_double, lc_everywhere, tmp_path):
    """Issue 9 finding 4 (renewal while it runs): after lab-node-1 is restarted another run takes the Lease over (as a
    takeover would). The renewal before lab-node-2 fails: the rollout stops between two nodes - no further restart, no
    rollback, the other run's Lease left alone - and says where to resume; the re-run (lock free again) goes on."""
    import threading
    import time

    double = make_double(node_state=lc_everywhere)
    before = _uids(double)
    stop = threading.Event()

    def steal():
        while not stop.is_set():
            if _uids(double).get('lab-node-1') not in (None, before['lab-node-1']):
                lease = double.store.find('leases', *LEASE)
                if lease is not None:
                    lease['spec'].update({'holderIdentity': 'awx-job-99', 'renewTime': _ago(0)})
                    double.store.update('leases', NS, LEASE[1], lease)
                    return
            time.sleep(0.05)

    thief = threading.Thread(target=steal, daemon=True)
    thief.start()
    try:
        rc, output = run(double, tmp_path, 'stolen', env={'AWX_JOB_ID': '46'})
    finally:
        stop.set()
        thief.join(5)
    assert rc != 0 and 'stopped before kube-proxy-worker node 2/3 lab-node-2' in output, output
    assert 'Nothing was rolled back' in output and 'It was rolled back' not in output
    after = _uids(double)
    assert after['lab-node-1'] != before['lab-node-1']
    assert after['lab-node-2'] == before['lab-node-2'] and after['lab-node-3'] == before['lab-node-3']
    assert 'scheduler: lc' in _text(double)                                         # the change stays
    assert _holder(double) == 'awx-job-99'                                          # not ours: left alone

    double.store.delete('leases', NS, LEASE[1])                                     # the other run finished
    rc, output = run(double, tmp_path, 'resume', env={'AWX_JOB_ID': '47'})
    assert rc == 0, output
    again = _uids(double)
    assert again['lab-node-1'] == after['lab-node-1']                               # verified, not restarted again
    assert again['lab-node-2'] != before['lab-node-2'] and again['lab-node-3'] != before['lab-node-3']
    assert double.store.find('leases', *LEASE) is None
