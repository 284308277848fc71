"""netmedic.k8s.terway_config (catalog C-6) through ansible-playbook against the API double.

The double's Terway ``policy`` container logs ``enable-in-cluster-loadbalance=true|false`` from
``eni-config`` when the pod starts, so the change is verified end to end with daemonset_restart.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

DOUBLE_ONLY = ('portable: check, apply, create, bad input, the version gate, a broken eni_conf (a real server stores any ConfigMap data) on the '
               "seed's eni-config")

COLLECTIONS = str(Path(__file__).resolve().parents[2] / 'collections')


@pytest.fixture
def run(playbook):
    return lambda double, tasks: playbook(double, tasks, extra_env={'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS})


def stored(double, name='eni-config'):
    return double.store.find('configmaps', 'kube-system', name)


def backups(double):
    cms, _rv = double.store.list('configmaps', 'kube-system', label_selector='netmedic.k8s/backup-of')
    return cms


def task(name, args, **extra):
    entry = {'name': name, 'netmedic.k8s.terway_config': args}
    entry.update(extra)
    return entry


def test_check_mode_writes_nothing(double, run):
    original = stored(double)
    rc, results, output = run(double, yaml.safe_dump([
        task('check', {'in_cluster_loadbalance': True, 'disable_network_policy': True}, check_mode=True, diff=True)]))
    assert rc == 0, output
    check = results['check']
    assert check['changed'] is True
    assert {c['path'] for c in check['configmap']['changes']} == {'in_cluster_loadbalance', 'disable_network_policy'}
    assert check['restart_needed'] == ['terway-eniip']
    assert check['verify'] == {'container': 'policy', 'success_patterns': ['enable-in-cluster-loadbalance=true']}
    assert len(check['diff']) == 2
    assert stored(double) == original and backups(double) == []


@pytest.mark.double_only("kubelet: the restart is verified by Terway's policy container log line (the double's log provider); simulated nodes serve"
                         ' no logs')
def test_apply_idempotent_then_verified_by_the_policy_log(double, run):
    original = stored(double)
    rc, results, output = run(double, yaml.safe_dump([
        task('apply', {'in_cluster_loadbalance': True}),
        task('again', {'in_cluster_loadbalance': True}),
        {'name': 'restart', 'netmedic.k8s.daemonset_restart': {
            'name': 'terway-eniip', 'poll_interval': 0.05, 'timeout': 20,
            'container': '{{ apply.verify.container }}', 'success_patterns': '{{ apply.verify.success_patterns }}'}},
    ]).replace("- name: apply\n", "- name: apply\n  register: apply\n"))
    assert rc == 0, output
    apply, again, restart = results['apply'], results['again'], results['restart']
    assert apply['changed'] is True and again['changed'] is False
    data = stored(double)['data']
    assert data['in_cluster_loadbalance'] == 'true'
    assert data['eni_conf'] == original['data']['eni_conf'] and data['10-terway.conf'] == original['data']['10-terway.conf']
    [backup] = backups(double)
    assert backup['data'] == original['data'] and apply['backups'][0]['configmap'].endswith(backup['metadata']['name'])
    assert [r['node'] for r in restart['restarted']] == ['lab-node-1', 'lab-node-2', 'lab-node-3']
    assert all('enable-in-cluster-loadbalance=true' in r['matched'] for r in restart['restarted'])


@pytest.mark.double_only("fault: a concurrent write landed between the module's read and its write (the double's store.update wrapped), a "
                         'deterministic 409; a real server gives one only under a real race')
def test_conflict_is_retried(double, module_tasks):
    store = double.store
    original_update = store.update
    fired = []

    def update(rt, namespace, name, obj, **kwargs):
        if not fired and not kwargs.get('dry_run') and name == 'eni-config' and obj.get('kind') == 'ConfigMap':
            fresh = store.get('configmaps', namespace, name)
            fresh['data']['disable_network_policy'] = 'true'          # another operator's edit
            original_update('configmaps', namespace, name, fresh)
            fired.append(True)
        return original_update(rt, namespace, name, obj, **kwargs)

    store.update = update
    rc, results, output = module_tasks(double, yaml.safe_dump([task('apply', {'in_cluster_loadbalance': True})]))
    assert rc == 0, output
    assert fired and results['apply']['changed'] is True
    data = stored(double)['data']
    assert data['in_cluster_loadbalance'] == 'true' and data['disable_network_policy'] == 'true'


def test_eni_config_fixed_created_then_extended(double, module_tasks):
    vsw = {'cn-hangzhou-i': ['vsw-fixed0000000000001']}
    rc, results, output = module_tasks(double, yaml.safe_dump([
        task('missing', {'name': 'eni-config-fixed', 'eni_conf': {'vswitches': vsw}}, ignore_errors=True),
        task('create check', {'name': 'eni-config-fixed', 'create': True, 'eni_conf': {'vswitches': vsw}}, check_mode=True),
        task('create', {'name': 'eni-config-fixed', 'create': True, 'eni_conf': {'vswitches': vsw}}),
        task('create again', {'name': 'eni-config-fixed', 'create': True, 'eni_conf': {'vswitches': vsw}}),
    ]))
    assert rc == 0, output
    assert results['missing']['failed'] is True and 'create=true creates it' in results['missing']['msg']
    assert results['create check']['changed'] is True and results['create check']['configmap']['created'] is True
    assert results['create']['changed'] is True and results['create again']['changed'] is False
    assert json.loads(stored(double, 'eni-config-fixed')['data']['eni_conf']) == {'vswitches': vsw}


BAD_INPUT = [
    ({'in_cluster_loadbalance': 'maybe'}, 'in_cluster_loadbalance'),
    ({'eni_conf': {'vswitches': {'cn-hangzhou-i': ['subnet-1']}}}, 'list of vSwitch IDs'),
    ({}, 'one of the following is required'),
]


def test_bad_input_refused(double, module_tasks):
    original = stored(double)
    tasks = yaml.safe_dump([task('bad %d' % i, args, ignore_errors=True) for i, (args, _m) in enumerate(BAD_INPUT)])
    rc, results, output = module_tasks(double, tasks)
    assert rc == 0, output
    for i, (_args, message) in enumerate(BAD_INPUT):
        res = results['bad %d' % i]
        assert res['failed'] is True and message in res['msg'], (message, res)
    assert stored(double) == original and backups(double) == []


def test_broken_eni_conf_refused_with_nothing_written(double, module_tasks):
    cm = stored(double)
    cm['data']['eni_conf'] = cm['data']['eni_conf'].replace('"ordered"', '"ordered",')
    double.store.update('configmaps', 'kube-system', 'eni-config', cm)
    original = stored(double)
    rc, results, output = module_tasks(double, yaml.safe_dump([task('bad', {'disable_network_policy': True}, ignore_errors=True)]))
    assert rc == 0, output
    assert results['bad']['failed'] is True and 'eni_conf is not valid JSON' in results['bad']['msg']
    assert stored(double) == original and backups(double) == []


@pytest.mark.double_only("kubelet: the restart is verified by Terway's policy container log line (the double's log provider); simulated nodes serve"
                         ' no logs')
def test_restart_before_the_change_is_detected_as_failed(double, module_tasks):
    # Without in_cluster_loadbalance the policy container logs =false: the preset stops at the first node.
    rc, results, output = module_tasks(double, yaml.safe_dump([
        {'name': 'restart', 'ignore_errors': True, 'netmedic.k8s.daemonset_restart': {
            'name': 'terway-eniip', 'patterns_preset': 'terway-in-cluster-lb', 'poll_interval': 0.05, 'timeout': 20}}]))
    assert rc == 0, output
    res = results['restart']
    assert res['failed'] is True and res['failed_node']['node'] == 'lab-node-1'
    assert 'enable-in-cluster-loadbalance=false' in res['failed_node']['line']
    assert res['remaining'] == ['lab-node-2', 'lab-node-3']


def _set_terway_image(double, image):
    ds = double.store.get('daemonsets', 'kube-system', 'terway-eniip')
    for container in ds['spec']['template']['spec']['containers']:
        container['image'] = image
    double.store.update('daemonsets', 'kube-system', 'terway-eniip', ds)


@pytest.mark.parametrize('image, words', [
    ('registry.lab.invalid/acs/terway:v1.1.9', 'Terway v1.1.9 is older than v1.2.0'),
    ('registry.lab.invalid/acs/terway@sha256:' + '0' * 64, 'cannot read the Terway version'),
])
def test_issue10_c6_in_cluster_loadbalance_refused_below_terway_1_2_or_unknown(double, module_tasks, image, words):
    """Issue 10, C-6 partial: the flag is gated on Terway >= v1.2.0 read from the DaemonSet's image; unknown refuses."""
    _set_terway_image(double, image)
    original = stored(double)
    rc, results, output = module_tasks(double, yaml.safe_dump([
        task('check', {'in_cluster_loadbalance': True}, check_mode=True, ignore_errors=True),
        task('apply', {'in_cluster_loadbalance': True}, ignore_errors=True),
        task('other flags still work', {'disable_network_policy': True}, check_mode=True)]))
    assert rc == 0, output
    for name in ('check', 'apply'):
        assert results[name]['failed'] is True and words in results[name]['msg'], results[name]
        assert 'nothing was changed' in results[name]['msg']
    assert results['other flags still work']['changed'] is True
    assert stored(double) == original and backups(double) == []


