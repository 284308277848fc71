"""The double's REST semantics, pinned through the real kubernetes client over HTTP."""

from __future__ import annotations

import json

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from lab.kubedouble import validation


def status_of(exc):
    body = json.loads(exc.body)
    assert body['kind'] == 'Status'
    assert body['code'] == exc.status
    return body


def configmap(name, labels=None, data=None):
    return {'apiVersion': 'v1', 'kind': 'ConfigMap',
            'metadata': {'name': name, 'labels': labels or {}}, 'data': data or {'k': 'v'}}


# -- discovery and auth ------------------------------------------------------------------------

def test_discovery_documents(double, api_client, raw):
    assert k8s.VersionApi(api_client).get_code().git_version == 'v1.24.9-gke.3200'
    groups = {g.name: g.preferred_version.group_version for g in k8s.ApisApi(api_client).get_api_versions().groups}
    for gv in ('apps/v1', 'policy/v1', 'networking.k8s.io/v1', 'rbac.authorization.k8s.io/v1'):
        assert groups[gv.split('/', maxsplit=1)[0]] == gv
    status, _hdrs, core_v1 = raw('GET', '/api/v1')
    assert status == 200 and core_v1['groupVersion'] == 'v1'
    by_name = {r['name']: r for r in core_v1['resources']}
    assert by_name['pods']['namespaced'] is True and by_name['nodes']['namespaced'] is False
    assert by_name['pods/eviction']['group'] == 'policy' and by_name['pods/eviction']['kind'] == 'Eviction'
    assert by_name['pods/log']['verbs'] == ['get']
    _code, _hdrs, apps_v1 = raw('GET', '/apis/apps/v1')
    assert {'daemonsets', 'deployments', 'replicasets'} <= {r['name'] for r in apps_v1['resources']}
    assert raw('GET', '/openapi/v2')[0] == 404
    assert raw('GET', '/apis/batch/v1')[0] == 404


def test_wrong_or_missing_token_is_401(double, raw):
    status, _hdrs, body = raw('GET', '/api/v1/namespaces', token='not-the-token')
    assert (status, body['reason'], body['code']) == (401, 'Unauthorized', 401)
    assert raw('GET', '/api/v1/namespaces', token='')[0] == 401
    assert raw('GET', '/version', token='')[0] == 200          # anonymous /version is public
    assert raw('GET', '/version', token='wrong')[0] == 401     # a bad credential never is
    config = k8s.Configuration(host=double.url, api_key={'authorization': 'Bearer wrong'})
    with pytest.raises(ApiException) as err:
        k8s.CoreV1Api(k8s.ApiClient(config)).list_namespace()
    assert err.value.status == 401


# -- create / get / list / replace / delete ----------------------------------------------------

def test_create_fills_server_metadata_and_rejects_duplicates(core):
    created = core.create_namespaced_config_map('default', configmap('alpha'))
    meta = created.metadata
    assert created.kind == 'ConfigMap' and created.api_version == 'v1'
    assert meta.uid and meta.creation_timestamp and meta.namespace == 'default'
    assert meta.resource_version.isdigit()
    fetched = core.read_namespaced_config_map('alpha', 'default')
    assert fetched.metadata.uid == meta.uid and fetched.data == {'k': 'v'}
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map('default', configmap('alpha'))
    body = status_of(err.value)
    assert (err.value.status, body['reason']) == (409, 'AlreadyExists')
    assert body['message'] == 'configmaps "alpha" already exists'


def test_resource_version_is_global_and_monotonic(core):
    first = int(core.create_namespaced_config_map('default', configmap('one')).metadata.resource_version)
    second = int(core.create_namespaced_config_map('kube-public', configmap('two')).metadata.resource_version)
    listed = core.list_namespaced_config_map('default')
    assert second > first
    assert int(listed.metadata.resource_version) >= second


def test_list_shape_matches_the_real_server(double, raw):
    status, _hdrs, body = raw('GET', '/api/v1/namespaces/kube-system/configmaps')
    assert status == 200
    assert body['kind'] == 'ConfigMapList' and body['apiVersion'] == 'v1'
    assert body['metadata']['resourceVersion'].isdigit()
    names = [i['metadata']['name'] for i in body['items']]
    assert names == sorted(names) and 'kube-proxy-worker' in names
    assert all('kind' not in i for i in body['items'])  # like kube-apiserver: items carry no TypeMeta
    _code, _hdrs, page = raw('GET', '/api/v1/namespaces/kube-system/configmaps?limit=2')
    assert len(page['items']) == 2 and page['metadata']['remainingItemCount'] == len(names) - 2
    _code, _hdrs, rest = raw('GET', '/api/v1/namespaces/kube-system/configmaps?limit=100&continue=' + page['metadata']['continue'])
    assert [i['metadata']['name'] for i in page['items'] + rest['items']] == names


