"""netmedic.k8s.terway_config (catalog C-6) on the double and on the real kube-apiserver (issue 15).

Ported from tests/lab/test_terway_config.py (where only the cases verified by Terway's policy log line and the forced
409 stay). Each test works on copies of the seed's ``eni-config`` ConfigMap and ``terway-eniip`` DaemonSet (with
the ServiceAccount its pods run as) in a namespace of its own and points the module there (``namespace``): check
mode, a ConfigMap created then extended, bad input, an ``eni_conf`` that is not JSON (a real server stores any
ConfigMap data), the Terway version gate read from the DaemonSet's image, and a vSwitch added to a zone with the
secrets kept and masked. Check mode with ``--diff`` goes through ``ansible-playbook`` (``playbook``), the other
cases run the module's ``main()`` in the test process (``module_tasks``). What is asserted is read back through the
API, never taken from the module's result alone.
"""

from __future__ import annotations

import functools
import json

import pytest

from tests.cluster.conftest import copy_accounts, copy_seed, ns_task

CM = 'eni-config'
DS = 'terway-eniip'


@pytest.fixture
def terway(writable, scratch):
    """``scratch`` with copies of the seed's eni-config and terway-eniip (and its ServiceAccount); the namespace."""
    copy_accounts(writable, scratch)
    copy_seed(writable, scratch, names=[CM, DS])
    return scratch


def stored(cluster, ns, name=CM):
    return cluster.find('ConfigMap', ns, name)


def backups(cluster, ns):
    return cluster.items('ConfigMap', ns, label_selector='netmedic.k8s/backup-of')


task = functools.partial(ns_task, 'netmedic.k8s.terway_config')    # task(name, ns, args, **keywords)


def test_check_mode_writes_nothing(writable, terway, playbook):
    cluster, ns = writable, terway
    original = stored(cluster, ns)
    rc, results, output = playbook(cluster, [
        task('check', ns, {'in_cluster_loadbalance': True, 'disable_network_policy': True}, check_mode=True, diff=True)])
    assert rc == 0, output
    check = results['check']
    assert check['changed'] is True
    assert {c['path'] for c in check['configmap']['changes']} == {'in_cluster_loadbalance', 'disable_network_policy'}
    assert check['restart_needed'] == [DS]
    assert check['verify'] == {'container': 'policy', 'success_patterns': ['enable-in-cluster-loadbalance=true']}
    assert len(check['diff']) == 2
    assert stored(cluster, ns) == original and backups(cluster, ns) == []


def test_eni_config_fixed_created_then_extended(writable, terway, module_tasks):
    cluster, ns = writable, terway
    vsw = {'cn-hangzhou-i': ['vsw-fixed0000000000001']}
    rc, results, output = module_tasks(cluster, [
        task('missing', ns, {'name': 'eni-config-fixed', 'eni_conf': {'vswitches': vsw}}, ignore_errors=True),
        task('create check', ns, {'name': 'eni-config-fixed', 'create': True, 'eni_conf': {'vswitches': vsw}}, check_mode=True),
    ])
    assert rc == 0, output
    assert results['missing']['failed'] is True and 'create=true creates it' in results['missing']['msg']
    assert results['create check']['changed'] is True and results['create check']['configmap']['created'] is True
    assert stored(cluster, ns, 'eni-config-fixed') is None, 'check mode created the ConfigMap'
    rc, results, output = module_tasks(cluster, [
        task('create', ns, {'name': 'eni-config-fixed', 'create': True, 'eni_conf': {'vswitches': vsw}}),
        task('create again', ns, {'name': 'eni-config-fixed', 'create': True, 'eni_conf': {'vswitches': vsw}}),
    ])
    assert rc == 0, output
    assert results['create']['changed'] is True and results['create again']['changed'] is False
    assert json.loads(stored(cluster, ns, 'eni-config-fixed')['data']['eni_conf']) == {'vswitches': vsw}


BAD_INPUT = [
    ({'in_cluster_loadbalance': 'maybe'}, 'in_cluster_loadbalance'),
    ({'eni_conf': {'vswitches': {'cn-hangzhou-i': ['subnet-1']}}}, 'list of vSwitch IDs'),
    ({}, 'one of the following is required'),
]


def test_bad_input_refused(writable, terway, module_tasks):
    cluster, ns = writable, terway
    original = stored(cluster, ns)
    tasks = [task('bad %d' % i, ns, args, ignore_errors=True) for i, (args, _m) in enumerate(BAD_INPUT)]
    rc, results, output = module_tasks(cluster, tasks)
    assert rc == 0, output
    for i, (_args, message) in enumerate(BAD_INPUT):
        res = results['bad %d' % i]
        assert res['failed'] is True and message in res['msg'], (message, res)
    assert stored(cluster, ns) == original and backups(cluster, ns) == []


