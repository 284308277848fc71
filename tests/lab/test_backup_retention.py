"""netmedic.k8s.backup_retention against the API double (issue 10 hole 11: backup ConfigMaps in kube-system
were never pruned).  State is read back as admin from the double's store.

Check mode with ``--diff`` goes through ``ansible-playbook`` (``playbook``); the other cases are about the
module alone and run its ``main()`` in the test process (``module_tasks``, tests/harness.py: issue 12), over
HTTP through the real client as in a playbook run."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml

DOUBLE_ONLY = ("store: back-dates the backup ConfigMaps' creationTimestamp in the double's store; a real API server sets creationTimestamp itself "
               "and ignores the client's")

ROOT = Path(__file__).resolve().parents[2]
NS = 'kube-system'
SRC = 'kube-proxy-worker'
DAY = datetime.timedelta(days=1)


def _stamp(when):
    return when.strftime('%Y-%m-%dT%H:%M:%SZ')


def _backup(double, source, when, rollback=False, managed=True, name=None):
    """A backup ConfigMap as the edit service writes it, created ``when`` (set in the store directly)."""
    name = name or '%s-netmedic-backup-%s' % (source, when.strftime('%Y%m%dt%H%M%Sz'))
    labels = {'netmedic.k8s/backup-of': source}
    if managed:
        labels['app.kubernetes.io/managed-by'] = 'netmedic'
    annotations = {'netmedic.k8s/resource-version': '1'}
    if rollback:
        annotations['netmedic.k8s/made-by-rollback'] = 'true'
    double.store.create('configmaps', NS, {'apiVersion': 'v1', 'kind': 'ConfigMap',
                                           'metadata': {'name': name, 'labels': labels, 'annotations': annotations},
                                           'data': {'config.conf': 'mode: ipvs\n'}})
    with double.store.lock:
        stored = next(o for o in double.store.iter_objects('configmaps', NS) if o['metadata']['name'] == name)
        stored['metadata']['creationTimestamp'] = _stamp(when)
    return name


def _names(double):
    cms, _rv = double.store.list('configmaps', NS)
    return {c['metadata']['name'] for c in cms}


@pytest.fixture
def seeded(make_double):
    """Five backups of kube-proxy-worker (the newest made by a rollback), two of kube-proxy-master, and
    two ConfigMaps that only look like backups (no managed-by label; a name outside the scheme)."""
    double = make_double(audit=True)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    worker = [_backup(double, SRC, now - d * DAY) for d in (40, 30, 20, 10)]
    worker.append(_backup(double, SRC, now - DAY, rollback=True))
    master = [_backup(double, 'kube-proxy-master', now - d * DAY) for d in (50, 45)]
    foreign = [_backup(double, SRC, now - 90 * DAY, managed=False, name='%s-netmedic-backup-19990101t000000z' % SRC),
               _backup(double, SRC, now - 90 * DAY, name='hand-made-copy')]
    double.seeded = {'worker': worker, 'master': master, 'foreign': foreign}
    return double


def _run(runner, double, check=False, **options):
    """One ``prune`` task through ``runner``: the ``playbook`` fixture (ansible-playbook) or ``module_tasks``."""
    task = {'name': 'prune', 'netmedic.k8s.backup_retention': options}
    if check:
        task['check_mode'] = True
        task['diff'] = True
    return runner(double, yaml.safe_dump([task]), extra_env={'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections')})


def test_issue10_h11_check_mode_lists_what_would_go_and_deletes_nothing(seeded, playbook):
    before = _names(seeded)
    rc, results, output = _run(playbook, seeded, check=True, keep_count=1)
    assert rc == 0, output
    res = results['prune']
    w = seeded.seeded['worker']
    # The newest (a rollback's backup) and the newest restorable one (the rollback target) are kept.
    assert [d['configmap'] for d in res['deleted'] if d['of'] == SRC] == ['%s/%s' % (NS, n) for n in w[:3]]
    assert [d['configmap'] for d in res['deleted'] if d['of'] != SRC] == ['%s/%s' % (NS, seeded.seeded['master'][0])]
    kept = {k['configmap'].split('/')[1]: k['reason'] for k in res['kept']}
    assert kept[w[4]] == 'newest backup' and kept[w[3]].startswith('rollback target')
    assert kept[seeded.seeded['master'][1]] == 'newest backup'
    assert res['changed'] is True and res['diff'] and res['check_mode'] is True
    assert _names(seeded) == before


def test_issue10_h11_apply_keeps_newest_rollback_target_and_foreign_then_idempotent(seeded, module_tasks):
    rc, results, output = _run(module_tasks, seeded, keep_count=1)
    assert rc == 0, output
    w, m = seeded.seeded['worker'], seeded.seeded['master']
    names = _names(seeded)
    assert w[3] in names and w[4] in names                       # rollback target and newest survive keep_count=1
    assert not set(w[:3]) & names
    assert m[1] in names and m[0] not in names
    assert set(seeded.seeded['foreign']) <= names                # never a candidate
    assert SRC in names                                          # the live ConfigMap itself
    rc, results, output = _run(module_tasks, seeded, keep_count=1)
    assert rc == 0 and results['prune']['changed'] is False and results['prune']['deleted'] == [], output


def test_issue10_h11_age_limit_and_names_filter(seeded, module_tasks):
    rc, _results, output = _run(module_tasks, seeded, keep_days=15, names=[SRC])
    assert rc == 0, output
    names = _names(seeded)
    w = seeded.seeded['worker']
    assert not set(w[:3]) & names and {w[3], w[4]} <= names
    assert set(seeded.seeded['master']) <= names                # not in names: untouched although old


@pytest.mark.parametrize('options, message', [
    ({}, 'set keep_count and/or keep_days'),
    ({'keep_count': -1}, 'keep_count must be a whole number'),
    ({'keep_count': 0, 'keep_days': 0}, 'set keep_count and/or keep_days'),
    ({'keep_count': 2, 'names': ['']}, 'names, when given'),
])
def test_bad_input_fails_before_any_api_call(seeded, module_tasks, options, message):
    before = len(seeded.audit)
    rc, results, output = _run(module_tasks, seeded, **options)
    assert rc != 0 and message in results['prune']['msg'], output
    assert [e for e in seeded.audit[before:] if e['resource'] == 'configmaps'] == []


def test_runs_with_its_rbac_role_and_read_only_role_gets_403(seeded, module_tasks, as_identity):
    before = _names(seeded)
    reader = as_identity(seeded, ROOT / 'rbac' / 'read-only.yml')
    rc, results, output = _run(module_tasks, reader, keep_count=1)
    assert rc != 0 and 'HTTP 403' in results['prune']['msg'], output
    assert _names(seeded) == before
    pruner = as_identity(seeded, ROOT / 'rbac' / 'backup_retention.yml')
    rc, results, output = _run(module_tasks, pruner, keep_count=1)
    assert rc == 0, (output, [e for e in seeded.audit if not e['allowed']])
    assert len(results['prune']['deleted']) == 4
