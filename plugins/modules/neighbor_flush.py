#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: neighbor_flush
short_description: Remove stale ARP/NDP neighbor entries, targeted (or all, on explicit request)
version_added: 0.1.0
description:
  - >-
    Fixes catalog entry B(N-6): a node holds a stale MAC for an address that moved (for example a
    user cluster's control-plane VIP seen from the admin cluster's control-plane nodes), so TLS
    handshakes time out and nodes go NOT READY.
  - The documented fix is C(ip n flush all). This module removes only the entries for O(address)
    instead - those whose MAC differs from O(expected_mac), or all of them with O(state=absent), or,
    with O(probe=true), those that differ from the MAC that answers C(arping) now.
  - Dynamic entries are removed with C(ip neigh flush to <ip> dev <dev>); C(PERMANENT) (and C(NOARP))
    entries survive a flush and are removed with C(ip neigh del).
  - With O(probe=true), C(arping -c 2 -I <device> <address>) is run (also in check mode; it sends two
    ARP requests and creates no neighbor entry). When more than one MAC answers the address is in
    conflict (catalog D-10); the module then changes nothing for it and reports RV(conflict). When
    nothing answers it changes nothing either.
  - O(all=true) is the seed's C(ip n flush all) (or C(ip neigh flush dev <device>)); it is never
    implied. Entries that traffic re-creates at once are reported in RV(after).
  - Entries are read with C(ip -j neigh show nud all) before and after; both are returned.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the table (and runs C(arping) when O(probe=true)); removes nothing, reports what it would remove.
  diff_mode:
    support: full
    details: Shows the affected entries before and after.
  platform:
    platforms: posix
    support: full
    details: Linux nodes with iproute2 (JSON output, C(ip -j)); C(arping) (iputils) for O(probe=true).
options:
  address:
    description:
      - The IP address (or a list of addresses) whose entries to check. Mutually exclusive with O(all).
    type: list
    elements: str
  expected_mac:
    description:
      - The MAC the address really has (the interface holding the VIP on its owner). Entries with another
        MAC are removed; entries with this MAC, and entries without a MAC (FAILED, INCOMPLETE), are kept.
    type: str
  state:
    description:
      - V(absent) removes every entry for O(address) whatever its MAC.
    type: str
    choices: [absent]
  probe:
    description:
      - Learn the current MAC with C(arping) and remove entries that differ from it (IPv4 only).
        Needs O(device), unless the address has entries on exactly one device.
    type: bool
    default: false
  device:
    description:
      - Only entries on this interface (and the interface C(arping) uses). Must exist.
    type: str
  all:
    description:
      - Flush every dynamic entry (C(ip neigh flush all)), or every dynamic entry on O(device). An explicit
        opt-in because it disturbs all traffic of the node for a moment; PERMANENT entries are kept.
    type: bool
    default: false
requirements:
  - ip (Debian package iproute2) on the managed node
  - arping (Debian package iputils-arping) on the managed node, for O(probe=true) only (the iputils C(arping), whose output is parsed)
seealso:
  - module: netmedic.k8s.node_network_facts
  - name: Catalog N-6, W-6 and D-10
    description: docs/catalog.md in the collection.
    link: https://example.invalid/netmedic/k8s/docs/catalog.md
notes:
  - Exactly one of O(expected_mac), O(state=absent) and O(probe=true) is required with O(address).
  - Run as root on the node that holds the stale entry (for N-6, each admin control-plane node).
"""

EXAMPLES = r"""
- name: Drop a stale entry for the user cluster's control-plane VIP (the owner's MAC is known)
  netmedic.k8s.neighbor_flush:
    address: 10.200.0.10
    expected_mac: "{{ hostvars[vip_owner].vip_mac }}"

- name: Ask the network which MAC has the VIP now, and flush entries that differ
  netmedic.k8s.neighbor_flush:
    address: 10.200.0.10
    probe: true
    device: eth1

- name: Remove every entry (also PERMANENT ones) for two addresses
  netmedic.k8s.neighbor_flush:
    address: [10.200.0.10, 10.200.0.11]
    state: absent

- name: The seed's blunt fix, only when asked for
  netmedic.k8s.neighbor_flush:
    all: true
