"""k8s_client: a timeout on every request, bounded retries with backoff and jitter (issue #10 hole 9)."""

from __future__ import annotations

import datetime
import json
import socket
import threading
import time

import pytest
from kubernetes.client.rest import ApiException

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client


class FakeApi(object):
    """Stands in for ``kubernetes.client.ApiClient``: records each request, answers from a script.

    An answer is a dict (JSON, status 200), an ``int`` status with an empty JSON body, or an exception to raise.
    """

    def __init__(self, answers, policy=None):
        self.netmedic_policy = policy
        self.answers = list(answers)
        self.calls = []

    def param_serialize(self, method, resource_path, query_params=None, header_params=None, body=None, auth_settings=None):
        return method, resource_path, header_params, body, query_params

    def call_api(self, method, url, headers, body, query, _request_timeout=None):
        self.calls.append({'method': method, 'url': url, 'headers': headers, 'body': body, 'query': query,
                           '_request_timeout': _request_timeout})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status = answer if isinstance(answer, int) else 200
        data = json.dumps({} if isinstance(answer, int) else answer).encode()
        return type('Response', (), {'status': status, 'reason': 'R', 'data': data, 'headers': {}, 'read': lambda self: self.data})()


def cluster_of(api):
    return k8s_client.Cluster({}, api=api)


def read_cm(api):
    return cluster_of(api).get('ConfigMap', 'ns', 'x')


def replace_cm(api):
    return cluster_of(api).replace({'kind': 'ConfigMap', 'metadata': {'name': 'x', 'namespace': 'ns'}})


def evict(api):
    return cluster_of(api).evict({'metadata': {'name': 'p', 'namespace': 'ns'}}, {})


def api_exception(status, retry_after=None):
    exc = ApiException(status=status, reason='Status %d' % status)
    exc.body = json.dumps({'kind': 'Status', 'message': 'injected %d' % status, 'reason': 'Injected'})
    exc.headers = {'Retry-After': retry_after} if retry_after is not None else {}
    return exc


@pytest.fixture
def sleeps(monkeypatch):
    waited = []
    monkeypatch.setattr(k8s_client, '_sleep', waited.append)
    return waited


def test_issue10_h9_every_request_carries_the_configured_timeout(sleeps):
    api = FakeApi([{'kind': 'ConfigMap'}], policy={'timeout': 7.5, 'retries': 3})
    assert read_cm(api) == {'kind': 'ConfigMap'}
    assert api.calls[0]['_request_timeout'] == 7.5
    assert (api.calls[0]['method'], api.calls[0]['url']) == ('GET', '/api/v1/namespaces/ns/configmaps/x')
    # without a policy the default applies: never "no timeout"
    api = FakeApi([{}])
    read_cm(api)
    assert api.calls[0]['_request_timeout'] == k8s_client.DEFAULT_POLICY['timeout']
    # a per-call timeout wins
    api = FakeApi([{}])
    cluster_of(api).get('Node', None, 'n1', timeout=2.0)
    assert (api.calls[0]['url'], api.calls[0]['_request_timeout']) == ('/api/v1/nodes/n1', 2.0)


def test_issue10_h9_read_retries_429_honouring_retry_after_then_5xx_with_backoff(sleeps):
    api = FakeApi([api_exception(429, '3'), api_exception(503), {'ok': True}], policy={'timeout': 5.0, 'retries': 3})
    assert read_cm(api) == {'ok': True}
    assert len(api.calls) == 3
    assert sleeps[0] == 3.0                                  # Retry-After waited in full
    assert 0.5 <= sleeps[1] <= 1.0                           # second backoff (1 s) with jitter down to half


def test_issue10_h9_persistent_5xx_fails_after_the_bounded_retries(sleeps):
    api = FakeApi([api_exception(503)] * 5, policy={'timeout': 5.0, 'retries': 2})
    with pytest.raises(k8s_client.K8sError, match=r'reading ConfigMap ns/x failed: HTTP 503 Injected: injected 503 \(after 2 retries\)') as info:
        read_cm(api)
    assert info.value.status == 503 and len(api.calls) == 3 and len(sleeps) == 2


