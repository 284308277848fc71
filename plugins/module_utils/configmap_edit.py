# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The safe ConfigMap edit every cluster module shares (flannel_config, terway_config).

read -> pure plan -> diff -> check mode (server-side dry run) -> backup -> write with the
object's resourceVersion (a 409 re-reads and re-plans, see ``k8s_client.update_configmap_data``)
-> read back and re-plan: the stored object must need no further change.
"""

from __future__ import annotations

import datetime

from ansible_collections.netmedic.k8s.plugins.module_utils import k8s_client

BACKUP_LABEL = 'netmedic.k8s/backup-of'


class EditFailed(Exception):
    """Raised when a write was attempted and did not end as planned (``changed`` tells whether anything was written)."""

    def __init__(self, msg, changed):
        super(EditFailed, self).__init__(msg)
        self.msg = msg
        self.changed = changed


def backup_name(name, now):
    return '%s-netmedic-backup-%s' % (name, now.strftime('%Y%m%dt%H%M%Sz'))


def data_diff(result, before, after, header):
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            result.add_diff(before.get(key) or '', after.get(key) or '', '%s %s' % (header, key))


def plan_configmap(cluster, namespace, name, plan_data):
    """``(cm, old_data, new_data, changes)``; a missing ConfigMap raises K8sError (404)."""
    cm = cluster.get_configmap(namespace, name)
    if cm is None:
        raise k8s_client.K8sError('ConfigMap %s/%s not found' % (namespace, name), status=404, reason='NotFound')
    old = dict(cm.data or {})
    new, changes = plan_data(dict(old))
    return cm, old, new, changes


def dry_run(cluster, cm, new_data):
    cm.data = dict(new_data)
    cluster.replace_configmap(cm, dry_run=True)


def apply(cluster, cm, old_data, plan_data, backup, result):
    """Back up, write (409-safe), verify.  Returns the stored ConfigMap; raises EditFailed."""
    namespace, name = cm.metadata.namespace, cm.metadata.name
    now = datetime.datetime.now(datetime.timezone.utc)
    entry = {'of': '%s/%s' % (namespace, name), 'data': dict(old_data)}
    wrote_backup = wrote_data = False
    try:
        if backup:
            bname = backup_name(name, now)
            cluster.create_configmap(namespace, {
                'apiVersion': 'v1', 'kind': 'ConfigMap',
                'metadata': {'name': bname, 'namespace': namespace,
                             'labels': {'app.kubernetes.io/managed-by': 'netmedic', BACKUP_LABEL: name},
                             'annotations': {'netmedic.k8s/resource-version': str(cm.metadata.resource_version)}},
                'data': dict(old_data),
            })
            entry['configmap'] = '%s/%s' % (namespace, bname)
            wrote_backup = True
        result.backups.append(entry)

        def edit(data):
            new, _changes = plan_data(dict(data))
            return new

        _old, _new, written = k8s_client.update_configmap_data(cluster, namespace, name, edit)
        wrote_data = written is not None
        stored = cluster.get_configmap(namespace, name)
        if stored is None:
            raise k8s_client.K8sError('ConfigMap %s/%s disappeared after the write' % (namespace, name))
        _new, left = plan_data(dict(stored.data or {}))
        if left:
            raise k8s_client.K8sError('ConfigMap %s/%s does not show the change after writing it (still to change: %s)'
                                      % (namespace, name, ', '.join(c['path'] for c in left)))
        return stored
    except (k8s_client.K8sError, ValueError) as e:
        msg = e.msg if isinstance(e, k8s_client.K8sError) else str(e)
        raise EditFailed('ConfigMap %s/%s: %s. Backup: %s' % (namespace, name, msg, entry.get('configmap', 'returned data only')),
                         changed=wrote_backup or wrote_data)