def test_missing_namespace_and_missing_object_are_404(core):
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map('nope', configmap('x'))
    assert (err.value.status, status_of(err.value)['message']) == (404, 'namespaces "nope" not found')
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map('ghost', 'default')
    body = status_of(err.value)
    assert (body['reason'], body['details']['kind'], body['message']) == ('NotFound', 'configmaps',
                                                                          'configmaps "ghost" not found')


def test_replace_with_stale_resource_version_is_409(core):
    cm = core.create_namespaced_config_map('default', configmap('cfg'))
    cm.data = {'k': 'v2'}
    updated = core.replace_namespaced_config_map('cfg', 'default', cm)       # cm still holds the old rv
    assert updated.data == {'k': 'v2'}
    assert int(updated.metadata.resource_version) > int(cm.metadata.resource_version)
    cm.data = {'k': 'v3'}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map('cfg', 'default', cm)              # now stale
    body = status_of(err.value)
    assert (err.value.status, body['reason']) == (409, 'Conflict')
    assert 'the object has been modified' in body['message']
    cm.metadata.resource_version = None                                        # unconditional update
    assert core.replace_namespaced_config_map('cfg', 'default', cm).data == {'k': 'v3'}


def test_noop_update_keeps_resource_version(core):
    cm = core.create_namespaced_config_map('default', configmap('same'))
    again = core.replace_namespaced_config_map('same', 'default', cm)
    assert again.metadata.resource_version == cm.metadata.resource_version


def test_delete_returns_status_and_pod_delete_returns_pod(core):
    core.create_namespaced_config_map('default', configmap('gone'))
    status = core.delete_namespaced_config_map('gone', 'default')   # the client leaves it a dict
    assert (status['kind'], status['status']) == ('Status', 'Success')
    assert (status['details']['name'], status['details']['kind']) == ('gone', 'configmaps')
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map('gone', 'default')
    assert err.value.status == 404
    pod = core.list_namespaced_pod('default', label_selector='app=web').items[0]
    deleted = core.delete_namespaced_pod(pod.metadata.name, 'default')
    assert deleted.kind == 'Pod' and deleted.metadata.uid == pod.metadata.uid


def test_finalizers_delay_deletion_until_removed(core):
    cm = configmap('held')
    cm['metadata']['finalizers'] = ['lab.example/hold']
    core.create_namespaced_config_map('default', cm)
    marked = core.delete_namespaced_config_map('held', 'default')
    assert marked['kind'] == 'ConfigMap' and marked['metadata']['deletionTimestamp']
    assert core.read_namespaced_config_map('held', 'default').metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map('held', 'default', [{'op': 'remove', 'path': '/metadata/finalizers'}],
                                     _content_type='application/json-patch+json')
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map('held', 'default')
    assert err.value.status == 404


# -- selectors -------------------------------------------------------------------------------

@pytest.mark.parametrize(('selector', 'expected'), [
    ('tier=web', {'a', 'b'}),
    ('tier==web', {'a', 'b'}),
    ('tier!=web', {'c', 'd'}),
    ('tier in (web,db)', {'a', 'b', 'c'}),
    ('tier notin (web)', {'c', 'd'}),
    ('canary', {'b', 'd'}),
    ('!canary', {'a', 'c'}),
    ('tier=web,!canary', {'a'}),
    ('tier in (db),canary', set()),
])
def test_label_selectors(core, selector, expected):
    for name, labels in (('a', {'tier': 'web'}), ('b', {'tier': 'web', 'canary': 'yes'}),
                         ('c', {'tier': 'db'}), ('d', {'canary': 'no'})):
        core.create_namespaced_config_map('kube-public', configmap(name, labels))
    found = core.list_namespaced_config_map('kube-public', label_selector=selector).items
    assert {cm.metadata.name for cm in found} == expected


def test_field_selectors(core):
    on_node = core.list_pod_for_all_namespaces(field_selector='spec.nodeName=lab-node-2').items
    assert on_node and {p.spec.node_name for p in on_node} == {'lab-node-2'}
    assert len(core.list_pod_for_all_namespaces(field_selector='status.phase=Running').items) == 20
    assert core.list_pod_for_all_namespaces(field_selector='status.phase!=Running').items == []
    assert len(core.list_node(field_selector='spec.unschedulable=false').items) == 3   # unset counts as false
    named = core.list_namespaced_config_map('kube-system', field_selector='metadata.name=eni-config').items
    assert [cm.metadata.name for cm in named] == ['eni-config']
    assert {n.metadata.namespace for n in core.list_pod_for_all_namespaces(
        field_selector='metadata.namespace=default').items} == {'default'}
    with pytest.raises(ApiException) as err:
        core.list_pod_for_all_namespaces(field_selector='spec.bogus=1')
    assert err.value.status == 400 and 'field label not supported' in status_of(err.value)['message']


