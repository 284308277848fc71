#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: port_range
short_description: Keep the kernel's ephemeral port range clear of the NodePort range
version_added: 0.1.0
description:
  - >-
    Fixes catalog entry B(N-3): C(net.ipv4.ip_local_port_range) overlaps the Kubernetes NodePort
    range (default C(30000-32767)), so the kernel can pick a NodePort as the source port of an
    outgoing connection (intermittent connectivity, GKE Dataplane V2 known issue).
  - With O(method=reserve) (default) the NodePort range is added to
    C(net.ipv4.ip_local_reserved_ports), merged with the ports already reserved there (the way
    kubespray reserves the NodePort range). The ephemeral range is left alone.
  - With O(method=move) C(net.ipv4.ip_local_port_range) is shifted clear of the NodePort range -
    to O(move_to), or else to the largest part of the current range outside the NodePort range.
  - The resulting value is written to the running kernel and persisted in a drop-in file under
    C(/etc/sysctl.d/) (atomic write, replaced file backed up first). Boot-time files applied after the
    drop-in that set another value are reported.
  - "Files netmedic does not own (issue #10): an existing O(persist_file) without this module's header
    (a first line C(# Managed by netmedic.k8s) naming this module), such as C(/etc/sysctl.conf), is never replaced: only the
    lines that set the key this run manages get the new value (appended when absent); every other line
    is kept byte for byte and the previous file is backed up (RV(persist_mode=edit_owned_keys))."
  - If the file cannot be written after the kernel value was set, the kernel value is restored and the
    failure says so (RV(rolled_back), RV(left_changed)).
  - Reports the overlap found (RV(overlap)) whether or not anything is changed.
  - Fails before changing anything on malformed ranges, a start greater than its end, ports
    outside 1-65535, a O(move_to) that overlaps the NodePort range or starts below
    C(ip_unprivileged_port_start), or a result that would leave fewer than 1024 usable
    ephemeral ports.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the kernel values and the drop-in, reports what it would write; writes nothing.
  diff_mode:
    support: full
    details: Shows the kernel value and the drop-in file before and after.
  platform:
    platforms: posix
    support: full
    details: Linux nodes; the values are per network namespace, run it in the node's (host) namespace.
options:
  nodeport_range:
    description:
      - The cluster's NodePort range (kube-apiserver C(--service-node-port-range)), C(start-end).
    type: str
    default: 30000-32767
  method:
    description:
      - V(reserve) adds O(nodeport_range) to C(net.ipv4.ip_local_reserved_ports) (merged with
        existing entries); it is applied even when the ranges do not overlap today, so a later
        change of the ephemeral range cannot bring the fault back.
      - V(move) sets C(net.ipv4.ip_local_port_range) to a range that does not overlap
        O(nodeport_range). Without O(move_to) a range that is already clear is kept (and persisted).
    type: str
    choices: [reserve, move]
    default: reserve
  move_to:
    description:
      - With O(method=move), the new ephemeral range C(start-end). Must not overlap O(nodeport_range).
      - Ignored (with a warning) for O(method=reserve).
    type: str
  persist:
    description:
      - Also write the value to O(persist_file) so it survives a reboot.
    type: bool
    default: true
  persist_file:
    description:
      - The sysctl drop-in, an absolute path ending in C(.conf). A file this module wrote (or a new one) is
        generated whole; any other file is edited in place (only the managed key). A replaced file is
        backed up next to it and the backup path returned in RV(backups).
      - A file outside the directories C(systemd-sysctl) reads at boot (and C(/etc/sysctl.conf)) is written,
        with a warning that it does not apply after a reboot.
    type: path
    default: /etc/sysctl.d/90-netmedic-ports.conf
seealso:
  - module: netmedic.k8s.node_network_facts
  - name: Catalog N-3 and C-4
    description: docs/catalog.md in the collection.
    link: https://example.invalid/netmedic/k8s/docs/catalog.md
notes:
  - Run as root on each node.
  - ip-masq-agent C(--random-fully) (catalog C-4) can also pick NodePorts; that is a cluster-side setting.
"""

EXAMPLES = r"""
- name: Reserve the default NodePort range (merged with ports already reserved), now and at boot
  netmedic.k8s.port_range:

- name: Preview moving the ephemeral range clear of a custom NodePort range
  netmedic.k8s.port_range:
    nodeport_range: 30000-32767
    method: move
    move_to: 32768-60999
  check_mode: true
  diff: true
"""

RETURN = r"""
decision:
  description: >-
    V(keep) when the kernel already has the wanted value, otherwise the method that was (or in check
    mode would be) applied.
  returned: always
  type: str
  choices: [keep, reserve, move]
  sample: reserve
nodeport_range:
  description: The NodePort range, normalized.
  returned: always
  type: str
  sample: 30000-32767
overlap:
  description: Ports of the ephemeral range (before the change) that are in the NodePort range.
  returned: always
  type: list
  elements: str
  sample: ["30000-32767"]
overlap_ports:
  description: Number of ports in RV(overlap).
  returned: always
  type: int
  sample: 2768
conflict_before:
  description: Whether, before the change, the kernel could pick a NodePort as a source port (overlap not covered by reserved ports).
  returned: always
  type: bool
  sample: true
conflict_after:
  description: The same after the change (in check mode, for the state that would result).
  returned: always
  type: bool
  sample: false
free_ephemeral_ports:
  description: Usable ephemeral ports after the change (range minus reserved ports).
  returned: always
  type: int
  sample: 28232
before:
  description: Kernel values and the values in O(persist_file) read before any change.
  returned: always
  type: dict
  contains:
    ip_local_port_range:
      description: Kernel value, C(start end).
      type: str
      returned: always
    ip_local_reserved_ports:
      description: Kernel value, the kernel's comma separated syntax (empty when none).
      type: str
      returned: always
    persisted:
      description: Keys and values set by O(persist_file) (empty when it does not exist).
      type: dict
      returned: always
  sample: {"ip_local_port_range": "1024 65535", "ip_local_reserved_ports": "", "persisted": {}}
after:
  description: The same after the change (in check mode, what would result).
  returned: always
  type: dict
  sample: {"ip_local_port_range": "1024 65535", "ip_local_reserved_ports": "30000-32767",
           "persisted": {"net.ipv4.ip_local_reserved_ports": "30000-32767"}}
persist_file:
  description: The drop-in file (written or not).
  returned: always
  type: str
  sample: /etc/sysctl.d/90-netmedic-ports.conf
backups:
  description: Files replaced by this run and where their previous content was kept.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/etc/sysctl.d/90-netmedic-ports.conf.1234.2026-11-25@10:00:00~", "of": "/etc/sysctl.d/90-netmedic-ports.conf"}]
persist_mode:
  description:
    - How O(persist_file) is (or would be) written - V(create), V(owned) (this module's file, generated
      whole), V(edit_owned_keys) (someone else's file, only the managed key edited in place). Null with O(persist=false).
  returned: always
  type: str
  sample: create
rolled_back:
  description: After a failed write, what was undone.
  returned: failure after a change was started
  type: list
  elements: str
  sample: ["kernel value restored: net.ipv4.ip_local_reserved_ports = 10250"]
left_changed:
  description: After a failed write, what could not be undone.
  returned: failure after a change was started
  type: list
  elements: str
  sample: []
overridden_by:
  description: Boot-time sysctl files applied after O(persist_file) that set the same key to another value.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/etc/sysctl.conf", "value": "1024 65535"}]
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["N-3"]
"""

from ansible_collections.netmedic.k8s.plugins.module_utils import ports
from ansible_collections.netmedic.k8s.plugins.module_utils.node import settings, sysctl


class PortRange(settings.SettingModule):
    catalog = ['N-3']
    options = dict(
        nodeport_range=dict(type='str', default=ports.DEFAULT_NODEPORT_RANGE),
        method=dict(type='str', choices=['reserve', 'move'], default='reserve'),
        move_to=dict(type='str'),
        **settings.persist_options('/etc/sysctl.d/90-netmedic-ports.conf')
    )
    boot_files = [('persist_file', '.conf', 'systemd-sysctl')]
    refusals = (ports.PortRangeError,)

    def check_setting(self):
        p = self.params
        self.nodeport = ports.parse_strict_range(p['nodeport_range'], 'nodeport_range')
        self.move_to = ports.parse_strict_range(p['move_to'], 'move_to') if p['move_to'] is not None else None
        if self.move_to is not None and p['method'] != 'move':
            self.result.warn('move_to is only used with method=move; ignored')
            self.move_to = None

    def read(self):
        self.local_text = sysctl.read_value(ports.LOCAL_PORT_RANGE_KEY)
        self.reserved_text = sysctl.read_value(ports.RESERVED_PORTS_KEY)
        if self.local_text is None or self.reserved_text is None:
            self.refuse('%s or %s does not exist on this kernel'
                        % (sysctl.key_to_path(ports.LOCAL_PORT_RANGE_KEY), sysctl.key_to_path(ports.RESERVED_PORTS_KEY)))
        try:
            self.ephemeral = ports.parse_local_port_range(self.local_text)
            self.reserved = ports.parse_port_ranges(self.reserved_text)
        except ports.PortRangeError as e:
            self.refuse('cannot parse the kernel value: %s' % e)
        unpriv_text = sysctl.read_value(ports.UNPRIVILEGED_PORT_START_KEY)
        self.unprivileged = int(unpriv_text) if unpriv_text and unpriv_text.isdigit() else None
        self.file_text = settings.read_file(self.params['persist_file'])
        self.in_file = sysctl.parse_conf(self.file_text or '')

    def plan(self):
        p = self.params
        if p['method'] == 'reserve':
            self.planned = ports.plan_reserve(self.ephemeral, self.reserved, self.nodeport)
            self.key, self.before_value = ports.RESERVED_PORTS_KEY, ports.format_ranges(self.reserved)
            self.target_value = ports.format_ranges(self.planned['reserved'])
        else:
            self.planned = ports.plan_move(self.ephemeral, self.reserved, self.nodeport, self.move_to, self.unprivileged)
            self.key, self.before_value = ports.LOCAL_PORT_RANGE_KEY, ports.format_local_port_range(self.ephemeral)
            self.target_value = ports.format_local_port_range(self.planned['local_port_range'])
        self.change_kernel = self.target_value != self.before_value
        self.new_text, self.file_mode = settings.plan_sysctl_file(self.file_text, [(self.key, self.target_value)],
                                                                  'port_range', 'N-3')
        self.write_file = p['persist'] and self.file_text != self.new_text

    def report(self):
        p, result, plan, key, in_file = self.params, self.result, self.planned, self.key, self.in_file
        nodeport = ports.format_range(self.nodeport)
        before = ports.analyze(self.local_text, self.reserved_text, nodeport)
        after = ports.analyze(ports.format_local_port_range(plan['local_port_range']), ports.format_ranges(plan['reserved']),
                              nodeport)
        result.before = {
            'ip_local_port_range': ports.format_local_port_range(self.ephemeral),
            'ip_local_reserved_ports': ports.format_ranges(self.reserved),
            'persisted': in_file,
        }
        result.after = {
            'ip_local_port_range': ports.format_local_port_range(plan['local_port_range']),
            'ip_local_reserved_ports': ports.format_ranges(plan['reserved']),
            'persisted': sysctl.parse_conf(self.new_text) if self.write_file else in_file,
        }
        result.add_diff('%s = %s' % (key, self.before_value), '%s = %s' % (key, self.target_value), 'kernel %s' % key)
        if self.write_file:
            result.add_diff(self.file_text or '', self.new_text, p['persist_file'])
        overridden = sysctl.overriders(key, p['persist_file'], self.target_value) if p['persist'] else []
        result.extra.update({
            'decision': p['method'] if self.change_kernel else 'keep',
            'nodeport_range': nodeport,
            'overlap': before['overlap'],
            'overlap_ports': before['overlap_ports'],
            'conflict_before': before['conflict'],
            'conflict_after': after['conflict'],
            'free_ephemeral_ports': plan['free_ephemeral'],
            'persist_file': p['persist_file'],
            'persist_mode': self.file_mode if p['persist'] else None,
            'overridden_by': overridden,
        })
        self.warn_overridden(key, overridden)
        self.warn_boot_order('persist_file')
        other = ports.LOCAL_PORT_RANGE_KEY if key == ports.RESERVED_PORTS_KEY else ports.RESERVED_PORTS_KEY
        if self.write_file and self.file_mode == settings.OWNED and other in in_file:
            result.warn('%s also set %s = %s (an earlier run with the other method); the new file sets only %s, so that '
                        'value is no longer applied at boot' % (p['persist_file'], other, in_file[other], key))
        if not p['persist']:
            for path, value in sysctl.persisted_values(key)[-1:]:
                if value != sysctl.normalize(self.target_value):
                    result.warn('%s sets %s = %s at boot (persist=false): the fix lasts until the next reboot'
                                % (path, key, value))

    def transaction(self):
        """Kernel first, then the file (backed up); undone on failure."""
        key, before_value, target_value = self.key, self.before_value, self.target_value
        kernel = []
        if self.change_kernel:
            kernel.append(settings.KernelStep(key, before_value, target_value, lambda: sysctl.write_value(key, target_value),
                                              lambda: sysctl.write_value(key, before_value)))
        files = [settings.FileStep(self.params['persist_file'], self.file_text, self.new_text)] if self.write_file else []
        return kernel, files, []

    def verify(self):
        """Read back (the kernel normalizes both values)."""
        result, key = self.result, self.key
        now_local = sysctl.read_value(ports.LOCAL_PORT_RANGE_KEY)
        now_reserved = sysctl.read_value(ports.RESERVED_PORTS_KEY)
        result.after['ip_local_port_range'] = now_local
        result.after['ip_local_reserved_ports'] = now_reserved
        now = ports.analyze(now_local, now_reserved, ports.format_range(self.nodeport))
        result.extra['conflict_after'] = now['conflict']
        if key == ports.RESERVED_PORTS_KEY:
            got = now_reserved
            matches = ports.parse_port_ranges(got) == self.planned['reserved']
        else:
            got = now_local
            matches = sysctl.normalize(got) == self.target_value
        if not matches:
            result.fail('wrote %s = %s but the kernel reports %s' % (key, self.target_value, got))


def main():
    PortRange().run()


if __name__ == '__main__':
    main()
