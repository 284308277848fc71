# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention of the backup ConfigMaps the edit service writes (issue 10 hole 11); pure planner.

Only ConfigMaps that are netmedic backups by every sign (``app.kubernetes.io/managed-by=netmedic``,
``netmedic.k8s/backup-of=<source>``, and a name ``<source>-netmedic-backup-...``, see ``edit.py``)
are ever candidates.  Per source object the newest backup and the newest one a rollback would
restore (``edit.restorable_backups``) are always kept, and so is any backup whose creation time
cannot be read (uncertainty keeps it).  Of the rest, those beyond the ``keep_count`` newest or
older than ``keep_days`` are removed (``reportfiles.plan_retention``, the same rule as the report
and run-directory retention).
"""

from __future__ import annotations

import datetime

from ansible_collections.netmedic.k8s.plugins.module_utils import reportfiles
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import edit


def created(cm):
    """The backup's ``creationTimestamp`` as an aware datetime, or None when absent or unreadable."""
    text = (cm.get('metadata') or {}).get('creationTimestamp')
    try:
        return datetime.datetime.strptime(str(text), '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def source_of(cm):
    """The object a ConfigMap is a netmedic backup of, or None when it is not one by every sign."""
    meta = cm.get('metadata') or {}
    labels = meta.get('labels') or {}
    source = labels.get(edit.BACKUP_LABEL)
    if not source or labels.get(edit.MANAGED_BY[0]) != edit.MANAGED_BY[1]:
        return None
    if not str(meta.get('name', '')).startswith('%s-netmedic-backup-' % source):
        return None
    return source


def plan(backups, now, keep_count=0, keep_days=0, sources=None):
    """What to delete and what to keep, with the reason for each.

    ``backups``: ConfigMaps as listed (foreign ones are ignored); ``sources``: only backups of these
    objects (None: all).  Returns ``(delete, keep)``, lists of
    ``{'configmap': ns/name, 'of', 'created', 'reason'}`` (oldest first).  Raises ValueError on
    bad limits or when neither limit is set.
    """
    if keep_count is None:
        keep_count = 0
    if keep_days is None:
        keep_days = 0
    for label, value in (('keep_count', keep_count), ('keep_days', keep_days)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError('%s must be a whole number of 0 or more, got %r' % (label, value))
    if not keep_count and not keep_days:
        raise ValueError('set keep_count and/or keep_days (both 0 or unset would keep everything: nothing to decide)')
    by_source = {}
    for cm in backups:
        source = source_of(cm)
        if source is None or (sources is not None and source not in sources):
            continue
        by_source.setdefault(source, []).append(cm)
    delete, keep = [], []
    for source in sorted(by_source):
        found = sorted(by_source[source], key=lambda b: (b['metadata'].get('creationTimestamp') or '',
                                                         len(b['metadata']['name']), b['metadata']['name']))
        restorable = edit.restorable_backups(found)
        protect = {found[-1]['metadata']['name']: 'newest backup'}
        if restorable:
            protect.setdefault(restorable[-1]['metadata']['name'], 'rollback target (newest backup not made by a rollback)')
        for cm in found:
            if created(cm) is None:
                protect.setdefault(cm['metadata']['name'], 'creation time unknown')
        remove = set(reportfiles.plan_retention([(b['metadata']['name'], created(b)) for b in found], now,
                                                keep_count=keep_count, keep_days=keep_days, protect=protect))
        for cm in found:
            meta = cm['metadata']
            entry = {'configmap': '%s/%s' % (meta.get('namespace'), meta['name']), 'of': source,
                     'created': meta.get('creationTimestamp'), 'uid': meta.get('uid')}
            if meta['name'] in remove:
                entry['reason'] = 'beyond keep_count=%d or older than keep_days=%d' % (keep_count, keep_days)
                delete.append(entry)
            else:
                entry['reason'] = protect.get(meta['name'], 'within keep_count/keep_days')
                keep.append(entry)
    return delete, keep
