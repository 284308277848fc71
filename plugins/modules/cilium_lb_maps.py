#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: cilium_lb_maps
short_description: Report Cilium's eBPF load-balancer map usage and, on request, clear maps that are nearly full
version_added: 0.1.0
description:
  - >-
    Fixes catalog entry B(N-10): Cilium's (GKE Dataplane V2 C(anetd)) load-balancer maps
    C(cilium_lb4_services_v2) and C(cilium_lb4_backends_v2) hold at most about 64K entries; when one is full the
    agent cannot insert, and the control plane and the data plane diverge.
  - Reads each pinned map with C(bpftool -j map show pinned) and C(bpftool -j map dump pinned) and reports its
    entry count, C(max_entries) and usage. That is all it does with the default O(state=report).
  - With O(state=cleared), every map whose usage is at or above O(threshold) is emptied, as the seed documents -
    after its whole content (keys and values, bpftool JSON) has been saved to O(backup_dir). Deletions run in one
    C(bpftool batch) process (the seed runs one bpftool per entry). A batch that stops because an entry vanished
    meanwhile is retried once for the entries still present.
  - Emptying a live map drops the node's service load-balancing until the agent re-populates it. B(Restart the
    Cilium agent (anetd) on this node right after) (catalog C-7); the module warns and does not restart it itself.
    Maps below O(threshold) are never touched, so a second run does nothing.
  - Fails before changing anything when a path is not a pinned map, or bpftool is missing.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the maps; reports which would be cleared and how many entries; deletes nothing, writes no backup.
  diff_mode:
    support: full
    details: Shows the entry count of each map before and after.
  platform:
    platforms: posix
    support: full
    details: Linux nodes running Cilium with the BPF filesystem mounted, and C(bpftool).
options:
  maps:
    description: Paths of the pinned maps.
    type: list
    elements: path
    default: [/sys/fs/bpf/tc/globals/cilium_lb4_services_v2, /sys/fs/bpf/tc/globals/cilium_lb4_backends_v2]
  threshold:
    description: Usage, in percent of C(max_entries), from which a map counts as nearly full.
    type: int
    default: 90
  state:
    description:
      - V(report) only reads. V(cleared) empties the maps at or above O(threshold) (backup first).
    type: str
    choices: [report, cleared]
    default: report
  backup_dir:
    description: Where the content of a map is saved (one JSON file per map and run) before it is emptied.
    type: path
    default: /var/lib/netmedic/backups/cilium_lb_maps
requirements:
  - bpftool (Debian package bpftool) on the managed node
seealso:
  - module: netmedic.k8s.node_network_facts
  - name: Catalog N-10 and C-7
    description: docs/catalog.md in the collection.
    link: https://example.invalid/netmedic/k8s/docs/catalog.md
notes:
  - Run as root on each node. Roll out node by node, restarting the agent on each before the next.
"""

EXAMPLES = r"""
- name: How full are the load-balancer maps?
  netmedic.k8s.cilium_lb_maps:
  register: lb_maps

- name: Empty the maps that are 90 % full or more (contents backed up), then restart anetd on this node
  netmedic.k8s.cilium_lb_maps:
    state: cleared
    threshold: 90
"""

RETURN = r"""
maps:
  description: One item per map, in O(maps) order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Pinned path.
      type: str
      returned: always
    name:
      description: Kernel map name (truncated to 15 characters by the kernel).
      type: str
      returned: always
    max_entries:
      description: Capacity.
      type: int
      returned: always
    count:
      description: Entries before the change.
      type: int
      returned: always
    percent:
      description: Usage before the change.
      type: float
      returned: always
    over_threshold:
      description: Whether RV(maps[].percent) is at or above O(threshold).
      type: bool
      returned: always
    action:
      description: V(clear) or V(keep).
      type: str
      returned: always
    deleted:
      description: Entries deleted (in check mode, that would be deleted).
      type: int
      returned: always
  sample: [{"path": "/sys/fs/bpf/tc/globals/cilium_lb4_services_v2", "name": "cilium_lb4_serv", "max_entries": 65536,
            "count": 65000, "percent": 99.2, "over_threshold": true, "action": "clear", "deleted": 65000}]
before:
  description: Entry count per map path before the change.
  returned: always
  type: dict
  sample: {"/sys/fs/bpf/tc/globals/cilium_lb4_services_v2": 65000}
after:
  description: Entry count per map path, re-read after the change (in check mode, what would remain).
  returned: always
  type: dict
  sample: {"/sys/fs/bpf/tc/globals/cilium_lb4_services_v2": 0}
