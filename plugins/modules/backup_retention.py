#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: backup_retention
short_description: Prune netmedic's backup ConfigMaps by count and age, never the newest or the rollback target
version_added: 0.2.0
description:
  - Every netmedic cluster edit (C(kube_proxy_config), C(flannel_config), C(terway_config), C(ip_masq_agent),
    C(configmap_rollback) restores) first keeps what it replaces in a backup ConfigMap
    C(<name>-netmedic-backup-<time>) labelled C(netmedic.k8s/backup-of=<name>). Nothing removed them (issue 10 hole 11,
    spine of catalog B(W-2) ... B(W-5)); this module does, per source object.
  - Only ConfigMaps that are netmedic backups by every sign are candidates - label C(app.kubernetes.io/managed-by=netmedic),
    label C(netmedic.k8s/backup-of), and a name starting with C(<backup-of>-netmedic-backup-). Anything else is never
    touched.
  - Per source object it always keeps the newest backup, the newest backup a rollback would restore (one not made
    by a rollback, see M(netmedic.k8s.configmap_rollback)), and any backup whose creation time cannot be read. Of the
    others, those beyond the O(keep_count) newest or older than O(keep_days) are deleted.
  - Each deletion carries the backup's C(uid) as a precondition (a ConfigMap re-created under the same name is left
    alone) and the list is read back afterwards; a backup still there fails the module.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - netmedic.k8s.k8s_auth
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Lists and decides the same way; RV(deleted) names what would be deleted; nothing is deleted.
  diff_mode:
    support: full
    details: The backup names per source object, before and after.
  platform:
    platforms: posix
    support: full
    details: Runs where the C(kubernetes) client is installed, usually the controller.
options:
  namespace:
    description: Namespace of the backups (the namespace of the objects netmedic edited).
    type: str
    default: kube-system
  names:
    description: Only the backups of these objects (for example C(kube-proxy-worker)); default every netmedic backup in O(namespace).
    type: list
    elements: str
  keep_count:
    description:
      - Keep at most this many newest backups per source object (the protected ones above are kept in any case).
      - C(0) or unset - no limit by count. At least one of O(keep_count) and O(keep_days) must be above C(0).
    type: int
  keep_days:
    description:
      - Delete backups older than this many days (by C(creationTimestamp)); the protected ones are kept in any case.
      - C(0) or unset - no limit by age.
    type: int
seealso:
  - module: netmedic.k8s.configmap_rollback
  - module: netmedic.k8s.kube_proxy_config
notes:
  - RBAC - C(list) and C(delete) on C(configmaps) in O(namespace); the manifest is C(rbac/backup_retention.yml)
    (docs/rbac.md).
  - Node-side backups (M(netmedic.k8s.cni_ipam_gc) run directories) have their own retention on the node; see
    docs/backup_retention.md.
"""

EXAMPLES = r"""
- name: What would be pruned (keep the 5 newest backups per ConfigMap, none older than 30 days)?
  netmedic.k8s.backup_retention:
    keep_count: 5
    keep_days: 30
  check_mode: true
  register: prune

- name: Prune the kube-proxy backups to the 3 newest
  netmedic.k8s.backup_retention:
    names: [kube-proxy-worker, kube-proxy-master, kube-proxy]
    keep_count: 3
"""

RETURN = r"""
deleted:
  description: The backups deleted (in check mode, that would be), oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    configmap:
      description: C(namespace/name) of the backup.
      type: str
      returned: always
    of:
      description: The object it is a backup of.
      type: str
      returned: always
    created:
      description: Its creationTimestamp.
      type: str
      returned: always
    reason:
      description: Why it goes (or, in RV(kept), why it stays - C(newest backup), C(rollback target ...),
        C(creation time unknown), C(within keep_count/keep_days)).
      type: str
      returned: always
  sample: [{"configmap": "kube-system/kube-proxy-worker-netmedic-backup-20261101t100000z", "of": "kube-proxy-worker",
            "created": "2026-11-01T10:00:00Z", "reason": "beyond keep_count=3 or older than keep_days=0"}]
kept:
  description: The backups kept, with the reason, in the same shape as RV(deleted).
  returned: always
  type: list
  elements: dict
