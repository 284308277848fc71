"""playbooks/ipam_gc_fleet.yml (catalog W-7) under the safety spine (issue 9 findings 4, 8, 9, 13), on the double and
on the real kube-apiserver (issue 15).

Ported from tests/lab/test_w7_spine.py (all three cases). The fleet is tests/lab/fleet.py's (three local "nodes" = the
seed's Nodes ``lab-node-1..3``, each with a leaked host-local allocation, a ``ctr`` stand-in).
The cluster-side spine runs delegated from the node play: the first node acquires the Lease
``kube-system/netmedic-ipam-gc`` (and ``netmedic-node-disruption``), later nodes renew it, the last node (or a failure)
releases it. Cordon and uncordon are real Node writes: ``nodes_uncordoned`` finds every Node uncordoned before the
test and leaves them so after it (netmedic's cordon annotation gone, and the node lifecycle controller's
``node.kubernetes.io/unschedulable`` taint too: tests/lab/node_rotation_run.py's ``restore_nodes``); ``spine_leases``: no ``kube-system/netmedic-*`` Lease
before or after. What is asserted is read back through the API (Nodes, the Lease), from the directories and the change
report.
"""

from __future__ import annotations

import json

from tests.cluster.conftest import hold_lease
from tests.lab.fleet import GC, NODES, cid, files, make_fleet, run_playbook, write_runtime
from tests.lab.node_rotation_run import CORDON_ANNOTATION, cordoned, node_state

NS = 'kube-system'
LEASE = (NS, 'netmedic-ipam-gc')
WINDOW = {'days': ['mon'], 'start': '02:00', 'end': '03:00', 'timezone': 'UTC'}
OUTSIDE = '2026-12-01T12:00:00+00:00'          # a Tuesday noon


def _holder(cluster):
    lease = cluster.find('Lease', *LEASE)
    return None if lease is None else (lease.get('spec') or {}).get('holderIdentity')


def _report_env(tmp_path, job=None):
    env = {'ANSIBLE_CALLBACKS_ENABLED': 'netmedic.k8s.change_report', 'NETMEDIC_REPORT_DIR': str(tmp_path / 'report'),
           'TMPDIR': str(_private_tmp(tmp_path))}
    if job:
        env['AWX_JOB_ID'] = str(job)
    return env


def _private_tmp(tmp_path):
    """TMPDIR of the runs (kubernetes.core caches discovery in ``$TMPDIR/k8srcp-*.json``)."""
    tmp = tmp_path / 'tmp'
    tmp.mkdir(exist_ok=True)
    return tmp


def _state(cluster, tmp_path):
    return ({n: files(tmp_path, n) for n in NODES}, node_state(cluster))


def test_issue9_f4_w7_lock_held_by_another_run_or_slice_stops_with_nothing_changed(nodes_uncordoned, tmp_path):
    """Issue 9 finding 4 (W-7 had no lock) and finding 9 (AWX job slicing, --limit): another AWX job - or another slice
    of the same job template, which is its own job - holds the Lease; this slice (--limit lab-node-2, no localhost in
    the limit) stops before any node is cordoned or cleaned, and leaves the other run's Lease alone."""
    cluster = nodes_uncordoned
    bindir = make_fleet(tmp_path)
    held = hold_lease(cluster, *LEASE, 'awx-job-100')
    before = _state(cluster, tmp_path)
    rc, results, output = run_playbook(cluster, tmp_path, bindir, args=('--limit', 'lab-node-2'),
                                       env_extra=_report_env(tmp_path, job=101))
    assert rc != 0 and "held by 'awx-job-100'" in output, output
    assert GC not in results and 'Cordon the Node' not in results
    assert _state(cluster, tmp_path) == before
    assert _holder(cluster) == 'awx-job-100'
    assert cluster.get('Lease', *LEASE)['metadata']['resourceVersion'] == held['metadata']['resourceVersion']


