"""The API double's RBAC authorizer (issue 10 hole 13): non-admin tokens are held to Role/ClusterRole
bindings the way kube-apiserver's RBAC authorizer holds them; the admin token keeps full access."""

from __future__ import annotations

import json

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from lab.kubedouble import rbac

NS = 'kube-system'
RBAC_V1 = 'rbac.authorization.k8s.io/v1'


def _role(store, kind, name, rules, namespace=None):
    meta = {'name': name}
    if namespace:
        meta['namespace'] = namespace
    store.create(kind, namespace, {'apiVersion': RBAC_V1, 'metadata': meta, 'rules': rules})


def _binding(store, kind, name, role_kind, role, subjects, namespace=None):
    meta = {'name': name}
    if namespace:
        meta['namespace'] = namespace
    store.create(kind, namespace, {'apiVersion': RBAC_V1, 'metadata': meta, 'subjects': subjects,
                                   'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': role_kind, 'name': role}})


def _sa(name, namespace='netmedic'):
    return [{'kind': 'ServiceAccount', 'name': name, 'namespace': namespace}]


@pytest.fixture
def as_token(double):
    def _client(token):
        return k8s_config.new_client_from_config_dict(double.kubeconfig(token=token))
    return _client


def test_admin_token_keeps_full_access_and_unknown_tokens_stay_401(double, raw):
    double.add_identity(user='nobody')
    assert raw('GET', '/api/v1/nodes')[0] == 200
    assert raw('DELETE', '/api/v1/namespaces/%s/configmaps/kube-proxy' % NS)[0] == 200
    assert raw('GET', '/api/v1/nodes', token='made-up')[0] == 401


def test_identity_without_binding_gets_the_real_403_status(double, raw):
    token = double.add_identity(serviceaccount=('netmedic', 'reader'))
    status, ctype, body = raw('GET', '/api/v1/namespaces/%s/configmaps/kube-proxy-worker' % NS, token=token)
    assert (status, ctype) == (403, 'application/json')
    assert body == {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure', 'code': 403,
                    'reason': 'Forbidden', 'details': {'name': 'kube-proxy-worker', 'kind': 'configmaps'},
                    'message': 'configmaps "kube-proxy-worker" is forbidden: User "system:serviceaccount:netmedic:reader" '
                               'cannot get resource "configmaps" in API group "" in the namespace "kube-system"'}
    status, _ctype, body = raw('GET', '/api/v1/nodes', token=token)
    assert status == 403 and body['message'] == ('nodes is forbidden: User "system:serviceaccount:netmedic:reader" '
                                                 'cannot list resource "nodes" in API group "" at the cluster scope')
    status, _ctype, body = raw('GET', '/apis/coordination.k8s.io/v1/namespaces/%s/leases/x' % NS, token=token)
    assert status == 403 and body['message'].startswith('leases.coordination.k8s.io "x" is forbidden: ')
    assert body['details'] == {'name': 'x', 'kind': 'leases', 'group': 'coordination.k8s.io'}
    # Discovery is open to every authenticated identity (the default system:discovery binding).
    for path in ('/api', '/apis', '/api/v1', '/apis/apps/v1', '/apis/apps', '/version'):
        assert raw('GET', path, token=token)[0] == 200, path


def test_cluster_role_binding_grants_verbs_groups_and_resources_everywhere(double, raw, as_token):
    token = double.add_identity(serviceaccount=('netmedic', 'reader'))
    _role(double.store, 'clusterroles', 'read', [
        {'apiGroups': [''], 'resources': ['nodes', 'configmaps'], 'verbs': ['get', 'list']},
        {'apiGroups': ['apps'], 'resources': ['daemonsets'], 'verbs': ['list']}])
    _binding(double.store, 'clusterrolebindings', 'read', 'ClusterRole', 'read', _sa('reader'))
    core = k8s.CoreV1Api(as_token(token))
    assert {n.metadata.name for n in core.list_node().items}
    assert core.read_namespaced_config_map('kube-proxy-worker', NS).data
    assert core.list_config_map_for_all_namespaces().items                        # cluster-wide list
    assert k8s.AppsV1Api(as_token(token)).list_namespaced_daemon_set(NS).items
    for call in (lambda: k8s.AppsV1Api(as_token(token)).read_namespaced_daemon_set('kube-proxy-worker', NS),   # verb
                 lambda: core.list_namespaced_pod(NS),                                                          # resource
                 lambda: core.patch_namespaced_config_map('kube-proxy-worker', NS, {'data': {'x': 'y'}})):    # write
        with pytest.raises(ApiException) as err:
            call()
        assert err.value.status == 403 and json.loads(err.value.body)['reason'] == 'Forbidden'
    assert 'x' not in double.store.get('configmaps', NS, 'kube-proxy-worker')['data']


