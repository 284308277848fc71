"""netmedic.k8s.flannel_config (catalog C-5, N-7 step 2) on the double and on the real kube-apiserver (issue 15).

Ported from tests/lab/test_flannel_config.py (where only the forced 409 stays). Each test works on copies of the
seed's kube-system ConfigMaps and DaemonSets in a namespace of its own (``seeded``) and points the module there
(``namespace``): check mode, apply, idempotence and the backup; bad input; a cni-conf.json that is not JSON (a real
server stores any ConfigMap data). Check mode with ``--diff`` goes through ``ansible-playbook`` (``playbook``), the
other cases run the module's ``main()`` in the test process (``module_tasks``). What is asserted is read back through
the API, never taken from the module's result alone.
"""

from __future__ import annotations

import functools
import json

from tests.cluster.conftest import ns_task

CM = 'kube-flannel-cfg'
KEY = 'cni-conf.json'
N7 = {'flannel_data_dir': '/var/run/cni/flannel', 'ipam_data_dir': '/var/run/cni/networks'}


def stored(cluster, ns, name=CM):
    return cluster.get('ConfigMap', ns, name)


def backups(cluster, ns):
    return cluster.items('ConfigMap', ns, label_selector='netmedic.k8s/backup-of=%s' % CM)


task = functools.partial(ns_task, 'netmedic.k8s.flannel_config')    # task(name, ns, args, **keywords)


def test_check_mode_apply_idempotence_and_backup(writable, seeded, playbook):
    cluster, ns = writable, seeded
    original = stored(cluster, ns)
    args = dict(N7, cni_version='0.3.1', hairpin_mode=True)
    # Nothing may be written by the check-mode task: it runs alone first, the object is read after it.
    rc, results, output = playbook(cluster, [task('check', ns, args, check_mode=True, diff=True)])
    assert rc == 0, output
    check = results['check']
    assert check['changed'] is True
    assert [c['path'] for c in check['configmap']['changes']] == [
        'cniVersion', 'plugins[0].delegate.hairpinMode', 'plugins[0].dataDir', 'plugins[0].ipam']
    assert '"cniVersion": "0.3.1"' in check['diff'][0]['after'] and '"cniVersion"' not in check['diff'][0]['before']
    assert check['backups'] == [] and check['restart_needed'] == ['kube-flannel-ds']
    assert stored(cluster, ns) == original, 'check mode wrote to the ConfigMap'
    assert backups(cluster, ns) == []

    rc, results, output = playbook(cluster, [task('apply', ns, args, diff=True), task('again', ns, args)])
    assert rc == 0, output
    apply, again = results['apply'], results['again']
    assert apply['changed'] is True and again['changed'] is False
    assert again['restart_needed'] == [] and again['backups'] == []
    after = stored(cluster, ns)
    conf = json.loads(after['data'][KEY])
    assert list(conf) == ['name', 'cniVersion', 'plugins']
    assert conf['plugins'][0] == {'type': 'flannel', 'delegate': {'isDefaultGateway': True, 'hairpinMode': True},
                                  'dataDir': '/var/run/cni/flannel',
                                  'ipam': {'type': 'host-local', 'dataDir': '/var/run/cni/networks'}}
    assert conf['plugins'][1]['type'] == 'portmap'
    assert after['data']['net-conf.json'] == original['data']['net-conf.json']
    assert apply['configmap']['after']['ipam.dataDir'] == '/var/run/cni/networks'
    # 'again' wrote nothing: the version the apply returned is still the stored one.
    assert apply['configmap']['resource_version'] == after['metadata']['resourceVersion']
    # The backup ConfigMap holds the original data and the result says where it is.
    [backup] = backups(cluster, ns)
    assert backup['data'] == original['data']
    assert apply['backups'][0]['configmap'] == '%s/%s' % (ns, backup['metadata']['name'])
    assert apply['backups'][0]['data'] == original['data']


BAD_INPUT = [
    ({'cni_version': 'latest'}, 'cni_version must look like 0.3.1'),
    ({'ipam_data_dir': 'var/run/cni'}, 'normalised absolute path'),
    ({}, 'one of the following is required'),
    ({'cni_version': '0.3.1', 'name': 'no-such-cm'}, 'ConfigMap {ns}/no-such-cm not found'),
    ({'cni_version': '0.3.1', 'key': 'missing.json'}, "has no key 'missing.json'"),
]


def test_bad_input_is_refused_with_no_write(writable, seeded, module_tasks):
    cluster, ns = writable, seeded
    original = stored(cluster, ns)
    tasks = [task('bad %d' % i, ns, args, ignore_errors=True) for i, (args, _m) in enumerate(BAD_INPUT)]
    rc, results, output = module_tasks(cluster, tasks)
    assert rc == 0, output
    for i, (_args, message) in enumerate(BAD_INPUT):
        res = results['bad %d' % i]
        assert res['failed'] is True and res.get('changed') is False, res
        assert message.format(ns=ns) in res['msg'], (message, res['msg'])
    assert stored(cluster, ns) == original and backups(cluster, ns) == []


def test_broken_json_in_the_configmap_fails_with_nothing_written(writable, seeded, module_tasks):
    cluster, ns = writable, seeded
    cm = stored(cluster, ns)
    cm['data'][KEY] = cm['data'][KEY].replace('"KUBE-MARK-MASQ"', '"KUBE-MARK-MASQ",')   # a trailing comma, as in the seed's example
    cluster.replace(cm)                                                                  # a real server stores any ConfigMap data
    original = stored(cluster, ns)
    assert original['data'][KEY] == cm['data'][KEY]
    rc, results, output = module_tasks(cluster, [task('broken', ns, N7, ignore_errors=True)])
    assert rc == 0, output
    assert results['broken']['failed'] is True
    assert 'is not valid JSON' in results['broken']['msg'] and 'nothing was changed' in results['broken']['msg']
    assert stored(cluster, ns) == original and backups(cluster, ns) == []
