"""playbooks/ipam_gc_fleet.yml (catalog W-7) under the safety spine (issue 9 findings 4, 8, 9, 13), API double.

The fleet of tests/lab/test_ipam_gc_fleet.py (three local "nodes" = the double's Nodes, each with a leaked host-local
allocation, a ``ctr`` stand-in) is reused. The cluster-side spine runs delegated from the node play: first node
acquires the Lease kube-system/netmedic-ipam-gc, later nodes renew it, the last node (or a failure) releases it.
What is asserted is read back from the double's store (Nodes, the Lease), the directories and the change report.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
from pathlib import Path

DOUBLE_ONLY = 'portable: the ipam-gc Lease, window, cordon and a failure on the W-7 fleet of this machine; nothing the real server does differently'

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location('netmedic_w7_fleet', HERE / 'test_ipam_gc_fleet.py')
fleet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet)

NODES = fleet.NODES
NS = 'kube-system'
LEASE = (NS, 'netmedic-ipam-gc')
GC = fleet.GC
WINDOW = {'days': ['mon'], 'start': '02:00', 'end': '03:00', 'timezone': 'UTC'}
OUTSIDE = '2026-12-01T12:00:00+00:00'          # a Tuesday noon


def _ago(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    return t.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def _hold(double, holder, age=10, duration=3600):
    double.store.create('leases', NS, {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                                       'metadata': {'name': LEASE[1], 'namespace': NS},
                                       'spec': {'holderIdentity': holder, 'leaseDurationSeconds': duration,
                                                'renewTime': _ago(age), 'acquireTime': _ago(age)}})


def _holder(double):
    lease = double.store.find('leases', *LEASE)
    return None if lease is None else (lease.get('spec') or {}).get('holderIdentity')


def _report_env(tmp_path, job=None):
    env = {'ANSIBLE_CALLBACKS_ENABLED': 'netmedic.k8s.change_report', 'NETMEDIC_REPORT_DIR': str(tmp_path / 'report')}
    if job:
        env['AWX_JOB_ID'] = str(job)
    return env


def _state(double, tmp_path):
    return ({n: fleet._files(tmp_path, n) for n in NODES}, fleet._cordoned(double))


def test_issue9_f4_w7_lock_held_by_another_run_or_slice_stops_with_nothing_changed(double, tmp_path):
    """Issue 9 finding 4 (W-7 had no lock) and finding 9 (AWX job slicing, --limit): another AWX job - or another slice
    of the same job template, which is its own job - holds the Lease; this slice (--limit lab-node-2, no localhost in
    the limit) stops before any node is cordoned or cleaned, and leaves the other run's Lease alone."""
    bindir = fleet._fleet(tmp_path)
    _hold(double, 'awx-job-100')
    before = _state(double, tmp_path)
    rc, results, output = fleet.run_playbook(double, tmp_path, bindir, args=('--limit', 'lab-node-2'),
                                             env_extra=_report_env(tmp_path, job=101))
    assert rc != 0 and "held by 'awx-job-100'" in output, output
    assert GC not in results and 'Cordon the Node' not in results
    assert _state(double, tmp_path) == before
    assert _holder(double) == 'awx-job-100'


def test_issue9_f4_w7_outside_the_window_changes_nothing_then_override_is_recorded(double, tmp_path):
    bindir = fleet._fleet(tmp_path)
    before = _state(double, tmp_path)
    outside = {'netmedic_window': WINDOW, 'netmedic_now': OUTSIDE}
    rc, results, output = fleet.run_playbook(double, tmp_path, bindir, extra_vars=outside)
    assert rc != 0 and 'outside the change window' in output, output
    assert GC not in results and _state(double, tmp_path) == before
    assert double.store.find('leases', *LEASE) is None

    rc, results, output = fleet.run_playbook(double, tmp_path, bindir, env_extra=_report_env(tmp_path, job=102),
                                             extra_vars={'netmedic_window': WINDOW, 'netmedic_now': OUTSIDE,
                                                         'netmedic_window_override': True})
    assert rc == 0, output
    for index, node in enumerate(NODES, 1):
        assert fleet._files(tmp_path, node) == ['10.0.%d.2' % index, 'last_reserved_ip.0', 'lock'], node
    assert fleet._cordoned(double) == dict.fromkeys(NODES, False)
    reports = [json.loads(p.read_text()) for p in (tmp_path / 'report').glob('change-report-*.json')]
    assert any('OVERRIDDEN' in w for r in reports for e in r['entries'] for w in e.get('warnings') or []), reports
    assert double.store.find('leases', *LEASE) is None                       # released after the last node
    # Issue 9 finding 13: "node i/N <name>" while it runs and a summary at the end.
    for index, node in enumerate(NODES, 1):
        label = 'node %d/3 %s' % (index, node)
        assert results['Progress'][node]['msg'].startswith(label + ': health gate'), sorted(results)
        assert results['Progress, node done'][node]['msg'].startswith(label + ': collected 1 leaked')
    summary = results['Summary (W-7)']['lab-node-3']['msg']
    assert len(summary) == 4 and summary[0].startswith('node 1/3 lab-node-1: collected') and 'W-7 finished' in summary[3]


def test_issue9_f4_w7_lock_released_after_a_failure_and_the_rerun_is_not_blocked(double, tmp_path):
    """cni_ipam_gc fails on lab-node-2: the rollout stops, lab-node-2 stays cordoned, and the Lease is released on
    that failure path, so the re-run (a new AWX job, a new holder) starts at once, cleans and uncordons lab-node-2."""
    bindir = fleet._fleet(tmp_path, empty_runtime_on=('lab-node-2',))
    rc, results, output = fleet.run_playbook(double, tmp_path, bindir, env_extra=_report_env(tmp_path, job=103))
    assert rc != 0, output
    assert fleet._cordoned(double) == {'lab-node-1': False, 'lab-node-2': True, 'lab-node-3': False}
    assert double.store.find('leases', *LEASE) is None  # released, not left to expire
    released = next(r for k, r in results.items() if k.endswith(' : Release the cluster lock ipam-gc'))['lab-node-2']
    assert released['lock']['action'] == 'released', released                 # this run held it and let it go
    stop = results['Stop - summary of where the rollout was left']['lab-node-2']
    assert stop['msg'].startswith('node 2/3 lab-node-2: FAILED') and 'Not touched: lab-node-3' in stop['msg'], stop
    assert 'node 1/3 lab-node-1: collected' in stop['msg']

    (bindir / 'ctr').write_text('#!/bin/sh\nprintf "%%s\\n" %s\n' % ' '.join(fleet.cid(i * 10) for i in (1, 2, 3)))
    rc, results, output = fleet.run_playbook(double, tmp_path, bindir, env_extra=_report_env(tmp_path, job=104))
    assert rc == 0, output
    assert fleet._cordoned(double) == dict.fromkeys(NODES, False)
    assert fleet._files(tmp_path, 'lab-node-2') == ['10.0.2.2', 'last_reserved_ip.0', 'lock']
    assert double.store.find('leases', *LEASE) is None
