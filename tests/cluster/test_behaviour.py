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

from tests.cluster.conftest import REQUEST_TIMEOUT

pytestmark = pytest.mark.double_strict('the behaviour suite: the probes that keep the API double agreeing with a real kube-apiserver')


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
    assert cluster.api.call_api(method, url, headers, body, post, _request_timeout=REQUEST_TIMEOUT).status == 200
    assert exists('query-only'), cluster.server


def test_issue15_the_request_record_marks_a_delete_dry_only_when_it_was(writable, scratch):
    """The ``Audit`` record (the double's, or the real server's audit log) says ``dryRun`` for a DELETE as the server
    applied it: from the body when there is one (so a query ``dryRun=All`` beside a body is a real deletion), from the
    query otherwise. A record that took the query's word would let check-mode deletions pass as dry runs (review
    finding). The deletes go through a client of their own (the suite's own requests are left out of the record)."""
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config

    from tests.cluster.conftest import Audit

    cluster = writable
    api = k8s_config.new_client_from_config(str(cluster.kubeconfig), context=cluster.context)
    core = k8s_client.CoreV1Api(api)
    options = {'apiVersion': 'v1', 'kind': 'DeleteOptions'}
    for name in ('query-and-body', 'in-body'):
        cluster.core.create_namespaced_config_map(scratch, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': name}})
    audit = Audit(cluster)
    try:
        core.delete_namespaced_config_map('query-and-body', scratch, body=options, dry_run='All', _request_timeout=REQUEST_TIMEOUT)
        core.delete_namespaced_config_map('in-body', scratch, body=dict(options, dryRun=['All']), _request_timeout=REQUEST_TIMEOUT)
    finally:
        api.close()
    deletes = {e['name']: e['dryRun'] for e in audit.entries() if e['verb'] == 'delete' and e['namespace'] == scratch}
    assert deletes == {'query-and-body': False, 'in-body': True}, (cluster.server, deletes)


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


def test_leases_are_served_with_discovery_and_compare_and_swap(cluster, scratch):
    """The cluster lock's ground (tests/cluster/test_cluster_lock.py): coordination.k8s.io/v1 in discovery, a second
    create 409 AlreadyExists, a replace with a stale resourceVersion 409 Conflict, a DELETE whose resourceVersion
    precondition fails 409 and deletes nothing. Moved from tests/lab/test_cluster_lock.py (the double only).

    Divergence found by issue 15: the failed precondition's message. The real server names the kind
    (``Lease.coordination.k8s.io``) and says "the ResourceVersion in the precondition (...) does not match the
    ResourceVersion in record (...)"; the double said "Precondition failed: resourceVersion in precondition: ...".
    (No module reads the message: lease_lock, node_drain and daemonset_restart go by the 409.)"""
    groups = {g.name: g.preferred_version.group_version for g in cluster.apis.get_api_versions().groups}
    assert groups['coordination.k8s.io'] == 'coordination.k8s.io/v1', (cluster.server, groups.get('coordination.k8s.io'))
    coord = cluster.coordination
    body = {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease', 'metadata': {'name': 'x', 'namespace': scratch},
            'spec': {'holderIdentity': 'a', 'leaseDurationSeconds': 30}}
    created = coord.create_namespaced_lease(scratch, body)
    with pytest.raises(ApiException) as info:
        coord.create_namespaced_lease(scratch, body)
    assert _error(info.value)[:2] == (409, 'AlreadyExists'), (cluster.server, _error(info.value))
    stale = created.metadata.resource_version
    created.spec.holder_identity = 'b'
    coord.replace_namespaced_lease('x', scratch, created)
    created.spec.holder_identity = 'c'
    created.metadata.resource_version = stale
    with pytest.raises(ApiException) as info:
        coord.replace_namespaced_lease('x', scratch, created)
    assert _error(info.value)[:2] == (409, 'Conflict'), (cluster.server, _error(info.value))
    with pytest.raises(ApiException) as info:
        coord.delete_namespaced_lease('x', scratch, body={'preconditions': {'resourceVersion': stale}})
    status, reason, message, _fields = _error(info.value)
    assert (status, reason) == (409, 'Conflict'), (cluster.server, status, reason, message)
    assert message == ('Operation cannot be fulfilled on Lease.coordination.k8s.io "x": the ResourceVersion in the precondition (%s) '
                       'does not match the ResourceVersion in record (%s). The object might have been modified'
                       % (stale, coord.read_namespaced_lease('x', scratch).metadata.resource_version)), (cluster.server, message)
    assert coord.read_namespaced_lease('x', scratch).spec.holder_identity == 'b'
    assert [i.metadata.name for i in coord.list_namespaced_lease(scratch).items] == ['x']

# -- graceful pod deletion ---------------------------------------------------------------------------------
#
# Measured on the real v1.37.2 kube-apiserver (lab/k8s/k8sctl, 2026-12-03; a watch, and lab/k8s/nodesim.py
# paused to see the states it otherwise ends within milliseconds): a DELETE of a pod bound to a node answers
# the pod with ``deletionTimestamp`` = now + its grace period (DeleteOptions.gracePeriodSeconds, else the
# pod's terminationGracePeriodSeconds, 30 by default) and ``deletionGracePeriodSeconds``, same UID, still
# Running: the pod is Terminating until the node's kubelet finishes it with a DELETE of gracePeriodSeconds 0
# (deletionTimestamp now, grace 0, then gone; a finalizer keeps it at that). A pod no kubelet runs (no
# nodeName) or one deleted with grace 0 goes at once, the answer carrying deletionTimestamp now and grace 0.
# The double removed every pod at once and answered it without a deletionTimestamp (issue 15).


PAUSE = 'registry.lab.invalid/pause:3.10'


def _pod(name, **spec):
    return {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': name},
            'spec': dict({'containers': [{'name': 'c', 'image': PAUSE}]}, **spec)}


def _running(cluster, namespace, body):
    """Create the pod and wait until the scheduler bound it and its node's kubelet made it Running."""
    core = cluster.core
    core.create_namespaced_pod(namespace, body)
    name = body['metadata']['name']
    deadline = time.monotonic() + 60
    while True:
        pod = core.read_namespaced_pod(name, namespace)
        if pod.spec.node_name and pod.status.phase == 'Running':
            return pod
        assert time.monotonic() < deadline, ('%s: pod %s never Running' % (cluster.server, name), pod.status)
        time.sleep(0.1)


def _read(core, namespace, name):
    try:
        return core.read_namespaced_pod(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _seconds_from(stamp, start, end):
    """(earliest, latest) seconds from the request to ``stamp`` (the API's timestamps are whole seconds)."""
    return stamp.timestamp() - end, stamp.timestamp() - (start - 1)


@pytest.mark.parametrize('how, grace', [('default', 30), ('pod-spec', 5), ('delete-options', 7)])
def test_issue15_deleting_a_pod_on_a_node_leaves_it_terminating_until_its_kubelet_finishes(cluster, scratch, how, grace):
    """DELETE of a pod on a node: Terminating (same UID, deletionTimestamp = now + grace), then its kubelet ends it."""
    core = cluster.core
    body = _pod('victim', terminationGracePeriodSeconds=5) if how == 'pod-spec' else _pod('victim')
    pod = _running(cluster, scratch, body)
    start = time.time()
    answer = core.delete_namespaced_pod('victim', scratch, grace_period_seconds=7 if how == 'delete-options' else None)
    end = time.time()
    meta = answer.metadata
    assert meta.uid == pod.metadata.uid and answer.status.phase == 'Running', (cluster.server, meta.uid, answer.status.phase)
    assert meta.deletion_grace_period_seconds == grace, (cluster.server, how, meta.deletion_grace_period_seconds)
    assert meta.deletion_timestamp, '%s: the DELETE answered a pod that is not Terminating' % cluster.server
    early, late = _seconds_from(meta.deletion_timestamp, start, end)
    assert early - 1 <= grace <= late + 1, (cluster.server, meta.deletion_timestamp, start, end, grace)
    deadline = time.monotonic() + 30
    while True:
        now = _read(core, scratch, 'victim')
        if now is None:
            break
        assert now.metadata.uid == pod.metadata.uid and now.metadata.deletion_timestamp, (cluster.server, now.metadata)
        assert now.metadata.deletion_grace_period_seconds in (grace, 0), (cluster.server, now.metadata)
        assert time.monotonic() < deadline, '%s: the kubelet never finished the deletion' % cluster.server
        time.sleep(0.05)


@pytest.mark.parametrize('how', ['unscheduled', 'grace-zero', 'pod-spec-zero'])
def test_issue15_a_pod_no_kubelet_runs_or_deleted_with_grace_zero_goes_at_once(cluster, scratch, how):
    """No nodeName, gracePeriodSeconds 0, or terminationGracePeriodSeconds 0: gone at once, answered with grace 0."""
    core = cluster.core
    if how == 'unscheduled':
        core.create_namespaced_pod(scratch, _pod('victim', nodeSelector={'netmedic.test/nowhere': 'true'}))
        pod = core.read_namespaced_pod('victim', scratch)
        assert not pod.spec.node_name
    else:
        pod = _running(cluster, scratch, _pod('victim', terminationGracePeriodSeconds=0) if how == 'pod-spec-zero' else _pod('victim'))
    start = time.time()
    answer = core.delete_namespaced_pod('victim', scratch, grace_period_seconds=0 if how == 'grace-zero' else None)
    end = time.time()
    meta = answer.metadata
    assert meta.uid == pod.metadata.uid and meta.deletion_grace_period_seconds == 0, (cluster.server, how, meta)
    assert meta.deletion_timestamp, (cluster.server, how, meta)
    early, late = _seconds_from(meta.deletion_timestamp, start, end)
    assert early - 1 <= 0 <= late + 1, (cluster.server, meta.deletion_timestamp, start, end)
    assert _read(core, scratch, 'victim') is None, '%s: %s pod still there after its DELETE' % (cluster.server, how)


def test_issue15_a_pod_with_a_finalizer_stays_terminating_after_its_kubelet_until_the_finalizer_goes(cluster, scratch):
    """The two steps seen on both servers: Terminating with grace 30, the kubelet's grace 0, gone with the finalizer."""
    core = cluster.core
    body = _pod('held')
    body['metadata']['finalizers'] = ['netmedic.test/hold']
    pod = _running(cluster, scratch, body)
    answer = core.delete_namespaced_pod('held', scratch)
    assert answer.metadata.deletion_grace_period_seconds == 30 and answer.metadata.deletion_timestamp, (cluster.server, answer.metadata)
    deadline = time.monotonic() + 30
    while True:
        now = core.read_namespaced_pod('held', scratch)
        assert now.metadata.uid == pod.metadata.uid and now.metadata.deletion_timestamp, (cluster.server, now.metadata)
        if now.metadata.deletion_grace_period_seconds == 0:
            break
        assert time.monotonic() < deadline, '%s: the kubelet never finished the deletion' % cluster.server
        time.sleep(0.05)
    assert now.metadata.finalizers == ['netmedic.test/hold']
    assert now.metadata.deletion_timestamp <= answer.metadata.deletion_timestamp
    core.patch_namespaced_pod('held', scratch, {'metadata': {'finalizers': None}})
    assert _read(core, scratch, 'held') is None, cluster.server


def test_issue15_dry_run_delete_of_a_pod_answers_it_terminating_and_keeps_it(cluster, scratch):
    """A dry-run DELETE (check mode's) answers the pod as the real DELETE would leave it; the stored pod is untouched."""
    core = cluster.core
    pod = _running(cluster, scratch, _pod('kept'))
    answer = core.delete_namespaced_pod('kept', scratch, body={'apiVersion': 'v1', 'kind': 'DeleteOptions', 'dryRun': ['All']})
    assert answer.metadata.uid == pod.metadata.uid and answer.metadata.deletion_grace_period_seconds == 30, (cluster.server, answer.metadata)
    assert answer.metadata.deletion_timestamp, (cluster.server, answer.metadata)
    stored = core.read_namespaced_pod('kept', scratch)
    assert stored.metadata.uid == pod.metadata.uid and not stored.metadata.deletion_timestamp


def test_issue15_a_failed_uid_precondition_names_the_kind_and_the_uids(cluster, scratch):
    """The uid precondition of a DELETE (the kubelet's, daemonset_restart's, backup_retention's): 409 Conflict, as the real server words it."""
    core = cluster.core
    cm = core.create_namespaced_config_map(scratch, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'cfg'}})
    other = '00000000-0000-4000-8000-000000000000'
    with pytest.raises(ApiException) as info:
        core.delete_namespaced_config_map('cfg', scratch, body={'preconditions': {'uid': other}})
    status, reason, message, _fields = _error(info.value)
    assert (status, reason) == (409, 'Conflict'), (cluster.server, status, reason, message)
    assert message == ('Operation cannot be fulfilled on ConfigMap "cfg": the UID in the precondition (%s) does not match the UID in '
                       'record (%s). The object might have been deleted and then recreated' % (other, cm.metadata.uid)), (cluster.server, message)
    assert json.loads(info.value.body)['details'] == {'name': 'cfg', 'kind': 'ConfigMap'}
    assert core.read_namespaced_config_map('cfg', scratch).metadata.uid == cm.metadata.uid


