#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: pod_bridge
short_description: Bring the node's pod bridge (cbr0) up, check or set its MTU, verify pod MACs are learned
version_added: 0.1.0
description:
  - >-
    Fixes catalog entry B(N-8): the pod bridge (C(cbr0) on GKE/kubenet nodes) is down, so pods on the
    node cannot reach anything (C(ip address show cbr0) shows it DOWN; the documented fix is
    C(ip link set cbr0 up)).
  - Brings the bridge administratively up and, when O(mtu) is given, sets the bridge's MTU first.
  - Reports the bridge's ports (the pods' veth interfaces) and their MTUs; a port whose MTU differs from
    the bridge's (or from O(mtu)) is reported as a warning (the pods' MTU must match the network's
    MTU, for example 1460 on GKE, minus overlay overhead). With O(port_mtu=true) the host side of each
    veth port is set to O(mtu) as well; the interface inside the pod is never changed (fix the CNI's MTU
    and recreate the pods for that).
  - Reports what the bridge learned, the seed's verification ("C(arp -an) should list pod MACs") -
    the dynamic MACs per port (C(bridge -j fdb show br NAME)) and the neighbor entries on the bridge
    (C(ip -j neigh show dev NAME)). With O(verify_learned), waits up to that many seconds for every veth
    port that is up to have a learned MAC, and fails naming the ports that stay silent.
  - When a command fails, the MTU changes already made are undone (in reverse order), so the bridge is
    never left half-changed.
  - Fails before changing anything when the interface does not exist (the CNI plugin creates it; this
    module does not) or is not a bridge.
  - The change is runtime state; the CNI plugin owns the bridge's configuration and re-creates it as it
    was configured. Nothing is persisted and no file is written.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads C(ip -j -d link show); reports the commands it would run.
  diff_mode:
    support: full
    details: Shows the bridge's state and MTU before and after.
  platform:
    platforms: posix
    support: full
    details: Linux nodes with iproute2 (JSON output).
options:
  name:
    description: The pod bridge.
    type: str
    default: cbr0
  mtu:
    description:
      - Set the bridge's MTU to this value (68-65535). Not given, the MTU is only reported.
    type: int
  port_mtu:
    description:
      - Also set the MTU of the host side of every veth port of the bridge to O(mtu) (requires O(mtu)).
        Ports are changed before the bridge.
    type: bool
    default: false
  verify_learned:
    description:
      - Seconds to wait, after the change (or now, when nothing needs changing), for every veth port that
        is up to have a learned MAC in the bridge's forwarding database. V(0) only reports. At most 600.
      - Needs the C(bridge) command (iproute2); without it the module fails before changing anything.
    type: int
    default: 0
requirements:
  - ip (Debian package iproute2) on the managed node
  - bridge (Debian package iproute2) on the managed node, for RV(learned) and O(verify_learned)
seealso:
  - module: netmedic.k8s.node_network_facts
  - name: Catalog N-8
    description: docs/catalog.md in the collection.
    link: https://example.invalid/netmedic/k8s/docs/catalog.md
notes:
  - Run as root on each node.
"""

EXAMPLES = r"""
- name: Bring cbr0 up (GKE kubenet)
  netmedic.k8s.pod_bridge:
    name: cbr0

- name: Bring the Flannel bridge up with the VPC MTU minus VXLAN overhead
  netmedic.k8s.pod_bridge:
    name: cni0
    mtu: 1450

- name: Bring cbr0 up with the GKE MTU on the bridge and its veth ports, then wait for pod MACs
  netmedic.k8s.pod_bridge:
    name: cbr0
    mtu: 1460
    port_mtu: true
    verify_learned: 30
"""

RETURN = r"""
commands:
  description: The commands that were (in check mode, would be) run, as argument lists.
  returned: always
  type: list
  elements: list
  sample: [["ip", "link", "set", "dev", "cbr0", "up"]]
before:
  description: The bridge before the change.
  returned: always
  type: dict
  contains:
    admin_up:
      description: The UP flag.
      type: bool
      returned: always
    operstate:
      description: Kernel operstate (an empty bridge stays DOWN even when up; it has no carrier).
      type: str
      returned: always
    mtu:
      description: Bridge MTU.
      type: int
      returned: always
  sample: {"admin_up": false, "operstate": "DOWN", "mtu": 1460}
after:
  description: The bridge re-read after the change (in check mode, what would result).
  returned: always
  type: dict
  sample: {"admin_up": true, "operstate": "UP", "mtu": 1460}
bridge:
  description: Full state of the bridge after the change (C(netmedic.k8s.node_network_facts) format) with ports and MTUs.
  returned: always
  type: dict
  sample: {"name": "cbr0", "exists": true, "kind": "bridge", "mtu": 1460, "port_mtus": [1460, 1500], "mtu_mismatch": true,
           "ports": [{"name": "veth1a2b3c4d", "kind": "veth", "mtu": 1460, "operstate": "UP"}]}
