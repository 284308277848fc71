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

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import edit
from ansible_collections.netmedic.k8s.plugins.module_utils.result import Result


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


def main():
    argument_spec = dict(k8s_client.AUTH_ARG_SPEC)
    argument_spec.update(
        names=dict(type='list', elements='str', required=True),
        namespace=dict(type='str', default='kube-system'),
        restore=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not k8s_client.HAS_K8S:
        module.fail_json(msg=missing_required_lib('kubernetes'), exception=k8s_client.K8S_IMPORT_ERROR)
    p = module.params
    result = Result(module, ['C-2', 'C-7'])
    result.extra.update({'configmaps': [], 'newest_backup_time': None, 'restored': [], 'check_mode': module.check_mode})
    if not p['names'] or any(not n for n in p['names']):
        module.fail_json(msg='names must list at least one ConfigMap name (nothing was read or changed)', changed=False, **result.extra)
    ns = p['namespace']

    # 1. Read every ConfigMap and its newest backup; decide for all before writing any.
    entries = []
    try:
        cluster = k8s_client.Cluster(p)
        for name in p['names']:
            live = cluster.get('ConfigMap', ns, name)
            if live is None:
                module.fail_json(msg='ConfigMap %s/%s not found (nothing was changed)' % (ns, name), changed=False, **result.extra)
            live.setdefault('kind', 'ConfigMap')
            # A backup a rollback made holds the change it undid: never a rollback target.
            found = edit.restorable_backups(edit.backups_of(cluster, ns, name))
            newest = found[-1] if found else None
            entries.append((live, newest, {
                'name': name, 'state': _state(live, newest),
                'backup': '%s/%s' % (ns, newest['metadata']['name']) if newest else None,
                'backup_time': newest['metadata'].get('creationTimestamp') if newest else None}))
    except k8s_client.K8sError as e:
        module.fail_json(msg='%s (nothing was changed)' % e.msg, changed=False, **result.extra)
    result.extra['configmaps'] = [e[2] for e in entries]
    times = [e[2]['backup_time'] for e in entries if e[2]['backup_time']]
    result.extra['newest_backup_time'] = max(times) if times else None
    if not p['restore']:
        result.exit()

    refused = [e[2] for e in entries if e[2]['state'] in ('edited since', 'unknown')]
    if refused:
        def why(r):
            if r['state'] == 'edited since':
                return 'was edited after netmedic wrote it (backup %s)' % r['backup']
            return ('cannot be proven unchanged since netmedic wrote it (backup %s has no %s annotation)'
                    % (r['backup'], edit.WRITTEN_ANNOTATION))
        module.fail_json(msg='not restoring (nothing was changed): %s. Restore by hand from the backup named, after checking '
                             'what changed.' % '; '.join('ConfigMap %s/%s %s' % (ns, r['name'], why(r)) for r in refused),
                         changed=False, **result.extra)

    # 2. Dry-run every restore (check mode stops here), then write one at a time through the edit service.
    todo = []
    try:
        for live, newest, entry in entries:
            if entry['state'] != 'ours':
                continue
            planner = _restore_planner(newest)
            state = edit.plan_object(live, planner, 'ConfigMap', ns, entry['name'])
            for key in sorted(set(live.get('data') or {}) | set(state['planned'].get('data') or {})):
                result.add_diff((live.get('data') or {}).get(key) or '', (state['planned'].get('data') or {}).get(key) or '',
                                'ConfigMap %s/%s %s' % (ns, entry['name'], key))
            todo.append((entry, planner, edit.run(cluster, state, planner, check_mode=True)))
    except edit.EditFailed as e:
        module.fail_json(msg=e.msg, changed=False, **result.extra)
    result.changed = bool(todo)
    if module.check_mode:
        result.extra['restored'] = [{'name': e['name'], 'from': e['backup']} for e, _p, _s in todo]
        result.exit()
    done = []
    for entry, planner, state in todo:
        try:
            edit.run(cluster, state, planner, backups=result.backups, rollback=True)
        except edit.EditFailed as e:
            result.changed = bool(done) or e.changed
            result.fail('%s. Already restored: %s' % (e.msg, ', '.join(d['name'] for d in done) or 'none'))
        entry['state'] = 'restored'
        done.append({'name': entry['name'], 'from': entry['backup']})
        result.extra['restored'] = list(done)
    result.exit()


if __name__ == '__main__':
    main()
