"""netmedic.k8s.flannel_config (catalog C-5, N-7 step 2) against the API double.

Check mode through Ansible is a real ``ansible-playbook`` run (``test_check_mode_apply_idempotence_and_backup``); the other cases run the
module's ``main()`` in the test process (``module_tasks``, tests/harness.py: issue 12), over HTTP
through the real client as in a playbook run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

DOUBLE_ONLY = ('portable: check, apply, backup, bad input and a cni-conf.json that is not JSON (a real server stores any ConfigMap data) on the '
               "seed's kube-flannel-cfg")

COLLECTIONS = str(Path(__file__).resolve().parents[2] / 'collections')
CM = 'kube-flannel-cfg'
KEY = 'cni-conf.json'
N7 = {'flannel_data_dir': '/var/run/cni/flannel', 'ipam_data_dir': '/var/run/cni/networks'}


@pytest.fixture
def run(playbook):
    return lambda double, tasks: playbook(double, tasks, extra_env={'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS})


def stored(double, name=CM):
    return double.store.get('configmaps', 'kube-system', name)


def backups(double):
    cms, _rv = double.store.list('configmaps', 'kube-system', label_selector='netmedic.k8s/backup-of=%s' % CM)
    return cms


def task(name, args, **extra):
    entry = {'name': name, 'netmedic.k8s.flannel_config': args}
    entry.update(extra)
    return entry


def conflict_once(double, name, mutate):
    """A concurrent writer: the first replace of ConfigMap ``name`` sent over HTTP is preceded by another write."""
    store = double.store
    original = store.update
    fired = []

    def update(rt, namespace, obj_name, obj, dry_run=False, subresource=None, system=False):
        if not fired and not dry_run and not system and obj_name == name and obj.get('kind') == 'ConfigMap':
            fresh = store.get('configmaps', namespace, name)
            mutate(fresh)
            original('configmaps', namespace, name, fresh)
            fired.append(fresh['metadata']['resourceVersion'])
        return original(rt, namespace, obj_name, obj, dry_run=dry_run, subresource=subresource, system=system)

    store.update = update
    return fired


def test_check_mode_apply_idempotence_and_backup(double, run):
    original = stored(double)
    tasks = yaml.safe_dump([
        task('check', dict(N7, cni_version='0.3.1', hairpin_mode=True), check_mode=True, diff=True),
        task('apply', dict(N7, cni_version='0.3.1', hairpin_mode=True), diff=True),
        task('again', dict(N7, cni_version='0.3.1', hairpin_mode=True)),
    ])
    # Nothing may be written by the check-mode task: remember the object after it ran via a second play.
    rc, results, output = run(double, yaml.safe_dump([yaml.safe_load(tasks)[0]]))
    assert rc == 0, output
    check = results['check']
    assert check['changed'] is True
    assert [c['path'] for c in check['configmap']['changes']] == [
        'cniVersion', 'plugins[0].delegate.hairpinMode', 'plugins[0].dataDir', 'plugins[0].ipam']
    assert '"cniVersion": "0.3.1"' in check['diff'][0]['after'] and '"cniVersion"' not in check['diff'][0]['before']
    assert check['backups'] == [] and check['restart_needed'] == ['kube-flannel-ds']
    assert stored(double) == original, 'check mode wrote to the ConfigMap'
    assert backups(double) == []

    rc, results, output = run(double, tasks)
    assert rc == 0, output
    apply, again = results['apply'], results['again']
    assert apply['changed'] is True and again['changed'] is False
    assert again['restart_needed'] == [] and again['backups'] == []
    conf = json.loads(stored(double)['data'][KEY])
    assert list(conf) == ['name', 'cniVersion', 'plugins']
    assert conf['plugins'][0] == {'type': 'flannel', 'delegate': {'isDefaultGateway': True, 'hairpinMode': True},
                                  'dataDir': '/var/run/cni/flannel',
                                  'ipam': {'type': 'host-local', 'dataDir': '/var/run/cni/networks'}}
    assert conf['plugins'][1]['type'] == 'portmap'
    assert stored(double)['data']['net-conf.json'] == original['data']['net-conf.json']
    assert apply['configmap']['after']['ipam.dataDir'] == '/var/run/cni/networks'
    assert apply['configmap']['resource_version'] == stored(double)['metadata']['resourceVersion']
    # The backup ConfigMap holds the original data and the result says where it is.
    [backup] = backups(double)
    assert backup['data'] == original['data']
    assert apply['backups'][0]['configmap'] == 'kube-system/%s' % backup['metadata']['name']
    assert apply['backups'][0]['data'] == original['data']


@pytest.mark.double_only("fault: a concurrent write landed between the module's read and its write (the double's store.update wrapped), a "
                         'deterministic 409; a real server gives one only under a real race')
def test_conflict_is_retried_on_fresh_data(double, module_tasks):
    def other_writer(cm):
        cm['data']['net-conf.json'] = cm['data']['net-conf.json'].replace('alloc', 'vxlan')

    fired = conflict_once(double, CM, other_writer)
    rc, results, output = module_tasks(double, yaml.safe_dump([task('apply', {'cni_version': '0.3.1'})]))
    assert rc == 0, output
    assert fired, 'the concurrent write was not injected'
    assert results['apply']['changed'] is True
    data = stored(double)['data']
    assert json.loads(data[KEY])['cniVersion'] == '0.3.1'
    assert '"Type": "vxlan"' in data['net-conf.json'], 'the concurrent write was lost'
    assert int(stored(double)['metadata']['resourceVersion']) > int(fired[0])


BAD_INPUT = [
    ({'cni_version': 'latest'}, 'cni_version must look like 0.3.1'),
    ({'ipam_data_dir': 'var/run/cni'}, 'normalised absolute path'),
    ({}, 'one of the following is required'),
    ({'cni_version': '0.3.1', 'name': 'no-such-cm'}, 'ConfigMap kube-system/no-such-cm not found'),
    ({'cni_version': '0.3.1', 'key': 'missing.json'}, "has no key 'missing.json'"),
]


def test_bad_input_is_refused_with_no_write(double, module_tasks):
    original = stored(double)
    tasks = yaml.safe_dump([task('bad %d' % i, args, ignore_errors=True) for i, (args, _m) in enumerate(BAD_INPUT)])
    rc, results, output = module_tasks(double, tasks)
    assert rc == 0, output
    for i, (_args, message) in enumerate(BAD_INPUT):
        res = results['bad %d' % i]
        assert res['failed'] is True and res.get('changed') is False, res
        assert message in res['msg'], (message, res['msg'])
    assert stored(double) == original and backups(double) == []


def test_broken_json_in_the_configmap_fails_with_nothing_written(double, module_tasks):
    cm = stored(double)
    cm['data'][KEY] = cm['data'][KEY].replace('"KUBE-MARK-MASQ"', '"KUBE-MARK-MASQ",')   # a trailing comma, as in the seed's example
    double.store.update('configmaps', 'kube-system', CM, cm)
    original = stored(double)
    rc, results, output = module_tasks(double, yaml.safe_dump([task('broken', N7, ignore_errors=True)]))
    assert rc == 0, output
    assert results['broken']['failed'] is True
    assert 'is not valid JSON' in results['broken']['msg'] and 'nothing was changed' in results['broken']['msg']
    assert stored(double) == original and backups(double) == []