# -- patch -------------------------------------------------------------------------------------

def test_strategic_merge_patch_merges_lists_by_key(apps):
    patch = {'spec': {'template': {'spec': {'containers': [{
        'name': 'ip-masq-agent',
        'args': ['--masq-chain=IP-MASQ', '--nomasq-all-reserved-ranges', '--random-fully=false'],
        'env': [{'name': 'LAB', 'value': '1'}]}]}}}}
    before = apps.read_namespaced_daemon_set('ip-masq-agent', 'kube-system')
    ds = apps.patch_namespaced_daemon_set('ip-masq-agent', 'kube-system', patch)   # dict body -> strategic
    container = ds.spec.template.spec.containers[0]
    assert container.args[-1] == '--random-fully=false'
    assert container.image == before.spec.template.spec.containers[0].image        # merged, not replaced
    assert [m.mount_path for m in container.volume_mounts] == ['/etc/config']
    assert ds.metadata.generation == before.metadata.generation + 1


def test_merge_patch_replaces_lists_and_null_deletes(core, apps):
    ds = apps.patch_namespaced_daemon_set('terway-eniip', 'kube-system', {'spec': {'template': {'spec': {
        'containers': [{'name': 'terway', 'image': 'registry.lab.invalid/acs/terway:v1.2.1'}]}}}},
        _content_type='application/merge-patch+json')
    assert [c.name for c in ds.spec.template.spec.containers] == ['terway']       # list replaced whole
    cm = core.patch_namespaced_config_map('eni-config', 'kube-system', {
        'data': {'in_cluster_loadbalance': 'true', 'disable_network_policy': None}},
        _content_type='application/merge-patch+json')
    assert cm.data['in_cluster_loadbalance'] == 'true' and 'disable_network_policy' not in cm.data


def test_json_patch_applies_and_failing_test_op_is_422(core):
    cm = core.patch_namespaced_config_map('ip-masq-agent', 'kube-system', [
        {'op': 'test', 'path': '/data/config', 'value': core.read_namespaced_config_map(
            'ip-masq-agent', 'kube-system').data['config']},
        {'op': 'add', 'path': '/data/extra', 'value': 'x'}], _content_type='application/json-patch+json')
    assert cm.data['extra'] == 'x'
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map('ip-masq-agent', 'kube-system', [
            {'op': 'test', 'path': '/data/extra', 'value': 'y'}], _content_type='application/json-patch+json')
    assert err.value.status == 422


def test_patch_with_stale_resource_version_precondition_is_409(core):
    cm = core.create_namespaced_config_map('default', configmap('pre'))
    core.patch_namespaced_config_map('pre', 'default', {'data': {'k': 'new'}})
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map('pre', 'default', {'metadata': {'resourceVersion':
                                                                         cm.metadata.resource_version},
                                                            'data': {'k': 'newer'}})
    assert status_of(err.value)['reason'] == 'Conflict'


def test_status_is_only_written_through_the_status_subresource(core):
    pod = core.list_namespaced_pod('default', label_selector='app=web').items[0]
    patched = core.patch_namespaced_pod(pod.metadata.name, 'default', {'status': {'phase': 'Failed'}})
    assert patched.status.phase == 'Running'
    patched = core.patch_namespaced_pod_status(pod.metadata.name, 'default', {'status': {'conditions': [
        {'type': 'Ready', 'status': 'False'}]}})
    conditions = {c.type: c.status for c in patched.status.conditions}
    assert conditions['Ready'] == 'False' and conditions['Initialized'] == 'True'  # merged by type


def test_pod_spec_is_immutable_except_images(core):
    pod = core.list_namespaced_pod('default', label_selector='app=web').items[0]
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_pod(pod.metadata.name, 'default', {'spec': {'hostNetwork': True}})
    assert err.value.status == 422 and 'pod updates may not change fields' in status_of(err.value)['message']
    done = core.patch_namespaced_pod(pod.metadata.name, 'default', {'spec': {'containers': [
        {'name': 'web', 'image': 'registry.lab.invalid/nginx:1.26'}]}})
    assert done.spec.containers[0].image.endswith('nginx:1.26')


# -- dry run ---------------------------------------------------------------------------------

