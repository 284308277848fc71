"""Module netmedic.k8s.node_drain (catalog W-1, W-2, W-7; issue 9 findings 3 and 8) on the double and on the real
kube-apiserver (issue 15).

Ported from tests/lab/test_node_drain.py (issue 15 item 4; none of its cases needed the double): a pod held by a
finalizer fails the drain and is listed, a PodDisruptionBudget blocks the evictions until the timeout and the drain
completes once it is relaxed, check mode evicts nothing (server-side dry runs), netmedic uncordons only what it
cordoned, and unmanaged or emptyDir pods refuse the drain before anything changes. Each test works on a copy of the
seed's Deployment ``web`` and its budget (minAvailable 2 of 3) in a namespace of its own (``web_copy``): the budget
edits, the finalizer and the unmanaged pod stay there, and the drained node is one its pods run on. On the real
server the eviction API, the disruption controller, the ReplicaSet controller and the scheduler are the real ones,
a pod deletion is graceful (Terminating until lab/k8s/nodesim.py finishes it), so the tests wait on state, never on
ticks. Nodes are cluster-scoped: every test finds them uncordoned and leaves them so (``nodes_uncordoned``: tests/cluster/conftest.py).

Check mode through Ansible is a real ``ansible-playbook`` run (``playbook``); the other cases run the module's
``main()`` in the test process (``module_tasks``). What is asserted is read back through the API, not taken from the
module's answer alone.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.cluster.conftest import seed_objects, wait
from tests.lab.node_rotation_run import NODE_RV_ON_DOUBLE, node_writes

ANNOTATION = 'netmedic.io/cordoned-by'


def _merge_patch(cluster, kind, namespace, name, patch):
    content = 'application/merge-patch+json'
    if kind == 'Node':
        return cluster.core.patch_node(name, patch, _content_type=content)
    if kind == 'Pod':
        return cluster.core.patch_namespaced_pod(name, namespace, patch, _content_type=content)
    if kind == 'PodDisruptionBudget':
        return cluster.policy.patch_namespaced_pod_disruption_budget(name, namespace, patch, _content_type=content)
    raise AssertionError(kind)


def _ready(pod):
    status = pod.get('status') or {}
    return status.get('phase') == 'Running' and any(c['type'] == 'Ready' and c['status'] == 'True'
                                                    for c in status.get('conditions') or [])


def _settled(cluster, namespace):
    """Three Ready web pods (none Terminating) and the budget computed from them by the disruption controller."""
    pods = [p for p in cluster.items('Pod', namespace, label_selector='app=web') if not p['metadata'].get('deletionTimestamp')]
    pdb = cluster.get('PodDisruptionBudget', namespace, 'web')
    status = pdb.get('status') or {}
    ok = len(pods) == 3 and all(map(_ready, pods)) and status.get('currentHealthy') == 3 \
        and status.get('disruptionsAllowed') == 3 - pdb['spec']['minAvailable'] \
        and status.get('observedGeneration') == pdb['metadata']['generation']
    return pods if ok else None


def _pods_gone(cluster, namespace):
    return not cluster.items('Pod', namespace)


@pytest.fixture
def web_copy(nodes_uncordoned, scratch):
    """``scratch`` holding a copy of the seed's Deployment and PodDisruptionBudget ``web`` (default namespace), its
    three pods Ready and the budget computed; the seed's own ``web`` settled too (the drains evict its pods on the
    node as well). Afterwards every pod of the namespace is gone (finalizers removed) before it is deleted, so no pod
    of this test is left Terminating on a node the next one drains."""
    cluster = nodes_uncordoned
    for doc in seed_objects(namespace='default', kinds=('Deployment', 'PodDisruptionBudget'), names=['web']):
        body = copy.deepcopy(doc)
        body['metadata'] = {k: v for k, v in body['metadata'].items() if k in ('name', 'labels', 'annotations')}
        cluster.create(body, namespace=scratch)
    wait('the seed\'s web pods Ready and their budget computed', lambda: _settled(cluster, 'default'))
    wait('the copy\'s web pods Ready and their budget computed', lambda: _settled(cluster, scratch))
    yield scratch
    for pod in cluster.items('Pod', scratch):
        if pod['metadata'].get('finalizers'):
            _merge_patch(cluster, 'Pod', scratch, pod['metadata']['name'], {'metadata': {'finalizers': None}})
    cluster.apps.delete_namespaced_deployment('web', scratch)
    for pod in cluster.items('Pod', scratch):
        if not (pod['metadata'].get('ownerReferences') or []):
            cluster.core.delete_namespaced_pod(pod['metadata']['name'], scratch)
    wait('no pod left in %s' % scratch, lambda: _pods_gone(cluster, scratch), timeout=90)


def _web_node(cluster, ns):
    return sorted(p['spec']['nodeName'] for p in cluster.items('Pod', ns, label_selector='app=web'))[0]


def _node(cluster, name):
    return cluster.get('Node', None, name)


def _pods_on(cluster, node):
    return [p for p in cluster.items('Pod') if p['spec'].get('nodeName') == node]


def _non_daemonset(pods):
    return [p for p in pods if (p['metadata'].get('ownerReferences') or [{}])[0].get('kind') != 'DaemonSet']


def _drain(name, **options):
    return dict({'name': name, 'timeout': 60, 'poll_interval': 0.2, 'run_id': 'test-run-1'}, **options)


def test_issue9_f3_finalizer_pod_fails_the_drain_and_is_listed(writable, web_copy, module_tasks):
    cluster, ns = writable, web_copy
    node = _web_node(cluster, ns)
    pod = next(p for p in _pods_on(cluster, node) if p['metadata']['namespace'] == ns
               and p['metadata'].get('labels', {}).get('app') == 'web')
    _merge_patch(cluster, 'Pod', ns, pod['metadata']['name'], {'metadata': {'finalizers': ['example.com/hold']}})
    # The other pods on the node must be gone within the timeout: on the real server each eviction under a budget
    # waits for the ReplicaSet's replacement to be Ready (seconds, not the double's ticks).
    tasks = yaml.safe_dump([{'name': 'drain', 'ignore_errors': True,
                             'netmedic.k8s.node_drain': _drain(node, timeout=5 if cluster.is_double else 20)}])
    rc, results, output = module_tasks(cluster, tasks)
    assert rc == 0, output                                   # ignore_errors: the failure is read below
    result = results['drain']
    assert result.get('failed') is True, result
    ref = '%s/%s' % (ns, pod['metadata']['name'])
    assert ref in result['msg'] and 'still on the node' in result['msg'], result['msg']
    assert result['remaining'] == [ref]
    outcome = {e['pod']: e['outcome'] for e in result['pods']}
    assert outcome[ref] == 'terminating'
    stored = _node(cluster, node)
    assert stored['spec']['unschedulable'] is True and stored['metadata']['annotations'][ANNOTATION] == 'test-run-1'
    held = cluster.get('Pod', ns, pod['metadata']['name'])
    assert held['metadata']['uid'] == pod['metadata']['uid'] and held['metadata'].get('deletionTimestamp')


def test_issue9_f3_budget_blocks_until_timeout_then_drains_when_relaxed(writable, web_copy, module_tasks):
    cluster, ns = writable, web_copy
    node = _web_node(cluster, ns)
    _merge_patch(cluster, 'PodDisruptionBudget', ns, 'web', {'spec': {'minAvailable': 3}})
    wait('the budget recomputed for minAvailable 3', lambda: (cluster.get('PodDisruptionBudget', ns, 'web').get('status') or {})
         .get('desiredHealthy') == 3 and cluster.get('PodDisruptionBudget', ns, 'web')['status'].get('disruptionsAllowed') == 0)
    web_before = {p['metadata']['uid'] for p in _pods_on(cluster, node)
                  if p['metadata']['namespace'] == ns and p['metadata'].get('labels', {}).get('app') == 'web'}
    assert web_before
    tasks = yaml.safe_dump([{'name': 'blocked', 'ignore_errors': True, 'netmedic.k8s.node_drain': _drain(node, timeout=3)}])
    rc, results, output = module_tasks(cluster, tasks)
    assert rc == 0, output
    blocked = results['blocked']
    assert blocked.get('failed') is True and "disruption budget" in blocked['msg'], blocked
    assert any(e['outcome'] == 'blocked' and e['attempts'] >= 2 for e in blocked['pods']), blocked['pods']   # retried
    # None evicted: still on the node, same UIDs, and not Terminating (an eviction is a graceful deletion).
    still = {p['metadata']['uid']: p for p in _pods_on(cluster, node)}
    assert web_before <= set(still)
    assert not [u for u in web_before if still[u]['metadata'].get('deletionTimestamp')]

    _merge_patch(cluster, 'PodDisruptionBudget', ns, 'web', {'spec': {'minAvailable': 2}})
    tasks = yaml.safe_dump([{'name': 'drain', 'netmedic.k8s.node_drain': _drain(node)},
                            {'name': 'again', 'netmedic.k8s.node_drain': _drain(node)}])
    rc, results, output = module_tasks(cluster, tasks)
    assert rc == 0, output
    assert results['drain']['changed'] is True and results['again']['changed'] is False
    left = _pods_on(cluster, node)
    assert _non_daemonset(left) == [] and left                                                               # DaemonSet pods stay
    evicted = [e for e in results['drain']['pods'] if e['outcome'] == 'evicted']
    assert evicted and results['drain']['remaining'] == []
    assert web_before <= {e['uid'] for e in evicted}


@pytest.mark.double_strict(NODE_RV_ON_DOUBLE)
def test_check_mode_lists_evictions_and_changes_nothing(writable, web_copy, playbook):
    cluster, ns = writable, web_copy
    node = _web_node(cluster, ns)
    writes = node_writes(cluster)[node]
    pods = {p['metadata']['uid'] for p in _pods_on(cluster, node) if not p['metadata'].get('deletionTimestamp')}
    tasks = yaml.safe_dump([{'name': 'check', 'check_mode': True, 'diff': True, 'netmedic.k8s.node_drain': _drain(node)}])
    rc, results, output = playbook(cluster, tasks)
    assert rc == 0, output
    check = results['check']
    assert check['changed'] is True and check['diff']
    assert any(e['outcome'] == 'would evict' and e['pod'].startswith(ns + '/web-') for e in check['pods']), check['pods']
    assert node_writes(cluster)[node] == writes
    # Nothing evicted: the same pods run there, none Terminating (a pod of an earlier test's namespace still being
    # deleted on the real server is left out before and after).
    assert {p['metadata']['uid'] for p in _pods_on(cluster, node) if not p['metadata'].get('deletionTimestamp')} == pods


def test_issue9_f8_uncordon_only_what_netmedic_cordoned(nodes_uncordoned, module_tasks):
    cluster = nodes_uncordoned
    _merge_patch(cluster, 'Node', None, 'lab-node-3', {'spec': {'unschedulable': True}})
    assert _node(cluster, 'lab-node-3')['spec']['unschedulable'] is True
    tasks = yaml.safe_dump([
        {'name': 'cordon 2', 'netmedic.k8s.node_drain': {'name': 'lab-node-2', 'state': 'cordon', 'run_id': 'job-41'}},
        {'name': 'cordon 3', 'netmedic.k8s.node_drain': {'name': 'lab-node-3', 'state': 'cordon', 'run_id': 'job-41'}},
    ])
    rc, results, output = module_tasks(cluster, tasks)
    assert rc == 0, output
    assert results['cordon 3']['cordon']['by_other'] is True and results['cordon 3']['changed'] is False
    assert ANNOTATION not in (_node(cluster, 'lab-node-3')['metadata'].get('annotations') or {})
    assert _node(cluster, 'lab-node-2')['metadata']['annotations'][ANNOTATION] == 'job-41'
    assert _node(cluster, 'lab-node-2')['spec']['unschedulable'] is True
    # A later run (another job id) uncordons what netmedic cordoned, and only that.
    tasks = yaml.safe_dump([
        {'name': 'uncordon 2', 'netmedic.k8s.node_drain': {'name': 'lab-node-2', 'state': 'uncordon', 'run_id': 'job-42'}},
        {'name': 'uncordon 3', 'netmedic.k8s.node_drain': {'name': 'lab-node-3', 'state': 'uncordon', 'run_id': 'job-42'}},
        {'name': 'uncordon 2 again', 'netmedic.k8s.node_drain': {'name': 'lab-node-2', 'state': 'uncordon'}},
    ])
    rc, results, output = module_tasks(cluster, tasks)
    assert rc == 0, output
    assert results['uncordon 2']['changed'] is True and results['uncordon 2 again']['changed'] is False
    assert results['uncordon 3']['changed'] is False and results['uncordon 3']['cordon']['by_other'] is True
    two, three = _node(cluster, 'lab-node-2'), _node(cluster, 'lab-node-3')
    assert not two['spec'].get('unschedulable') and ANNOTATION not in (two['metadata'].get('annotations') or {})
    assert three['spec']['unschedulable'] is True


@pytest.mark.double_strict(NODE_RV_ON_DOUBLE)
def test_unmanaged_and_emptydir_pods_refuse_before_anything_changes(writable, web_copy, module_tasks):
    cluster, ns = writable, web_copy
    cluster.create({
        'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'loose'},
        'spec': {'nodeName': 'lab-node-1', 'containers': [{'name': 'c', 'image': 'registry.lab.invalid/pause:3.9'}],
                 'volumes': [{'name': 'scratch', 'emptyDir': {}}]}}, namespace=ns)
    writes = node_writes(cluster)['lab-node-1']
    running = {p['metadata']['uid'] for p in _pods_on(cluster, 'lab-node-1') if not p['metadata'].get('deletionTimestamp')}
    tasks = yaml.safe_dump([
        {'name': 'refused', 'ignore_errors': True, 'netmedic.k8s.node_drain': _drain('lab-node-1')},
        {'name': 'emptydir', 'ignore_errors': True, 'check_mode': True,
         'netmedic.k8s.node_drain': _drain('lab-node-1', allow_unmanaged=True)},
        {'name': 'bad input', 'ignore_errors': True, 'netmedic.k8s.node_drain': _drain('lab-node-1', timeout=0)},
    ])
    rc, results, output = module_tasks(cluster, tasks)
    assert rc == 0, output
    refused = results['refused']
    assert refused['failed'] is True and '%s/loose not managed by a controller' % ns in refused['msg'], refused
    assert 'Nothing was changed' in refused['msg']
    assert results['emptydir']['failed'] is True and 'emptyDir' in results['emptydir']['msg']
    assert results['bad input']['failed'] is True and 'timeout must be >= 1' in results['bad input']['msg']
    assert node_writes(cluster)['lab-node-1'] == writes
    assert cluster.get('Pod', ns, 'loose')['metadata'].get('deletionTimestamp') is None
    # Nothing evicted: every pod that ran there still does, same UID, not Terminating.
    assert running <= {p['metadata']['uid'] for p in _pods_on(cluster, 'lab-node-1') if not p['metadata'].get('deletionTimestamp')}
