"""netmedic.k8s.configmap_rollback (the rollback half of role verified_rollout), on the double and the real kube-apiserver.

The workflows exercise it end to end (tests/lab/test_ipvs_scheduler_role.py and the W-2/W-4/W-5
playbook tests); this file checks the module itself: read-only by default, check mode writes
nothing, restore puts the backed-up bytes back, a second restore changes nothing, bad input
fails before anything is read. Ported from tests/lab (issue 15 item 4): it works on a copy of the
seed's ``kube-proxy-worker`` ConfigMap in a namespace of its own (``scratch``), read back through the API.

The first run (an edit, a read and a restore in check mode) goes through ``ansible-playbook``; the
restore, its repeat and the bad inputs are about the module alone and run its ``main()`` in the test
process (``module_tasks``, tests/cluster/conftest.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.cluster.test_workflows import run_tasks as run_playbook_tasks  # noqa: E402

CM = 'kube-proxy-worker'
BACKUP_LABEL = 'netmedic.k8s/backup-of'


@pytest.fixture
def kube_proxy(writable, scratch):
    """The seed's kube-proxy-worker ConfigMap (read from kube-system) copied into ``scratch``; returns its data."""
    seed = writable.core.read_namespaced_config_map(CM, 'kube-system')
    writable.core.create_namespaced_config_map(scratch, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': CM},
                                                         'data': dict(seed.data)})
    return dict(seed.data)


def _data(cluster, namespace):
    return cluster.core.read_namespaced_config_map(CM, namespace).data


def _backups(cluster, namespace):
    cms = cluster.core.list_namespaced_config_map(namespace, label_selector='%s=%s' % (BACKUP_LABEL, CM)).items
    return sorted(c.metadata.name for c in cms)


def _rollback(name, namespace, args, **extra):
    return dict({'name': name, 'netmedic.k8s.configmap_rollback': dict({'names': [CM], 'namespace': namespace}, **args)}, **extra)


def test_read_check_restore_idempotent(writable, scratch, kube_proxy, module_tasks, tmp_path):
    cluster, original = writable, kube_proxy
    rc, results, output = run_playbook_tasks(cluster, tmp_path, [
        {'name': 'edit', 'netmedic.k8s.kube_proxy_config': {'names': [CM], 'namespace': scratch,
                                                            'settings': {'conntrack.maxPerCore': 131072}}},
        _rollback('read', scratch, {}),
        _rollback('check', scratch, {'restore': True}, check_mode=True),
    ])
    assert rc == 0, output[-4000:]
    edited, backups = _data(cluster, scratch), _backups(cluster, scratch)
    assert edited != original and len(backups) == 1, (cluster.server, backups)
    read = results['read']
    assert read['changed'] is False and read['restored'] == []
    assert read['configmaps'][0]['backup'] == '%s/%s' % (scratch, backups[0]) and read['newest_backup_time']
    check = results['check']
    assert check['changed'] is True and [r['name'] for r in check['restored']] == [CM]
    assert _data(cluster, scratch) == edited and _backups(cluster, scratch) == backups   # check mode wrote nothing

    rc, results, output = module_tasks(cluster, [_rollback('restore', scratch, {'restore': True})])
    assert rc == 0, output
    assert results['restore']['changed'] is True and _data(cluster, scratch) == original   # the exact backed-up bytes
    assert len(_backups(cluster, scratch)) == 2                                      # what the restore replaced is kept too

    rc, results, output = module_tasks(cluster, [_rollback('again', scratch, {'restore': True})])
    assert rc == 0, output
    assert results['again']['changed'] is False and _data(cluster, scratch) == original


@pytest.mark.parametrize('args, message', [
    ({'names': []}, 'names must list at least one ConfigMap'),
    ({'names': ['']}, 'names must list at least one ConfigMap'),
    ({'names': ['no-such-configmap'], 'restore': True}, 'not found'),
])
def test_bad_input_fails_before_anything(writable, scratch, kube_proxy, module_tasks, args, message):
    cluster = writable
    rc, results, output = module_tasks(cluster, [{'name': 'bad', 'netmedic.k8s.configmap_rollback': dict({'namespace': scratch}, **args)}])
    assert rc != 0 and message in results['bad']['msg'], output
    assert results['bad']['changed'] is False and _data(cluster, scratch) == kube_proxy and _backups(cluster, scratch) == []
