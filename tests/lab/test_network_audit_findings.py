"""network_audit's issue 10 entries against the API double through the real client: the anetd
``custom-cni-conf`` setting (D-7), the N-1 cluster versions, Terway ``IpNotEnough`` logs and pod
IPs outside the vSwitch CIDRs (C-6, opt-in). Read-only: the store's resourceVersion must not move.
"""

from __future__ import annotations

import pytest
import yaml

from lab.kubedouble.logs import make_log_provider

DOUBLE_ONLY = ("kubelet: a NotReady Node with the CNI kubelet message, Terway's IpNotEnough log lines (the double's log provider); the simulated "
               'nodes heartbeat Ready and serve no logs')

CNI_MESSAGE = ('container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady '
               'message:Network plugin returns error: cni plugin not initialized')
READ_VERBS = {'get', 'list', 'watch'}


def writes(double):
    """Requests the audit made that are not reads (the double records every request's RBAC verb)."""
    return [e for e in double.audit if e['verb'] not in READ_VERBS]


IP_NOT_ENOUGH = ('time="2020-03-17T07:03:40Z" level=warning msg="Assign private ip address failed: Aliyun API Error: '
                 'RequestId: 2095E971-E473-4BA0-853F-0C41CF52651D Status Code: 403 Code: InvalidVSwitchId.IpNotEnough '
                 'Message: The specified VSwitch \\"vsw-AAA\\" has not enough IpAddress., retrying"')


def test_d7_custom_cni_conf_read_from_the_agent_configmap(make_double, node_state, module_tasks):
    double = make_double(node_state=node_state, audit=True)
    store = double.store
    store.create('configmaps', 'kube-system', {
        'apiVersion': 'v1', 'kind': 'ConfigMap',
        'metadata': {'name': 'cilium-config', 'namespace': 'kube-system'},
        'data': {'custom-cni-conf': 'true', 'cluster-name': 'lab', 'some-token': 's3cr3t-value'}})
    sick = store.get('nodes', None, 'lab-node-3')
    for cond in sick['status']['conditions']:
        if cond['type'] == 'Ready':
            cond.update(status='False', reason='KubeletNotReady', message=CNI_MESSAGE)
    store.update('nodes', None, 'lab-node-3', sick, subresource='status')
    del double.audit[:]
    rc, results, output = module_tasks(double, yaml.safe_dump([
        {'name': 'audit', 'netmedic.k8s.network_audit': {'checks': ['D-7']}},
        {'name': 'other name', 'netmedic.k8s.network_audit': {'checks': ['D-7'], 'cni_agent_config_maps': ['kube-system/anetd-x']}},
        {'name': 'bad ref', 'ignore_errors': True, 'netmedic.k8s.network_audit': {'cni_agent_config_maps': ['cilium-config']}},
    ]))
    assert rc == 0, output
    audit = results['audit']
    (custom,) = [f for f in audit['findings'] if 'custom-cni-conf' in f['title']]
    assert custom['severity'] == 'critical' and custom['evidence']['nodes_cni_not_ready'] == ['lab-node-3']
    # Only the key the check needs is returned: the rest of the agent's configuration stays in the cluster.
    assert audit['facts']['cni_agent_configs'] == {'kube-system/cilium-config': {'custom-cni-conf': 'true'}}
    assert 's3cr3t-value' not in output
    # A ConfigMap that does not exist is not a finding and not an error.
    assert not [f for f in results['other name']['findings'] if 'custom-cni-conf' in f['title']]
    assert 'cni_agent_configs' not in results['other name']['facts']
    assert results['bad ref']['failed'] is True and 'namespace/name' in results['bad ref']['msg']
    assert double.audit and writes(double) == []


@pytest.mark.double_only('version: a v1.23.16-gke.100 server')
def test_n1_version_finding_on_an_affected_gke_build(make_double, module_tasks):
    double = make_double(version='v1.23.16-gke.100')
    rc, results, output = module_tasks(double, yaml.safe_dump([
        {'name': 'audit', 'netmedic.k8s.network_audit': {}},
    ]))
    assert rc == 0, output
    (n1,) = [f for f in results['audit']['findings'] if f['id'] == 'N-1']
    assert n1['severity'] == 'warning' and n1['evidence']['cluster_version'] == 'v1.23.16-gke.100'


def test_c6_ip_not_enough_and_pods_outside_the_vswitch(make_double, node_state, module_tasks):
    default = make_log_provider(node_state)

    def provider(pod, store):
        labels = pod['metadata'].get('labels') or {}
        if labels.get('app') == 'terway-eniip' and pod['spec'].get('nodeName') == 'lab-node-2':
            return {'terway': 'level=info msg="terway started"\n' + IP_NOT_ENOUGH + '\n', 'policy': 'ok'}
        return default(pod, store)

    double = make_double(node_state=node_state, log_provider=provider, audit=True)
    pods, _rv = double.store.list('pods', None)
    running = [p for p in pods if p['status'].get('podIP') and not p['spec'].get('hostNetwork')]
    assert running, 'the seed has pods with IPs'
    one = running[0]
    cidr = one['status']['podIP'] + '/32'
    del double.audit[:]
    rc, results, output = module_tasks(double, yaml.safe_dump([
        {'name': 'default', 'netmedic.k8s.network_audit': {}},
        {'name': 'c6', 'netmedic.k8s.network_audit': {'checks': ['C-6'], 'vswitch_cidrs': [cidr]}},
        {'name': 'bad cidr', 'ignore_errors': True, 'netmedic.k8s.network_audit': {'checks': ['C-6'], 'vswitch_cidrs': ['10.0.0.1/8']}},
    ]))
    assert rc == 0, output
    assert not [f for f in results['default']['findings'] if f['id'] == 'C-6'], 'C-6 is opt-in'
    c6 = results['c6']['findings']
    (ip_short,) = [f for f in c6 if 'IpNotEnough' in f['title']]
    assert ip_short['evidence']['vswitches'] == ['vsw-AAA'] and ip_short['evidence']['pod'].startswith('kube-system/terway-eniip-')
    (outside,) = [f for f in c6 if 'outside' in f['title']]
    listed = {p['pod'] for p in outside['evidence']['pods']}
    assert '%s/%s' % (one['metadata']['namespace'], one['metadata']['name']) not in listed
    assert outside['evidence']['count'] == len([p for p in running if ':' not in p['status']['podIP']]) - 1
    assert results['bad cidr']['failed'] is True and 'vswitch_cidrs' in results['bad cidr']['msg']
    assert any(e['subresource'] == 'log' for e in double.audit) and writes(double) == []
