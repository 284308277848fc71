#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: pod_bridge
short_description: Bring the node's pod bridge (cbr0) up and check or set its MTU
version_added: 0.1.0
description:
  - >-
    Fixes catalog entry B(N-8): the pod bridge (C(cbr0) on GKE/kubenet nodes) is down, so pods on the
    node cannot reach anything (C(ip address show cbr0) shows it DOWN; the documented fix is
    C(ip link set cbr0 up)).
  - Brings the bridge administratively up and, when O(mtu) is given, sets the bridge's MTU first.
  - Reports the bridge's ports (the pods' veth interfaces) and their MTUs; a port whose MTU differs from
    the bridge's (or from O(mtu)) is reported as a warning (the pods' MTU must match the network's
    MTU, for example 1460 on GKE, minus overlay overhead). Pod interfaces are never changed.
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
requirements:
  - ip (Debian package iproute2) on the managed node
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netmedic.k8s.plugins.module_utils import neigh, netlink
from ansible_collections.netmedic.k8s.plugins.module_utils.result import Result
from ansible_collections.netmedic.k8s.plugins.module_utils.runner import CommandError, Runner


def _read(runner, name, mtu):
    links = netlink.parse_links(runner.run(['ip', '-j', '-d', 'link', 'show']).stdout)
    return netlink.bridge_state(links, name, mtu)


def _view(state):
    return {'admin_up': state.get('admin_up'), 'operstate': state.get('operstate'), 'mtu': state.get('mtu')}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', default='cbr0'),
            mtu=dict(type='int'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = Result(module, ['N-8'])

    # 1. Validate input before reading or touching anything.
    try:
        neigh.validate_device(p['name'])
        netlink.validate_mtu(p['mtu'])
    except (neigh.NeighError, netlink.LinkError) as e:
        module.fail_json(msg='%s (nothing was changed)' % e, changed=False)

    # 2. Read, 3. plan (pure).
    runner = Runner(module)
    try:
        state = _read(runner, p['name'], p['mtu'])
        commands = netlink.plan_bridge(state, p['mtu'])
    except (CommandError, netlink.LinkError) as e:
        module.fail_json(msg=str(e), changed=False)

    result.before = _view(state)
    result.after = dict(result.before, admin_up=True, mtu=p['mtu'] if p['mtu'] is not None else state['mtu'])
    result.add_diff(result.before, result.after, 'bridge %s' % p['name'])
    result.extra.update({'commands': commands, 'bridge': state})
    if state['mtu_mismatch']:
        result.warn('%s: port MTUs %s differ from %s; pod interfaces are not changed by this module (recreate the pods '
                    'after fixing the CNI MTU)' % (p['name'], state['port_mtus'], p['mtu'] if p['mtu'] is not None else 'the bridge MTU %s' % state['mtu']))

    if module.check_mode or not commands:
        result.exit()

    # 4. Apply.
    done = []
    for cmd in commands:
        try:
            runner.run(cmd)
        except CommandError as e:
            result.changed = bool(done)
            result.extra['commands'] = done
            result.fail('%s (ran before the failure: %s)' % (e, [' '.join(c) for c in done] or 'nothing'), error=e.to_dict())
        done.append(cmd)

    # 5. Verify by reading back.
    now = _read(runner, p['name'], p['mtu'])
    result.after = _view(now)
    result.extra['bridge'] = now
    if not now.get('admin_up') or (p['mtu'] is not None and now.get('mtu') != p['mtu']):
        result.fail('ran %s but %s is now %s' % ([' '.join(c) for c in done], p['name'], result.after))
    result.exit()


if __name__ == '__main__':
    main()
