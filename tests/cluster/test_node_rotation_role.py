"""Role netmedic.k8s.node_rotation (catalog W-1) where it must stop before any machine is touched, on the double and on
the real kube-apiserver (issue 15).

Ported from tests/lab/test_node_rotation_role.py (issue 15 item 4; 3 of its 6 cases): check mode changes nothing (it
would drain every node); a drain the PodDisruptionBudget ``default/web`` refuses (the eviction API's 429) stops the
rotation before the provider hook with the node left cordoned and no web pod evicted; without a provider hook or an
external replacement the role fails before anything. The cases that rotate a node (a new boot ID, which
lab/k8s/nodesim.py's heartbeat would overwrite) stay in tests/lab, kind ``kubelet``. The role task is
tests/lab/node_rotation_run.py's ``role_task``, the one both suites use.

On the real server the eviction API and the disruption controller are the real ones, and the drain's evictions of other
pods on the node are graceful; the web pods are read with their deletionTimestamp, so "no web pod evicted" also means
none Terminating. Cluster-wide and shared state is put back: ``w1_cluster`` uncordons the Nodes (the real node lifecycle
controller's taint off again) and ``spine_leases`` removes every ``kube-system/netmedic-*`` Lease; the budget test sets
the seed's PodDisruptionBudget ``default/web`` back to its ``minAvailable`` and waits for the budget recomputed. What is
asserted is read back through the API.
"""

from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import waiter
from tests.lab.node_rotation_run import NODE_RV_ON_DOUBLE, NODES, cordoned, node_writes, role_task, task_result, web_pods, web_settled

STOP = 'Stop the rotation, the node stays cordoned - %s'
DRAIN = 'Drain with evictions, PodDisruptionBudgets honoured - %s'


@pytest.fixture
def w1_cluster(nodes_uncordoned):
    """``nodes_uncordoned`` with the web pods settled."""
    web_settled(nodes_uncordoned)
    return nodes_uncordoned


def _budget(cluster):
    return cluster.get('PodDisruptionBudget', 'default', 'web')


def _set_min_available(cluster, value):
    """Set the budget's minAvailable and wait until the disruption controller computed it from the three web pods."""
    cluster.policy.patch_namespaced_pod_disruption_budget('web', 'default', {'spec': {'minAvailable': value}},
                                                          _content_type='application/merge-patch+json')

    def computed(pdb):
        status = pdb.get('status') or {}
        return (status.get('observedGeneration') == pdb['metadata']['generation'] and status.get('desiredHealthy') == value
                and status.get('currentHealthy') == 3 and status.get('disruptionsAllowed') == 3 - value)
    try:
        waiter.wait_until(lambda: _budget(cluster), computed, waiter.deadline(60), 0.5)
    except waiter.WaitTimeout as exc:
        pytest.fail('PodDisruptionBudget default/web not computed for minAvailable %s after 60 s: %s' % (value, exc.last.get('status')))


@pytest.fixture
def budget_restored(w1_cluster):
    """The seed's PodDisruptionBudget ``default/web`` set back to its minAvailable after the test (before the Nodes are
    uncordoned), the budget recomputed from three Ready web pods."""
    cluster = w1_cluster
    seeded = _budget(cluster)['spec']['minAvailable']
    yield cluster
    _set_min_available(cluster, seeded)
    web_settled(cluster)


def _netmedic_leases(cluster):
    return [lease['metadata']['name'] for lease in cluster.items('Lease', 'kube-system') if lease['metadata']['name'].startswith('netmedic-')]


@pytest.mark.double_strict(NODE_RV_ON_DOUBLE)
def test_check_mode_changes_nothing(w1_cluster, playbook, tmp_path):
    cluster = w1_cluster
    web = web_pods(cluster)
    writes = node_writes(cluster)
    rc, results, output = playbook(cluster, role_task(cluster, tmp_path), check=True, timeout=600)
    assert rc == 0, output
    assert all(task_result(results, DRAIN % n)['changed'] for n in NODES)                   # would drain each
    assert cordoned(cluster) == dict.fromkeys(NODES, False)
    assert node_writes(cluster) == writes
    assert web_pods(cluster) == web


def test_budget_refusal_stops_and_leaves_the_node_cordoned(budget_restored, playbook, tmp_path):
    cluster = budget_restored
    _set_min_available(cluster, 3)                                                          # no web pod may be evicted
    web = web_pods(cluster)
    first = sorted({node for node, _deleted in web.values()})[0]
    order = [first] + [n for n in NODES if n != first]
    boots = {n: cluster.get('Node', None, n)['status']['nodeInfo'].get('bootID') for n in NODES}
    rc, results, output = playbook(cluster, role_task(cluster, tmp_path, node_rotation_nodes=order, node_rotation_drain_timeout=3))
    assert rc != 0, output
    drain = task_result(results, DRAIN % first)
    assert drain['failed'] and "would violate the pod's disruption budget" in drain['msg'], drain   # the API's 429
    stop = task_result(results, STOP % first)
    assert stop['failed'] and '%s is LEFT CORDONED' % first in stop['msg'] and 'rotated before it: none' in stop['msg'], stop
    assert cordoned(cluster) == {n: n == first for n in NODES}
    assert web_pods(cluster) == web                                                          # no web pod evicted
    assert {n: cluster.get('Node', None, n)['status']['nodeInfo'].get('bootID') for n in NODES} == boots


@pytest.mark.double_strict(NODE_RV_ON_DOUBLE)
def test_issue9_f12_no_hook_and_no_external_replacement_fails_before_anything(w1_cluster, playbook, tmp_path):
    """Without a provider hook nothing brings the machines back: fail at once, not after 30 min per node."""
    cluster = w1_cluster
    writes = node_writes(cluster)
    leases = {lease['metadata']['name'] for lease in cluster.items('Lease', 'kube-system')}
    rc, results, output = playbook(cluster, role_task(cluster, tmp_path, hook=False))
    assert rc != 0, output
    check = task_result(results, 'Check who brings each node back (provider hook or external replacement)')
    assert check['failed'] and 'node_rotation_external_replacement' in check['msg'] and 'Nothing was changed' in check['msg']
    assert not any(name.endswith(DRAIN % n) for name in results for n in NODES)
    assert node_writes(cluster) == writes
    # No Lease written: on the double kube-system has none at all; the real one holds the control plane's own
    # (leader election, apiserver identity), the same names as before, and none of netmedic's.
    if cluster.is_double:
        assert cluster.items('Lease', 'kube-system') == []
    assert {lease['metadata']['name'] for lease in cluster.items('Lease', 'kube-system')} == leases
    assert _netmedic_leases(cluster) == []
