"""node_drain and daemonset_restart that really act, on the double and on the real kube-apiserver (issue 15).

On the real control plane (``make realcluster-test``: lab/k8s/k8sctl up + seed) no kubelet runs:
lab/k8s/nodesim.py plays the seed's three nodes (Ready, Leases) and their pods (Running and Ready
once bound, graceful deletion finished). Everything else is the real components': the eviction
API, the disruption controller computing the PodDisruptionBudget's budget from the pods' readiness,
the ReplicaSet and DaemonSet controllers making replacements and the scheduler placing them.
On the double the same tests run against its own models of those controllers.

They change the cluster (cordon, evictions, restarts) and put the drained node back, so they run
only where ``cluster.writable`` (tests/cluster/conftest.py). What is asserted is read back through
the API, not taken from the module's answer alone.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.cluster.conftest import wait  # noqa: E402
from tests.lab.playbook_run import run_playbook  # noqa: E402  the one ansible-playbook runner of the tests

ANNOTATION = 'netmedic.io/cordoned-by'


def run_tasks(cluster, tmp_path, tasks):
    """The tasks as one play on localhost against ``cluster``: ``(rc, {task: result}, output)``."""
    play = [{'name': 'netmedic workflows', 'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]
    path = tmp_path / 'play.yml'
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    return run_playbook(cluster, tmp_path, path, timeout=600)     # the cluster's kubeconfig and context


def _pods(cluster, namespace, selector):
    return [p for p in cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
            if not p.metadata.deletion_timestamp]


def _ready(pod):
    return pod.status.phase == 'Running' and any(c.type == 'Ready' and c.status == 'True' for c in pod.status.conditions or [])


def _web_settled(cluster):
    """Three Ready web pods and the budget computed from them (the real disruption controller's status)."""
    pods = _pods(cluster, 'default', 'app=web')
    pdb = cluster.policy.read_namespaced_pod_disruption_budget('web', 'default')
    ok = len(pods) == 3 and all(_ready(p) for p in pods) and pdb.status and pdb.status.current_healthy == 3 \
        and pdb.status.disruptions_allowed == 1
    return pods if ok else None


def test_issue15_drain_evicts_through_the_budget_and_the_replacements_run_elsewhere(writable, tmp_path):
    """W-1's drain on either server: cordon + evictions under PDB web (minAvailable 2 of 3), replacements scheduled
    on the other nodes and Ready, DaemonSet pods left, the second run a no-op; uncordon puts the node back."""
    cluster = writable
    pods = wait('web pods Ready and the PDB computed', lambda: _web_settled(cluster))
    node = sorted(p.spec.node_name for p in pods)[0]
    on_node = {p.metadata.uid for p in pods if p.spec.node_name == node}
    drain = {'name': node, 'timeout': 120, 'poll_interval': 0.5, 'run_id': 'issue15-drain'}
    rc, results, output = run_tasks(cluster, tmp_path, [
        {'name': 'drain', 'netmedic.k8s.node_drain': drain},
        {'name': 'again', 'netmedic.k8s.node_drain': drain},
    ])
    try:
        assert rc == 0, output[-4000:]
        assert results['drain']['changed'] is True and results['again']['changed'] is False, results
        evicted = {e['pod'] for e in results['drain']['pods'] if e['outcome'] == 'evicted'}
        assert evicted and results['drain']['remaining'] == [], results['drain']
        stored = cluster.core.read_node(node)
        assert stored.spec.unschedulable is True and stored.metadata.annotations[ANNOTATION] == 'issue15-drain'
        left = cluster.core.list_pod_for_all_namespaces(field_selector='spec.nodeName=%s' % node).items
        owners = {(p.metadata.owner_references or [types.SimpleNamespace(kind=None)])[0].kind for p in left
                  if not p.metadata.deletion_timestamp}
        assert owners <= {'DaemonSet'} and left, owners                       # DaemonSet pods stay, nothing else
        # The ReplicaSet's replacements: three Ready web pods again, none on the drained node, none of the evicted.
        after = wait('three Ready web pods off %s' % node, lambda: _web_settled(cluster))
        assert not {p.metadata.uid for p in after} & on_node
        assert all(p.spec.node_name != node for p in after), [(p.metadata.name, p.spec.node_name) for p in after]
    finally:
        rc, results, output = run_tasks(cluster, tmp_path, [{'name': 'uncordon', 'netmedic.k8s.node_drain': {
            'name': node, 'state': 'uncordon', 'run_id': 'issue15-drain'}}])
        assert rc == 0, output[-4000:]
    back = cluster.core.read_node(node)
    assert not back.spec.unschedulable and ANNOTATION not in (back.metadata.annotations or {})


def test_issue15_daemonset_restart_replaces_the_pod_node_by_node(writable, tmp_path):
    """C-7's restart on either server: each planned node's pod deleted, the DaemonSet controller's replacement
    Ready on the same node before the next one (patterns_preset none: no kubelet serves logs in the lab)."""
    cluster = writable
    selector = 'app=flannel'

    def all_ready():
        pods = _pods(cluster, 'kube-system', selector)
        return {p.spec.node_name: p.metadata.uid for p in pods} if len(pods) == 3 and all(map(_ready, pods)) else None

    before = wait('flannel pods Ready on every node', all_ready)
    nodes = sorted(before)[:2]
    rc, results, output = run_tasks(cluster, tmp_path, [{'name': 'restart', 'netmedic.k8s.daemonset_restart': {
        'name': 'kube-flannel-ds', 'nodes': nodes, 'patterns_preset': 'none', 'timeout': 120, 'poll_interval': 0.5}}])
    assert rc == 0, output[-4000:]
    result = results['restart']
    assert [r['node'] for r in result['restarted']] == nodes and result['failed_node'] is None, result
    after = {p.spec.node_name: p for p in _pods(cluster, 'kube-system', selector)}
    for node in nodes:
        assert after[node].metadata.uid != before[node] and _ready(after[node]), node
    untouched = sorted(set(before) - set(nodes))
    assert untouched and all(after[n].metadata.uid == before[n] for n in untouched)
