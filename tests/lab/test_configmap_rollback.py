"""netmedic.k8s.configmap_rollback (the rollback half of role verified_rollout) against the API double.

The workflows exercise it end to end (tests/lab/test_ipvs_scheduler_role.py and the W-2/W-4/W-5
playbook tests); this file checks the module itself: read-only by default, check mode writes
nothing, restore puts the backed-up bytes back, a second restore changes nothing, bad input
fails before anything is read.

The first run (an edit, a read and a restore in check mode) goes through ``ansible-playbook`` (``playbook``);
the restore, its repeat and the bad inputs are about the module alone and run its ``main()`` in the test
process (``module_tasks``, tests/harness.py: issue 12).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

DOUBLE_ONLY = "portable: an edit, its backup ConfigMap and the restore of the seed's kube-proxy ConfigMap; nothing the real server does differently"

COLLECTIONS = str(Path(__file__).resolve().parents[2] / 'collections')
NS = 'kube-system'
CM = 'kube-proxy-worker'


@pytest.fixture
def run(playbook):
    return lambda double, tasks: playbook(double, yaml.safe_dump(tasks), extra_env={'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS})


def _data(double):
    return double.store.get('configmaps', NS, CM)['data']


def _backups(double):
    cms, _rv = double.store.list('configmaps', NS, label_selector='netmedic.k8s/backup-of=%s' % CM)
    return sorted(c['metadata']['name'] for c in cms)


def _rollback(name, args, **extra):
    return dict({'name': name, 'netmedic.k8s.configmap_rollback': dict({'names': [CM]}, **args)}, **extra)


def test_read_check_restore_idempotent(double, run, module_tasks):
    original = _data(double)
    rc, results, output = run(double, [
        {'name': 'edit', 'netmedic.k8s.kube_proxy_config': {'names': [CM], 'settings': {'conntrack.maxPerCore': 131072}}},
        _rollback('read', {}),
        _rollback('check', {'restore': True}, check_mode=True),
    ])
    assert rc == 0, output
    edited, backups = _data(double), _backups(double)
    assert edited != original and len(backups) == 1
    read = results['read']
    assert read['changed'] is False and read['restored'] == []
    assert read['configmaps'][0]['backup'] == '%s/%s' % (NS, backups[0]) and read['newest_backup_time']
    check = results['check']
    assert check['changed'] is True and [r['name'] for r in check['restored']] == [CM]
    assert _data(double) == edited and _backups(double) == backups            # check mode wrote nothing

    rc, results, output = module_tasks(double, [_rollback('restore', {'restore': True})])
    assert rc == 0, output
    assert results['restore']['changed'] is True and _data(double) == original   # the exact backed-up bytes
    assert len(_backups(double)) == 2                                          # what the restore replaced is kept too

    rc, results, output = module_tasks(double, [_rollback('again', {'restore': True})])
    assert rc == 0, output
    assert results['again']['changed'] is False and _data(double) == original


@pytest.mark.parametrize('args, message', [
    ({'names': []}, 'names must list at least one ConfigMap'),
    ({'names': ['']}, 'names must list at least one ConfigMap'),
    ({'names': ['no-such-configmap'], 'restore': True}, 'not found'),
])
def test_bad_input_fails_before_anything(double, module_tasks, args, message):
    before = _data(double)
    rc, results, output = module_tasks(double, [{'name': 'bad', 'netmedic.k8s.configmap_rollback': args}])
    assert rc != 0 and message in results['bad']['msg'], output
    assert results['bad']['changed'] is False and _data(double) == before and _backups(double) == []
