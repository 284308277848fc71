"""playbooks/ipam_gc_fleet.yml (catalog W-7) against the API double: the health gate refusing on a NotReady Node.

The fleet and its runner are tests/lab/fleet.py (three local "nodes" = the double's Nodes ``lab-node-1..3``, each
with a leaked host-local allocation, a ``ctr`` stand-in). The other cases (check mode, node by node with a pre-cordoned
node, a failure leaving the node cordoned, the re-run uncordoning it, AWX-style --become --limit) run on the double and
on the real kube-apiserver in tests/cluster/test_ipam_gc_fleet.py (ported from here, issue 15 item 4). What is asserted
is read back from the double's store and from the directories.
"""

from __future__ import annotations

import pytest

from tests.lab.fleet import GC, NODES, files, make_fleet, run_playbook


def _cordoned(double):
    return {n: bool(double.store.get('nodes', None, n)['spec'].get('unschedulable')) for n in NODES}


@pytest.mark.double_only("kubelet: a Node made NotReady on demand (its DaemonSet pods going unready with it); the simulated node's heartbeat "
                         'reports Ready again within 60 s')
def test_health_gate_refuses_before_any_change(double, raw, tmp_path):
    bindir = make_fleet(tmp_path)
    status, _ctype, body = raw('PATCH', '/api/v1/nodes/lab-node-3/status',
                               {'status': {'conditions': [{'type': 'Ready', 'status': 'False', 'reason': 'KubeletNotReady'}]}},
                               content_type='application/strategic-merge-patch+json')
    assert status == 200, body
    before = {n: files(tmp_path, n) for n in NODES}
    rc, results, output = run_playbook(double, tmp_path, bindir)
    assert rc != 0, output
    gate = results['Health gate before lab-node-1']['lab-node-1']
    assert gate['failed'] is True and 'Node lab-node-3: NotReady (False, KubeletNotReady)' in gate['msg'], gate
    assert GC not in results
    assert {n: files(tmp_path, n) for n in NODES} == before
    assert _cordoned(double) == dict.fromkeys(NODES, False)
    # Tolerating one NotReady Node lets the rollout go on (lab-node-3 itself included).
    rc, results, output = run_playbook(double, tmp_path, bindir, extra_vars={'netmedic_max_unhealthy': 1})
    assert rc == 0, output
    assert all(results[GC][n]['changed'] for n in NODES)
