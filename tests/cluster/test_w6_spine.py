"""playbooks/arp_flush.yml (catalog W-6, N-6) under the safety spine (issue 9 findings 4, 9, 13), on the double and on
the real kube-apiserver (issue 15).

Ported from tests/lab/test_w6_spine.py (all three cases; the runner ``run`` is re-exported there for
tests/lab/test_rbac_playbooks.py). Three inventory hosts are the seed's Nodes ``lab-node-1..3``; their node side runs
on this machine (connection local). The VIP is in TEST-NET-1 (192.0.2.0/24), which no neighbor table here holds, so
``neighbor_flush`` only reads (the real removal of a stale entry is tests/labvm/test_arp_flush_playbook.py). What the
spine must guarantee is read back through the API (the playbook's Lease ``kube-system/netmedic-arp-flush``;
``spine_leases``: no ``netmedic-*`` Lease there before or after) and from which node tasks ran at all; a device that
does not exist makes ``neighbor_flush`` fail before it changes anything. The Nodes are only read (the health gate).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cluster.conftest import hold_lease
from tests.lab.playbook_run import module_python, run_playbook

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'arp_flush.yml'
NODES = ('lab-node-1', 'lab-node-2', 'lab-node-3')
NS = 'kube-system'
LEASE = (NS, 'netmedic-arp-flush')
VIP = '192.0.2.10'
REAL_MAC = '02:00:00:00:00:0a'
WINDOW = {'days': ['mon'], 'start': '02:00', 'end': '03:00', 'timezone': 'UTC'}
OUTSIDE = '2026-12-01T12:00:00+00:00'          # a Tuesday noon
FLUSH = "Remove entries whose MAC differs from the VIP's real MAC"


def run(target, tmp_path, check=False, args=(), job=None, vips=None, **variables):
    """W-6 over the three local "nodes" against ``target`` (anything with a ``kubeconfig_path``: a tests/cluster
    ``Cluster``, a tests/lab double or identity); ``(rc, {task: {host: result}}, output)``."""
    hosts = {n: {'ansible_connection': 'local', 'ansible_python_interpreter': module_python()[0]} for n in NODES}
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'all': {'hosts': hosts}}))
    extra = dict({'netmedic_vips': vips or [{'address': VIP, 'expected_mac': REAL_MAC}]}, **variables)
    tmp = tmp_path / 'tmp'
    tmp.mkdir(exist_ok=True)
    env = {'ANSIBLE_CALLBACKS_ENABLED': 'netmedic.k8s.change_report', 'AWX_JOB_ID': str(job) if job else None,
           'TMPDIR': str(tmp)}
    return run_playbook(target, tmp_path, PLAYBOOK, *args, inventory=inventory, diff=True, check=check, extra_vars=extra,
                        env=env, by_host=True, timeout=900)


def _holder(cluster):
    lease = cluster.find('Lease', *LEASE)
    return None if lease is None else (lease.get('spec') or {}).get('holderIdentity')


def _nodes(cluster):
    """The Nodes' specs and labels (annotations without nodesim's heartbeat): what a spine could change."""
    return {n['metadata']['name']: (n['spec'], n['metadata'].get('labels')) for n in cluster.items('Node')}


def test_issue9_f4_w6_lock_held_by_another_run_stops_with_nothing_changed(spine_leases, tmp_path):
    """Issue 9 finding 4 (W-6 had no lock): another run (or AWX slice) holds the Lease; this one, limited to one node
    (--limit lab-node-2, localhost not in the limit: the lock is taken from the node play), runs no node task."""
    cluster = spine_leases
    held = hold_lease(cluster, *LEASE, 'awx-job-200', age=5)
    rc, results, output = run(cluster, tmp_path, args=('--limit', 'lab-node-2'), job=201)
    assert rc != 0 and "held by 'awx-job-200'" in output, output
    assert FLUSH not in results and 'Health gate before the node' not in results
    assert _holder(cluster) == 'awx-job-200'
    assert cluster.get('Lease', *LEASE)['metadata']['resourceVersion'] == held['metadata']['resourceVersion']


def test_issue9_f4_w6_outside_the_window_changes_nothing_then_override_is_recorded(spine_leases, tmp_path):
    cluster = spine_leases
    nodes = _nodes(cluster)
    rc, results, output = run(cluster, tmp_path, netmedic_window=WINDOW, netmedic_now=OUTSIDE)
    assert rc != 0 and 'outside the change window' in output, output
    assert FLUSH not in results
    assert cluster.find('Lease', *LEASE) is None

    rc, results, output = run(cluster, tmp_path, job=202, netmedic_window=WINDOW, netmedic_now=OUTSIDE,
                              netmedic_window_override=True)
    assert rc == 0, output
    assert set(results[FLUSH]) == set(NODES) and not any(r.get('failed') for r in results[FLUSH].values())
    assert set(results['Health gate before the node']) == set(NODES)        # a gate before every node
    reports = [json.loads(p.read_text()) for p in (tmp_path / 'report').glob('change-report-*.json')]
    assert any('OVERRIDDEN' in w for r in reports for e in r['entries'] for w in e.get('warnings') or []), reports
    assert cluster.find('Lease', *LEASE) is None                              # released after the last node
    released = next(r for k, r in results.items() if k.endswith(' : Release the cluster lock arp-flush'))['lab-node-3']
    assert released['lock']['action'] == 'released', released
    # Issue 9 finding 13: one line per node while it runs, and a summary.
    for index, node in enumerate(NODES, 1):
        label = 'node %d/3 %s' % (index, node)
        assert results['Progress'][node]['msg'].startswith(label + ': window and lock'), sorted(results)
        assert results['Progress, node done'][node]['msg'].startswith(label + ': 0 stale entries removed')
    summary = results['Summary (W-6)']['lab-node-3']['msg']
    assert len(summary) == 4 and summary[-1] == 'W-6 finished.', summary
    assert _nodes(cluster) == nodes                                           # W-6 never cordons


def test_issue9_f4_w6_lock_released_after_a_failure(spine_leases, tmp_path):
    """neighbor_flush fails on the first node (its device does not exist): the run stops there, the later nodes are not
    touched, and the Lease is released on that failure path; the re-run (a new job) is not blocked and finishes."""
    cluster = spine_leases
    rc, results, output = run(cluster, tmp_path, job=203,
                              vips=[{'address': VIP, 'expected_mac': REAL_MAC, 'device': 'nmtest-nodev0'}])
    assert rc != 0, output
    assert set(results[FLUSH]) == {'lab-node-1'} and results[FLUSH]['lab-node-1']['failed'] is True
    stop = results['Stop - summary of where the run was left']['lab-node-1']
    assert stop['msg'].startswith('node 1/3 lab-node-1: FAILED') and 'Not touched: lab-node-2, lab-node-3' in stop['msg']
    assert cluster.find('Lease', *LEASE) is None
    released = next(r for k, r in results.items() if k.endswith(' : Release the cluster lock arp-flush'))['lab-node-1']
    assert released['lock']['action'] == 'released', released                 # this run held it and let it go
    rc, results, output = run(cluster, tmp_path, job=204)
    assert rc == 0, output
    assert set(results[FLUSH]) == set(NODES) and cluster.find('Lease', *LEASE) is None