"""

RETURN = r"""
removed:
  description: >-
    Entries that were (in check mode, would be) removed, with the method (C(flush) or C(del)) and the MAC the
    address should have (C(expected), null with O(state=absent) or O(all=true)).
  returned: always
  type: list
  elements: dict
  sample: [{"dst": "10.77.0.12", "dev": "eth1", "lladdr": "02:00:00:00:00:99", "state": "PERMANENT", "method": "del",
            "expected": "52:54:00:77:00:02"}]
before:
  description: The entries read before any change (for O(address), or all entries with O(all=true)).
  returned: always
  type: dict
  contains:
    entries:
      description: C({dst, dev, lladdr, state}) per entry.
      type: list
      elements: dict
      returned: always
  sample: {"entries": [{"dst": "10.77.0.12", "dev": "eth1", "lladdr": "02:00:00:00:00:99", "state": "PERMANENT"}]}
after:
  description: The same, read again after the change (in check mode, what would remain).
  returned: always
  type: dict
  sample: {"entries": []}
probe:
  description: Per probed address, the device used, the MACs that answered C(arping), and whether they conflict.
  returned: when O(probe=true)
  type: dict
  sample: {"10.77.0.12": {"device": "eth1", "macs": ["52:54:00:77:00:02"], "conflict": false}}
conflict:
  description: True when more than one MAC answered for a probed address (nothing was changed for it).
  returned: always
  type: bool
  sample: false
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["N-6"]
backups:
  description: Always empty (neighbor entries are not files); kept for the common result shape.
  returned: always
  type: list
  elements: dict
  sample: []
