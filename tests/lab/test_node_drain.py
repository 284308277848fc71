"""Module netmedic.k8s.node_drain against the API double (catalog W-1, W-2, W-7; issue 9 findings 3 and 8).

Check mode through Ansible is a real ``ansible-playbook`` run (``test_check_mode_lists_evictions_and_changes_nothing``); the other cases run the
module's ``main()`` in the test process (``module_tasks``, tests/harness.py: issue 12), over HTTP
through the real client as in a playbook run.
Evictions go through the double's ``pods/eviction`` (PodDisruptionBudget ``web``: minAvailable 2 of 3).
What is asserted is read back from the double's store, not from the module's answer alone.
"""

from __future__ import annotations

from pathlib import Path

import yaml

DOUBLE_ONLY = ('portable: cordon, evictions through PDB web, a finalizer pod and unmanaged pods; the real eviction API and disruption controller do '
               'the same (tests/cluster/test_workflows.py drains there)')

ROOT = Path(__file__).resolve().parents[2]
ENV = {'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections')}
ANNOTATION = 'netmedic.io/cordoned-by'


def _web_node(double):
    pods, _rv = double.store.list('pods', 'default', label_selector='app=web')
    return sorted(p['spec']['nodeName'] for p in pods)[0]


def _node(double, name):
    return double.store.get('nodes', None, name)


def _pods_on(double, node):
    pods, _rv = double.store.list('pods', None, field_selector='spec.nodeName=%s' % node)
    return pods


def _non_daemonset(pods):
    return [p for p in pods if (p['metadata'].get('ownerReferences') or [{}])[0].get('kind') != 'DaemonSet']


def _drain(name, **options):
    return dict({'name': name, 'timeout': 20, 'poll_interval': 0.2, 'run_id': 'test-run-1'}, **options)


def test_issue9_f3_finalizer_pod_fails_the_drain_and_is_listed(double, module_tasks):
    node = _web_node(double)
    pod = next(p for p in _pods_on(double, node) if p['metadata'].get('labels', {}).get('app') == 'web')
    pod['metadata']['finalizers'] = ['example.com/hold']
    double.store.update('pods', 'default', pod['metadata']['name'], pod)
    tasks = yaml.safe_dump([{'name': 'drain', 'ignore_errors': True,
                             'netmedic.k8s.node_drain': _drain(node, timeout=5)}])
    rc, results, output = module_tasks(double, tasks, extra_env=ENV)
    assert rc == 0, output                                   # ignore_errors: the failure is read below
    result = results['drain']
    assert result.get('failed') is True, result
    ref = 'default/%s' % pod['metadata']['name']
    assert ref in result['msg'] and 'still on the node' in result['msg'], result['msg']
    assert result['remaining'] == [ref]
    outcome = {e['pod']: e['outcome'] for e in result['pods']}
    assert outcome[ref] == 'terminating'
    stored = _node(double, node)
    assert stored['spec']['unschedulable'] is True and stored['metadata']['annotations'][ANNOTATION] == 'test-run-1'
    held = double.store.get('pods', 'default', pod['metadata']['name'])
    assert held['metadata']['uid'] == pod['metadata']['uid'] and held['metadata'].get('deletionTimestamp')


def test_issue9_f3_budget_blocks_until_timeout_then_drains_when_relaxed(double, module_tasks):
    node = _web_node(double)
    pdb = double.store.get('poddisruptionbudgets', 'default', 'web')
    pdb['spec']['minAvailable'] = 3
    double.store.update('poddisruptionbudgets', 'default', 'web', pdb)
    double.wait_for(lambda s: s.get('poddisruptionbudgets', 'default', 'web')['status'].get('desiredHealthy') == 3)
    web_before = {p['metadata']['uid'] for p in _pods_on(double, node) if p['metadata'].get('labels', {}).get('app') == 'web'}
    tasks = yaml.safe_dump([{'name': 'blocked', 'ignore_errors': True, 'netmedic.k8s.node_drain': _drain(node, timeout=3)}])
    rc, results, output = module_tasks(double, tasks, extra_env=ENV)
    assert rc == 0, output
    blocked = results['blocked']
    assert blocked.get('failed') is True and "disruption budget" in blocked['msg'], blocked
    assert any(e['outcome'] == 'blocked' and e['attempts'] >= 2 for e in blocked['pods']), blocked['pods']   # retried
    assert web_before <= {p['metadata']['uid'] for p in _pods_on(double, node)}                              # none evicted

    pdb = double.store.get('poddisruptionbudgets', 'default', 'web')
    pdb['spec']['minAvailable'] = 2
    double.store.update('poddisruptionbudgets', 'default', 'web', pdb)
    tasks = yaml.safe_dump([{'name': 'drain', 'netmedic.k8s.node_drain': _drain(node)},
                            {'name': 'again', 'netmedic.k8s.node_drain': _drain(node)}])
    rc, results, output = module_tasks(double, tasks, extra_env=ENV)
    assert rc == 0, output
    assert results['drain']['changed'] is True and results['again']['changed'] is False
    left = _pods_on(double, node)
    assert _non_daemonset(left) == [] and left                                                               # DaemonSet pods stay
    evicted = [e for e in results['drain']['pods'] if e['outcome'] == 'evicted']
    assert evicted and results['drain']['remaining'] == []