def test_dry_run_stores_nothing(core, double, raw):
    rv = double.store.resource_version
    made = core.create_namespaced_config_map('default', configmap('dry'), dry_run='All')
    assert made.metadata.name == 'dry' and made.metadata.uid
    patched = core.patch_namespaced_config_map('kube-proxy-worker', 'kube-system', {'data': {'x': '1'}},
                                               dry_run='All')
    assert patched.data['x'] == '1'
    replaced = core.read_namespaced_config_map('eni-config', 'kube-system')
    replaced.data = {}
    assert not core.replace_namespaced_config_map('eni-config', 'kube-system', replaced, dry_run='All').data
    core.delete_namespaced_config_map('ip-masq-agent', 'kube-system', dry_run='All')
    pod = core.list_namespaced_pod('default').items[0]
    core.create_namespaced_pod_eviction(pod.metadata.name, 'default', k8s.V1Eviction(
        metadata=k8s.V1ObjectMeta(name=pod.metadata.name), delete_options=k8s.V1DeleteOptions(dry_run=['All'])))
    with pytest.raises(ApiException):
        core.read_namespaced_config_map('dry', 'default')
    assert 'x' not in core.read_namespaced_config_map('kube-proxy-worker', 'kube-system').data
    assert core.read_namespaced_config_map('eni-config', 'kube-system').data
    assert core.read_namespaced_config_map('ip-masq-agent', 'kube-system')
    assert core.read_namespaced_pod(pod.metadata.name, 'default')
    assert double.store.resource_version == rv
    assert raw('POST', '/api/v1/namespaces/default/configmaps?dryRun=Some', configmap('z'))[0] == 400


# -- validation and allocation -----------------------------------------------------------------

@pytest.mark.skipif(not validation.available(), reason='kubernetes-validate is not installed')
def test_schema_validation_answers_422(raw):
    code, _hdrs, body = raw('POST', '/api/v1/namespaces/default/pods', {   # the client itself would refuse it
        'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'p'}, 'spec': {'containers': [{'image': 'x'}]}})
    assert (code, body['reason'], body['code']) == (422, 'Invalid', 422)
    assert body['details']['causes'][0]['field'] == 'spec.containers[0]' and "'name'" in body['message']
    code, _hdrs, body = raw('PATCH', '/api/v1/namespaces/kube-system/configmaps/eni-config', {'data': {'n': 1}},
                            content_type='application/merge-patch+json')
    assert code == 422 and body['details']['causes'][0]['field'] == 'data.n'
    assert raw('GET', '/api/v1/namespaces/default/pods/p')[0] == 404


def test_semantic_validation_answers_422(core, apps):
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map('default', configmap('Bad_Name'))
    assert err.value.status == 422 and 'RFC 1123' in status_of(err.value)['message']
    ds = apps.read_namespaced_daemon_set('anetd', 'kube-system')
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_daemon_set('anetd', 'kube-system', {'spec': {'selector': {'matchLabels': {'x': 'y'}}}})
    assert err.value.status == 422
    assert apps.read_namespaced_daemon_set('anetd', 'kube-system').metadata.resource_version == \
        ds.metadata.resource_version


def test_services_get_cluster_ip_and_node_port(core):
    web = core.read_namespaced_service('web', 'default')
    assert web.spec.cluster_ip.startswith('10.9') and 30000 <= web.spec.ports[0].node_port <= 32767
    assert web.spec.ports[0].target_port == 80 and web.spec.ports[0].protocol == 'TCP'
    svc = core.create_namespaced_service('default', {'apiVersion': 'v1', 'kind': 'Service',
                                                     'metadata': {'name': 'other'},
                                                     'spec': {'ports': [{'port': 53, 'protocol': 'UDP'}]}})
    assert svc.spec.cluster_ip not in (web.spec.cluster_ip, '10.96.0.1', '10.96.0.10')
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_service('other', 'default', {'spec': {'clusterIP': '10.96.9.9'}})
    assert err.value.status == 422 and 'immutable' in status_of(err.value)['message']


def test_server_side_apply_creates_then_merges(raw, double):
    path = '/api/v1/namespaces/default/configmaps/ssa'
    doc = b'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: "1"\n'
    assert raw('PATCH', path, doc, content_type='application/apply-patch+yaml')[0] == 400   # fieldManager required
    code, _hdrs, made = raw('PATCH', path + '?fieldManager=netmedic', doc, content_type='application/apply-patch+yaml')
    assert (code, made['data']) == (201, {'a': '1'})
    code, _hdrs, merged = raw('PATCH', path + '?fieldManager=netmedic', doc.replace(b'a: "1"', b'b: "2"'),
                              content_type='application/apply-patch+yaml')
    assert (code, merged['data']) == (200, {'a': '1', 'b': '2'})   # no field ownership: nothing is removed
    assert raw('PATCH', path, b'{}', content_type='application/xml')[0] == 415
