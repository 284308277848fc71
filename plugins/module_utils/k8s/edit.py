# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way netmedic changes an object in the cluster (ConfigMaps and DaemonSets; issue #13).

``prepare`` reads the object and runs the module's pure planner on a copy of it.  ``run`` then
sends the planned object as a server-side dry run (check mode stops here), keeps what is about to
be replaced in a backup ConfigMap (annotated with the read's ``resourceVersion``), writes with
that ``resourceVersion`` as the precondition and reads the object back: the stored object must
need no further change.  When another writer got there first (HTTP 409) the object is read again,
planned again and backed up again - into the same backup ConfigMap, so the backup always holds
exactly what the write replaced (issue #10 hole 6).

A planner is ``planner(obj) -> (new_obj, changes)``: ``obj`` is a private deep copy of the API
object (a dict); ``changes`` is a list of ``{'path', 'before', 'after'}`` (empty: nothing to do).
It may raise ``ValueError`` (the domain errors subclass it) to refuse.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import time

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client

BACKUP_LABEL = 'netmedic.k8s/backup-of'
RV_ANNOTATION = 'netmedic.k8s/resource-version'
# sha256 of what netmedic wrote over the backed-up data: a rollback restores only while the live object
# still holds exactly that (nobody edited it since), also on a later run (issue 9 finding 5).
WRITTEN_ANNOTATION = 'netmedic.k8s/written-sha256'
# On a backup made by a rollback (what the rollback replaced: the change being undone). A rollback never
# restores such a backup, or a second rollback would re-apply the change it undid (see restorable_backups).
ROLLBACK_ANNOTATION = 'netmedic.k8s/made-by-rollback'
MANAGED_BY = ('app.kubernetes.io/managed-by', 'netmedic')
CONFLICT_RETRIES = 3
# Server-set fields left out of a DaemonSet backup (the backup is something to re-apply).
_STRIP = ('resourceVersion', 'uid', 'creationTimestamp', 'generation', 'managedFields', 'selfLink')


class EditFailed(Exception):
    """The edit did not end as planned; ``changed`` says whether anything was written (a backup counts)."""

    def __init__(self, msg, changed):
        super(EditFailed, self).__init__(msg)
        self.msg = msg
        self.changed = changed


def backup_name(name, now, attempt=0):
    """``<name>-netmedic-backup-<UTC time>``, with ``-<n>`` when that name is already taken."""
    base = '%s-netmedic-backup-%s' % (name, now.strftime('%Y%m%dt%H%M%Sz'))
    return base if not attempt else '%s-%d' % (base, attempt + 1)


def backup_data(obj):
    """What a backup ConfigMap holds for ``obj``: a ConfigMap's own ``data``/``binaryData``, or the
    DaemonSet as JSON (key ``daemonset.json``) without status and server-set metadata."""
    if obj['kind'] == 'ConfigMap':
        return {'data': dict(obj.get('data') or {}), 'binaryData': dict(obj.get('binaryData') or {})}
    saved = copy.deepcopy(obj)
    saved.pop('status', None)
    for key in _STRIP:
        saved['metadata'].pop(key, None)
    return {'data': {'%s.json' % obj['kind'].lower(): json.dumps(saved, indent=2, sort_keys=True) + '\n'}, 'binaryData': {}}


def content_digest(obj):
    """sha256 of what a backup of ``obj`` would hold (``backup_data``): equal digests, equal data."""
    text = json.dumps(backup_data(dict(obj, kind=obj.get('kind', 'ConfigMap'))), sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def backup_body(obj, name, written=None, rollback=False):
    """The backup ConfigMap (named ``name``) for ``obj`` as read: labelled, annotated with its resourceVersion
    and, with ``written`` (the object about to replace it), that object's ``content_digest``."""
    meta = obj['metadata']
    body = {'apiVersion': 'v1', 'kind': 'ConfigMap',
            'metadata': {'name': name, 'namespace': meta['namespace'],
                         'labels': {MANAGED_BY[0]: MANAGED_BY[1], BACKUP_LABEL: meta['name']},
                         'annotations': {RV_ANNOTATION: str(meta.get('resourceVersion'))}}}
    if written is not None:
        body['metadata']['annotations'][WRITTEN_ANNOTATION] = content_digest(written)
    if rollback:
        body['metadata']['annotations'][ROLLBACK_ANNOTATION] = 'true'
    saved = backup_data(obj)
    body['data'] = saved['data']
    if saved['binaryData']:
        body['binaryData'] = saved['binaryData']
    return body


def data_planner(plan_data):
    """A planner for a ConfigMap from ``plan_data(data) -> (new_data, changes)`` working on its ``data``."""

    def planner(cm):
        new, changes = plan_data(dict(cm.get('data') or {}))
        cm['data'] = new
        return cm, changes

    return planner


def data_diff(result, before, after, header):
    """One diff per ConfigMap data key that differs."""
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            result.add_diff(before.get(key) or '', after.get(key) or '', '%s %s' % (header, key))


def prepare(cluster, kind, namespace, name, planner, create=None):
    """Read and plan.  ``create``: the object to plan from when it does not exist (else a 404 K8sError).

    Returns the edit state: ``{'kind', 'namespace', 'name', 'object', 'planned', 'changes', 'create'}``
    (``object`` is None when it is to be created).
    """
    obj = cluster.get(kind, namespace, name)
    if obj is None and create is None:
        raise k8s_client.K8sError('%s %s/%s not found' % (kind, namespace, name), status=404, reason='NotFound')
    return plan_object(obj, planner, kind, namespace, name, create)


def plan_object(obj, planner, kind, namespace, name, create=None):
    """The edit state for an object already read (pure): ``prepare`` without the read."""
    if obj is not None:
        obj.setdefault('kind', kind)
        obj.setdefault('metadata', {}).setdefault('namespace', namespace)
    base = obj if obj is not None else create
    planned, changes = planner(copy.deepcopy(base))
    if obj is None and not changes:
        changes = [{'path': '', 'before': None, 'after': '(created)'}]
    return {'kind': kind, 'namespace': namespace, 'name': name, 'object': obj, 'planned': planned,
            'changes': list(changes), 'create': create}


def _write(cluster, state, dry_run):
    body = copy.deepcopy(state['planned'])
    if state['object'] is None:
        body['metadata'].pop('resourceVersion', None)
        return cluster.create(body, dry_run=dry_run)
    # The precondition: the object exactly as it was read (and backed up).
    body['metadata']['resourceVersion'] = state['object']['metadata']['resourceVersion']
    return cluster.replace(body, dry_run=dry_run)


def backups_of(cluster, namespace, name):
    """The backup ConfigMaps of ConfigMap/DaemonSet ``name``, oldest first (the last one is the newest)."""
    found = k8s_client.list_objects(cluster, 'ConfigMap', namespace, label_selector='%s=%s' % (BACKUP_LABEL, name))
    return sorted(found, key=lambda b: (b['metadata'].get('creationTimestamp') or '', len(b['metadata']['name']),
                                        b['metadata']['name']))


def restorable_backups(backups):
    """``backups`` (as from :func:`backups_of`) without those a rollback made: the ones to roll back to."""
    return [b for b in backups if not (b['metadata'].get('annotations') or {}).get(ROLLBACK_ANNOTATION)]


def _save_backup(cluster, obj, previous, now, written=None, rollback=False):
    """Create the backup ConfigMap, or (after a 409) overwrite this run's own backup with the fresh read."""
    if previous is not None:
        body = backup_body(obj, previous['metadata']['name'], written, rollback)
        body['metadata']['resourceVersion'] = previous['metadata']['resourceVersion']
        return cluster.replace(body)
    for attempt in range(5):
        try:
            return cluster.create(backup_body(obj, backup_name(obj['metadata']['name'], now, attempt), written, rollback))
        except k8s_client.K8sError as e:
            if e.status != 409 or attempt == 4:
                raise
    raise AssertionError('unreachable')  # pragma: no cover


def run(cluster, state, planner, check_mode=False, backup=True, backups=None, describe=None,
        retries=CONFLICT_RETRIES, sleep=time.sleep, now=None, rollback=False):
    """Dry run, then (not in check mode) back up, write and verify; re-plans on 409.

    ``backups``: the result's list; the backup entry ``{'of', 'configmap', 'resource_version', ...}``
    (plus ``describe(obj)``) goes in before the write and is updated in place when a 409 makes the
    edit start again.  Returns the final state with ``changed`` and ``stored`` (the object read back,
    or the dry run's answer in check mode).  Raises EditFailed; ``ValueError`` from the planner on a
    re-read becomes EditFailed too.  ``rollback``: the write undoes an earlier one, so its backup is
    marked (ROLLBACK_ANNOTATION) and never chosen as a rollback target.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    backups = backups if backups is not None else []
    entry = None
    saved = None          # this run's backup ConfigMap as stored
    wrote = False
    step = 'dry run'
    attempt = 0
    label = '%s %s/%s' % (state['kind'], state['namespace'], state['name'])
    try:
        while True:
            try:
                if not state['changes']:
                    if saved is not None:
                        # Another writer made our change meanwhile: nothing was replaced, nothing to keep.
                        cluster.delete('ConfigMap', saved['metadata']['namespace'], saved['metadata']['name'],
                                       uid=saved['metadata'].get('uid'))
                        saved = None
                    if entry is not None:
                        backups.remove(entry)
                        entry = None
                    state.update(changed=False, stored=state['object'])
                    return state
                step = 'dry run'
                answer = _write(cluster, state, dry_run=True)
                if check_mode:
                    state.update(changed=True, stored=answer)
                    return state
                obj = state['object']
                if obj is not None:
                    step = 'backup'
                    if backup:
                        saved = _save_backup(cluster, obj, saved, now, state['planned'], rollback)
                    if entry is None:
                        entry = {}
                        backups.append(entry)
                    entry.clear()
                    entry.update({'of': '%s/%s' % (state['namespace'], state['name']),
                                  'resource_version': obj['metadata'].get('resourceVersion')})
                    if saved is not None:
                        entry['configmap'] = '%s/%s' % (saved['metadata']['namespace'], saved['metadata']['name'])
                    entry.update(describe(obj) if describe else {})
                step = 'write'
                _write(cluster, state, dry_run=False)
                wrote = True
                break
            except k8s_client.K8sError as e:
                if e.status != 409 or attempt >= retries:
                    raise
                attempt += 1
                sleep(min(2.0, 0.2 * attempt))
                step = 're-read after a conflict'
                state = prepare(cluster, state['kind'], state['namespace'], state['name'], planner, state['create'])
        step = 'read-back'
        stored = cluster.get(state['kind'], state['namespace'], state['name'])
        if stored is None:
            raise k8s_client.K8sError('%s disappeared after the write' % label)
        _again, left = planner(copy.deepcopy(stored))
        if left:
            raise k8s_client.K8sError('%s does not show the change after writing it (still to change: %s)'
                                      % (label, ', '.join(str(c.get('path')) for c in left)))
        state.update(changed=True, stored=stored)
        return state
    except (k8s_client.K8sError, ValueError) as e:
        msg = e.msg if isinstance(e, k8s_client.K8sError) else '%s: %s' % (label, e)
        if step == 'dry run' and isinstance(e, k8s_client.K8sError):
            msg = 'the API server rejected the planned change (dry run): %s' % msg
        elif step != 'read-back':
            msg = '%s (at the %s step)' % (msg, step)
        if not wrote and saved is None:
            raise EditFailed('%s (nothing was changed)' % msg, changed=False)
        raise EditFailed('%s. %s; backup: %s' % (msg, 'The object was written' if wrote else 'The object was not written',
                                                 entry.get('configmap', 'returned data only') if entry else 'none'),
                         changed=True)
