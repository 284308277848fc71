"""A dry run travels in the request body, not only in the query (issue 15, found on a real kube-apiserver).

With a DeleteOptions body, kube-apiserver v1.37.2 reads the options from the body alone and ignores
``?dryRun=All``: ``daemonset_restart`` in check mode deleted every planned pod on the real control plane
(reproduced by ``tests/lab/test_daemonset_restart.py::test_check_mode_plans_and_deletes_nothing``
after the API double was corrected to behave the same way).
"""

from __future__ import annotations

import json

from ansible_collections.netmedic.k8s.plugins.module_utils import drain as du
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client


class Answer(object):
    data = b'{"kind": "Status", "status": "Success"}'


class Core(object):
    def __init__(self):
        self.calls = []

    def delete_namespaced_pod(self, name, namespace, **kwargs):
        self.calls.append((name, namespace, kwargs))
        return Answer()


class Cluster(object):
    def __init__(self):
        self.core = Core()


def test_issue15_check_mode_pod_delete_carries_dry_run_in_the_body():
    cluster = Cluster()
    k8s_client.delete_pod(cluster, 'kube-system', 'kube-proxy-abc', uid='u-1', dry_run=True)
    (_name, _ns, kwargs), = cluster.core.calls
    assert kwargs['body']['dryRun'] == ['All']
    assert kwargs['body']['preconditions'] == {'uid': 'u-1'}


def test_real_pod_delete_has_no_dry_run_anywhere():
    cluster = Cluster()
    k8s_client.delete_pod(cluster, 'kube-system', 'kube-proxy-abc', uid='u-1')
    (_name, _ns, kwargs), = cluster.core.calls
    assert 'dryRun' not in kwargs['body'] and 'dry_run' not in kwargs


def test_issue15_check_mode_eviction_carries_dry_run_in_delete_options():
    pod = {'metadata': {'name': 'web-1', 'namespace': 'default', 'uid': 'u-2'}}
    body = du.eviction_body(pod, grace_period=30, dry_run=True)
    assert body['deleteOptions'] == {'preconditions': {'uid': 'u-2'}, 'gracePeriodSeconds': 30, 'dryRun': ['All']}
    assert 'dryRun' not in json.dumps(du.eviction_body(pod, grace_period=30))
