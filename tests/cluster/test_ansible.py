"""kubernetes.core through ansible-playbook (what netmedic's playbooks do), on the double and on the real kube-apiserver
(issue 15).

Ported from tests/lab/test_ansible.py (issue 15 item 4; both cases). ``k8s_info`` by label and by field selector, a
missing object, ``k8s`` patched (check mode, then twice) and applied (twice), and a bad token: the writes go to copies
of the seed's ConfigMaps ``kube-proxy-worker`` and ``eni-config`` in the test's own namespace, the reads to the seed's
kube-system pods. ``k8s_drain`` stops on a PodDisruptionBudget, then drains: on a copy of the seed's Deployment and
budget ``web`` in the test's own namespace, the drained node one a pod of the copy runs on; the seed's own web pod
there is evicted too (through its own budget). The real server's eviction API, disruption controller, ReplicaSet
controller and scheduler decide, so the pods that leave the node are counted before the drain, not assumed. The Nodes
are uncordoned before and after (``nodes_uncordoned``). What is asserted is read back through the API.
"""

from __future__ import annotations

import base64
import copy

import pytest
import yaml

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import waiter
from tests.cluster.conftest import copy_seed, kubeconfig_server, pod_ready, seed_objects

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
NODES = ['lab-node-1', 'lab-node-2', 'lab-node-3']


def _server_ca(cluster, tmp_path):
    """The kubeconfig's server URL and its CA as a file (None on the double's plain-HTTP endpoint)."""
    server = kubeconfig_server(cluster)
    ca_cert = server.get('certificate-authority')
    if server.get('certificate-authority-data'):
        ca_cert = tmp_path / 'server-ca.crt'
        ca_cert.write_bytes(base64.b64decode(server['certificate-authority-data']))
        ca_cert = str(ca_cert)
    return server['server'], ca_cert


