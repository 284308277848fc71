"""netmedic.k8s.kube_proxy_config over HTTP against the API double (catalog C-0 ... C-3): the double-only cases.

The portable ones (check, apply, backups, bad settings, a broken config.conf, tokens) run on both servers in
tests/cluster/test_kube_proxy_config.py (issue 15); what stays here needs an old server version or a forced 409.

The double stores what a real API server would; what is asserted is read back from its store.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
import yaml
from ruamel.yaml import YAML

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
