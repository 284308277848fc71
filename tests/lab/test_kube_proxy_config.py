"""netmedic.k8s.kube_proxy_config over HTTP against the API double (catalog C-0 ... C-3).

Every scenario runs the module with the real ``kubernetes`` client over HTTP; the double stores
what a real API server would.  Check mode with ``--diff`` and the masking of the token in Ansible's
output go through ``ansible-playbook`` (``playbook``); the other scenarios run the module's
``main()`` in the test process (``module_tasks``, tests/harness.py: issue 12).  What is asserted is read back
from the double's store, never taken from the module's own result alone.

Against a real cluster: the same module calls work with ``K8S_AUTH_KUBECONFIG`` pointing at
it. A broken ConfigMap is no reason to stay on the double (a real server stores any ConfigMap
data): only the concurrent writer and the old server versions are (DOUBLE_ONLY, the markers).
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
import yaml
from ruamel.yaml import YAML

DOUBLE_ONLY = ('portable: check, apply, backups, bad settings, a broken config.conf (a real server stores any ConfigMap data) and tokens on the '
               "seed's kube-proxy ConfigMaps")

ROOT = Path(__file__).resolve().parents[2]
ENV = {'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections')}
NS = 'kube-system'
NAMES = ('kube-proxy-worker', 'kube-proxy-master', 'kube-proxy')


def _cm(double, name):
    return double.store.get('configmaps', NS, name)


def _conf(double, name):
    return yaml.safe_load(_cm(double, name)['data']['config.conf'])


def _backups(double):
    items, _rv = double.store.list('configmaps', NS, label_selector='netmedic.k8s/backup-of')
    return items


def _versions(double):
    return {n: _cm(double, n)['metadata']['resourceVersion'] for n in NAMES}


def _task(name, settings, check=False, **extra):
    args = dict(extra, settings=settings)
    task = {'name': name, 'diff': True, 'ignore_errors': True, 'netmedic.k8s.kube_proxy_config': args}
    if check:
        task['check_mode'] = True
    return task


def _run(playbook, double, *tasks):
    rc, results, output = playbook(double, yaml.safe_dump(list(tasks)), extra_env=ENV)
    return rc, results, output


def test_check_mode_apply_and_idempotence(double, playbook):
    settings = {'conntrack': {'maxPerCore': 65536}, 'ipvs.scheduler': 'lc'}
    rv_before = _versions(double)
    worker_text = _cm(double, 'kube-proxy-worker')['data']['config.conf']
    rc, results, output = _run(
        playbook, double,
        _task('check', settings, check=True),
    )
    assert rc == 0, output
    check = results['check']
    assert check['changed'] is True and not check.get('failed'), output
    # Check mode: every ConfigMap untouched, no backup object, and the diff says what would change.
    assert _versions(double) == rv_before
    assert _cm(double, 'kube-proxy-worker')['data']['config.conf'] == worker_text
    assert _backups(double) == []
    diffs = check['diff'] if isinstance(check['diff'], list) else [check['diff']]
    worker_diff = next(d for d in diffs if 'kube-proxy-worker' in d['before_header'])
    assert 'maxPerCore: 32768' in worker_diff['before'] and 'maxPerCore: 65536' in worker_diff['after']
    assert 'scheduler: rr' in worker_diff['before'] and 'scheduler: lc' in worker_diff['after']
    # The DaemonSets that mount the changed ConfigMaps (the kubeadm one is mounted by none in the seed).
    assert check['restart_needed'] == ['kube-proxy-master', 'kube-proxy-worker']
    assert {e['name']: e['daemonsets'] for e in check['configmaps']}['kube-proxy'] == []

    rc, results, output = _run(playbook, double, _task('apply', settings), _task('again', settings))
    assert rc == 0, output
    apply, again = results['apply'], results['again']
    assert apply['changed'] is True and not apply.get('failed'), output
    for name in NAMES:
        conf = _conf(double, name)
        assert conf['conntrack']['maxPerCore'] == 65536, name
        assert conf['ipvs']['scheduler'] == 'lc', name
    # Everything else is kept, in order: only the two changed lines differ in the worker's text.
    new_text = _cm(double, 'kube-proxy-worker')['data']['config.conf']
    changed_lines = [(a, b) for a, b in zip(worker_text.splitlines(), new_text.splitlines()) if a != b]
    assert changed_lines == [('  maxPerCore: 32768', '  maxPerCore: 65536'), ('  scheduler: rr', '  scheduler: lc')]
    assert len(worker_text.splitlines()) == len(new_text.splitlines())
    # One backup ConfigMap per changed ConfigMap, holding the data that was replaced.
    backups = {b['metadata']['labels']['netmedic.k8s/backup-of']: b for b in _backups(double)}
    assert sorted(backups) == sorted(NAMES)
    assert backups['kube-proxy-worker']['data']['config.conf'] == worker_text
    returned = {b['of']: b for b in apply['backups']}
    assert returned['%s/kube-proxy-worker' % NS]['configmap'] == '%s/%s' % (NS, backups['kube-proxy-worker']['metadata']['name'])
    assert returned['%s/kube-proxy-worker' % NS]['data']['config.conf'] == worker_text
    # Second run: nothing to do, nothing written, no new backup.
    assert again['changed'] is False and not again.get('failed'), output
    assert again['restart_needed'] == []
    assert len(_backups(double)) == 3


def test_names_limits_the_edit_and_udp_timeout_on_new_cluster(double, module_tasks):
    rv_before = _versions(double)
    task = _task('udp', {'mode': 'ipvs', 'ipvs': {'udpTimeout': '10s'}}, names=['kube-proxy-worker'], backup=False)
    rc, results, output = _run(module_tasks, double, task)
    assert rc == 0, output
    assert results['udp']['changed'] is True, output
    assert _conf(double, 'kube-proxy-worker')['ipvs']['udpTimeout'] == '10s'
    after = _versions(double)
    assert after['kube-proxy-master'] == rv_before['kube-proxy-master']
    assert after['kube-proxy'] == rv_before['kube-proxy']
    assert _backups(double) == []                                        # backup: false keeps no object ...
    assert results['udp']['backups'][0]['data']['config.conf']          # ... but still returns the old data


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
def test_bad_settings_fail_before_any_write(double, module_tasks, settings, word):
    rv_before = _versions(double)
    rc, results, output = _run(module_tasks, double, _task('bad', settings))
    bad = results['bad']
    assert bad['failed'] is True and bad['changed'] is False, output
    assert word in bad['msg'], bad['msg']
    assert _versions(double) == rv_before and _backups(double) == []
    assert rc == 0   # ignore_errors: the play itself completes


def test_broken_configmap_yaml_and_missing_names_write_nothing(double, module_tasks):
    cm = _cm(double, 'kube-proxy-master')
    cm['data']['config.conf'] = 'conntrack:\n  maxPerCore: [unclosed\n'
    double.store.update('configmaps', NS, 'kube-proxy-master', cm)
    rv_before = _versions(double)
    rc, results, output = _run(
        module_tasks, double,
        _task('broken', {'conntrack.maxPerCore': 65536}),
        _task('missing', {'conntrack.maxPerCore': 65536}, names=['kube-proxy-worker', 'no-such-proxy']),
    )
    assert rc == 0, output
    assert results['broken']['failed'] is True and 'kube-proxy-master' in results['broken']['msg'], output
    assert 'nothing was changed' in results['broken']['msg']
    assert results['missing']['failed'] is True and 'no-such-proxy' in results['missing']['msg']
    # The worker was valid, but no ConfigMap is written when any planned one is broken.
    assert _versions(double) == rv_before and _backups(double) == []


@pytest.mark.double_only('version: a v1.16.9-aliyun.1 server')
def test_udp_timeout_refused_on_clusters_older_than_1_18(make_double, module_tasks):
    old = make_double(version='v1.16.9-aliyun.1')
    rv_before = _versions(old)
    rc, results, output = _run(module_tasks, old, _task('old', {'ipvs.udpTimeout': '10s'}))
    assert rc == 0, output
    assert results['old']['failed'] is True and '1.18' in results['old']['msg'], output
    assert 'ipvs_timeouts' in results['old']['msg']
    assert _versions(old) == rv_before


@pytest.mark.double_only("fault: a concurrent write landed between the module's read and its write (the double's store.update wrapped), a "
                         'deterministic 409; a real server gives one only under a real race')
def test_conflict_is_retried_on_fresh_data_and_backup_holds_what_was_replaced(double, module_tasks):
    """A concurrent writer changes the worker ConfigMap between the module's read and its write."""
    store = double.store
    original_update = store.update
    lock = threading.Lock()
    state = {'conflicts': 0}
    yaml_rt = YAML()

    def racing_update(rt, namespace, name, obj, dry_run=False, **kwargs):
        rt_name = getattr(rt, 'plural', rt)
        if (rt_name == 'configmaps' and name == 'kube-proxy-worker' and not dry_run and state['conflicts'] == 0
                and obj.get('metadata', {}).get('resourceVersion')):
            with lock:
                state['conflicts'] += 1
                current = store.get('configmaps', namespace, name)
                text = current['data']['config.conf']
                doc = yaml_rt.load(text)
                doc['ipvs']['syncPeriod'] = '45s'         # someone else's edit, unrelated to ours
                buf = io.StringIO()
                yaml_rt.dump(doc, buf)
                current['data']['config.conf'] = buf.getvalue()
                original_update('configmaps', namespace, name, current)
        return original_update(rt, namespace, name, obj, dry_run=dry_run, **kwargs)

    store.update = racing_update
    try:
        task = _task('race', {'conntrack.maxPerCore': 65536}, names=['kube-proxy-worker'])
        rc, results, output = _run(module_tasks, double, task)
    finally:
        store.update = original_update
    assert rc == 0, output
    assert state['conflicts'] == 1, 'the concurrent write was not triggered'
    race = results['race']
    assert race['changed'] is True and not race.get('failed'), output
    conf = _conf(double, 'kube-proxy-worker')
    assert conf['conntrack']['maxPerCore'] == 65536          # our change ...
    assert conf['ipvs']['syncPeriod'] == '45s'              # ... on top of theirs, not over it
    backup = _backups(double)[0]
    assert 'syncPeriod: 45s' in backup['data']['config.conf']            # what was actually replaced
    assert 'syncPeriod: 45s' in race['backups'][0]['data']['config.conf']