namespace:
  description: Where the backups were looked for.
  returned: always
  type: str
  sample: kube-system
check_mode:
  description: True when the module ran in check mode (nothing was deleted).
  returned: always
  type: bool
catalog:
  description: Catalog IDs this module serves (the rollout spine whose backups it prunes).
  returned: always
  type: list
  elements: str
  sample: ["W-2", "W-3", "W-4", "W-5"]
"""

import datetime

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import edit, retention
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s.edit_module import ClusterModule


def _listing(entries):
    out = {}
    for e in entries:
        out.setdefault(e['of'], []).append(e['configmap'].split('/', 1)[1])
    return out


def _public(entries):
    return [{k: e[k] for k in ('configmap', 'of', 'created', 'reason')} for e in entries]


class BackupRetention(ClusterModule):
    catalog = ['W-2', 'W-3', 'W-4', 'W-5']
    options = dict(
        namespace=dict(type='str', default='kube-system'),
        names=dict(type='list', elements='str'),
        keep_count=dict(type='int'),
        keep_days=dict(type='int'),
    )

    refusal_carries_result = True  # a refusal returns the result keys (deleted, kept, namespace, check_mode)

    def validate(self):
        p = self.params
        self.result.extra.update({'deleted': [], 'kept': [], 'namespace': p['namespace'], 'check_mode': self.check_mode})
        self.now = datetime.datetime.now(datetime.timezone.utc)
        if p['names'] is not None and (not p['names'] or any(not n for n in p['names'])):
            self.refuse('names, when given, must list object names (nothing was read or changed)')
        try:
            retention.plan([], self.now, p['keep_count'], p['keep_days'])      # validates the limits before any API call
        except ValueError as e:
            self.refuse('%s (nothing was read or changed)' % e)

    def read(self):
        self.cluster = k8s_client.Cluster(self.params)
        self.listed = k8s_client.list_objects(self.cluster, 'ConfigMap', self.params['namespace'], label_selector=edit.BACKUP_LABEL)

    def plan(self):
        p = self.params
        self.delete, self.keep = retention.plan(self.listed, self.now, p['keep_count'], p['keep_days'],
                                                sources=set(p['names']) if p['names'] is not None else None)

    def report(self):
        result, ns = self.result, self.params['namespace']
        result.extra['kept'] = _public(self.keep)
        result.extra['deleted'] = _public(self.delete)
        before = _listing(self.delete + self.keep)
        after = _listing(self.keep)
        for source in sorted(before):
            if before[source] != after.get(source, []):
                result.add_diff('\n'.join(sorted(before[source])) + '\n', '\n'.join(sorted(after.get(source, []))) + '\n',
                                'backups of %s/%s' % (ns, source))
        result.changed = bool(self.delete)

    def will_change(self):
        return bool(self.delete)

    def apply(self):
        """Delete each backup only while it still has the uid that was listed."""
        result, ns = self.result, self.params['namespace']
        self.done = done = []
        for entry in self.delete:
            name = entry['configmap'].split('/', 1)[1]
            try:
                self.cluster.delete('ConfigMap', ns, name, uid=entry['uid'])
            except k8s_client.K8sError as e:
                result.extra['deleted'] = _public(done)
                result.changed = bool(done)
                result.fail('%s; deleted before the failure: %s' % (e.msg, ', '.join(d['configmap'] for d in done) or 'none'))
            done.append(entry)

    def verify(self):
        """Read back: none of the deleted backups is listed any more (with the same uid)."""
        result, done = self.result, self.done
        try:
            still = {(c['metadata']['name'], c['metadata'].get('uid'))
                     for c in k8s_client.list_objects(self.cluster, 'ConfigMap', self.params['namespace'], label_selector=edit.BACKUP_LABEL)}
        except k8s_client.K8sError as e:
            result.fail('%s (reading back after deleting %d backup(s))' % (e.msg, len(done)))
        left = [d['configmap'] for d in done if (d['configmap'].split('/', 1)[1], d['uid']) in still]
        if left:
            result.fail('deleted backups are still listed: %s' % ', '.join(left))


def main():
    BackupRetention().run()


if __name__ == '__main__':
    main()
