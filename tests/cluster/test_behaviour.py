"""API behaviour the modules rely on, run against the double and the real kube-apiserver alike (issue 15).

Each test states what a real v1.37 kube-apiserver answers (measured against the lab's own control
plane, lab/k8s/k8sctl) and asserts it on whichever server ``cluster`` is (tests/cluster/conftest.py):
the API double when no kubeconfig is given, the real one under ``make realcluster-test``. Where
the double answered otherwise, the double was fixed (lab/kubedouble) and the test names the
divergence. They write only into a namespace of their own (``scratch``).
"""

from __future__ import annotations

import json
import time

import pytest
from kubernetes.client.rest import ApiException


def _service(name, cluster_ip=None):
    spec = {'selector': {'app': name}, 'ports': [{'name': 'http', 'port': 80, 'protocol': 'TCP', 'targetPort': 80}]}
    if cluster_ip:
        spec['clusterIP'] = cluster_ip
    return {'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': name}, 'spec': spec}


def _error(exc):
    body = json.loads(exc.body or '{}')
    return exc.status, body.get('reason'), body.get('message', ''), [c.get('field') for c in (body.get('details') or {}).get('causes') or []]


def test_issue15_taken_cluster_ip_is_invalid_422(cluster, scratch):
    """A Service asking for a clusterIP another Service holds: 422 Invalid on spec.clusterIPs, nothing stored.

    Divergence found by issue 15: the double stored a second Service with the same clusterIP.
    """
    core = cluster.core
    first = core.create_namespaced_service(scratch, _service('first'))
    taken = first.spec.cluster_ip
    with pytest.raises(ApiException) as info:
        core.create_namespaced_service(scratch, _service('second', taken))
    status, reason, message, fields = _error(info.value)
    assert (status, reason) == (422, 'Invalid'), (cluster.server, status, reason, message)
    assert 'spec.clusterIPs' in fields and 'already allocated' in message, (cluster.server, message, fields)
    names = [s.metadata.name for s in core.list_namespaced_service(scratch).items]
    assert names == ['first'], names


def test_issue15_recreating_an_existing_service_with_its_cluster_ip_is_422_not_409(cluster, scratch):
    """POST of a Service that exists, with its own clusterIP: the IP allocation fails before the name check.

    A real server answers 422 (seen when lab/k8s/nodesim.py seeded the `kubernetes` Service); the
    double answered 409 AlreadyExists. Without a clusterIP the same POST is a 409 on both.
    """
    core = cluster.core
    first = core.create_namespaced_service(scratch, _service('web'))
    with pytest.raises(ApiException) as info:
        core.create_namespaced_service(scratch, _service('web', first.spec.cluster_ip))
    status, reason, message, _fields = _error(info.value)
    assert (status, reason) == (422, 'Invalid') and 'already allocated' in message, (cluster.server, status, reason, message)
    with pytest.raises(ApiException) as info:
        core.create_namespaced_service(scratch, _service('web'))
    status, reason, message, _fields = _error(info.value)
    assert (status, reason) == (409, 'AlreadyExists'), (cluster.server, status, reason, message)
    stored = core.read_namespaced_service('web', scratch)
    assert stored.metadata.uid == first.metadata.uid and stored.spec.cluster_ip == first.spec.cluster_ip


def test_issue15_stale_resource_version_update_is_409_conflict(cluster, scratch):
    """The edit service's optimistic concurrency: an update with an old resourceVersion is a 409 Conflict."""
    core = cluster.core
    cm = core.create_namespaced_config_map(scratch, {'apiVersion': 'v1', 'kind': 'ConfigMap',
                                                     'metadata': {'name': 'cfg'}, 'data': {'k': '1'}})
    fresh = core.replace_namespaced_config_map('cfg', scratch, {
        'apiVersion': 'v1', 'kind': 'ConfigMap', 'data': {'k': '2'},
        'metadata': {'name': 'cfg', 'resourceVersion': cm.metadata.resource_version}})
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_config_map('cfg', scratch, {
            'apiVersion': 'v1', 'kind': 'ConfigMap', 'data': {'k': '3'},
            'metadata': {'name': 'cfg', 'resourceVersion': cm.metadata.resource_version}})
    status, reason, _message, _fields = _error(info.value)
    assert (status, reason) == (409, 'Conflict'), (cluster.server, status, reason)
    assert core.read_namespaced_config_map('cfg', scratch).data == {'k': '2'}
    assert fresh.metadata.resource_version != cm.metadata.resource_version


