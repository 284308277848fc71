"""netmedic.k8s.ip_masq_agent (catalog C-4) through ansible-playbook against the API double.

The seed's agent is ip-masq-agent 2.10.1 without ``--random-fully=false``; the flag is honoured
from 2.11, so the module refuses it on the seed's image unless the image is upgraded with it.
The double's generic log provider prints a container's args when it starts, so the rolled-out
pods show the flag.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

DOUBLE_ONLY = ("portable: the version gate, bad input, OnDelete and addon-manager refusals on the seed's DaemonSet; nothing the real server does "
               'differently')

COLLECTIONS = str(Path(__file__).resolve().parents[2] / 'collections')
NEW_IMAGE = 'registry.lab.invalid/ip-masq-agent:v2.11.0'


@pytest.fixture
def run(playbook):
    return lambda double, tasks: playbook(double, tasks, extra_env={'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS})


def ds(double):
    return double.store.find('daemonsets', 'kube-system', 'ip-masq-agent')


def agent(double):
    return ds(double)['spec']['template']['spec']['containers'][0]


def backups(double):
    cms, _rv = double.store.list('configmaps', 'kube-system', label_selector='netmedic.k8s/backup-of=ip-masq-agent')
    return cms


def task(name, args, **extra):
    entry = {'name': name, 'netmedic.k8s.ip_masq_agent': args}
    entry.update(extra)
    return entry


@pytest.mark.double_only("kubelet: the rolled-out agents' logs must show the new flag (the double's generic log provider); simulated nodes serve no"
                         ' logs')
def test_old_agent_refused_check_mode_apply_idempotent(double, run):
    original = ds(double)
    rc, results, output = run(double, yaml.safe_dump([
        task('old', {}, ignore_errors=True),
        task('check', {'image': NEW_IMAGE}, check_mode=True, diff=True),
    ]))
    assert rc == 0, output
    assert results['old']['failed'] is True and 'older than 2.11' in results['old']['msg']
    check = results['check']
    assert check['changed'] is True and check['rollout'] is True
    assert [c['path'] for c in check['daemonset']['changes']] == ['image', 'args']
    assert '  - --random-fully=false\n' in check['diff'][0]['after'] and '--random-fully' not in check['diff'][0]['before']
    assert ds(double) == original and backups(double) == [], 'a refused or check-mode run wrote something'

    rc, results, output = run(double, yaml.safe_dump([
        task('apply', {'image': NEW_IMAGE}),
        task('again', {'image': NEW_IMAGE}),
        task('again without image', {}),
    ]))
    assert rc == 0, output
    assert results['apply']['changed'] is True
    assert results['again']['changed'] is False and results['again without image']['changed'] is False
    assert agent(double)['args'] == ['--masq-chain=IP-MASQ', '--nomasq-all-reserved-ranges', '--random-fully=false']
    assert agent(double)['image'] == NEW_IMAGE
    [backup] = backups(double)
    saved = json.loads(backup['data']['daemonset.json'])
    assert saved['spec']['template']['spec']['containers'][0]['args'] == original['spec']['template']['spec']['containers'][0]['args']
    assert results['apply']['backups'][0]['configmap'] == 'kube-system/%s' % backup['metadata']['name']
    assert results['apply']['backups'][0]['args'] == ['--masq-chain=IP-MASQ', '--nomasq-all-reserved-ranges']

    # The DaemonSet controller rolls the new template out; the new agents log the flag.
    def rolled(store):
        pods, _rv = store.list('pods', 'kube-system', label_selector='k8s-app=ip-masq-agent')
        ready = [p for p in pods if p['spec']['containers'][0]['image'] == NEW_IMAGE and p['status'].get('phase') == 'Running']
        return ready if len(ready) == 3 and len(pods) == 3 else None

    pods = double.wait_for(rolled, timeout=20)
    for pod in pods:
        assert '--random-fully=false' in double.store.logs[pod['metadata']['uid']]['ip-masq-agent']


@pytest.mark.double_only("fault: a concurrent write landed between the module's read and its write (the double's store.update wrapped), a "
                         'deterministic 409; a real server gives one only under a real race')
def test_allow_old_agent_and_conflict_retry(double, module_tasks):
    store = double.store
    original_update = store.update
    fired = []

    def update(rt, namespace, name, obj, **kwargs):
        if not fired and not kwargs.get('dry_run') and name == 'ip-masq-agent' and obj.get('kind') == 'DaemonSet':
            fresh = store.get('daemonsets', namespace, name)
            fresh['metadata'].setdefault('labels', {})['touched-by'] = 'someone-else'
            original_update('daemonsets', namespace, name, fresh)
            fired.append(True)
        return original_update(rt, namespace, name, obj, **kwargs)

    store.update = update
    rc, results, output = module_tasks(double, yaml.safe_dump([task('apply', {'allow_old_agent': True})]))
    assert rc == 0, output
    assert fired and results['apply']['changed'] is True
    assert agent(double)['args'][-1] == '--random-fully=false'
    assert ds(double)['metadata']['labels']['touched-by'] == 'someone-else', 'the concurrent write was lost'


BAD_INPUT = [
    ({'name': 'no-such-ds'}, 'DaemonSet kube-system/no-such-ds not found'),
    ({'container': 'nope', 'image': NEW_IMAGE}, "no container 'nope'"),
    ({'image': 'bad image'}, 'invalid image'),
    ({'image': 'registry.lab.invalid/ip-masq-agent:latest'}, 'cannot read the ip-masq-agent version'),
]


def test_bad_input_refused(double, module_tasks):
    original = ds(double)
    tasks = yaml.safe_dump([task('bad %d' % i, args, ignore_errors=True) for i, (args, _m) in enumerate(BAD_INPUT)])
    rc, results, output = module_tasks(double, tasks)
    assert rc == 0, output
    for i, (_args, message) in enumerate(BAD_INPUT):
        res = results['bad %d' % i]
        assert res['failed'] is True and message in res['msg'], (message, res)
    assert ds(double) == original and backups(double) == []


def test_issue10_h10_on_delete_strategy_is_not_reported_as_a_rollout(double, module_tasks):
    """updateStrategy OnDelete: a template change replaces no pod, so the module must not claim a rollout;
    it names the DaemonSet to restart (netmedic.k8s.daemonset_restart / role verified_rollout)."""
    obj = ds(double)
    obj['spec']['updateStrategy'] = {'type': 'OnDelete'}
    double.store.put('daemonsets', obj)
    pods_before, _rv = double.store.list('pods', 'kube-system', label_selector='k8s-app=ip-masq-agent')
    rc, results, output = module_tasks(double, yaml.safe_dump([task('apply', {'image': NEW_IMAGE})]))
    assert rc == 0, output
    apply = results['apply']
    assert apply['changed'] is True and agent(double)['image'] == NEW_IMAGE
    assert apply['rollout'] is False and apply['update_strategy'] == 'OnDelete', apply
    assert apply['restart_needed'] == ['kube-system/ip-masq-agent'], apply
    assert any('OnDelete' in w and 'daemonset_restart' in w for w in apply.get('warnings', [])), apply
    pods_after, _rv = double.store.list('pods', 'kube-system', label_selector='k8s-app=ip-masq-agent')
    assert sorted(p['metadata']['uid'] for p in pods_after) == sorted(p['metadata']['uid'] for p in pods_before)


def test_issue10_c4_addon_manager_reconcile_refused_unless_overridden(double, module_tasks):
    """Issue 10, C-4 partial: a DaemonSet the addon manager reconciles (label addonmanager.kubernetes.io/mode:
    Reconcile) gets its edit reverted within a minute; refuse before any write unless explicitly overridden."""
    obj = ds(double)
    obj['metadata'].setdefault('labels', {})['addonmanager.kubernetes.io/mode'] = 'Reconcile'
    double.store.put('daemonsets', obj)
    before = ds(double)
    rc, results, output = module_tasks(double, yaml.safe_dump([
        task('check', {'image': NEW_IMAGE}, check_mode=True, ignore_errors=True),
        task('apply', {'image': NEW_IMAGE}, ignore_errors=True)]))
    assert rc == 0, output
    for name in ('check', 'apply'):
        res = results[name]
        assert res['failed'] is True and 'Reconcile' in res['msg'] and 'allow_addon_manager_reconcile' in res['msg'], res
        assert 'nothing was changed' in res['msg']
    assert ds(double)['spec'] == before['spec'] and backups(double) == []
    rc, results, output = module_tasks(double, yaml.safe_dump([
        task('override', {'image': NEW_IMAGE, 'allow_addon_manager_reconcile': True})]))
    assert rc == 0, output
    assert results['override']['changed'] is True and agent(double)['image'] == NEW_IMAGE
    assert any('Reconcile' in w for w in results['override'].get('warnings', [])), results['override']