learned:
  description:
    - MACs the bridge learned per port (dynamic forwarding entries), read after the change. V(null) when the
      C(bridge) command is not installed (then RV(learned_reason) says so).
  returned: always
  type: dict
  sample: {"veth1": ["16:7a:5e:ac:d0:64"], "veth2": ["72:5d:44:13:02:65"]}
learned_reason:
  description: Why RV(learned) could not be read.
  returned: when RV(learned) is null
  type: str
unlearned_ports:
  description: veth ports that are up but have no learned MAC (their pod sent nothing since the bridge came up).
  returned: when RV(learned) could be read
  type: list
  elements: str
  sample: ["veth3"]
neighbors:
  description: Neighbor entries on the bridge (what C(arp -an) shows for it) - C(dst), C(lladdr), C(state).
  returned: always
  type: list
  elements: dict
  sample: [{"dst": "10.60.0.11", "lladdr": "16:7a:5e:ac:d0:64", "state": "DELAY"}]
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["N-8"]
backups:
  description: Always empty (no file is written); kept for the common result shape.
  returned: always
  type: list
  elements: dict
  sample: []
"""

import time

from ansible_collections.netmedic.k8s.plugins.module_utils import neigh, netlink
from ansible_collections.netmedic.k8s.plugins.module_utils.lifecycle import ModuleLifecycle
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandError, Runner

ARGUMENT_SPEC = dict(
    name=dict(type='str', default='cbr0'),
    mtu=dict(type='int'),
    port_mtu=dict(type='bool', default=False),
    verify_learned=dict(type='int', default=0),
)


def _read(runner, name, mtu):
    links = netlink.parse_links(runner.run(['ip', '-j', '-d', 'link', 'show']).stdout)
    return netlink.bridge_state(links, name, mtu)


def _view(state, with_ports=False):
    view = {'admin_up': state.get('admin_up'), 'operstate': state.get('operstate'), 'mtu': state.get('mtu')}
    if with_ports:
        view['port_mtus'] = {p['name']: p['mtu'] for p in state.get('ports') or [] if p['kind'] == 'veth'}
    return view


def _learned(runner, name):
    """``(learned or None, reason, neighbors)``: the seed's check that pod MACs are learned."""
    neighbors = [{'dst': e['dst'], 'lladdr': e.get('lladdr'), 'state': e['state']}
                 for e in neigh.parse_neigh_json(runner.run(['ip', '-j', 'neigh', 'show', 'dev', name]).stdout)]
    if not runner.has('bridge'):
        return None, 'bridge (iproute2) is not installed', neighbors
    fdb = runner.run(['bridge', '-j', 'fdb', 'show', 'br', name]).stdout
    return netlink.learned_macs(fdb, name), None, neighbors


def _report_learned(result, runner, name, state):
    learned, reason, neighbors = _learned(runner, name)
    result.extra.update({'learned': learned, 'neighbors': neighbors})
    if learned is None:
        result.extra['learned_reason'] = reason
        return None
    result.extra['unlearned_ports'] = netlink.unlearned_ports(state, learned)
    return result.extra['unlearned_ports']