def test_role_binding_is_limited_to_its_namespace_and_resource_names(double, raw):
    token = double.add_identity(user='alice', groups=['ops'])
    _role(double.store, 'roles', 'one-cm', [{'apiGroups': [''], 'resources': ['configmaps'],
                                             'resourceNames': ['kube-proxy-worker'], 'verbs': ['get', 'update']}],
          namespace=NS)
    _binding(double.store, 'rolebindings', 'one-cm', 'Role', 'one-cm', [{'kind': 'Group', 'name': 'ops'}], namespace=NS)
    path = '/api/v1/namespaces/%s/configmaps/' % NS
    assert raw('GET', path + 'kube-proxy-worker', token=token)[0] == 200
    assert raw('GET', path + 'kube-proxy-master', token=token)[0] == 403          # another name
    assert raw('GET', path.rstrip('/'), token=token)[0] == 403                    # a list never matches names
    assert raw('GET', '/api/v1/namespaces/default/configmaps/kube-proxy-worker', token=token)[0] == 403
    assert raw('GET', '/api/v1/configmaps', token=token)[0] == 403                # cluster-wide needs a CRB
    # A ClusterRole bound by a RoleBinding applies in that namespace only.
    _role(double.store, 'clusterroles', 'cm-list', [{'apiGroups': [''], 'resources': ['configmaps'], 'verbs': ['list']}])
    _binding(double.store, 'rolebindings', 'cm-list', 'ClusterRole', 'cm-list', [{'kind': 'User', 'name': 'alice'}],
             namespace='default')
    assert raw('GET', '/api/v1/namespaces/default/configmaps', token=token)[0] == 200
    assert raw('GET', path.rstrip('/'), token=token)[0] == 403


def test_subresources_eviction_status_and_dry_run_need_their_own_grants(double, raw):
    token = double.add_identity(serviceaccount=('netmedic', 'drainer'))
    pods, _rv = double.store.list('pods', 'default', label_selector='app=web')
    pod = pods[0]['metadata']['name']
    eviction = {'apiVersion': 'policy/v1', 'kind': 'Eviction', 'metadata': {'name': pod, 'namespace': 'default'}}
    evict = '/api/v1/namespaces/default/pods/%s/eviction' % pod
    _role(double.store, 'clusterroles', 'pods', [{'apiGroups': [''], 'resources': ['pods'], 'verbs': ['*']}])
    _binding(double.store, 'clusterrolebindings', 'pods', 'ClusterRole', 'pods', _sa('drainer'))
    status, _c, body = raw('POST', evict + '?dryRun=All', eviction, token=token)   # pods/* is not pods/eviction
    assert status == 403 and 'cannot create resource "pods/eviction" in API group ""' in body['message']
    _role(double.store, 'clusterroles', 'evict', [{'apiGroups': [''], 'resources': ['pods/eviction'], 'verbs': ['create']}])
    _binding(double.store, 'clusterrolebindings', 'evict', 'ClusterRole', 'evict', _sa('drainer'))
    assert raw('POST', evict + '?dryRun=All', eviction, token=token)[0] == 201
    # A server-side dry run is authorized as the write it simulates: read-only rights are not enough.
    reader = double.add_identity(serviceaccount=('netmedic', 'reader'))
    _role(double.store, 'clusterroles', 'ro', [{'apiGroups': ['*'], 'resources': ['*'], 'verbs': ['get', 'list', 'watch']}])
    _binding(double.store, 'clusterrolebindings', 'ro', 'ClusterRole', 'ro', _sa('reader'))
    cm = double.store.get('configmaps', NS, 'kube-proxy-worker')
    path = '/api/v1/namespaces/%s/configmaps/kube-proxy-worker' % NS
    assert raw('GET', path, token=reader)[0] == 200
    status, _c, body = raw('PUT', path + '?dryRun=All', cm, token=reader)
    assert status == 403 and 'cannot update resource "configmaps"' in body['message']
    # */status grants only the status subresource.
    _role(double.store, 'clusterroles', 'status', [{'apiGroups': [''], 'resources': ['*/status'], 'verbs': ['patch']}])
    _binding(double.store, 'clusterrolebindings', 'status', 'ClusterRole', 'status', _sa('reader'))
    merge = 'application/merge-patch+json'
    assert raw('PATCH', '/api/v1/nodes/lab-node-1/status', {'status': {}}, merge, token=reader)[0] == 200
    assert raw('PATCH', '/api/v1/nodes/lab-node-1', {'spec': {'unschedulable': True}}, merge, token=reader)[0] == 403
    assert not double.store.get('nodes', None, 'lab-node-1')['spec'].get('unschedulable')


