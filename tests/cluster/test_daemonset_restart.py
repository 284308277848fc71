"""netmedic.k8s.daemonset_restart (catalog C-7) on the double and on the real kube-apiserver (issue 15).

Ported from tests/lab/test_daemonset_restart.py (issue 15 item 4; 5 of its 10 cases): check mode plans node by node
and deletes nothing; bad input is refused before any deletion; a node label selector with batches restarts exactly the
matching nodes; an unreadable kube-proxy configuration refuses the default preset; with ``patterns_preset: none`` no
log is read, so a two-container pod (Terway's) restarts. The cases that verify a restart by kube-proxy's log line, or
need a NotReady Node or a crash-looping agent, stay in tests/lab (kind ``kubelet``: lab/k8s/nodesim.py serves no pod
logs and starts every pod Running and Ready).

Each test works on a copy of the seed's DaemonSet (``kube-proxy-worker`` with its ConfigMap, or ``terway-eniip``) in a
namespace of its own (``scratch``, the ServiceAccounts its pods run as made there: ``copy_accounts``), rolled out by the
real DaemonSet controller and nodesim (or the double's) before the run, and points the module there (``namespace``):
kube-system stays as the seed made it. The node labels the selector test adds are taken off again. On the real server a
deleted pod stays Terminating (the same UID, a ``deletionTimestamp``) until nodesim ends it, so "nothing was deleted"
reads each pod's UID and deletionTimestamp, and the waits are the real controllers' seconds (the module's ``timeout``
is only a bound). The modules run in the test process (``module_tasks``; check mode through ``ansible-playbook``,
``playbook``); what is asserted is read back through the API, never taken from the module's result alone.
"""

from __future__ import annotations

import time

import pytest
import yaml

from tests.cluster.conftest import copy_accounts, copy_seed, daemonset_settled

DS = 'kube-proxy-worker'
NODES = ['lab-node-1', 'lab-node-2', 'lab-node-3']


def fast(cluster):
    """The module's poll interval and timeout: the double's controllers take ticks, the real ones (and nodesim ending a
    graceful deletion) seconds; neither is asserted on."""
    return {'poll_interval': 0.05, 'timeout': 20} if cluster.is_double else {'poll_interval': 0.5, 'timeout': 120}


def seeded_ds(cluster, ns, name=DS, configmap=DS):
    """A copy of the seed's DaemonSet ``name`` and the ConfigMap it mounts in ``ns``, one Ready pod per node:
    ``{node: uid}``."""
    copy_accounts(cluster, ns)
    copy_seed(cluster, ns, names=[name, configmap])
    _ds, pods = daemonset_settled(cluster, ns, name)
    assert sorted(p['spec']['nodeName'] for p in pods) == NODES, pods
    return {p['spec']['nodeName']: p['metadata']['uid'] for p in pods}


def proxy_pods(cluster, ns, name=DS, label='k8s-app'):
    """``{node: [pod, ...]}`` of the DaemonSet's pods (a Terminating one beside its replacement, on the real server)."""
    found = {}
    for pod in cluster.items('Pod', ns, label_selector='%s=%s' % (label, name)):
        found.setdefault(pod['spec']['nodeName'], []).append(pod)
    return found


def uids(cluster, ns, name=DS, label='k8s-app'):
    """``{node: [(uid, deletionTimestamp), ...]}``: a deletion shows at once, as the pod's absence or as Terminating."""
    return {node: sorted((p['metadata']['uid'], p['metadata'].get('deletionTimestamp') or '') for p in pods)
            for node, pods in proxy_pods(cluster, ns, name, label).items()}


def untouched(before):
    """``uids`` of pods none of which was deleted: the same one per node, not Terminating."""
    return {node: [(uid, '')] for node, uid in before.items()}


def live(cluster, ns, name=DS, label='k8s-app'):
    """``{node: uid}`` of the pods not Terminating (one per node once a restart is over)."""
    found = {}
    for node, pods in proxy_pods(cluster, ns, name, label).items():
        alive = [p['metadata']['uid'] for p in pods if not p['metadata'].get('deletionTimestamp')]
        assert len(alive) == 1, (node, pods)
        found[node] = alive[0]
    return found


def switch_scheduler(cluster, ns, scheduler='lc'):
    cm = cluster.get('ConfigMap', ns, DS)
    cm['data']['config.conf'] = cm['data']['config.conf'].replace('scheduler: rr', 'scheduler: %s' % scheduler)
    cluster.replace(cm)


def task(name, ns, args, **extra):
    entry = {'name': name, 'netmedic.k8s.daemonset_restart': dict({'name': DS, 'namespace': ns}, **args)}
    entry.update(extra)
    return entry


@pytest.fixture
def labelled_nodes(writable):
    """Nodes the test labels ``pool``: no Node has that label before, and none after (the test's are taken off)."""
    assert not [n['metadata']['name'] for n in writable.items('Node') if 'pool' in (n['metadata'].get('labels') or {})]
    yield writable
    for node in writable.items('Node'):
        if 'pool' in (node['metadata'].get('labels') or {}):
            writable.core.patch_node(node['metadata']['name'], {'metadata': {'labels': {'pool': None}}},
                                     _content_type='application/merge-patch+json')
    assert not [n['metadata']['name'] for n in writable.items('Node') if 'pool' in (n['metadata'].get('labels') or {})]