"""

from ansible_collections.netmedic.k8s.plugins.module_utils import neigh
from ansible_collections.netmedic.k8s.plugins.module_utils.lifecycle import ModuleLifecycle
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandError, Runner

READ = ['ip', '-j', 'neigh', 'show', 'nud', 'all']

ARGUMENT_SPEC = dict(
    address=dict(type='list', elements='str'),
    expected_mac=dict(type='str'),
    state=dict(type='str', choices=['absent']),
    probe=dict(type='bool', default=False),
    device=dict(type='str'),
    all=dict(type='bool', default=False),
)


def _read(runner):
    return neigh.parse_neigh_json(runner.run(READ).stdout)


def _validate(module):
    p = module.params
    if p['all'] and p['address']:
        return 'address and all=true are mutually exclusive: give addresses, or all=true to flush every entry'
    if not p['all'] and not p['address']:
        return 'give address (one or a list), or all=true to flush every entry (ip neigh flush all)'
    if p['all']:
        if p['expected_mac'] is not None or p['state'] is not None or p['probe']:
            return 'all=true flushes every dynamic entry; expected_mac, state and probe apply to address only'
        return None
    modes = [name for name, on in (('expected_mac', p['expected_mac'] is not None), ('state=absent', p['state'] == 'absent'),
                                   ('probe=true', p['probe'])) if on]
    if len(modes) != 1:
        return 'give exactly one of expected_mac, state=absent or probe=true with address (got %s)' % (', '.join(modes) or 'none')
    return None


class NeighborFlush(ModuleLifecycle):
    """Catalog N-6 on the lifecycle: validate the input, read the table (``ip -j neigh``), plan the removals
    (neigh's pure planners; with probe=true after arping), report, remove (``ip neigh del``/``flush``),
    read back."""

    catalog = ['N-6']
    options = ARGUMENT_SPEC

    def validate(self):
        p = self.params
        error = _validate(self.module)
        self.addresses, self.expected = [], None
        try:
            for ip in p['address'] or []:
                norm = neigh.normalize_ip(ip)
                if norm not in self.addresses:
                    self.addresses.append(norm)
            if p['expected_mac'] is not None:
                expected = self.expected = neigh.normalize_mac(p['expected_mac'])
                if expected in ('00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff') or int(expected[:2], 16) & 1:
                    raise neigh.NeighError('expected_mac %s is not a unicast MAC address' % p['expected_mac'])
            if p['device'] is not None:
                neigh.validate_device(p['device'])
            if p['probe'] and any(neigh.family(ip) == '-6' for ip in self.addresses):
                raise neigh.NeighError('probe=true uses arping, IPv4 only: %s' % ', '.join(ip for ip in self.addresses if ':' in ip))
        except neigh.NeighError as e:
            error = error or str(e)
        if error:
            self.refuse(error)

    def read(self):
        p = self.params
        self.runner = runner = Runner(self.module)
        for tool in ['ip'] + (['arping'] if p['probe'] else []):
            if not runner.has(tool):
                self.refuse('%s is not installed on this node' % tool)
        try:
            if p['device'] is not None:
                link = runner.run(['ip', '-j', 'link', 'show', 'dev', p['device']], check=False)
                if link.rc != 0:
                    self.refuse('device %s does not exist: %s' % (p['device'], (link.stderr or '').strip()))
            self.entries = _read(runner)
        except (CommandError, neigh.NeighError) as e:
            self.refuse('cannot read the neighbor table: %s' % e)

    def _relevant(self, table):
        p = self.params
        if p['all']:
            return [neigh.entry_view(e) for e in table if p['device'] is None or e['dev'] == p['device']]
        found = []
        for ip in self.addresses:
            found.extend(neigh.entry_view(e) for e in neigh.find(table, ip, p['device']))
        return found

    def plan(self):
        p, entries, result = self.params, self.entries, self.result
        probes, self.conflict = {}, False
        if p['all']:
            self.removals = neigh.plan_flush_all(entries, p['device'])
        elif p['probe']:
            self.removals = []
            for ip in self.addresses:
                device = p['device']
                if device is None:
                    devs = sorted({e['dev'] for e in neigh.find(entries, ip)})
                    if len(devs) != 1:
                        # (this message has never said "nothing was changed"; kept as it is)
                        self.module.fail_json(msg='probe=true for %s needs device: the address has entries on %s' % (ip, devs or 'no device'),
                                              changed=False)
                    device = devs[0]
                reply = self.runner.run(['arping', '-c', '2', '-I', device, ip], check=False)
                if not neigh.parse_arping(reply.stdout) and reply.rc not in (0, 1):
                    self.refuse('arping -I %s %s failed (rc=%s): %s' % (device, ip, reply.rc, (reply.stderr or reply.stdout).strip()))
                macs = neigh.parse_arping(reply.stdout)
                probes[ip] = {'device': device, 'macs': macs, 'conflict': len(macs) > 1}
                if len(macs) > 1:
                    self.conflict = True
                    result.warn('%s: %d MACs answer arping (%s): IP address conflict (catalog D-10); nothing was changed for it'
                                % (ip, len(macs), ', '.join(macs)))
                elif not macs:
                    result.warn('%s: no answer to arping on %s; the current MAC is unknown, nothing was changed for it' % (ip, device))
                else:
                    self.removals.extend(neigh.plan_removals(entries, [ip], device, expected_mac=macs[0]))
            result.extra['probe'] = probes
        else:
            self.removals = neigh.plan_removals(entries, self.addresses, p['device'], expected_mac=self.expected,
                                                absent=p['state'] == 'absent')

    def report(self):
        result = self.result
        before = self._relevant(self.entries)
        gone = {(r['dst'], r['dev']) for r in self.removals}
        result.before = {'entries': before}
        result.after = {'entries': [e for e in before if (e['dst'], e['dev']) not in gone]}
        result.add_diff(result.before, result.after, 'neighbor entries')
        result.extra.update({'removed': self.removals, 'conflict': self.conflict})

    def apply(self):
        p, result, runner = self.params, self.result, self.runner
        done = self.done = []
        try:
            if p['all']:
                runner.run(['ip', 'neigh', 'flush'] + (['dev', p['device']] if p['device'] else ['all']))
                done.extend(self.removals)
            else:
                for removal in self.removals:
                    runner.run(neigh.removal_command(removal))
                    done.append(removal)
        except CommandError as e:
            result.changed = bool(done)
            result.extra['removed'] = done
            result.fail('%s; removed before the failure: %d entr%s' % (e, len(done), 'y' if len(done) == 1 else 'ies'), error=e.to_dict())

    def verify(self):
        result, done = self.result, self.done
        try:
            now = _read(self.runner)
        except (CommandError, neigh.NeighError) as e:
            result.fail('removed %d entries but cannot read the table back: %s' % (len(done), e))
        result.after = {'entries': self._relevant(now)}
        left = []
        for removal in done:
            for entry in neigh.find(now, removal['dst'], removal['dev']):
                same = entry['lladdr'] == removal['lladdr'] and entry['state'] == removal['state']
                want = removal.get('expected')
                wrong_mac = want is not None and entry['lladdr'] is not None and neigh.normalize_mac(entry['lladdr']) != want
                if (removal['method'] == 'del' and same) or wrong_mac:
                    left.append(neigh.entry_view(entry))
        if left:
            result.fail('entries are still present after removing them: %s' % left)


def main():
    NeighborFlush().run()


if __name__ == '__main__':
    main()
