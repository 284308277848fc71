"""Issue 9, open question of finding 4, on the double and on the real kube-apiserver (issue 15): every workflow that
cordons or drains nodes (W-1 node-rotation, W-2 flannel, W-7 ipam-gc) also holds the Lease
``kube-system/netmedic-node-disruption`` (role change_guard), so while one holds it another stops before any node.

Ported from tests/lab/test_node_disruption_lock.py (issue 15 item 4; 2 of its 4 cases): W-1 and W-7 are each refused
while another workflow holds node-disruption, with nothing cordoned, rotated or collected, their own family's Lease
given back and the other run's left alone. The cases where W-1 rotates a node (a new boot ID, which lab/k8s/nodesim.py's
heartbeat would overwrite) stay in tests/lab, kind ``kubelet``. W-1 runs through tests/lab/node_rotation_run.py (the
runner both suites use); W-7's fleet (three local "nodes" = the seed's Nodes, each with a leaked host-local allocation,
a ``ctr`` stand-in) is tests/lab/fleet.py's. The Lease is planted through the API; ``nodes_uncordoned``
(``spine_leases``) fails the test when a ``kube-system/netmedic-*`` Lease is there before it, removes every one after
it and puts back a cordon a failed assertion left. What is asserted is read back through the API (Nodes, Leases) and from the directories.
"""

from __future__ import annotations

from tests.cluster.conftest import hold_lease
from tests.lab import fleet
from tests.lab import node_rotation_run as w1

NS = 'kube-system'
DISRUPTION = 'netmedic-node-disruption'


def _holder(cluster, name):
    lease = cluster.find('Lease', NS, name)
    return None if lease is None else (lease.get('spec') or {}).get('holderIdentity')


def test_issue9_w1_refused_while_another_workflow_holds_node_disruption(nodes_uncordoned, tmp_path):
    """A W-2 or W-7 run holds node-disruption: W-1 stops before any node is cordoned, gives its node-rotation Lease
    back, and leaves the other run's Lease alone."""
    cluster = nodes_uncordoned
    hold_lease(cluster, NS, DISRUPTION, 'awx-job-300')
    boots = w1.boot_ids(cluster)
    rc, output = w1.run(cluster, tmp_path, 'refused', node_rotation_nodes=['lab-node-1'])
    assert rc != 0 and 'node-disruption' in output and "awx-job-300" in output, output
    assert w1.cordoned(cluster) == dict.fromkeys(w1.NODES, False)
    assert w1.boot_ids(cluster) == boots
    assert _holder(cluster, 'netmedic-node-rotation') is None                    # given back at once
    assert _holder(cluster, DISRUPTION) == 'awx-job-300'


def test_issue9_w7_refused_while_another_workflow_holds_node_disruption(nodes_uncordoned, tmp_path):
    """W-7 (family ipam-gc) with node-disruption held by a W-1 job: nothing cordoned or collected, ipam-gc Lease free."""
    cluster = nodes_uncordoned
    bindir = fleet.make_fleet(tmp_path)
    hold_lease(cluster, NS, DISRUPTION, 'awx-job-301')
    before = ({n: fleet.files(tmp_path, n) for n in fleet.NODES}, w1.cordoned(cluster))
    rc, _results, output = fleet.run_playbook(cluster, tmp_path, bindir)
    assert rc != 0 and 'node-disruption' in output, output
    assert ({n: fleet.files(tmp_path, n) for n in fleet.NODES}, w1.cordoned(cluster)) == before
    assert _holder(cluster, 'netmedic-ipam-gc') is None
    assert _holder(cluster, DISRUPTION) == 'awx-job-301'