def test_issue10_h9_writes_retry_429_but_never_5xx(sleeps):
    api = FakeApi([api_exception(503), {}], policy={'timeout': 5.0, 'retries': 3})
    with pytest.raises(k8s_client.K8sError, match='HTTP 503') as info:
        replace_cm(api)
    assert info.value.status == 503 and len(api.calls) == 1 and sleeps == []
    api = FakeApi([api_exception(429, '1'), {'written': True}], policy={'timeout': 5.0, 'retries': 3})
    assert replace_cm(api) == {'written': True}
    assert sleeps == [1.0]


def test_issue10_h9_an_eviction_429_is_a_budget_answer_left_to_the_caller(sleeps):
    api = FakeApi([api_exception(429), {}], policy={'timeout': 5.0, 'retries': 3})
    with pytest.raises(k8s_client.K8sError, match='HTTP 429') as info:
        evict(api)
    assert info.value.status == 429 and len(api.calls) == 1 and sleeps == []


def test_issue10_h9_a_timeout_is_a_clean_failure_and_never_retried(sleeps):
    class ReadTimeoutError(Exception):
        pass

    api = FakeApi([ReadTimeoutError('Read timed out. (read timeout=2)'), {}], policy={'timeout': 2.0, 'retries': 3})
    with pytest.raises(k8s_client.K8sError, match=r'reading ConfigMap ns/x: no answer from the Kubernetes API within request_timeout=2.0s'):
        read_cm(api)
    assert len(api.calls) == 1 and sleeps == []


@pytest.mark.parametrize('status,retry_after,attempt,retries,read,expected', [
    (429, None, 0, 3, False, (0.25, 0.5)),
    (503, None, 0, 3, True, (0.25, 0.5)),
    (503, None, 0, 3, False, None),
    (500, None, 2, 3, True, (1.0, 2.0)),
    (429, None, 3, 3, True, None),              # retries used up
    (404, None, 0, 3, True, None),
    (409, None, 0, 3, False, None),
    (429, 10.0, 0, 3, True, (10.0, 10.0)),
    (429, 120.0, 0, 3, True, None),             # longer than RETRY_AFTER_MAX: fail, do not hammer
    (503, None, 9, 10, True, (15.0, 30.0)),     # capped at BACKOFF_MAX
])
def test_issue10_h9_retry_delay(status, retry_after, attempt, retries, read, expected):
    for rand in (0.0, 0.5, 0.999):
        got = k8s_client.retry_delay(status, retry_after, attempt, retries, read, rand=lambda r=rand: r)
        if expected is None:
            assert got is None
        else:
            assert expected[0] <= got <= expected[1]


def test_issue10_h9_retry_after_seconds_or_http_date():
    now = datetime.datetime(2026, 12, 1, 22, 0, 0, tzinfo=datetime.timezone.utc)
    assert k8s_client.parse_retry_after('5') == 5.0
    assert k8s_client.parse_retry_after('Tue, 01 Dec 2026 22:00:30 GMT', now=now) == 30.0
    assert k8s_client.parse_retry_after('Tue, 01 Dec 2026 21:00:00 GMT', now=now) == 0.0
    assert k8s_client.parse_retry_after('soon') is None
    assert k8s_client.parse_retry_after('\uff15') is None
    assert k8s_client.parse_retry_after(None) is None


@pytest.mark.parametrize('params,word', [
    ({'request_timeout': 0}, 'request_timeout must be'),
    ({'request_timeout': -1.0}, 'request_timeout must be'),
    ({'request_timeout': 99999}, 'request_timeout must be'),
    ({'request_timeout': True}, 'request_timeout must be'),
    ({'request_retries': -1}, 'request_retries must be'),
    ({'request_retries': 11}, 'request_retries must be'),
])
def test_issue10_h9_bad_request_policy_is_refused(params, word):
    with pytest.raises(k8s_client.K8sError, match=word):
        k8s_client.request_policy(params)


def test_issue10_h9_request_options_are_in_the_shared_argument_spec():
    spec = k8s_client.AUTH_ARG_SPEC
    assert spec['request_timeout'] == {'type': 'float', 'default': 30.0}
    assert spec['request_retries'] == {'type': 'int', 'default': 3}
    assert k8s_client.request_policy({'request_timeout': None, 'request_retries': None}) == k8s_client.DEFAULT_POLICY


