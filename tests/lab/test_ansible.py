"""kubernetes.core against the double, through ansible-playbook (what netmedic's playbooks do)."""

from __future__ import annotations

import yaml

DOUBLE_ONLY = ("portable: kubernetes.core k8s_info, k8s (patch, apply), k8s_drain through PDB web and a bad token on the seed's objects; the real "
               'server does all of it (asserts read the store for convenience)')

NEW_PROXY_CONFIG = """\
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clusterCIDR: 172.20.0.0/16
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
conntrack:
  maxPerCore: 65536
mode: ipvs
ipvs:
  scheduler: rr
  udpTimeout: 10s
"""


def test_k8s_info_patch_apply_and_auth(double, playbook):
    apply_task = {'kubernetes.core.k8s': {'apply': True, 'definition': {
        'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'kube-proxy-worker', 'namespace': 'kube-system'},
        'data': {'config.conf': NEW_PROXY_CONFIG}}}}
    eni_patch = {'state': 'patched', 'kind': 'ConfigMap', 'name': 'eni-config', 'namespace': 'kube-system',
                 'definition': {'data': {'in_cluster_loadbalance': 'true'}}}
    tasks = yaml.safe_dump([
        {'name': 'by label', 'kubernetes.core.k8s_info': {
            'kind': 'Pod', 'namespace': 'kube-system', 'label_selectors': ['k8s-app=kube-proxy-worker']}},
        {'name': 'by field', 'kubernetes.core.k8s_info': {
            'kind': 'Pod', 'field_selectors': ['spec.nodeName=lab-node-2', 'status.phase=Running']}},
        {'name': 'missing', 'kubernetes.core.k8s_info': {'kind': 'ConfigMap', 'namespace': 'kube-system',
                                                         'name': 'nope'}},
        {'name': 'patch check', 'check_mode': True, 'kubernetes.core.k8s': eni_patch},
        {'name': 'patch', 'kubernetes.core.k8s': eni_patch},
        {'name': 'patch again', 'kubernetes.core.k8s': eni_patch},
        dict(apply_task, name='apply'),
        dict(apply_task, name='apply again'),
        {'name': 'bad token', 'ignore_errors': True,   # host + api_key: kubernetes.core skips the kubeconfig
         'kubernetes.core.k8s_info': {'kind': 'Node', 'host': double.url, 'api_key': 'not-the-token'}},
    ])
    rc, results, output = playbook(double, tasks)
    assert rc == 0, output
    proxies = results['by label']['resources']
    assert sorted(p['spec']['nodeName'] for p in proxies) == ['lab-node-1', 'lab-node-2', 'lab-node-3']
    assert all(p['status']['phase'] == 'Running' for p in proxies)
    on_node = results['by field']['resources']
    assert len(on_node) >= 5 and {p['spec']['nodeName'] for p in on_node} == {'lab-node-2'}
    assert results['missing']['resources'] == []
    assert results['patch check']['changed'] is True
    assert results['patch check']['result']['data']['in_cluster_loadbalance'] == 'true'
    assert (results['patch']['changed'], results['patch again']['changed']) == (True, False)
    assert (results['apply']['changed'], results['apply again']['changed']) == (True, False)
    stored = double.store.get('configmaps', 'kube-system', 'kube-proxy-worker')
    assert stored['data']['config.conf'] == NEW_PROXY_CONFIG
    assert 'kubectl.kubernetes.io/last-applied-configuration' in stored['metadata']['annotations']
    assert double.store.get('configmaps', 'kube-system', 'eni-config')['data']['in_cluster_loadbalance'] == 'true'
    assert results['bad token']['failed'] is True
    assert '401' in results['bad token']['msg'] and 'Unauthorized' in results['bad token']['msg']
    assert double.token not in output


def test_k8s_drain_stops_on_pdb_then_drains(double, playbook):
    drain = {'name': 'lab-node-1', 'delete_options': {'ignore_daemonsets': True, 'wait_timeout': 20}}
    pdb = {'state': 'patched', 'api_version': 'policy/v1', 'kind': 'PodDisruptionBudget', 'name': 'web',
           'namespace': 'default'}
    tasks = yaml.safe_dump([
        {'name': 'tighten', 'kubernetes.core.k8s': dict(pdb, definition={'spec': {'minAvailable': 3}})},
        {'name': 'blocked', 'ignore_errors': True, 'kubernetes.core.k8s_drain': drain},
        {'name': 'relax', 'kubernetes.core.k8s': dict(pdb, definition={'spec': {'minAvailable': 2}})},
        {'name': 'drain', 'kubernetes.core.k8s_drain': drain},
        {'name': 'left', 'kubernetes.core.k8s_info': {'kind': 'Pod', 'field_selectors': ['spec.nodeName=lab-node-1']}},
    ])
    rc, results, output = playbook(double, tasks)
    assert rc == 0, output
    assert results['blocked']['failed'] is True
    assert "Cannot evict pod as it would violate the pod's disruption budget." in results['blocked']['msg']
    assert 'already marked unschedulable' in results['drain']['result']      # the failed drain left the cordon
    assert '2 Pod(s) deleted from node' in results['drain']['result']
    left = results['left']['resources']
    assert len(left) == 5 and all(p['metadata']['ownerReferences'][0]['kind'] == 'DaemonSet' for p in left)
    assert double.store.get('nodes', None, 'lab-node-1')['spec']['unschedulable'] is True
    web = double.wait_for(lambda s: [p for p in s.list('pods', 'default', label_selector='app=web')[0]
                                     if p['status']['phase'] == 'Running'] if len(
        s.list('pods', 'default', label_selector='app=web')[0]) == 3 else None)
    assert 'lab-node-1' not in {p['spec']['nodeName'] for p in web}