def test_api_key_is_not_logged_and_bad_token_fails_cleanly(double, playbook):
    rc, results, output = _run(playbook, double, _task('bad token', {'conntrack.maxPerCore': 65536},
                                                       host=double.url, api_key='not-the-token', kubeconfig=None))
    assert rc == 0, output
    assert results['bad token']['failed'] is True and '401' in results['bad token']['msg'], output
    rc, results, output = _run(playbook, double, _task('token', {'conntrack.maxPerCore': 65536}, check=True,
                                                       host=double.url, api_key=double.token))
    assert rc == 0, output
    assert results['token']['changed'] is True and not results['token'].get('failed'), output
    assert double.token not in output
    assert 'not-the-token' not in output
    # An explicit api_key wins over the token of a kubeconfig that is also given (no silent fallback).
    rc, results, output = _run(playbook, double, _task('both', {'conntrack.maxPerCore': 65536}, check=True,
                                                       kubeconfig=str(double.kubeconfig_path), api_key='not-the-token'))
    assert rc == 0, output
    assert results['both']['failed'] is True and '401' in results['both']['msg'], output


@pytest.mark.double_only("version: needs a server older than 1.29 (the seed's v1.24.9); v1.37.2 accepts conntrack.udpTimeout and nftables")
def test_issue10_h5_fields_the_cluster_kube_proxy_rejects_fail_before_any_write(double, module_tasks):
    # The seed cluster is v1.24: conntrack.udpTimeout and mode nftables arrived in kube-proxy 1.29.
    rv_before = _versions(double)
    rc, results, output = _run(module_tasks, double, _task('udp', {'conntrack': {'udpTimeout': '30s'}}),
                               _task('nft', {'mode': 'nftables'}))
    assert rc == 0, output
    for name in ('udp', 'nft'):
        assert results[name]['failed'] is True and results[name]['changed'] is False, output
        assert 'older than 1.29' in results[name]['msg'] and 'nothing was changed' in results[name]['msg']
    assert _versions(double) == rv_before and _backups(double) == []