def test_rule_allows_matches_kube_apiserver_rules():
    attrs = rbac.Attributes('get', 'apps', 'daemonsets', 'status', 'kube-system', 'kube-proxy')
    assert rbac.rule_allows({'verbs': ['*'], 'apiGroups': ['*'], 'resources': ['*']}, attrs)
    assert rbac.rule_allows({'verbs': ['get'], 'apiGroups': ['apps'], 'resources': ['daemonsets/status']}, attrs)
    assert rbac.rule_allows({'verbs': ['get'], 'apiGroups': ['apps'], 'resources': ['*/status']}, attrs)
    assert not rbac.rule_allows({'verbs': ['get'], 'apiGroups': ['apps'], 'resources': ['daemonsets']}, attrs)
    assert not rbac.rule_allows({'verbs': ['get'], 'apiGroups': [''], 'resources': ['daemonsets/status']}, attrs)
    assert not rbac.rule_allows({'verbs': ['get'], 'apiGroups': ['apps'], 'resources': ['daemonsets/status'],
                                 'resourceNames': ['other']}, attrs)
    assert rbac.request_verb('GET', None, {'watch': 'true'}) == 'watch'
    assert rbac.request_verb('DELETE', None, {}) == 'deletecollection'


def test_impersonation_admin_may_others_need_the_impersonate_verb(double):
    cfg = k8s_config.new_client_from_config_dict(double.kubeconfig())
    cfg.set_default_header('Impersonate-User', 'system:serviceaccount:netmedic:reader')
    with pytest.raises(ApiException) as err:
        k8s.CoreV1Api(cfg).list_node()
    assert err.value.status == 403 and 'system:serviceaccount:netmedic:reader' in json.loads(err.value.body)['message']
    token = double.add_identity(user='bob')
    client = k8s_config.new_client_from_config_dict(double.kubeconfig(token=token))
    client.set_default_header('Impersonate-User', 'alice')
    with pytest.raises(ApiException) as err:
        k8s.CoreV1Api(client).list_node()
    assert 'cannot impersonate resource "users"' in json.loads(err.value.body)['message']


def test_audit_records_each_request_with_its_decision(make_double):
    double = make_double(audit=True)
    token = double.add_identity(user='carol')
    client = k8s_config.new_client_from_config_dict(double.kubeconfig(token=token))
    with pytest.raises(ApiException):
        k8s.CoreV1Api(client).read_namespaced_config_map('kube-proxy', NS)
    entry = [e for e in double.audit if e['user'] == 'carol'][-1]
    assert entry == {'verb': 'get', 'apiGroup': '', 'resource': 'configmaps', 'subresource': '', 'namespace': NS,
                     'name': 'kube-proxy', 'user': 'carol', 'allowed': False, 'dryRun': False}