def test_check_mode_plans_and_deletes_nothing(writable, scratch, playbook):
    cluster, ns = writable, scratch
    before = seeded_ds(cluster, ns)
    switch_scheduler(cluster, ns)
    tasks = yaml.safe_dump([task('plan', ns, dict(fast(cluster), node_order='name'), check_mode=True, diff=True)])
    rc, results, output = playbook(cluster, tasks)
    assert rc == 0, output
    res = results['plan']
    assert res['changed'] is True
    assert res['plan'] == [['lab-node-1'], ['lab-node-2'], ['lab-node-3']]
    assert res['restarted'] == [] and res['failed_node'] is None
    assert res['remaining'] == ['lab-node-1', 'lab-node-2', 'lab-node-3']
    assert res['patterns']['preset'] == 'kube-proxy-ipvs'
    assert 'lab-node-2: %s' % proxy_pods(cluster, ns)['lab-node-2'][0]['metadata']['name'] in res['diff'][0]['before']
    time.sleep(0.3)   # a few controller ticks: a deleted pod would have been replaced by now (on the real server: Terminating)
    assert uids(cluster, ns) == untouched(before)


BAD_INPUT = [
    ({'batch_size': 0}, 'batch_size must be >= 1'),
    ({'failure_patterns': ['(unclosed']}, 'invalid regular expression'),
    ({'node_order': 'random'}, 'node_order must be the word "name"'),
    ({'nodes': ['no-such-node']}, 'no pod of DaemonSet {ns}/kube-proxy-worker on node(s): no-such-node'),
    ({'node_order': ['lab-node-9']}, 'node_order names node(s) without a pod'),
    ({'restarted_since': 'yesterday'}, 'restarted_since must be a UTC time'),
    ({'name': 'no-such-ds'}, 'DaemonSet {ns}/no-such-ds not found'),
]


def test_bad_input_is_refused_before_any_deletion(writable, scratch, module_tasks):
    cluster, ns = writable, scratch
    before = seeded_ds(cluster, ns)
    tasks = yaml.safe_dump([task('bad %d' % i, ns, dict(fast(cluster), **args), ignore_errors=True)
                            for i, (args, _m) in enumerate(BAD_INPUT)])
    rc, results, output = module_tasks(cluster, tasks)
    assert rc == 0, output
    for i, (_args, message) in enumerate(BAD_INPUT):
        res = results['bad %d' % i]
        assert res['failed'] is True and res['changed'] is False, res
        assert message.format(ns=ns) in res['msg'], (message, res['msg'])
        assert res['restarted'] == []
    time.sleep(0.2)
    assert uids(cluster, ns) == untouched(before)


def test_selector_and_batches_restart_every_matching_node(labelled_nodes, scratch, module_tasks):
    cluster, ns = labelled_nodes, scratch
    before = seeded_ds(cluster, ns)
    for name in ('lab-node-2', 'lab-node-3'):
        cluster.core.patch_node(name, {'metadata': {'labels': {'pool': 'blue'}}}, _content_type='application/merge-patch+json')
    tasks = yaml.safe_dump([task('blue', ns, dict(fast(cluster), selector='pool=blue', batch_size=2, patterns_preset='none'))])
    rc, results, output = module_tasks(cluster, tasks)
    assert rc == 0, output
    res = results['blue']
    assert res['plan'] == [['lab-node-2', 'lab-node-3']]
    assert sorted(r['node'] for r in res['restarted']) == ['lab-node-2', 'lab-node-3']
    assert uids(cluster, ns)['lab-node-1'] == untouched(before)['lab-node-1']
    after = live(cluster, ns)
    assert after['lab-node-2'] != before['lab-node-2'] and after['lab-node-3'] != before['lab-node-3']


def test_issue9_f6_auto_preset_refuses_when_the_mode_cannot_be_read(writable, scratch, module_tasks):
    cluster, ns = writable, scratch
    before = seeded_ds(cluster, ns)
    cm = cluster.get('ConfigMap', ns, DS)
    cm['data']['config.conf'] = 'mode: [unclosed\n'
    cluster.replace(cm)
    _rc, results, _output = module_tasks(cluster, yaml.safe_dump([task('restart', ns, fast(cluster), ignore_errors=True)]))
    res = results['restart']
    assert res['failed'] is True and res['changed'] is False, res
    assert "cannot read kube-proxy's proxy mode" in res['msg'] and 'nothing was restarted' in res['msg']
    time.sleep(0.2)
    assert uids(cluster, ns) == untouched(before)


def test_preset_none_reads_no_log_so_a_multi_container_pod_restarts(writable, scratch, module_tasks):
    """Found by the RBAC run of terway_config.yml: with no pattern to look for, the module still read each new pod's
    log without a container, which the API refuses for Terway's two-container pods (terway, policy)."""
    cluster, ns = writable, scratch
    before = seeded_ds(cluster, ns, 'terway-eniip', 'eni-config')
    pods = cluster.items('Pod', ns, label_selector='app=terway-eniip')
    assert pods and len(pods[0]['spec']['containers']) > 1
    tasks = yaml.safe_dump([{'name': 'terway', 'netmedic.k8s.daemonset_restart': dict(
        fast(cluster), name='terway-eniip', namespace=ns, nodes=['lab-node-1'], patterns_preset='none')}])
    rc, results, output = module_tasks(cluster, tasks)
    assert rc == 0, output
    assert [(r['node'], r['matched']) for r in results['terway']['restarted']] == [('lab-node-1', None)]
    assert live(cluster, ns, 'terway-eniip', label='app')['lab-node-1'] != before['lab-node-1']
