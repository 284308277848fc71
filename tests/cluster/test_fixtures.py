"""The suite's own fixtures on both servers: a named context reaches every runner, and every read carries a timeout.

A review found ``test_cluster_lock``'s check-mode run dropping ``NETMEDIC_TEST_CONTEXT`` (its runner passed only the
kubeconfig path): against a kubeconfig whose current context is another cluster, that run would have gone there.
Here the kubeconfig's current context is a dead server and the test's context the real one: every runner (the
``playbook`` fixture, ``test_workflows.run_tasks``, ``module_tasks``) must reach the right server.
"""

from __future__ import annotations

import copy

import pytest
import yaml
from kubernetes import config as k8s_config
from kubernetes.dynamic.exceptions import ConflictError

from tests.cluster.conftest import REQUEST_TIMEOUT, Cluster, Timed
from tests.cluster.test_workflows import run_tasks

pytestmark = pytest.mark.double_strict("the suite's own fixtures, which tests/lab's runners share: they must work on both servers")

DEAD = 'https://127.0.0.1:9'          # the discard port: nothing listens


def _by_name(entries, name):
    return next(e for e in entries if e['name'] == name)


@pytest.fixture
def other_context(writable, tmp_path):
    """``writable`` seen through a kubeconfig whose current context is a dead server; the test names the live one."""
    config = yaml.safe_load(writable.kubeconfig.read_text())
    live_name = writable.context or config['current-context']
    live = _by_name(config['contexts'], live_name)
    cluster_name = live['context']['cluster']
    dead_cluster = copy.deepcopy(_by_name(config['clusters'], cluster_name))
    dead_cluster['name'] = 'dead'
    dead_cluster['cluster']['server'] = DEAD
    config['clusters'].append(dead_cluster)
    config['contexts'].append({'name': 'dead', 'context': dict(live['context'], cluster='dead')})
    config['current-context'] = 'dead'
    path = tmp_path / 'two-contexts.kubeconfig'
    path.write_text(yaml.safe_dump(config))
    api = k8s_config.new_client_from_config(str(path), context=live_name)
    yield Cluster(kubeconfig=path, context=live_name, is_double=writable.is_double, api=api, double=writable.double)
    api.close()


def test_named_context_reaches_every_runner(other_context, scratch, playbook, module_tasks, tmp_path):
    cluster = other_context
    task = {'name': 'lock', 'check_mode': True, 'netmedic.k8s.cluster_lock': {'family': 'fixtures', 'namespace': scratch}}
    for name, runner in (('playbook', lambda: playbook(cluster, [task])),
                         ('run_tasks', lambda: run_tasks(cluster, tmp_path, [task])),
                         ('module_tasks', lambda: module_tasks(cluster, [task]))):
        rc, results, output = runner()
        assert rc == 0 and results['lock']['lock']['action'] == 'created', (name, output[-3000:])
    assert cluster.items('Lease', scratch) == []                          # check mode: nothing written


def test_every_generated_api_call_carries_the_timeout():
    calls = []

    class Api:
        def read_namespace(self, name, **kwargs):
            calls.append(kwargs)

    timed = Timed(Api())
    timed.read_namespace('x')
    timed.read_namespace('x', _request_timeout=3)
    assert calls == [{'_request_timeout': REQUEST_TIMEOUT}, {'_request_timeout': 3}]


def test_edit_retries_when_a_controller_wrote_in_between(writable, scratch):
    """The stop CI of e69992e failed twice in test_terway_config on the real server: the test read a DaemonSet it had
    just created, the DaemonSet controller wrote its status, and the test's PUT got 409 Conflict. A plain read-modify-
    write loses that race on both servers; ``Cluster.edit`` reads again and retries."""
    cluster = writable
    cluster.create({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'race'}, 'data': {'a': '1'}}, scratch)

    def other_writer(key):
        obj = cluster.get('ConfigMap', scratch, 'race')
        obj['data'][key] = 'other'
        cluster.replace(obj)

    stale = cluster.get('ConfigMap', scratch, 'race')
    other_writer('first')
    stale['data']['b'] = 'stale'
    with pytest.raises(ConflictError, match='409'):
        cluster.replace(stale)

    calls = []

    def change(obj):
        calls.append(obj['metadata']['resourceVersion'])
        if len(calls) == 1:
            other_writer('second')             # lands between this read and the PUT
        obj['data']['b'] = 'mine'

    stored = cluster.edit('ConfigMap', scratch, 'race', change)
    assert len(calls) == 2 and calls[0] != calls[1], calls
    assert stored['data'] == {'a': '1', 'first': 'other', 'second': 'other', 'b': 'mine'}
    assert cluster.get('ConfigMap', scratch, 'race')['data'] == stored['data']

    # A writer that always wins (a new value each time: an update that changes nothing moves no resourceVersion):
    # the last attempt's 409 is raised, nothing of ours is stored.
    def always_overtaken(obj):
        other_writer('always-%d' % len(calls))
        calls.append(obj['metadata']['resourceVersion'])
        obj['data']['c'] = 'never'
    with pytest.raises(ConflictError, match='409'):
        cluster.edit('ConfigMap', scratch, 'race', always_overtaken, attempts=2)
    assert len(calls) == 4, calls
    assert 'c' not in cluster.get('ConfigMap', scratch, 'race')['data']