def _secrets(cluster):
    """The kubeconfig user's credentials as they could show in output: its token, or its client key (as stored and
    decoded)."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c['context'] for c in config['contexts'] if c['name'] == (cluster.context or config['current-context']))
    user = next(u['user'] for u in config['users'] if u['name'] == context['user'])
    found = [user[k] for k in ('token', 'client-key-data') if user.get(k)]
    if user.get('client-key-data'):
        found += [line for line in base64.b64decode(user['client-key-data']).decode().splitlines() if '-----' not in line][:1]
    assert found, 'no credential in the kubeconfig user %r' % sorted(user)
    return found


def test_k8s_info_patch_apply_and_auth(writable, scratch, playbook, tmp_path):
    cluster, ns = writable, scratch
    copy_seed(cluster, ns, kinds=('ConfigMap',), names=['kube-proxy-worker', 'eni-config'])
    host, ca_cert = _server_ca(cluster, tmp_path)
    apply_task = {'kubernetes.core.k8s': {'apply': True, 'definition': {
        'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'kube-proxy-worker', 'namespace': ns},
        'data': {'config.conf': NEW_PROXY_CONFIG}}}}
    eni_patch = {'state': 'patched', 'kind': 'ConfigMap', 'name': 'eni-config', 'namespace': ns,
                 'definition': {'data': {'in_cluster_loadbalance': 'true'}}}
    bad_token = {'kind': 'Node', 'host': host, 'api_key': 'not-the-token'}
    if ca_cert:
        bad_token['ca_cert'] = ca_cert
    tasks = yaml.safe_dump([
        {'name': 'by label', 'kubernetes.core.k8s_info': {
            'kind': 'Pod', 'namespace': 'kube-system', 'label_selectors': ['k8s-app=kube-proxy-worker']}},
        {'name': 'by field', 'kubernetes.core.k8s_info': {
            'kind': 'Pod', 'field_selectors': ['spec.nodeName=lab-node-2', 'status.phase=Running']}},
        {'name': 'missing', 'kubernetes.core.k8s_info': {'kind': 'ConfigMap', 'namespace': ns, 'name': 'nope'}},
        {'name': 'patch check', 'check_mode': True, 'kubernetes.core.k8s': eni_patch},
        {'name': 'patch', 'kubernetes.core.k8s': eni_patch},
        {'name': 'patch again', 'kubernetes.core.k8s': eni_patch},
        dict(apply_task, name='apply'),
        dict(apply_task, name='apply again'),
        {'name': 'bad token', 'ignore_errors': True,   # host + api_key: kubernetes.core skips the kubeconfig
         'kubernetes.core.k8s_info': bad_token},
    ])
    rc, results, output = playbook(cluster, tasks)
    assert rc == 0, output
    proxies = results['by label']['resources']
    assert sorted(p['spec']['nodeName'] for p in proxies) == NODES
    assert all(p['status']['phase'] == 'Running' for p in proxies)
    on_node = results['by field']['resources']
    assert len(on_node) >= 5 and {p['spec']['nodeName'] for p in on_node} == {'lab-node-2'}
    assert all(p['status']['phase'] == 'Running' for p in on_node)
    assert results['missing']['resources'] == []
    assert results['patch check']['changed'] is True
    assert results['patch check']['result']['data']['in_cluster_loadbalance'] == 'true'
    assert (results['patch']['changed'], results['patch again']['changed']) == (True, False)
    assert (results['apply']['changed'], results['apply again']['changed']) == (True, False)
    stored = cluster.get('ConfigMap', ns, 'kube-proxy-worker')
    assert stored['data']['config.conf'] == NEW_PROXY_CONFIG
    assert 'kubectl.kubernetes.io/last-applied-configuration' in stored['metadata']['annotations']
    assert cluster.get('ConfigMap', ns, 'eni-config')['data']['in_cluster_loadbalance'] == 'true'
    assert results['bad token']['failed'] is True
    assert '401' in results['bad token']['msg'] and 'Unauthorized' in results['bad token']['msg'], results['bad token']
    for secret in _secrets(cluster):
        assert secret not in output


# -- k8s_drain ---------------------------------------------------------------------------------------------------

def _owner_kind(pod):
    return (pod['metadata'].get('ownerReferences') or [{}])[0].get('kind')


def _on(cluster, node):
    return [p for p in cluster.items('Pod') if p['spec'].get('nodeName') == node]


def _web(cluster, namespace):
    return cluster.items('Pod', namespace, label_selector='app=web')


def _web_settled(cluster, namespace):
    """Three Ready web pods (none Terminating) and their budget computed by the disruption controller."""
    pods = _web(cluster, namespace)
    pdb = cluster.get('PodDisruptionBudget', namespace, 'web')
    status = pdb.get('status') or {}
    return (len(pods) == 3 and all(pod_ready(p) for p in pods) and status.get('currentHealthy') == 3
            and status.get('disruptionsAllowed') == 3 - pdb['spec']['minAvailable']
            and status.get('observedGeneration') == pdb['metadata']['generation'])


def _wait(what, probe, done, timeout=120):
    try:
        return waiter.wait_until(probe, done, waiter.deadline(timeout), 0.5)
    except waiter.WaitTimeout as exc:
        pytest.fail('%s: not after %s s, last %r' % (what, timeout, exc.last))


@pytest.fixture
def web_copy(nodes_uncordoned, scratch):
    """``scratch`` holding a copy of the seed's Deployment and PodDisruptionBudget ``web`` (minAvailable 2 of 3), its
    pods Ready and its budget computed, the seed's own too. Afterwards the copy's pods are gone before the namespace
    is deleted (none left Terminating on a node the next test drains)."""
    cluster = nodes_uncordoned
    for doc in seed_objects(namespace='default', kinds=('Deployment', 'PodDisruptionBudget'), names=['web']):
        body = copy.deepcopy(doc)
        body['metadata'] = {k: v for k, v in body['metadata'].items() if k in ('name', 'labels', 'annotations')}
        cluster.create(body, namespace=scratch)
    for namespace in ('default', scratch):
        _wait('web pods Ready and their budget computed in %s' % namespace, lambda n=namespace: _web_settled(cluster, n), bool)
    yield scratch
    cluster.apps.delete_namespaced_deployment('web', scratch)
    _wait('no pod left in %s' % scratch, lambda: cluster.items('Pod', scratch), lambda pods: not pods, timeout=90)


def test_k8s_drain_stops_on_pdb_then_drains(writable, web_copy, playbook):
    cluster, ns = writable, web_copy
    # The drained node: one the copy runs exactly one pod on, with at most one of the seed's (each budget allows one
    # disruption: a second eviction under it before the replacement is Ready is refused by the real server too).
    spread = {n: (sum(p['spec']['nodeName'] == n for p in _web(cluster, ns)),
                  sum(p['spec']['nodeName'] == n for p in _web(cluster, 'default'))) for n in NODES}
    node = next((n for n in NODES if spread[n][0] == 1 and spread[n][1] <= 1), None)
    assert node, 'no node with one web pod of the copy and at most one of the seed: %r' % spread
    daemon = sorted(p['metadata']['uid'] for p in _on(cluster, node) if _owner_kind(p) == 'DaemonSet')
    assert daemon
    drain = {'name': node, 'delete_options': {'ignore_daemonsets': True, 'wait_timeout': 20}}
    pdb = {'state': 'patched', 'api_version': 'policy/v1', 'kind': 'PodDisruptionBudget', 'name': 'web', 'namespace': ns}
    rc, results, output = playbook(cluster, yaml.safe_dump([
        {'name': 'tighten', 'kubernetes.core.k8s': dict(pdb, definition={'spec': {'minAvailable': 3}})},
        {'name': 'blocked', 'ignore_errors': True, 'kubernetes.core.k8s_drain': drain},
    ]))
    assert rc == 0, output
    blocked = results['blocked']
    assert blocked['failed'] is True
    assert "Cannot evict pod as it would violate the pod's disruption budget." in blocked['msg']
    assert 'Failed to delete pod %s/web-' % ns in blocked['msg'], blocked['msg']       # the copy's pod, under its budget
    assert cluster.get('Node', None, node)['spec']['unschedulable'] is True                # the failed drain left the cordon
    # What leaves the node in the drain below: every pod but the DaemonSets' (the copy's, still there), counted once an
    # eviction of the blocked run has finished (the seed's pod there, on the real server a graceful deletion).
    movable = _wait('the blocked run\'s evictions finished on %s' % node, lambda: _on(cluster, node),
                    lambda pods: not any(p['metadata'].get('deletionTimestamp') for p in pods))
    movable = [p for p in movable if _owner_kind(p) != 'DaemonSet']
    namespaces = sorted(p['metadata']['namespace'] for p in movable)
    assert namespaces.count(ns) == 1 and set(namespaces) <= {ns, 'default'}, namespaces    # the copy's and the seed's web

    rc, results, output = playbook(cluster, yaml.safe_dump([
        {'name': 'relax', 'kubernetes.core.k8s': dict(pdb, definition={'spec': {'minAvailable': 2}})},
        {'name': 'drain', 'kubernetes.core.k8s_drain': drain},
        {'name': 'left', 'kubernetes.core.k8s_info': {'kind': 'Pod', 'field_selectors': ['spec.nodeName=%s' % node]}},
    ]))
    assert rc == 0, output
    assert 'already marked unschedulable' in results['drain']['result']
    assert '%d Pod(s) deleted from node' % len(movable) in results['drain']['result'], results['drain']['result']
    left = results['left']['resources']
    assert sorted(p['metadata']['uid'] for p in left) == daemon and all(_owner_kind(p) == 'DaemonSet' for p in left)
    assert sorted(p['metadata']['uid'] for p in _on(cluster, node)) == daemon              # read back apart
    assert cluster.get('Node', None, node)['spec']['unschedulable'] is True
    for namespace in (ns, 'default'):
        web = _wait('three web pods Ready again in %s' % namespace, lambda n=namespace: _web(cluster, n),
                    lambda pods: len(pods) == 3 and all(pod_ready(p) for p in pods))
        assert node not in {p['spec']['nodeName'] for p in web}
