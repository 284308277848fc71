"""netmedic.k8s.cluster_lock on the module lifecycle (issue 13): read once, plan without writing, write with
compare-and-swap, read back.

The module runs in-process on a fake Lease API (``lock.LeaseApi`` replaced): what each step sends is recorded,
so a test can say which calls a run made and what a read-back that does not show this run's holder does.
The API-double suite (tests/lab/test_cluster_lock.py) runs the same module through ansible-playbook over HTTP.
"""

import copy

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import lock as ll
from ansible_collections.netmedic.k8s.plugins.modules import cluster_lock
from tests.harness import run_main

ARGS = {'family': 'node-disruption', 'holder': 'awx-job-2', 'kubeconfig': '/nonexistent/kubeconfig'}


class FakeLeases(object):
    """One Lease; ``read_back``: what every GET after the first write returns instead of the store (a liar)."""

    def __init__(self, current=None, read_back=None):
        self.current = copy.deepcopy(current)
        self.calls = []
        self.read_back = read_back
        self.rv = 10

    def get(self, namespace, name):
        self.calls.append('get')
        if self.read_back is not None and any(c != 'get' for c in self.calls):
            return copy.deepcopy(self.read_back)
        return copy.deepcopy(self.current)

    def create(self, namespace, body):
        self.calls.append('create')
        self.rv += 1
        self.current = copy.deepcopy(body)
        self.current['metadata']['resourceVersion'] = str(self.rv)
        return copy.deepcopy(self.current)

    def replace(self, namespace, name, body):
        self.calls.append('replace')
        return self.create(namespace, body)

    def delete(self, namespace, name, resource_version):
        self.calls.append('delete')
        self.current = None


def _run(monkeypatch, api, check_mode=False, diff=False, **args):
    monkeypatch.setattr(ll, 'LeaseApi', lambda cluster, timeout: api)
    monkeypatch.setattr(k8s_client, 'Cluster', lambda params: object())
    return run_main(cluster_lock, dict(ARGS, **args), check_mode=check_mode, diff=diff)


def test_issue13_acquire_reads_once_writes_once_and_reads_back(monkeypatch):
    api = FakeLeases()
    code, result, raw = _run(monkeypatch, api)
    assert code == 0, raw
    assert api.calls == ['get', 'create', 'get']
    assert result['changed'] is True and result['lock']['action'] == 'created' and result['lock']['held'] is True
    assert result['after']['holderIdentity'] == 'awx-job-2' and result['before'] == {}


def test_issue13_check_mode_reads_once_and_writes_nothing(monkeypatch):
    api = FakeLeases()
    code, result, raw = _run(monkeypatch, api, check_mode=True)
    assert code == 0, raw
    assert api.calls == ['get'] and api.current is None
    assert result['changed'] is True and result['lock']['action'] == 'created'


def test_issue13_a_read_back_that_names_another_holder_fails(monkeypatch):
    other = {'metadata': {'name': 'netmedic-node-disruption', 'resourceVersion': '99'},
             'spec': {'holderIdentity': 'awx-job-9', 'leaseDurationSeconds': 3600}}
    api = FakeLeases(read_back=other)
    code, result, raw = _run(monkeypatch, api)
    assert code == 1, raw
    assert api.calls == ['get', 'create', 'get']
    assert "reading it back shows holder 'awx-job-9'" in result['msg'] and result['changed'] is True


def test_issue13_release_deletes_and_the_read_back_shows_it_free(monkeypatch):
    api = FakeLeases()
    _run(monkeypatch, api)
    api.calls = []
    code, result, raw = _run(monkeypatch, api, state='released')
    assert code == 0, raw
    assert api.calls == ['get', 'delete', 'get'] and api.current is None
    assert result['changed'] is True and result['lock']['action'] == 'released'


def test_issue13_an_api_error_on_the_write_is_a_failure_that_changed_nothing(monkeypatch):
    class Forbidden(FakeLeases):
        def create(self, namespace, body):
            self.calls.append('create')
            raise k8s_client.K8sError('creating Lease kube-system/netmedic-node-disruption: 403 Forbidden', status=403)

    api = Forbidden()
    code, result, raw = _run(monkeypatch, api, diff=True)
    assert code == 1, raw
    assert result['changed'] is False and '403 Forbidden' in result['msg'] and 'nothing was changed' in result['msg']
    assert 'Traceback' not in raw
    # review of fcc3394: the failure returned the plan's lock (action created, held true) and its after/diff
    assert 'lock' not in result and result['after'] == result['before'] == {} and result.get('diff', []) == []


def test_issue13_a_takeover_lost_to_a_rival_warns_of_no_takeover(monkeypatch):
    expired = {'metadata': {'name': 'netmedic-node-disruption', 'resourceVersion': '5'},
               'spec': {'holderIdentity': 'awx-job-1', 'leaseDurationSeconds': 60, 'acquireTime': '2026-01-01T00:00:00.000000Z',
                        'renewTime': '2026-01-01T00:00:00.000000Z'}}

    class Rival(FakeLeases):
        def replace(self, namespace, name, body):
            self.calls.append('replace')
            if self.current['spec']['holderIdentity'] == 'awx-job-1':   # the rival's takeover lands first
                self.current = copy.deepcopy(self.current)
                self.current['spec'].update(holderIdentity='awx-job-3', renewTime=ll.format_time(ll.datetime.datetime.now(ll.UTC)),
                                            leaseDurationSeconds=3600)
                self.current['metadata']['resourceVersion'] = '6'
                raise k8s_client.K8sError('replacing Lease: 409 Conflict', status=409)
            return self.create(namespace, body)

    api = Rival(expired)
    code, result, raw = _run(monkeypatch, api)
    assert code == 1, raw
    assert result['lock']['action'] == 'refused' and "held by 'awx-job-3'" in result['msg']
    assert not any('taken over' in w for w in result.get('warnings', [])), result.get('warnings')
    assert api.current['spec']['holderIdentity'] == 'awx-job-3'


def test_issue13_a_takeover_that_lands_warns_once(monkeypatch):
    expired = {'metadata': {'name': 'netmedic-node-disruption', 'resourceVersion': '5'},
               'spec': {'holderIdentity': 'awx-job-1', 'leaseDurationSeconds': 60, 'acquireTime': '2026-01-01T00:00:00.000000Z',
                        'renewTime': '2026-01-01T00:00:00.000000Z'}}
    api = FakeLeases(expired)
    code, result, raw = _run(monkeypatch, api)
    assert code == 0, raw
    assert result['lock']['action'] == 'taken_over' and result['changed'] is True
    assert [w for w in result['warnings'] if 'taken over' in w] == [result['warnings'][0]] and len(result['warnings']) == 1