def test_issue9_f4_w7_outside_the_window_changes_nothing_then_override_is_recorded(nodes_uncordoned, tmp_path):
    cluster = nodes_uncordoned
    bindir = make_fleet(tmp_path)
    before = _state(cluster, tmp_path)
    outside = {'netmedic_window': WINDOW, 'netmedic_now': OUTSIDE}
    rc, results, output = run_playbook(cluster, tmp_path, bindir, extra_vars=outside,
                                       env_extra={'TMPDIR': str(_private_tmp(tmp_path))})
    assert rc != 0 and 'outside the change window' in output, output
    assert GC not in results and _state(cluster, tmp_path) == before
    assert cluster.find('Lease', *LEASE) is None

    rc, results, output = run_playbook(cluster, tmp_path, bindir, env_extra=_report_env(tmp_path, job=102),
                                       extra_vars={'netmedic_window': WINDOW, 'netmedic_now': OUTSIDE,
                                                   'netmedic_window_override': True})
    assert rc == 0, output
    for index, node in enumerate(NODES, 1):
        assert files(tmp_path, node) == ['10.0.%d.2' % index, 'last_reserved_ip.0', 'lock'], node
    assert cordoned(cluster) == dict.fromkeys(NODES, False)
    reports = [json.loads(p.read_text()) for p in (tmp_path / 'report').glob('change-report-*.json')]
    assert any('OVERRIDDEN' in w for r in reports for e in r['entries'] for w in e.get('warnings') or []), reports
    assert cluster.find('Lease', *LEASE) is None                             # released after the last node
    # Issue 9 finding 13: "node i/N <name>" while it runs and a summary at the end.
    for index, node in enumerate(NODES, 1):
        label = 'node %d/3 %s' % (index, node)
        assert results['Progress'][node]['msg'].startswith(label + ': health gate'), sorted(results)
        assert results['Progress, node done'][node]['msg'].startswith(label + ': collected 1 leaked')
    summary = results['Summary (W-7)']['lab-node-3']['msg']
    assert len(summary) == 4 and summary[0].startswith('node 1/3 lab-node-1: collected') and 'W-7 finished' in summary[3]


def test_issue9_f4_w7_lock_released_after_a_failure_and_the_rerun_is_not_blocked(nodes_uncordoned, tmp_path):
    """cni_ipam_gc fails on lab-node-2: the rollout stops, lab-node-2 stays cordoned, and the Lease is released on
    that failure path, so the re-run (a new AWX job, a new holder) starts at once, cleans and uncordons lab-node-2."""
    cluster = nodes_uncordoned
    bindir = make_fleet(tmp_path, empty_runtime_on=('lab-node-2',))
    rc, results, output = run_playbook(cluster, tmp_path, bindir, env_extra=_report_env(tmp_path, job=103))
    assert rc != 0, output
    assert cordoned(cluster) == {'lab-node-1': False, 'lab-node-2': True, 'lab-node-3': False}
    assert cluster.find('Lease', *LEASE) is None  # released, not left to expire
    released = next(r for k, r in results.items() if k.endswith(' : Release the cluster lock ipam-gc'))['lab-node-2']
    assert released['lock']['action'] == 'released', released                 # this run held it and let it go
    stop = results['Stop - summary of where the rollout was left']['lab-node-2']
    assert stop['msg'].startswith('node 2/3 lab-node-2: FAILED') and 'Not touched: lab-node-3' in stop['msg'], stop
    assert 'node 1/3 lab-node-1: collected' in stop['msg']

    write_runtime(bindir, [cid(i * 10) for i in (1, 2, 3)])            # the runtime lists lab-node-2's container again
    rc, results, output = run_playbook(cluster, tmp_path, bindir, env_extra=_report_env(tmp_path, job=104))
    assert rc == 0, output
    assert cordoned(cluster) == dict.fromkeys(NODES, False)
    assert files(tmp_path, 'lab-node-2') == ['10.0.2.2', 'last_reserved_ip.0', 'lock']
    assert cluster.find('Lease', *LEASE) is None
    node2 = cluster.get('Node', None, 'lab-node-2')
    assert CORDON_ANNOTATION not in (node2['metadata'].get('annotations') or {})     # the re-run's uncordon took its mark off