def test_check_mode_lists_evictions_and_changes_nothing(double, playbook):
    node = _web_node(double)
    rv = _node(double, node)['metadata']['resourceVersion']
    pods = {p['metadata']['uid'] for p in _pods_on(double, node)}
    tasks = yaml.safe_dump([{'name': 'check', 'check_mode': True, 'diff': True, 'netmedic.k8s.node_drain': _drain(node)}])
    rc, results, output = playbook(double, tasks, extra_env=ENV)
    assert rc == 0, output
    check = results['check']
    assert check['changed'] is True and check['diff']
    assert any(e['outcome'] == 'would evict' and e['pod'].startswith('default/web-') for e in check['pods']), check['pods']
    assert _node(double, node)['metadata']['resourceVersion'] == rv
    assert {p['metadata']['uid'] for p in _pods_on(double, node)} == pods


def test_issue9_f8_uncordon_only_what_netmedic_cordoned(double, module_tasks, raw):
    status, _ctype, body = raw('PATCH', '/api/v1/nodes/lab-node-3', {'spec': {'unschedulable': True}},
                               content_type='application/merge-patch+json')
    assert status == 200, body
    tasks = yaml.safe_dump([
        {'name': 'cordon 2', 'netmedic.k8s.node_drain': {'name': 'lab-node-2', 'state': 'cordon', 'run_id': 'job-41'}},
        {'name': 'cordon 3', 'netmedic.k8s.node_drain': {'name': 'lab-node-3', 'state': 'cordon', 'run_id': 'job-41'}},
    ])
    rc, results, output = module_tasks(double, tasks, extra_env=ENV)
    assert rc == 0, output
    assert results['cordon 3']['cordon']['by_other'] is True and results['cordon 3']['changed'] is False
    assert ANNOTATION not in (_node(double, 'lab-node-3')['metadata'].get('annotations') or {})
    assert _node(double, 'lab-node-2')['metadata']['annotations'][ANNOTATION] == 'job-41'
    # A later run (another job id) uncordons what netmedic cordoned, and only that.
    tasks = yaml.safe_dump([
        {'name': 'uncordon 2', 'netmedic.k8s.node_drain': {'name': 'lab-node-2', 'state': 'uncordon', 'run_id': 'job-42'}},
        {'name': 'uncordon 3', 'netmedic.k8s.node_drain': {'name': 'lab-node-3', 'state': 'uncordon', 'run_id': 'job-42'}},
        {'name': 'uncordon 2 again', 'netmedic.k8s.node_drain': {'name': 'lab-node-2', 'state': 'uncordon'}},
    ])
    rc, results, output = module_tasks(double, tasks, extra_env=ENV)
    assert rc == 0, output
    assert results['uncordon 2']['changed'] is True and results['uncordon 2 again']['changed'] is False
    assert results['uncordon 3']['changed'] is False and results['uncordon 3']['cordon']['by_other'] is True
    two, three = _node(double, 'lab-node-2'), _node(double, 'lab-node-3')
    assert not two['spec'].get('unschedulable') and ANNOTATION not in (two['metadata'].get('annotations') or {})
    assert three['spec']['unschedulable'] is True


def test_unmanaged_and_emptydir_pods_refuse_before_anything_changes(double, module_tasks):
    double.store.create('pods', 'default', {
        'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'loose', 'namespace': 'default'},
        'spec': {'nodeName': 'lab-node-1', 'containers': [{'name': 'c', 'image': 'registry.lab.invalid/pause:3.9'}],
                 'volumes': [{'name': 'scratch', 'emptyDir': {}}]}})
    rv = _node(double, 'lab-node-1')['metadata']['resourceVersion']
    tasks = yaml.safe_dump([
        {'name': 'refused', 'ignore_errors': True, 'netmedic.k8s.node_drain': _drain('lab-node-1')},
        {'name': 'emptydir', 'ignore_errors': True, 'check_mode': True,
         'netmedic.k8s.node_drain': _drain('lab-node-1', allow_unmanaged=True)},
        {'name': 'bad input', 'ignore_errors': True, 'netmedic.k8s.node_drain': _drain('lab-node-1', timeout=0)},
    ])
    rc, results, output = module_tasks(double, tasks, extra_env=ENV)
    assert rc == 0, output
    refused = results['refused']
    assert refused['failed'] is True and 'default/loose not managed by a controller' in refused['msg'], refused
    assert 'Nothing was changed' in refused['msg']
    assert results['emptydir']['failed'] is True and 'emptyDir' in results['emptydir']['msg']
    assert results['bad input']['failed'] is True and 'timeout must be >= 1' in results['bad input']['msg']
    assert _node(double, 'lab-node-1')['metadata']['resourceVersion'] == rv
    assert double.store.get('pods', 'default', 'loose')['metadata'].get('deletionTimestamp') is None
