"""netmedic.k8s.ip_masq_agent (catalog C-4) on the double and on the real kube-apiserver (issue 15).

Ported from tests/lab/test_ip_masq_agent.py (where only the cases needing the agents' logs or a forced 409 stay).
Each test works on a copy of the seed's ip-masq-agent DaemonSet (2.10.1, RollingUpdate, three pods run by the
real DaemonSet controller and nodesim, or by the double's) and its ConfigMap in a namespace of its own, and points
the module there (``namespace``): bad input refused, ``updateStrategy: OnDelete`` not reported as a rollout (and
no pod replaced), a DaemonSet the addon manager reconciles refused unless overridden. The modules run in the test
process (``module_tasks``); what is asserted is read back through the API, never taken from the module's result.
"""

from __future__ import annotations

import functools

from tests.cluster.conftest import copy_seed, daemonset_settled, ns_task

NEW_IMAGE = 'registry.lab.invalid/ip-masq-agent:v2.11.0'
DS = 'ip-masq-agent'


def seeded_agent(cluster, ns):
    """The copy of the seed's agent (DaemonSet and ConfigMap) in ``ns``, rolled out: ``(daemonset, pods)``."""
    copy_seed(cluster, ns, names=[DS])
    ds, pods = daemonset_settled(cluster, ns, DS)
    assert len(pods) == 3, pods          # one agent per simulated node
    return ds, pods


def ds(cluster, ns):
    return cluster.get('DaemonSet', ns, DS)


def agent(cluster, ns):
    return ds(cluster, ns)['spec']['template']['spec']['containers'][0]


def backups(cluster, ns):
    return cluster.items('ConfigMap', ns, label_selector='netmedic.k8s/backup-of=%s' % DS)


def pods(cluster, ns):
    return cluster.items('Pod', ns, label_selector='k8s-app=%s' % DS)


task = functools.partial(ns_task, 'netmedic.k8s.ip_masq_agent')    # task(name, ns, args, **keywords)


BAD_INPUT = [
    ({'name': 'no-such-ds'}, 'DaemonSet {ns}/no-such-ds not found'),
    ({'container': 'nope', 'image': NEW_IMAGE}, "no container 'nope'"),
    ({'image': 'bad image'}, 'invalid image'),
    ({'image': 'registry.lab.invalid/ip-masq-agent:latest'}, 'cannot read the ip-masq-agent version'),
]


def test_bad_input_refused(writable, scratch, module_tasks):
    cluster, ns = writable, scratch
    original, _pods = seeded_agent(cluster, ns)
    tasks = [task('bad %d' % i, ns, args, ignore_errors=True) for i, (args, _m) in enumerate(BAD_INPUT)]
    rc, results, output = module_tasks(cluster, tasks)
    assert rc == 0, output
    for i, (_args, message) in enumerate(BAD_INPUT):
        res = results['bad %d' % i]
        assert res['failed'] is True and message.format(ns=ns) in res['msg'], (message, res)
    assert ds(cluster, ns) == original and backups(cluster, ns) == []


def test_issue10_h10_on_delete_strategy_is_not_reported_as_a_rollout(writable, scratch, module_tasks):
    """updateStrategy OnDelete: a template change replaces no pod, so the module must not claim a rollout;
    it names the DaemonSet to restart (netmedic.k8s.daemonset_restart / role verified_rollout)."""
    cluster, ns = writable, scratch
    seeded_agent(cluster, ns)
    obj = cluster.edit('DaemonSet', ns, DS, lambda d: d['spec'].update(updateStrategy={'type': 'OnDelete'}))
    _obj, pods_before = daemonset_settled(cluster, ns, DS)
    rc, results, output = module_tasks(cluster, [task('apply', ns, {'image': NEW_IMAGE})])
    assert rc == 0, output
    apply = results['apply']
    assert apply['changed'] is True and agent(cluster, ns)['image'] == NEW_IMAGE
    assert apply['rollout'] is False and apply['update_strategy'] == 'OnDelete', apply
    assert apply['restart_needed'] == ['%s/%s' % (ns, DS)], apply
    assert any('OnDelete' in w and 'daemonset_restart' in w for w in apply.get('warnings', [])), apply
    # The controller has seen the new template (it acts on a generation before it reports it observed) and replaced
    # nothing: the same pods, none Terminating, still the old image.
    after, _pods = daemonset_settled(cluster, ns, DS, updated=False)
    assert after['metadata']['generation'] > obj['metadata']['generation']
    pods_after = pods(cluster, ns)
    assert sorted(p['metadata']['uid'] for p in pods_after) == sorted(p['metadata']['uid'] for p in pods_before)
    assert not any(p['metadata'].get('deletionTimestamp') for p in pods_after), pods_after
    assert {p['spec']['containers'][0]['image'] for p in pods_after} == {'registry.lab.invalid/ip-masq-agent:v2.10.1'}


def test_issue10_c4_addon_manager_reconcile_refused_unless_overridden(writable, scratch, module_tasks):
    """Issue 10, C-4 partial: a DaemonSet the addon manager reconciles (label addonmanager.kubernetes.io/mode:
    Reconcile) gets its edit reverted within a minute; refuse before any write unless explicitly overridden."""
    cluster, ns = writable, scratch
    seeded_agent(cluster, ns)
    cluster.edit('DaemonSet', ns, DS, lambda d: d['metadata'].setdefault('labels', {}).update(
        {'addonmanager.kubernetes.io/mode': 'Reconcile'}))
    before = ds(cluster, ns)
    rc, results, output = module_tasks(cluster, [
        task('check', ns, {'image': NEW_IMAGE}, check_mode=True, ignore_errors=True),
        task('apply', ns, {'image': NEW_IMAGE}, ignore_errors=True)])
    assert rc == 0, output
    for name in ('check', 'apply'):
        res = results[name]
        assert res['failed'] is True and 'Reconcile' in res['msg'] and 'allow_addon_manager_reconcile' in res['msg'], res
        assert 'nothing was changed' in res['msg']
    assert ds(cluster, ns)['spec'] == before['spec'] and backups(cluster, ns) == []
    rc, results, output = module_tasks(cluster, [
        task('override', ns, {'image': NEW_IMAGE, 'allow_addon_manager_reconcile': True})])
    assert rc == 0, output
    assert results['override']['changed'] is True and agent(cluster, ns)['image'] == NEW_IMAGE
    assert any('Reconcile' in w for w in results['override'].get('warnings', [])), results['override']