backups:
  description: JSON files holding the content of each emptied map (C(of) is the map path).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/var/lib/netmedic/backups/cilium_lb_maps/cilium_lb4_services_v2.20261125T101500Z.json",
            "of": "/sys/fs/bpf/tc/globals/cilium_lb4_services_v2"}]
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["N-10"]
"""

import json
import os
import time

from ansible_collections.netmedic.k8s.plugins.module_utils import bpfmap
from ansible_collections.netmedic.k8s.plugins.module_utils.lifecycle import ModuleLifecycle
from ansible_collections.netmedic.k8s.plugins.module_utils.node import files as node_files
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandError, Runner

ARGUMENT_SPEC = dict(
    maps=dict(type='list', elements='path', default=list(bpfmap.CILIUM_LB_MAPS)),
    threshold=dict(type='int', default=90),
    state=dict(type='str', choices=['report', 'cleared'], default='report'),
    backup_dir=dict(type='path', default='/var/lib/netmedic/backups/cilium_lb_maps'),
)


def _dump(runner, path):
    return bpfmap.parse_dump(runner.run(['bpftool', '-j', 'map', 'dump', 'pinned', path]).stdout)


def _delete(runner, path, entries):
    """Delete in one batch; when it stops early (an entry vanished), retry once for what is left."""
    if not entries:
        return
    first = runner.run(['bpftool', 'batch', 'file', '-'], check=False, data=bpfmap.delete_batch(path, entries))
    if first.rc == 0:
        return
    left = bpfmap.remaining(entries, _dump(runner, path))
    if left:
        runner.run(['bpftool', 'batch', 'file', '-'], data=bpfmap.delete_batch(path, left))


class CiliumLbMaps(ModuleLifecycle):
    """Catalog N-10 on the lifecycle: validate, read every map (``bpftool -j map show``/``dump``) before
    deciding anything, plan per map (bpfmap.plan), report, back up then clear map by map, read back."""

    catalog = ['N-10']
    options = ARGUMENT_SPEC
    refusals = (bpfmap.MapError,)

    def validate(self):
        p = self.params
        if not p['maps']:
            raise bpfmap.MapError('maps must list at least one pinned map path')
        for path in p['maps']:
            bpfmap.validate_path(path)
        if len(set(p['maps'])) != len(p['maps']):
            raise bpfmap.MapError('maps lists a path twice')
        bpfmap.validate_threshold(p['threshold'])

    def read(self):
        self.runner = runner = Runner(self.module)
        if not runner.has('bpftool'):
            self.refuse('bpftool is not installed on this node')
        self.contents = {}
        for path in self.params['maps']:
            show = runner.run(['bpftool', '-j', 'map', 'show', 'pinned', path], check=False)
            if show.rc != 0:
                # (the message as it always was: "Nothing was changed" ends its sentence)
                self.module.fail_json(msg='%s is not a pinned eBPF map (%s): is Cilium (anetd) running here, with the BPF filesystem at '
                                          'that path? Nothing was changed' % (path, bpfmap.error_text(show.stdout, show.stderr)),
                                      changed=False)
            try:
                info = bpfmap.parse_map_show(show.stdout)
                entries = _dump(runner, path)
            except (bpfmap.MapError, CommandError) as e:
                self.refuse('cannot read %s: %s' % (path, e))
            self.contents[path] = (info, entries)

    def plan(self):
        p = self.params
        self.maps = []
        for path in p['maps']:
            info, entries = self.contents[path]
            item = dict(path=path, name=info['name'], **bpfmap.plan(info, entries, p['threshold'], p['state'] == 'cleared'))
            item['deleted'] = item['count'] if item['action'] == 'clear' else 0
            self.maps.append(item)

    def report(self):
        result, maps = self.result, self.maps
        result.before = {m['path']: m['count'] for m in maps}
        result.after = {m['path']: m['count'] - m['deleted'] for m in maps}
        result.add_diff(result.before, result.after, 'entries per map')
        result.extra['maps'] = maps
        for m in maps:
            if m['over_threshold'] and m['action'] == 'keep':
                result.warn('%s holds %d of %d entries (%s %%), at or above %d %%: state=cleared empties it (then restart the Cilium agent)'
                            % (m['path'], m['count'], m['max_entries'], m['percent'], self.params['threshold']))

    def apply(self):
        """Map by map: back up the content, then delete."""
        result = self.result
        stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
        for m in self.maps:
            if m['action'] != 'clear':
                continue
            info, entries = self.contents[m['path']]
            backup = os.path.join(self.params['backup_dir'], '%s.%s.json' % (os.path.basename(m['path']), stamp))
            try:
                node_files.write_file_atomic(self.module, backup, json.dumps({'path': m['path'], 'map': info, 'entries': entries}) + '\n',
                                             mode=0o600)
            except (IOError, OSError) as e:
                result.changed = bool(result.backups)
                result.fail('could not save %s to %s: %s; it was not cleared' % (m['path'], backup, e))
            result.add_backup(backup, m['path'])
            try:
                _delete(self.runner, m['path'], entries)
            except (CommandError, bpfmap.MapError) as e:
                result.changed = True
                result.fail('clearing %s failed: %s (its content is saved in %s)' % (m['path'], e, backup))

    def verify(self):
        result = self.result
        for m in self.maps:
            try:
                now = _dump(self.runner, m['path'])
            except (CommandError, bpfmap.MapError) as e:
                result.changed = result.changed or any(x['action'] == 'clear' for x in self.maps)
                result.fail('cannot read %s back after the change: %s' % (m['path'], e))
            result.after[m['path']] = len(now)
            if m['action'] == 'clear':
                left = bpfmap.remaining(self.contents[m['path']][1], now)
                if len(left) == m['count']:
                    result.fail('bpftool reported success but %s still holds all %d entries' % (m['path'], m['count']))
                if left:
                    result.warn('%s: %d of the deleted entries are present again (re-added by the agent meanwhile?)' % (m['path'], len(left)))
        if any(m['action'] == 'clear' for m in self.maps):
            result.warn('load-balancer maps were emptied: restart the Cilium agent (anetd) on this node now so it re-populates them '
                        '(catalog N-10, C-7); service traffic through this node is not balanced until then')


def main():
    CiliumLbMaps().run()


if __name__ == '__main__':
    main()