class PodBridge(ModuleLifecycle):
    """Catalog N-8 on the lifecycle: validate, read the links (``ip -j -d link``), plan the commands
    (netlink.plan_bridge), report, run them (an MTU change is undone when a later command fails), read
    back; after every successful end, what the bridge learned (and with verify_learned, wait for it)."""

    catalog = ['N-8']
    options = ARGUMENT_SPEC
    refusals = (neigh.NeighError, netlink.LinkError)

    def validate(self):
        p = self.params
        neigh.validate_device(p['name'])
        netlink.validate_mtu(p['mtu'])
        if p['port_mtu'] and p['mtu'] is None:
            raise netlink.LinkError('port_mtu needs mtu: the MTU to give the ports')
        if isinstance(p['verify_learned'], bool) or not 0 <= p['verify_learned'] <= 600:
            raise netlink.LinkError('verify_learned must be 0 to 600 seconds, got %r' % (p['verify_learned'],))

    def _unreadable(self, error):
        # The message as it always was: netlink's own texts say "nothing was changed" already;
        # a failed read command's text is passed through as it is.
        self.module.fail_json(msg=str(error), changed=False)

    def read(self):
        p = self.params
        self.runner = Runner(self.module)
        if p['verify_learned'] and not self.runner.has('bridge'):
            self.refuse('verify_learned needs the bridge command (Debian package iproute2) on the node; nothing was changed')
        try:
            self.state = _read(self.runner, p['name'], p['mtu'])
        except (CommandError, netlink.LinkError) as e:
            self._unreadable(e)
        self.now = None

    def plan(self):
        try:
            self.commands = netlink.plan_bridge(self.state, self.params['mtu'], self.params['port_mtu'])
        except netlink.LinkError as e:
            self._unreadable(e)

    def report(self):
        p, result, state = self.params, self.result, self.state
        result.before = _view(state, p['port_mtu'])
        result.after = dict(result.before, admin_up=True, mtu=p['mtu'] if p['mtu'] is not None else state['mtu'])
        if p['port_mtu']:
            result.after['port_mtus'] = dict.fromkeys(result.before['port_mtus'], p['mtu'])
        result.add_diff(result.before, result.after, 'bridge %s' % p['name'])
        result.extra.update({'commands': self.commands, 'bridge': state})
        if state['mtu_mismatch']:
            result.warn('%s: port MTUs %s differ from %s; pod interfaces are not changed by this module (recreate the pods '
                        'after fixing the CNI MTU)' % (p['name'], state['port_mtus'],
                                                       p['mtu'] if p['mtu'] is not None else 'the bridge MTU %s' % state['mtu']))

    def will_change(self):
        return bool(self.commands)

    def apply(self):
        p, result, state = self.params, self.result, self.state
        old_mtu = {p_['name']: p_['mtu'] for p_ in state['ports']}
        old_mtu[p['name']] = state['mtu']
        done = self.done = []
        for cmd in self.commands:
            try:
                self.runner.run(cmd)
            except CommandError as e:
                undone = _undo(self.runner, done, old_mtu)
                result.changed = bool(done) and not undone['complete']
                result.extra['commands'] = done
                result.extra['undone'] = undone['commands']
                result.fail('%s (ran before the failure: %s; MTU changes undone: %s)'
                            % (e, [' '.join(c) for c in done] or 'nothing',
                               'all' if undone['complete'] else 'NOT ALL - %s' % undone['error']), error=e.to_dict())
            done.append(cmd)

    def verify(self):
        p, result, done = self.params, self.result, self.done
        try:
            now = self.now = _read(self.runner, p['name'], p['mtu'])
        except (CommandError, netlink.LinkError) as e:
            result.changed = True
            result.fail('ran %s but cannot read %s back: %s' % ([' '.join(c) for c in done], p['name'], e))
        result.after = _view(now, p['port_mtu'])
        result.extra['bridge'] = now
        if not now.get('admin_up') or (p['mtu'] is not None and now.get('mtu') != p['mtu']):
            result.fail('ran %s but %s is now %s' % ([' '.join(c) for c in done], p['name'], result.after))
        if p['port_mtu']:
            wrong = {port['name']: port['mtu'] for port in now['ports'] if port['kind'] == 'veth' and port['mtu'] != p['mtu']}
            if wrong:
                result.fail('ran %s but these ports do not have MTU %s: %s' % ([' '.join(c) for c in done], p['mtu'], wrong))

    def after(self):
        # What the bridge learned: of the state read back after a change, else of the state read first.
        p, result = self.params, self.result
        applied = self.now is not None
        state = self.now if applied else self.state
        prefix = 'the change was made but ' if applied else ''
        try:
            silent = _report_learned(result, self.runner, p['name'], state)
            if not self.check_mode and p['verify_learned']:
                _wait_learned(result, self.runner, p, state, silent)
        except CommandError as e:
            result.fail('%sreading what the bridge learned failed: %s' % (prefix, e), error=e.to_dict())
        except (neigh.NeighError, netlink.LinkError) as e:
            result.fail('%sreading what the bridge learned failed: %s' % (prefix, e))


def _undo(runner, done, old_mtu):
    """Put back the MTUs of the commands in ``done`` (newest first); ``up`` is left as is."""
    undone = []
    for cmd in reversed(done):
        if 'mtu' not in cmd:
            continue
        dev = cmd[cmd.index('dev') + 1]
        back = ['ip', 'link', 'set', 'dev', dev, 'mtu', str(old_mtu[dev])]
        try:
            runner.run(back)
        except CommandError as e:
            return {'complete': False, 'commands': undone, 'error': str(e)}
        undone.append(back)
    return {'complete': True, 'commands': undone, 'error': None}


def _wait_learned(result, runner, p, state, silent, clock=time.monotonic, sleep=time.sleep):
    """Poll the forwarding database until every up veth port learned a MAC, or fail naming the silent ones."""
    deadline = clock() + p['verify_learned']
    while silent:
        if clock() >= deadline:
            result.fail('after %d s no MAC was learned on port(s) %s of %s: their pods sent nothing since the bridge '
                        'came up (check the pods and the ports\' state)' % (p['verify_learned'], ', '.join(silent), p['name']))
        sleep(1)
        silent = _report_learned(result, runner, p['name'], state)
    return silent


def main():
    PodBridge().run()


if __name__ == '__main__':
    main()
