"""Module netmedic.k8s.health_gate against the API double (issue 9: the health gate of the safety spine).

Check mode through Ansible is a real ``ansible-playbook`` run (``test_notready_foreign_cordon_and_percentages``); the other cases run the
module's ``main()`` in the test process (``module_tasks``, tests/harness.py: issue 12), over HTTP
through the real client as in a playbook run.
"""

from __future__ import annotations

from pathlib import Path

import yaml

DOUBLE_ONLY = ("kubelet: a Node made NotReady on demand (its DaemonSet pods going unready with it); the simulated node's heartbeat reports Ready "
               'again within 60 s')

ROOT = Path(__file__).resolve().parents[2]
ENV = {'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections')}


def _gate(name, **options):
    return {'name': name, 'ignore_errors': True, 'netmedic.k8s.health_gate': options}


def test_notready_foreign_cordon_and_percentages(double, playbook, raw):
    status, _ctype, body = raw('PATCH', '/api/v1/nodes/lab-node-3/status',
                               {'status': {'conditions': [{'type': 'Ready', 'status': 'False', 'reason': 'KubeletNotReady'}]}},
                               content_type='application/strategic-merge-patch+json')
    assert status == 200, body
    status, _ctype, body = raw('PATCH', '/api/v1/nodes/lab-node-2', {'spec': {'unschedulable': True}},
                               content_type='application/merge-patch+json')
    assert status == 200, body
    status, _ctype, body = raw('PATCH', '/api/v1/nodes/lab-node-1', {
        'spec': {'unschedulable': True}, 'metadata': {'annotations': {'netmedic.io/cordoned-by': 'job-1'}}},
        content_type='application/merge-patch+json')
    assert status == 200, body
    tasks = yaml.safe_dump([
        _gate('zero', nodes=['lab-node-1'], daemonsets=['kube-flannel-ds']),
        _gate('two', nodes=['lab-node-1'], max_unhealthy='2'),
        _gate('percent', max_unhealthy='66%'),
        _gate('check', max_unhealthy=2) | {'check_mode': True},
        _gate('unknown node', nodes=['lab-node-9'], max_unhealthy=3),
        _gate('bad', max_unhealthy='30 %'),
        _gate('missing ds', daemonsets=['kube-system/nope'], max_unhealthy=3),
    ])
    rc, results, output = playbook(double, tasks, extra_env=ENV)
    assert rc == 0, output
    zero = results['zero']
    assert zero['failed'] is True and zero['unhealthy_count'] == 2, zero
    assert 'Node lab-node-2: cordoned by someone else' in zero['msg'] and 'Node lab-node-3: NotReady (False, KubeletNotReady)' in zero['msg']
    assert zero['netmedic_cordoned'] == [{'node': 'lab-node-1', 'by': 'job-1'}]     # netmedic's own cordon: not counted
    assert not results['two'].get('failed') and results['two']['passed'] is True and results['two']['changed'] is False
    assert results['percent']['failed'] is True and results['percent']['allowed'] == 1    # 66% of 3, rounded down
    assert results['check']['passed'] is True
    assert results['unknown node']['failed'] is True and 'unknown to the API: lab-node-9' in results['unknown node']['msg']
    assert results['bad']['failed'] is True and 'invalid input: max_unhealthy' in results['bad']['msg']
    assert results['missing ds']['failed'] is True and 'DaemonSet kube-system/nope not found' in results['missing ds']['msg']


def test_unhealthy_daemonset_pod_counts_once_per_node(double, module_tasks):
    node = double.store.get('nodes', None, 'lab-node-3')
    for cond in node['status']['conditions']:
        if cond['type'] == 'Ready':
            cond['status'] = 'False'
    double.store.update('nodes', None, 'lab-node-3', node, subresource='status')

    def flannel_unready(store):
        pods, _rv = store.list('pods', 'kube-system', label_selector='app=flannel')
        return [p for p in pods if p['spec'].get('nodeName') == 'lab-node-3' and not any(
            c['type'] == 'Ready' and c['status'] == 'True' for c in p['status'].get('conditions', []))] or None

    victim = double.wait_for(flannel_unready)[0]
    tasks = yaml.safe_dump([_gate('flannel', daemonsets=['kube-flannel-ds']),
                            _gate('one', daemonsets=['kube-flannel-ds'], max_unhealthy=1)])
    rc, results, output = module_tasks(double, tasks, extra_env=ENV)
    assert rc == 0, output
    gate = results['flannel']
    assert gate['failed'] is True, gate
    assert {'kind': 'Pod', 'name': 'kube-system/%s' % victim['metadata']['name'], 'node': 'lab-node-3',
            'reason': 'kube-system/kube-flannel-ds pod Running, not Ready'} in gate['unhealthy'], gate['unhealthy']
    assert gate['unhealthy_count'] == 1                        # the NotReady node and its pod: one unhealthy Node
    assert results['one']['passed'] is True