@pytest.fixture
def hung_server():
    """A TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(8)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % server.getsockname()[1], accepted
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    server.close()


def test_issue10_h9_hung_api_server_fails_cleanly_within_the_timeout(hung_server):
    url, accepted = hung_server
    cluster = k8s_client.Cluster({'host': url, 'api_key': 'x', 'request_timeout': 1, 'request_retries': 3})
    started = time.monotonic()
    with pytest.raises(k8s_client.K8sError,
                       match=r'reading ConfigMap kube-system/kube-flannel-cfg: no answer from the Kubernetes API within request_timeout=1.0s'):
        cluster.get('ConfigMap', 'kube-system', 'kube-flannel-cfg')
    elapsed = time.monotonic() - started
    assert elapsed < 2.5, 'took %.1fs for a 1s timeout (hidden retries?)' % elapsed
    assert len(accepted) == 1, 'the request was sent %d times' % len(accepted)


def test_an_answer_outside_2xx_is_an_error_with_its_status_and_only_404_reads_as_absent(sleeps):
    api = FakeApi([404])
    assert read_cm(api) is None
    api = FakeApi([409])
    with pytest.raises(k8s_client.K8sError, match=r'replacing ConfigMap ns/x failed: HTTP 409') as info:
        replace_cm(api)
    assert info.value.status == 409 and len(api.calls) == 1
    api = FakeApi([403])
    with pytest.raises(k8s_client.K8sError, match='HTTP 403') as info:
        read_cm(api)
    assert info.value.status == 403 and sleeps == []


def test_paths_encode_names_and_know_every_kind():
    assert k8s_client.resource_path('Pod', 'kube-system', 'a/b', 'eviction') == '/api/v1/namespaces/kube-system/pods/a%2Fb/eviction'
    assert k8s_client.resource_path('Pod') == '/api/v1/pods'
    assert k8s_client.resource_path('Node', 'ignored', 'n1') == '/api/v1/nodes/n1'
    assert k8s_client.resource_path('DaemonSet', 'kube-system') == '/apis/apps/v1/namespaces/kube-system/daemonsets'
    assert k8s_client.resource_path('Lease', 'netmedic', 'l') == '/apis/coordination.k8s.io/v1/namespaces/netmedic/leases/l'
    assert k8s_client.resource_path('NetworkPolicy') == '/apis/networking.k8s.io/v1/networkpolicies'
    with pytest.raises(k8s_client.K8sError, match='no API path for Secret'):
        k8s_client.resource_path('Secret', 'ns', 'x')


def test_writes_are_limited_to_the_edit_service_kinds():
    api = FakeApi([])
    with pytest.raises(k8s_client.K8sError, match='cannot write a Secret'):
        cluster_of(api).replace({'kind': 'Secret', 'metadata': {'name': 'x', 'namespace': 'ns'}})
    assert api.calls == []


def test_a_list_follows_continue_tokens_and_sends_selectors_as_query():
    api = FakeApi([{'items': [1, 2], 'metadata': {'continue': 't1'}}, {'items': [3], 'metadata': {}}])
    got = k8s_client.list_objects(cluster_of(api), 'Pod', namespace='kube-system', label_selector='k8s-app=kube-proxy',
                                  field_selector='spec.nodeName=n1', page=2)
    assert got == [1, 2, 3]
    assert api.calls[0]['url'] == '/api/v1/namespaces/kube-system/pods'
    assert api.calls[0]['query'] == [('limit', 2), ('labelSelector', 'k8s-app=kube-proxy'), ('fieldSelector', 'spec.nodeName=n1')]
    assert api.calls[1]['query'][-1] == ('continue', 't1')


def test_a_list_answer_without_items_is_an_error_never_an_empty_list():
    with pytest.raises(k8s_client.K8sError, match='the answer has no items list'):
        k8s_client.list_objects(cluster_of(FakeApi([{'kind': 'Status'}])), 'Node')


def test_merge_patch_and_dry_run_reach_the_request():
    api = FakeApi([{}])
    cluster_of(api).patch('Node', None, 'n1', {'spec': {'unschedulable': True}}, dry_run=True)
    call = api.calls[0]
    assert (call['method'], call['url'], call['query']) == ('PATCH', '/api/v1/nodes/n1', [('dryRun', 'All')])
    assert call['headers']['Content-Type'] == 'application/merge-patch+json'
    assert call['body'] == {'spec': {'unschedulable': True}}