def test_broken_eni_conf_refused_with_nothing_written(writable, terway, module_tasks):
    cluster, ns = writable, terway
    cm = stored(cluster, ns)
    cm['data']['eni_conf'] = cm['data']['eni_conf'].replace('"ordered"', '"ordered",')
    cluster.replace(cm)                                   # a real server stores any ConfigMap data
    original = stored(cluster, ns)
    assert original['data']['eni_conf'] == cm['data']['eni_conf']
    rc, results, output = module_tasks(cluster, [task('bad', ns, {'disable_network_policy': True}, ignore_errors=True)])
    assert rc == 0, output
    assert results['bad']['failed'] is True and 'eni_conf is not valid JSON' in results['bad']['msg']
    assert stored(cluster, ns) == original and backups(cluster, ns) == []


def set_terway_image(cluster, ns, image):
    """Every container of the Terway DaemonSet in ``ns`` to ``image`` (retried on a controller's concurrent write)."""

    def change(ds):
        for container in ds['spec']['template']['spec']['containers']:
            container['image'] = image
    cluster.edit('DaemonSet', ns, DS, change)


@pytest.mark.parametrize('image, words', [
    ('registry.lab.invalid/acs/terway:v1.1.9', 'Terway v1.1.9 is older than v1.2.0'),
    ('registry.lab.invalid/acs/terway@sha256:' + '0' * 64, 'cannot read the Terway version'),
])
def test_issue10_c6_in_cluster_loadbalance_refused_below_terway_1_2_or_unknown(writable, terway, module_tasks, image, words):
    """Issue 10, C-6 partial: the flag is gated on Terway >= v1.2.0 read from the DaemonSet's image; unknown refuses."""
    cluster, ns = writable, terway
    set_terway_image(cluster, ns, image)
    original = stored(cluster, ns)
    rc, results, output = module_tasks(cluster, [
        task('check', ns, {'in_cluster_loadbalance': True}, check_mode=True, ignore_errors=True),
        task('apply', ns, {'in_cluster_loadbalance': True}, ignore_errors=True),
        task('other flags still work', ns, {'disable_network_policy': True}, check_mode=True)])
    assert rc == 0, output
    for name in ('check', 'apply'):
        assert results[name]['failed'] is True and words in results[name]['msg'], results[name]
        assert 'nothing was changed' in results[name]['msg']
    assert results['other flags still work']['changed'] is True
    assert stored(cluster, ns) == original and backups(cluster, ns) == []


def test_issue10_c6_terway_version_given_for_a_digest_image(writable, terway, module_tasks):
    cluster, ns = writable, terway
    set_terway_image(cluster, ns, 'registry.lab.invalid/acs/terway@sha256:' + '0' * 64)
    rc, results, output = module_tasks(cluster, [
        task('apply', ns, {'in_cluster_loadbalance': True, 'terway_version': 'v1.2.3'})])
    assert rc == 0, output
    assert results['apply']['changed'] is True and results['apply']['terway_version'] == 'v1.2.3'
    assert stored(cluster, ns)['data']['in_cluster_loadbalance'] == 'true'


def test_issue10_c6_partial_vswitches_keeps_other_zones_in_the_cluster(writable, terway, module_tasks):
    """Issue 10, C-6 partial, against the API: a vSwitch added to a new zone keeps cn-hangzhou-i; secrets masked."""
    cluster, ns = writable, terway
    cm = stored(cluster, ns)
    conf = json.loads(cm['data']['eni_conf'])
    conf['access_secret'] = 'lab-access-secret-0123456789'
    cm['data']['eni_conf'] = json.dumps(conf, indent=2) + '\n'
    cluster.replace(cm)
    rc, results, output = module_tasks(cluster, [
        task('add zone', ns, {'eni_conf': {'vswitches': {'cn-hangzhou-j': ['vsw-lab00000000000000009']}}}, diff=True),
        task('again', ns, {'eni_conf': {'vswitches': {'cn-hangzhou-j': ['vsw-lab00000000000000009']}}})])
    assert rc == 0, output
    stored_conf = json.loads(stored(cluster, ns)['data']['eni_conf'])
    assert stored_conf['vswitches'] == {'cn-hangzhou-i': ['vsw-lab00000000000000001'],
                                        'cn-hangzhou-j': ['vsw-lab00000000000000009']}
    assert stored_conf['access_secret'] == 'lab-access-secret-0123456789'     # the backup and the object keep it
    [backup] = backups(cluster, ns)
    assert json.loads(backup['data']['eni_conf'])['access_secret'] == 'lab-access-secret-0123456789'
    assert results['add zone']['changed'] is True and results['again']['changed'] is False
    assert 'lab-access-secret-0123456789' not in output                        # not in results, diff or invocation
    assert 'vsw-lab00000000000000009' in output                                # what changed is still readable
