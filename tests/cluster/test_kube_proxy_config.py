"""netmedic.k8s.kube_proxy_config (catalog C-0 ... C-3) on the double and on the real kube-apiserver (issue 15).

Ported from tests/lab (where only the double-only cases stay: an old server version, a forced 409). Each test
works on copies of the seed's kube-proxy ConfigMaps and DaemonSets in a namespace of its own (``seeded``), so the
seed stays clean without a reset. Check mode with ``--diff`` and the masking of tokens go through
``ansible-playbook`` (``playbook``); the other cases run the module's ``main()`` in the test process
(``module_tasks``). What is asserted is read back through the API, never taken from the module's result alone.
"""

from __future__ import annotations

import pytest
import yaml

from tests.cluster.conftest import bearer

NAMES = ('kube-proxy-worker', 'kube-proxy-master', 'kube-proxy')
BACKUP_LABEL = 'netmedic.k8s/backup-of'


def _cm(cluster, ns, name):
    return cluster.get('ConfigMap', ns, name)


def _conf(cluster, ns, name):
    return yaml.safe_load(_cm(cluster, ns, name)['data']['config.conf'])


def _backups(cluster, ns):
    return cluster.items('ConfigMap', ns, label_selector=BACKUP_LABEL)


def _versions(cluster, ns):
    return {n: _cm(cluster, ns, n)['metadata']['resourceVersion'] for n in NAMES}


def _task(name, ns, settings, check=False, **extra):
    args = dict({'namespace': ns}, **extra, settings=settings)
    task = {'name': name, 'diff': True, 'ignore_errors': True, 'netmedic.k8s.kube_proxy_config': args}
    if check:
        task['check_mode'] = True
    return task


def test_check_mode_apply_and_idempotence(writable, seeded, playbook):
    cluster, ns = writable, seeded
    settings = {'conntrack': {'maxPerCore': 65536}, 'ipvs.scheduler': 'lc'}
    rv_before = _versions(cluster, ns)
    worker_text = _cm(cluster, ns, 'kube-proxy-worker')['data']['config.conf']
    rc, results, output = playbook(cluster, [_task('check', ns, settings, check=True)])
    assert rc == 0, output
    check = results['check']
    assert check['changed'] is True and not check.get('failed'), output
    # Check mode: every ConfigMap untouched, no backup object, and the diff says what would change.
    assert _versions(cluster, ns) == rv_before
    assert _cm(cluster, ns, 'kube-proxy-worker')['data']['config.conf'] == worker_text
    assert _backups(cluster, ns) == []
    diffs = check['diff'] if isinstance(check['diff'], list) else [check['diff']]
    worker_diff = next(d for d in diffs if 'kube-proxy-worker' in d['before_header'])
    assert 'maxPerCore: 32768' in worker_diff['before'] and 'maxPerCore: 65536' in worker_diff['after']
    assert 'scheduler: rr' in worker_diff['before'] and 'scheduler: lc' in worker_diff['after']
    # The DaemonSets that mount the changed ConfigMaps (the kubeadm one is mounted by none in the seed).
    assert check['restart_needed'] == ['kube-proxy-master', 'kube-proxy-worker']
    assert {e['name']: e['daemonsets'] for e in check['configmaps']}['kube-proxy'] == []

    rc, results, output = playbook(cluster, [_task('apply', ns, settings), _task('again', ns, settings)])
    assert rc == 0, output
    apply, again = results['apply'], results['again']
    assert apply['changed'] is True and not apply.get('failed'), output
    for name in NAMES:
        conf = _conf(cluster, ns, name)
        assert conf['conntrack']['maxPerCore'] == 65536, name
        assert conf['ipvs']['scheduler'] == 'lc', name
    # Everything else is kept, in order: only the two changed lines differ in the worker's text.
    new_text = _cm(cluster, ns, 'kube-proxy-worker')['data']['config.conf']
    changed_lines = [(a, b) for a, b in zip(worker_text.splitlines(), new_text.splitlines()) if a != b]
    assert changed_lines == [('  maxPerCore: 32768', '  maxPerCore: 65536'), ('  scheduler: rr', '  scheduler: lc')]
    assert len(worker_text.splitlines()) == len(new_text.splitlines())
    # One backup ConfigMap per changed ConfigMap, holding the data that was replaced.
    backups = {b['metadata']['labels'][BACKUP_LABEL]: b for b in _backups(cluster, ns)}
    assert sorted(backups) == sorted(NAMES)
    assert backups['kube-proxy-worker']['data']['config.conf'] == worker_text
    returned = {b['of']: b for b in apply['backups']}
    assert returned['%s/kube-proxy-worker' % ns]['configmap'] == '%s/%s' % (ns, backups['kube-proxy-worker']['metadata']['name'])
    assert returned['%s/kube-proxy-worker' % ns]['data']['config.conf'] == worker_text
    # Second run: nothing to do, nothing written, no new backup.
    assert again['changed'] is False and not again.get('failed'), output
    assert again['restart_needed'] == []
    assert len(_backups(cluster, ns)) == 3


def test_names_limits_the_edit_and_udp_timeout_on_new_cluster(writable, seeded, module_tasks):
    cluster, ns = writable, seeded
    rv_before = _versions(cluster, ns)
    task = _task('udp', ns, {'mode': 'ipvs', 'ipvs': {'udpTimeout': '10s'}}, names=['kube-proxy-worker'], backup=False)
    rc, results, output = module_tasks(cluster, [task])
    assert rc == 0, output
    assert results['udp']['changed'] is True, output
    assert _conf(cluster, ns, 'kube-proxy-worker')['ipvs']['udpTimeout'] == '10s'
    after = _versions(cluster, ns)
    assert after['kube-proxy-master'] == rv_before['kube-proxy-master']
    assert after['kube-proxy'] == rv_before['kube-proxy']
    assert after['kube-proxy-worker'] != rv_before['kube-proxy-worker']
    assert _backups(cluster, ns) == []                                   # backup: false keeps no object ...
    assert 'udpTimeout' not in results['udp']['backups'][0]['data']['config.conf']   # ... but returns the old data