def test_issue15_dry_run_update_answers_the_new_object_and_stores_nothing(cluster, scratch):
    """Check mode's dryRun=All: the answer carries the change, the stored object keeps its resourceVersion and data."""
    core = cluster.core
    cm = core.create_namespaced_config_map(scratch, {'apiVersion': 'v1', 'kind': 'ConfigMap',
                                                     'metadata': {'name': 'cfg'}, 'data': {'k': '1'}})
    answer = core.replace_namespaced_config_map('cfg', scratch, {
        'apiVersion': 'v1', 'kind': 'ConfigMap', 'data': {'k': '2'},
        'metadata': {'name': 'cfg', 'resourceVersion': cm.metadata.resource_version}}, dry_run='All')
    assert answer.data == {'k': '2'}
    stored = core.read_namespaced_config_map('cfg', scratch)
    assert stored.data == {'k': '1'} and stored.metadata.resource_version == cm.metadata.resource_version


def test_issue15_delete_with_a_body_ignores_the_query_dry_run(cluster, scratch):
    """DELETE takes its DeleteOptions from the body when there is one; the query's ``dryRun=All`` is then ignored.

    Found by the real v1.37.2 kube-apiserver (issue 15): the kubernetes client's
    ``delete_namespaced_pod(body=DeleteOptions, dry_run='All')`` sends both, and the object IS deleted.
    The double honoured the query, so the cluster modules' check mode (daemonset_restart's dry-run pod
    deletes, module_utils/k8s/client.py delete_pod) looked safe on the double while deleting every
    planned pod on a real cluster. Only ``dryRun`` inside the body (or a DELETE without a body) is a dry run.
    """
    core = cluster.core

    def configmap(name):
        core.create_namespaced_config_map(scratch, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': name}})

    def exists(name):
        return bool(core.list_namespaced_config_map(scratch, field_selector='metadata.name=%s' % name).items)

    options = {'apiVersion': 'v1', 'kind': 'DeleteOptions'}
    configmap('query-and-body')
    core.delete_namespaced_config_map('query-and-body', scratch, body=options, dry_run='All')
    assert not exists('query-and-body'), '%s: the query dryRun was honoured although a body was sent' % cluster.server
    configmap('in-body')
    core.delete_namespaced_config_map('in-body', scratch, body=dict(options, dryRun=['All']))
    assert exists('in-body'), cluster.server
    configmap('query-only')
    method, url, headers, body, post = cluster.api.param_serialize(
        'DELETE', '/api/v1/namespaces/{namespace}/configmaps/{name}', path_params={'namespace': scratch, 'name': 'query-only'},
        query_params=[('dryRun', 'All')], header_params={'Accept': 'application/json'}, auth_settings=['BearerToken'])
    assert body is None                                                    # no DeleteOptions body at all
    assert cluster.api.call_api(method, url, headers, body, post).status == 200
    assert exists('query-only'), cluster.server


def test_issue15_eviction_that_would_break_the_budget_is_429(cluster, scratch):
    """node_drain's retry loop rests on this: an eviction the PDB forbids is a 429 naming the budget, and the pod stays.

    On the real server the disruption controller computes the budget from the pod's readiness (the pod
    is scheduled onto a simulated node and made Ready by lab/k8s/nodesim.py, so this needs ``k8sctl seed``).
    """
    core = cluster.core
    pod = core.create_namespaced_pod(scratch, {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'only', 'labels': {'app': 'only'}},
                                               'spec': {'containers': [{'name': 'c', 'image': 'registry.lab.invalid/pause:3.10'}]}})
    cluster.policy.create_namespaced_pod_disruption_budget(scratch, {
        'apiVersion': 'policy/v1', 'kind': 'PodDisruptionBudget', 'metadata': {'name': 'only'},
        'spec': {'minAvailable': 1, 'selector': {'matchLabels': {'app': 'only'}}}})
    deadline = time.monotonic() + 90
    while True:
        pdb = cluster.policy.read_namespaced_pod_disruption_budget('only', scratch)
        if pdb.status and pdb.status.observed_generation == pdb.metadata.generation and pdb.status.current_healthy == 1:
            break
        assert time.monotonic() < deadline, ('%s: the budget never counted the pod healthy' % cluster.server, pdb.status,
                                             core.read_namespaced_pod('only', scratch).status.phase)
        time.sleep(0.5)
    assert pdb.status.disruptions_allowed == 0
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod_eviction('only', scratch, {'apiVersion': 'policy/v1', 'kind': 'Eviction',
                                                              'metadata': {'name': 'only', 'namespace': scratch}})
    status, reason, message, _fields = _error(info.value)
    assert (status, reason) == (429, 'TooManyRequests') and 'disruption budget' in message, (cluster.server, status, reason, message)
    stored = core.read_namespaced_pod('only', scratch)
    assert stored.metadata.uid == pod.metadata.uid and not stored.metadata.deletion_timestamp