def test_issue10_c6_terway_version_given_for_a_digest_image(double, module_tasks):
    _set_terway_image(double, 'registry.lab.invalid/acs/terway@sha256:' + '0' * 64)
    rc, results, output = module_tasks(double, yaml.safe_dump([
        task('apply', {'in_cluster_loadbalance': True, 'terway_version': 'v1.2.3'})]))
    assert rc == 0, output
    assert results['apply']['changed'] is True and results['apply']['terway_version'] == 'v1.2.3'
    assert stored(double)['data']['in_cluster_loadbalance'] == 'true'


def test_issue10_c6_partial_vswitches_keeps_other_zones_in_the_cluster(double, module_tasks):
    """Issue 10, C-6 partial, against the API: a vSwitch added to a new zone keeps cn-hangzhou-i; secrets masked."""
    cm = stored(double)
    conf = json.loads(cm['data']['eni_conf'])
    conf['access_secret'] = 'lab-access-secret-0123456789'
    cm['data']['eni_conf'] = json.dumps(conf, indent=2) + '\n'
    double.store.update('configmaps', 'kube-system', 'eni-config', cm)
    rc, results, output = module_tasks(double, yaml.safe_dump([
        task('add zone', {'eni_conf': {'vswitches': {'cn-hangzhou-j': ['vsw-lab00000000000000009']}}}, diff=True),
        task('again', {'eni_conf': {'vswitches': {'cn-hangzhou-j': ['vsw-lab00000000000000009']}}})]))
    assert rc == 0, output
    stored_conf = json.loads(stored(double)['data']['eni_conf'])
    assert stored_conf['vswitches'] == {'cn-hangzhou-i': ['vsw-lab00000000000000001'],
                                        'cn-hangzhou-j': ['vsw-lab00000000000000009']}
    assert stored_conf['access_secret'] == 'lab-access-secret-0123456789'     # the backup and the object keep it
    assert results['add zone']['changed'] is True and results['again']['changed'] is False
    assert 'lab-access-secret-0123456789' not in output                        # not in results, diff or invocation
    assert 'vsw-lab00000000000000009' in output                                # what changed is still readable