def test_issue15_a_pod_whose_service_account_is_missing_is_forbidden_and_a_daemonset_makes_none(cluster, scratch):
    """ServiceAccount admission: a pod naming a ServiceAccount its namespace lacks is refused 403 Forbidden (named by
    its generateName when it has no name yet, as a controller's pods are), nothing stored; so a DaemonSet copied into
    a namespace without its ServiceAccount gets no pod (the controller's FailedCreate event) until the account exists.

    Divergence found by issue 15 (porting tests/lab's Flannel/Terway playbook tests onto copies of the seed's
    DaemonSets): the double created the pods. It still makes each namespace's ``default`` account itself within a tick
    and does not refuse pods for it (the real server does until its controller made it: ``scratch`` waits for it).
    """
    core = cluster.core
    for body in (_pod('lonely', serviceAccountName='nobody'),
                 {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'generateName': 'agent-'},
                  'spec': {'serviceAccountName': 'nobody', 'containers': [{'name': 'c', 'image': PAUSE}]}}):
        with pytest.raises(ApiException) as info:
            core.create_namespaced_pod(scratch, body)
        status, reason, message, _fields = _error(info.value)
        name = body['metadata'].get('name') or body['metadata']['generateName']
        assert (status, reason) == (403, 'Forbidden'), (cluster.server, status, reason, message)
        assert message == ('pods "%s" is forbidden: error looking up service account %s/nobody: serviceaccount "nobody" not found'
                           % (name, scratch)), (cluster.server, message)
    assert core.list_namespaced_pod(scratch).items == []

    labels = {'app': 'agent'}
    core_ds = {'apiVersion': 'apps/v1', 'kind': 'DaemonSet', 'metadata': {'name': 'agent'},
               'spec': {'selector': {'matchLabels': labels}, 'template': {'metadata': {'labels': labels}, 'spec': {
                   'serviceAccountName': 'agent', 'tolerations': [{'operator': 'Exists'}],
                   'containers': [{'name': 'c', 'image': PAUSE}]}}}}
    cluster.apps.create_namespaced_daemon_set(scratch, core_ds)
    deadline = time.monotonic() + 60
    while True:
        events = [e for e in core.list_namespaced_event(scratch).items if e.reason == 'FailedCreate']
        if events:
            break
        assert time.monotonic() < deadline, '%s: no FailedCreate event of DaemonSet agent' % cluster.server
        time.sleep(0.2)
    assert 'error looking up service account %s/agent: serviceaccount "agent" not found' % scratch in events[0].message, \
        (cluster.server, events[0].message)
    assert core.list_namespaced_pod(scratch).items == []
    core.create_namespaced_service_account(scratch, {'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': {'name': 'agent'}})
    deadline = time.monotonic() + 120        # the real controller retries with a backoff
    nodes = len(core.list_node().items)
    while len(core.list_namespaced_pod(scratch, label_selector='app=agent').items) < nodes:
        assert time.monotonic() < deadline, '%s: DaemonSet agent made no pod per node once its ServiceAccount existed' % cluster.server
        time.sleep(0.5)