BAD_SETTINGS = [
    ({'ipvs.scheduler': 'fastest'}, 'scheduler'),
    ({'ipvs': {'udpTimeout': '10 seconds'}}, 'udpTimeout'),
    ({'ipvs': {'udpTimeout': '-5s'}}, 'udpTimeout'),
    ({'conntrack': {'maxPerCore': 'lots'}}, 'maxPerCore'),
    ({'conntrack': {'maxPerCore': -1}}, 'maxPerCore'),
    ({'mode': 'nftables-please'}, 'mode'),
    ({'ipvs.nosuchfield': 1}, 'nosuchfield'),
    ({}, 'settings'),
]


@pytest.mark.parametrize(('settings', 'word'), BAD_SETTINGS, ids=[w + str(i) for i, (_s, w) in enumerate(BAD_SETTINGS)])
def test_bad_settings_fail_before_any_write(writable, seeded, module_tasks, settings, word):
    cluster, ns = writable, seeded
    rv_before = _versions(cluster, ns)
    rc, results, output = module_tasks(cluster, [_task('bad', ns, settings)])
    bad = results['bad']
    assert bad['failed'] is True and bad['changed'] is False, output
    assert word in bad['msg'], bad['msg']
    assert _versions(cluster, ns) == rv_before and _backups(cluster, ns) == []
    assert rc == 0   # ignore_errors: the play itself completes


def test_broken_configmap_yaml_and_missing_names_write_nothing(writable, seeded, module_tasks):
    cluster, ns = writable, seeded
    cm = _cm(cluster, ns, 'kube-proxy-master')
    cm['data']['config.conf'] = 'conntrack:\n  maxPerCore: [unclosed\n'
    cluster.replace(cm)                                   # a real server stores any ConfigMap data
    rv_before = _versions(cluster, ns)
    rc, results, output = module_tasks(cluster, [
        _task('broken', ns, {'conntrack.maxPerCore': 65536}),
        _task('missing', ns, {'conntrack.maxPerCore': 65536}, names=['kube-proxy-worker', 'no-such-proxy']),
    ])
    assert rc == 0, output
    assert results['broken']['failed'] is True and 'kube-proxy-master' in results['broken']['msg'], output
    assert 'nothing was changed' in results['broken']['msg']
    assert results['missing']['failed'] is True and 'no-such-proxy' in results['missing']['msg']
    # The worker was valid, but no ConfigMap is written when any planned one is broken.
    assert _versions(cluster, ns) == rv_before and _backups(cluster, ns) == []


EDITOR_RULES = [{'apiGroups': [''], 'resources': ['configmaps'], 'verbs': ['get', 'list', 'create', 'update', 'patch']},
                {'apiGroups': ['apps'], 'resources': ['daemonsets'], 'verbs': ['get', 'list']}]


def test_api_key_is_not_logged_and_bad_token_fails_cleanly(writable, seeded, playbook, tmp_path):
    cluster, ns = writable, seeded
    auth = bearer(cluster, ns, 'kube-proxy-editor', EDITOR_RULES, tmp_path)
    token_auth = {'host': auth['host'], 'ca_cert': auth['ca_cert'], 'kubeconfig': None}
    rc, results, output = playbook(cluster, [_task('bad token', ns, {'conntrack.maxPerCore': 65536},
                                                   api_key='not-the-token', **token_auth)])
    assert rc == 0, output
    assert results['bad token']['failed'] is True and '401' in results['bad token']['msg'], output
    rc, results, output = playbook(cluster, [_task('token', ns, {'conntrack.maxPerCore': 65536}, check=True,
                                                   api_key=auth['api_key'], **token_auth)])
    assert rc == 0, output
    assert results['token']['changed'] is True and not results['token'].get('failed'), output
    assert auth['api_key'] not in output
    assert 'not-the-token' not in output


def test_explicit_api_key_wins_over_the_kubeconfig_identity(writable, seeded, playbook, tmp_path):
    """An explicit api_key is the identity the job runs as, never the kubeconfig's also given (no silent fallback and
    no silent widening). On the real server the admin kubeconfig authenticates by a client certificate: the
    certificate must not go with the token (kube-apiserver tries x509 first: the job would run as admin)."""
    cluster, ns = writable, seeded
    auth = bearer(cluster, ns, 'kube-proxy-reader', [{'apiGroups': [''], 'resources': ['configmaps'], 'verbs': ['get', 'list']},
                                                     {'apiGroups': ['apps'], 'resources': ['daemonsets'], 'verbs': ['list']}],
                  tmp_path)
    rv_before = _versions(cluster, ns)
    rc, results, output = playbook(cluster, [
        _task('bad token', ns, {'conntrack.maxPerCore': 65536}, check=True, kubeconfig=str(cluster.kubeconfig),
              api_key='not-the-token'),
        # A token that may only read: the write it is asked for is refused (403), not done as the kubeconfig's admin.
        _task('reader', ns, {'conntrack.maxPerCore': 65536}, names=['kube-proxy-worker'], backup=False,
              kubeconfig=str(cluster.kubeconfig), api_key=auth['api_key']),
    ])
    assert rc == 0, output
    assert results['bad token']['failed'] is True and '401' in results['bad token']['msg'], output
    assert results['reader']['failed'] is True and '403' in results['reader']['msg'], output
    assert _versions(cluster, ns) == rv_before and _backups(cluster, ns) == []
