#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: configmap_rollback
short_description: Find netmedic's newest backup of ConfigMaps and, on request, restore its exact data
version_added: 0.2.0
description:
  - The rollback half of the verified rollout (catalog B(W-3) C-2 "roll the config back", and the kube-proxy and Flannel
    rollouts of B(W-4), B(W-5), B(W-2); issue 9 findings 5 and 10), used by role C(netmedic.k8s.verified_rollout).
  - Every netmedic edit (C(kube_proxy_config), C(flannel_config), ...) first keeps the replaced data in a backup
    ConfigMap C(<name>-netmedic-backup-<time>) labelled C(netmedic.k8s/backup-of=<name>), annotated with the sha256 of
    the data it is about to write (C(netmedic.k8s/written-sha256)). This module reads those backups, so the decision
    to roll back does not depend on the current run having made the change - a job re-run after a timeout rolls back
    too.
  - With O(restore=false) (default) it is read-only - per ConfigMap the newest backup, its time, and whether the live
    data is still exactly what netmedic wrote (RV(configmaps[].state)). RV(newest_backup_time) is the time to pass as
    C(restarted_since) to M(netmedic.k8s.daemonset_restart).
  - With O(restore=true) it puts the newest backup's C(data) and C(binaryData) back byte for byte, through the same
    edit service as every netmedic edit (server-side dry run, the replaced data backed up again first, write with a
    C(resourceVersion) precondition, read back). Only when the live data is still exactly what netmedic wrote; when
    someone edited the ConfigMap since, or the backup predates the written-data annotation, the module fails for every
    ConfigMap before writing any (never acts on uncertainty). A ConfigMap that already holds the backed-up data is
    left alone.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - netmedic.k8s.k8s_auth
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads and decides the same way; a restore is only sent as a server-side dry run and reported as a change.
  diff_mode:
    support: full
    details: One diff per restored data key.
  platform:
    platforms: posix
    support: full
    details: Runs where the C(kubernetes) client is installed, usually the controller.
options:
  names:
    description: The ConfigMaps netmedic edited (for example C(kube-proxy-worker), C(kube-flannel-cfg)).
    type: list
    elements: str
    required: true
  namespace:
    description: Namespace of the ConfigMaps and their backups.
    type: str
    default: kube-system
  restore:
    description: Restore the newest backup of every ConfigMap in O(names) (all checked before any is written).
    type: bool
    default: false
seealso:
  - module: netmedic.k8s.daemonset_restart
  - module: netmedic.k8s.kube_proxy_config
notes:
  - A ConfigMap without any netmedic backup is reported with C(state=no backup) and never restored.
"""

EXAMPLES = r"""
- name: When did netmedic last change the kube-proxy ConfigMaps?
  netmedic.k8s.configmap_rollback:
    names: [kube-proxy-worker, kube-proxy-master]
  register: backups

- name: Roll them back to the data before that change
  netmedic.k8s.configmap_rollback:
    names: [kube-proxy-worker, kube-proxy-master]
    restore: true
"""

RETURN = r"""
configmaps:
  description: One entry per ConfigMap of O(names).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The ConfigMap.
      type: str
      returned: always
    backup:
      description: C(namespace/name) of its newest backup, or null.
      type: str
      returned: always
    backup_time:
      description: When that backup was made (its creationTimestamp), or null.
      type: str
      returned: always
    state:
      description:
        - C(ours) - the live data is exactly what netmedic wrote over the backup; C(restored) - it holds the backed-up
          data (now or already); C(edited since) - somebody changed it after netmedic; C(unknown) - the backup has no
          written-data annotation; C(no backup).
      type: str
      returned: always
  sample: [{"name": "kube-proxy-worker", "backup": "kube-system/kube-proxy-worker-netmedic-backup-20261201t231000z",
            "backup_time": "2026-12-01T23:10:00Z", "state": "ours"}]
newest_backup_time:
  description: The newest backup time over all O(names), or null when none has a backup.
  returned: always
  type: str
  sample: "2026-12-01T23:10:00Z"
restored:
  description: The ConfigMaps restored (or, in check mode, that would be), each with the backup it came from.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "kube-proxy-worker", "from": "kube-system/kube-proxy-worker-netmedic-backup-20261201t231000z"}]
check_mode:
  description: True when the module ran in check mode (RV(restored) then lists what would be restored; nothing was written).
  returned: always
  type: bool
  sample: false