UNSCHEDULABLE_TAINT = {'key': 'node.kubernetes.io/unschedulable', 'effect': 'NoSchedule'}


def _unschedulable_taints(cluster, name):
    return [t for t in cluster.get('Node', None, name)['spec'].get('taints') or [] if t.get('key') == UNSCHEDULABLE_TAINT['key']]


def test_issue15_a_cordoned_node_is_tainted_unschedulable_until_it_is_uncordoned(writable):
    """The node lifecycle controller taints a cordoned Node ``node.kubernetes.io/unschedulable:NoSchedule`` (with its
    ``timeAdded``, whole seconds) a moment after the cordon and takes the taint off after the uncordon, leaving no
    ``spec.taints`` behind (the seed's Nodes have none). The double only scheduled as if the taint were there (found by
    tests/cluster/test_w7_spine.py, whose cordons left the taint on the real server's Nodes for a moment).
    Cordons the seed's lab-node-3 for a moment, always uncordoned again."""
    import datetime

    from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import waiter

    cluster, name = writable, 'lab-node-3'
    node = cluster.get('Node', None, name)
    assert not node['spec'].get('unschedulable') and not node['spec'].get('taints'), (cluster.server, node['spec'])
    patch = 'application/merge-patch+json'
    try:
        start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        cluster.core.patch_node(name, {'spec': {'unschedulable': True}}, _content_type=patch)
        taints = waiter.wait_until(lambda: _unschedulable_taints(cluster, name), bool, waiter.deadline(60), 0.2)
        assert [{k: v for k, v in t.items() if k != 'timeAdded'} for t in taints] == [UNSCHEDULABLE_TAINT], (cluster.server, taints)
        added = datetime.datetime.strptime(taints[0]['timeAdded'], '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)
        assert start <= added <= datetime.datetime.now(datetime.timezone.utc), (cluster.server, start, taints)
    finally:
        cluster.core.patch_node(name, {'spec': {'unschedulable': None}}, _content_type=patch)
    spec = waiter.wait_until(lambda: cluster.get('Node', None, name)['spec'],
                             lambda s: not [t for t in s.get('taints') or [] if t.get('key') == UNSCHEDULABLE_TAINT['key']],
                             waiter.deadline(60), 0.2)
    assert 'taints' not in spec and not spec.get('unschedulable'), (cluster.server, spec)
