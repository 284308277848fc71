"""netmedic.k8s.network_audit (catalog D-1 ... D-7) against the API double.

Check mode through Ansible is a real ``ansible-playbook`` run (``test_seed_cluster_findings_read_only``); the other cases run the
module's ``main()`` in the test process (``module_tasks``, tests/harness.py: issue 12), over HTTP
through the real client as in a playbook run.

The seed is a GKE 1.24.9-gke.3200 cluster with anetd (Dataplane V2), a NetworkPolicy using
endPort and a Service whose port differs from its target port: D-1 ... D-4 must be reported.
D-6 and D-7 are provoked here (a network-unavailable taint; a node NotReady with the seed 004
kubelet message and a Flannel agent crash-looping on a broken net-conf.json).

A 401 failing the audit and the client's paging and 404 handling went to tests/cluster/test_network_audit.py (issue 15),
where they run on the real kube-apiserver too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

COLLECTIONS = str(Path(__file__).resolve().parents[2] / 'collections')
CNI_MESSAGE = ('container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady '
               'message:Network plugin returns error: cni plugin not initialized')


@pytest.fixture
def run(playbook):
    return lambda double, tasks, **kw: playbook(double, tasks, extra_env={'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS})


def by_id(findings):
    out = {}
    for f in findings:
        out.setdefault(f['id'], []).append(f)
    return out


@pytest.mark.double_only("version: the findings and facts of the seed's GKE v1.24.9-gke.3200 (Dataplane V2); the real server is v1.37.2")
def test_seed_cluster_findings_read_only(double, run):
    rv_before = double.store.resource_version
    rc, results, output = run(double, yaml.safe_dump([
        {'name': 'audit', 'netmedic.k8s.network_audit': {}},
        {'name': 'audit check', 'check_mode': True, 'netmedic.k8s.network_audit': {'checks': ['D-2']}},
        {'name': 'gate', 'ignore_errors': True, 'netmedic.k8s.network_audit': {'fail_on': 'warning', 'checks': ['D-4']}},
    ]))
    assert rc == 0, output
    audit = results['audit']
    assert audit['changed'] is False
    # the seed's kube-proxy ConfigMaps are in IPVS mode, which 1.24 does not deprecate (C-0 reads them, no finding)
    assert audit['facts'] == {'cluster_version': 'v1.24.9-gke.3200', 'dataplane_v2': True, 'dual_stack': False,
                              'fixed': {'D-3': False, 'D-4': False},
                              'kube_proxy_modes': {'kube-system/kube-proxy': 'ipvs', 'kube-system/kube-proxy-master': 'ipvs',
                                                   'kube-system/kube-proxy-worker': 'ipvs'}}
    found = by_id(audit['findings'])
    assert sorted(found) == ['D-1', 'D-2', 'D-3', 'D-4']
    assert len(found['D-1'][0]['evidence']['pods']) == 3
    assert all(p.startswith('kube-system/anetd-') for p in found['D-1'][0]['evidence']['pods'])
    assert found['D-2'][0]['evidence'] == {'networkpolicy': 'default/web-allow-port-range', 'ports': ['ingress[0]: TCP 32000-32768']}
    assert {f['evidence']['service'] for f in found['D-3']} == {'default/web', 'default/kubernetes'}
    assert audit['summary'] == {'critical': 0, 'warning': 4, 'unknown': 0, 'info': 1}
    assert [f['id'] for f in results['audit check']['findings']] == ['D-2']
    assert results['gate']['failed'] is True and 'D-4' in results['gate']['msg']
    assert double.store.resource_version == rv_before, 'the audit wrote to the cluster'


@pytest.mark.double_only('kubelet: a NotReady Node with the seed 004 kubelet message and Flannel crash-looping on a broken net-conf.json (log tail)')
def test_d6_and_d7_when_provoked(double, module_tasks):
    store = double.store
    tainted = store.get('nodes', None, 'lab-node-2')
    tainted['spec']['taints'] = [{'key': 'node.kubernetes.io/network-unavailable', 'effect': 'NoSchedule'}]
    store.update('nodes', None, 'lab-node-2', tainted)
    sick = store.get('nodes', None, 'lab-node-3')
    for cond in sick['status']['conditions']:
        if cond['type'] == 'Ready':
            cond.update(status='False', reason='KubeletNotReady', message=CNI_MESSAGE)
    store.update('nodes', None, 'lab-node-3', sick, subresource='status')
    cfg = store.get('configmaps', 'kube-system', 'kube-flannel-cfg')
    cfg['data']['net-conf.json'] = '{"Network": "172.20.0.0/16",'
    store.update('configmaps', 'kube-system', 'kube-flannel-cfg', cfg)
    flannel_pods, _rv = store.list('pods', 'kube-system', label_selector='app=flannel')
    victim = next(p for p in flannel_pods if p['spec']['nodeName'] == 'lab-node-1')
    store.delete('pods', 'kube-system', victim['metadata']['name'])

    def crashing(s):
        pods, _rv = s.list('pods', 'kube-system', label_selector='app=flannel', field_selector='spec.nodeName=lab-node-1')
        return pods if pods and any((cs.get('state') or {}).get('waiting', {}).get('reason') == 'CrashLoopBackOff'
                                    for cs in pods[0]['status'].get('containerStatuses') or []) else None

    crashed = double.wait_for(crashing)[0]
    rc, results, output = module_tasks(double, yaml.safe_dump([
        {'name': 'audit', 'netmedic.k8s.network_audit': {'checks': ['D-6', 'D-7']}},
        {'name': 'gate', 'ignore_errors': True, 'netmedic.k8s.network_audit': {'checks': ['D-7'], 'fail_on': 'critical'}},
    ]))
    assert rc == 0, output
    found = by_id(results['audit']['findings'])
    assert [f['evidence']['node'] for f in found['D-6']] == ['lab-node-2']
    d7 = {f['title']: f for f in found['D-7']}
    node_f = d7['Node NotReady: the CNI plugin is not initialised']
    assert node_f['severity'] == 'critical' and node_f['evidence']['node'] == 'lab-node-3'
    assert 'cni plugin not initialized' in node_f['evidence']['condition']
    agent = d7['CNI agent pod is CrashLoopBackOff']
    assert agent['evidence']['pod'] == 'kube-system/%s' % crashed['metadata']['name']
    assert any('error parsing subnet config' in line for line in agent['evidence']['log_tail'])
    assert results['audit']['findings'][0]['severity'] == 'critical'          # worst first
    assert results['gate']['failed'] is True and 'critical' in results['gate']['msg']
