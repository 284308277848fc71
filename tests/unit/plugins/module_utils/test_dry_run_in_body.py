"""A dry run travels in the request body, not only in the query (issue 15, found on a real kube-apiserver).

With a DeleteOptions body, kube-apiserver v1.37.2 reads the options from the body alone and ignores
``?dryRun=All``: ``daemonset_restart`` in check mode deleted every planned pod on the real control plane
(reproduced by ``tests/cluster/test_daemonset_restart.py::test_check_mode_plans_and_deletes_nothing``
after the API double was corrected to behave the same way).
"""

from __future__ import annotations

import json

from ansible_collections.netmedic.k8s.plugins.module_utils import drain as du
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client


class Api(object):
    """Stands in for ``kubernetes.client.ApiClient``: records each request, answers 200."""

    def __init__(self):
        self.calls = []

    def param_serialize(self, method, resource_path, query_params=None, header_params=None, body=None, auth_settings=None):
        return method, resource_path, header_params, body, query_params

    def call_api(self, method, url, headers, body, query, _request_timeout=None):
        self.calls.append((method, url, body, query))
        return type('Response', (), {'status': 200, 'data': b'{"kind": "Status", "status": "Success"}', 'read': lambda self: self.data})()


def test_issue15_check_mode_pod_delete_carries_dry_run_in_the_body():
    api = Api()
    k8s_client.delete_pod(k8s_client.Cluster({}, api=api), 'kube-system', 'kube-proxy-abc', uid='u-1', dry_run=True)
    (method, url, body, query), = api.calls
    assert (method, url) == ('DELETE', '/api/v1/namespaces/kube-system/pods/kube-proxy-abc')
    assert body['dryRun'] == ['All'] and query == [('dryRun', 'All')]
    assert body['preconditions'] == {'uid': 'u-1'}


def test_real_pod_delete_has_no_dry_run_anywhere():
    api = Api()
    k8s_client.delete_pod(k8s_client.Cluster({}, api=api), 'kube-system', 'kube-proxy-abc', uid='u-1')
    (_method, _url, body, query), = api.calls
    assert 'dryRun' not in body and not query


def test_issue15_check_mode_eviction_carries_dry_run_in_delete_options():
    pod = {'metadata': {'name': 'web-1', 'namespace': 'default', 'uid': 'u-2'}}
    body = du.eviction_body(pod, grace_period=30, dry_run=True)
    assert body['deleteOptions'] == {'preconditions': {'uid': 'u-2'}, 'gracePeriodSeconds': 30, 'dryRun': ['All']}
    assert 'dryRun' not in json.dumps(du.eviction_body(pod, grace_period=30))