backups:
  description: Where the data replaced by the restore was kept (entries C(of), C(configmap), C(resource_version)).
  returned: always
  type: list
  elements: dict
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["C-2", "C-7"]
"""

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import edit
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s.edit_module import ClusterModule


def _state(live, newest):
    """How the live ConfigMap relates to its newest backup (see RETURN configmaps.state)."""
    if newest is None:
        return 'no backup'
    if edit.backup_data(live) == edit.backup_data(dict(newest, kind='ConfigMap')):
        return 'restored'
    written = ((newest['metadata'].get('annotations') or {}).get(edit.WRITTEN_ANNOTATION))
    if not written:
        return 'unknown'
    return 'ours' if edit.content_digest(live) == written else 'edited since'


def _restore_planner(backup):
    saved = edit.backup_data(dict(backup, kind='ConfigMap'))

    def planner(cm):
        now = edit.backup_data(cm)
        changes = [{'path': 'data.%s' % k, 'before': now['data'].get(k), 'after': saved['data'].get(k)}
                   for k in sorted(set(now['data']) | set(saved['data'])) if now['data'].get(k) != saved['data'].get(k)]
        changes += [{'path': 'binaryData.%s' % k, 'before': '(binary)', 'after': '(binary)'}
                    for k in sorted(set(now['binaryData']) | set(saved['binaryData']))
                    if now['binaryData'].get(k) != saved['binaryData'].get(k)]
        cm['data'] = dict(saved['data'])
        if saved['binaryData']:
            cm['binaryData'] = dict(saved['binaryData'])
        else:
            cm.pop('binaryData', None)
        return cm, changes

    return planner


def _why(entry):
    """Why a ConfigMap in state ``edited since``/``unknown`` is not restored."""
    if entry['state'] == 'edited since':
        return 'was edited after netmedic wrote it (backup %s)' % entry['backup']
    return ('cannot be proven unchanged since netmedic wrote it (backup %s has no %s annotation)'
            % (entry['backup'], edit.WRITTEN_ANNOTATION))


class ConfigMapRollback(ClusterModule):
    catalog = ['C-2', 'C-7']
    options = dict(
        names=dict(type='list', elements='str', required=True),
        namespace=dict(type='str', default='kube-system'),
        restore=dict(type='bool', default=False),
    )
    apply_in_check_mode = True  # every restore goes through the API server's dry run, also in check mode

    refusal_carries_result = True  # a refusal returns the result keys (configmaps, newest_backup_time, restored, check_mode)

    def validate(self):
        p = self.params
        self.result.extra.update({'configmaps': [], 'newest_backup_time': None, 'restored': [], 'check_mode': self.check_mode})
        if not p['names'] or any(not n for n in p['names']):
            self.refuse('names must list at least one ConfigMap name (nothing was read or changed)')

    def read(self):
        """Every ConfigMap and its newest backup a rollback may restore; all read before anything is decided."""
        p = self.params
        ns = p['namespace']
        self.cluster = cluster = k8s_client.Cluster(p)
        self.entries = []
        for name in p['names']:
            live = cluster.get('ConfigMap', ns, name)
            if live is None:
                self.refuse('ConfigMap %s/%s not found (nothing was changed)' % (ns, name))
            live.setdefault('kind', 'ConfigMap')
            # A backup a rollback made holds the change it undid: never a rollback target.
            found = edit.restorable_backups(edit.backups_of(cluster, ns, name))
            newest = found[-1] if found else None
            self.entries.append((live, newest, {
                'name': name, 'state': _state(live, newest),
                'backup': '%s/%s' % (ns, newest['metadata']['name']) if newest else None,
                'backup_time': newest['metadata'].get('creationTimestamp') if newest else None}))
        self.result.extra['configmaps'] = [e[2] for e in self.entries]
        times = [e[2]['backup_time'] for e in self.entries if e[2]['backup_time']]
        self.result.extra['newest_backup_time'] = max(times) if times else None

    def plan(self):
        """With restore=true: refuse any ConfigMap edited since netmedic wrote it, then plan a restore of each one
        that still holds exactly netmedic's write."""
        p = self.params
        self.todo = []
        if not p['restore']:
            return
        refused = [e[2] for e in self.entries if e[2]['state'] in ('edited since', 'unknown')]
        if refused:
            self.refuse('not restoring (nothing was changed): %s. Restore by hand from the backup named, after checking '
                        'what changed.' % '; '.join('ConfigMap %s/%s %s' % (p['namespace'], r['name'], _why(r)) for r in refused))
        for live, newest, entry in self.entries:
            if entry['state'] == 'ours':
                planner = _restore_planner(newest)
                self.todo.append((entry, planner, edit.plan_object(live, planner, 'ConfigMap', p['namespace'], entry['name'])))

    def report(self):
        ns = self.params['namespace']
        for entry, _planner, state in self.todo:
            live, planned = state['object'].get('data') or {}, state['planned'].get('data') or {}
            for key in sorted(set(live) | set(planned)):
                self.result.add_diff(live.get(key) or '', planned.get(key) or '', 'ConfigMap %s/%s %s' % (ns, entry['name'], key))

    def will_change(self):
        return bool(self.todo)

    def apply(self):
        """Dry-run every restore (check mode stops there), then write one at a time through the edit service,
        each backup marked as made by a rollback."""
        result = self.result
        todo = []
        try:
            for entry, planner, state in self.todo:
                todo.append((entry, planner, edit.run(self.cluster, state, planner, check_mode=True)))
        except edit.EditFailed as e:
            self.refuse(e.msg)
        result.changed = True
        if self.check_mode:
            result.extra['restored'] = [{'name': e['name'], 'from': e['backup']} for e, _p, _s in todo]
            return
        done = []
        for entry, planner, state in todo:
            try:
                edit.run(self.cluster, state, planner, backups=result.backups, rollback=True)
            except edit.EditFailed as e:
                result.changed = bool(done) or e.changed
                result.fail('%s. Already restored: %s' % (e.msg, ', '.join(d['name'] for d in done) or 'none'))
            entry['state'] = 'restored'
            done.append({'name': entry['name'], 'from': entry['backup']})
            result.extra['restored'] = list(done)

    def verify(self):
        """``edit.run`` read each restored ConfigMap back and checked it needs no further change."""


def main():
    ConfigMapRollback().run()


if __name__ == '__main__':
    main()
