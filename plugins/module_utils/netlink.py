# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Links and bridges (catalog N-8): parse ``ip -j -d link show`` / ``ip -j addr show``.

One ``ip -j -d link show`` lists every interface with ``flags`` (``UP`` = admin up,
``LOWER_UP`` = carrier), ``operstate``, ``mtu``, ``master`` (the bridge a port is
attached to) and ``linkinfo.info_kind`` (``bridge``, ``veth``, ...), so a bridge's
ports need no second command.
"""

from __future__ import annotations

import json


class LinkError(ValueError):
    pass


def load_json_list(text, what, error=LinkError):
    """The objects of an iproute2 ``-j`` listing (``ip -j link``, ``ip -j neigh``, ``bridge -j fdb``).

    Empty output is an empty list; invalid JSON or anything but a list raises ``error`` naming
    ``what`` printed it; items that are not objects are dropped.
    """
    text = (text or '').strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError as e:
        raise error('%s printed invalid JSON: %s' % (what, e)) from None
    if not isinstance(data, list):
        raise error('%s printed %s, expected a list' % (what, type(data).__name__))
    return [d for d in data if isinstance(d, dict)]


def parse_links(text):
    """``ip -j [-d] link show`` -> ``{ifname: link}``.

    Each link: ``{'name', 'ifindex', 'kind', 'slave_kind', 'master', 'mtu',
    'operstate', 'admin_up', 'lower_up', 'flags', 'address'}``.
    """
    links = {}
    for item in load_json_list(text, 'ip -j link show'):
        name = item.get('ifname')
        if not name:
            continue
        flags = list(item.get('flags') or [])
        info = item.get('linkinfo') or {}
        links[name] = {
            'name': name,
            'ifindex': item.get('ifindex'),
            'kind': info.get('info_kind'),
            'slave_kind': info.get('info_slave_kind'),
            'master': item.get('master'),
            'mtu': item.get('mtu'),
            'operstate': item.get('operstate'),
            'admin_up': 'UP' in flags,
            'lower_up': 'LOWER_UP' in flags,
            'no_carrier': 'NO-CARRIER' in flags,
            'flags': flags,
            'address': item.get('address'),
        }
    return links


def ports_of(links, bridge):
    """Links attached to ``bridge``, sorted by name."""
    return sorted((link for link in links.values() if link['master'] == bridge), key=lambda link: link['name'])


def bridge_state(links, name, expected_mtu=None):
    """State of one pod bridge (catalog N-8).

    Returns ``{'name', 'exists', ...}``; for an existing interface also ``kind``,
    ``is_bridge``, ``operstate``, ``admin_up``, ``lower_up``, ``mtu``, ``ports``
    (``[{'name', 'kind', 'mtu', 'operstate'}]``), ``port_mtus`` (distinct, sorted),
    ``veth_count``, ``mtu_mismatch`` (a port's MTU differs from the bridge's or from
    ``expected_mtu``) and ``problems`` (a list of short strings).
    """
    link = links.get(name)
    if link is None:
        return {'name': name, 'exists': False}
    ports = ports_of(links, name)
    port_mtus = sorted({p['mtu'] for p in ports if p['mtu'] is not None})
    mtus = set(port_mtus)
    if link['mtu'] is not None:
        mtus.add(link['mtu'])
    mismatch = len(mtus) > 1
    if expected_mtu is not None and any(m != expected_mtu for m in mtus):
        mismatch = True
    problems = []
    if not link['admin_up']:
        problems.append('admin_down')
    elif link['operstate'] == 'DOWN' and any(p['operstate'] == 'UP' for p in ports):
        problems.append('oper_down')
    if mismatch:
        problems.append('mtu_mismatch')
    return {
        'name': name,
        'exists': True,
        'kind': link['kind'],
        'is_bridge': link['kind'] == 'bridge',
        'operstate': link['operstate'],
        'admin_up': link['admin_up'],
        'lower_up': link['lower_up'],
        'mtu': link['mtu'],
        'expected_mtu': expected_mtu,
        'ports': [{'name': p['name'], 'kind': p['kind'], 'mtu': p['mtu'], 'operstate': p['operstate']} for p in ports],
        'port_mtus': port_mtus,
        'veth_count': sum(1 for p in ports if p['kind'] == 'veth'),
        'mtu_mismatch': mismatch,
        'problems': problems,
    }


def parse_addresses(text):
    """``ip -j addr show`` -> ``[{'ifname', 'address' (MAC), 'family', 'local', 'prefixlen'}]``.

    One row per IP address; used to find the interface (and MAC) holding a VIP.
    """
    rows = []
    for item in load_json_list(text, 'ip -j addr show'):
        for addr in item.get('addr_info') or []:
            if 'local' not in addr:
                continue
            rows.append({
                'ifname': item.get('ifname'),
                'address': item.get('address'),
                'family': addr.get('family'),
                'local': addr.get('local'),
                'prefixlen': addr.get('prefixlen'),
            })
    return rows


# --- pod_bridge module (catalog N-8 fix) -------------------------------------------------------

MIN_MTU = 68
MAX_MTU = 65535


def validate_mtu(mtu):
    if mtu is None:
        return None
    if isinstance(mtu, bool) or not isinstance(mtu, int) or mtu < MIN_MTU or mtu > MAX_MTU:
        raise LinkError('mtu must be a whole number between %d and %d, got %r' % (MIN_MTU, MAX_MTU, mtu))
    return mtu


def plan_bridge(state, mtu=None, port_mtu=False):
    """Commands that bring a pod bridge (``bridge_state`` output) up with ``mtu``.

    Raises LinkError when the interface does not exist or is not a bridge (nothing to do
    safely then). Returns argument lists: the ports' MTU first (with ``port_mtu``: the
    host side of every veth port whose MTU differs from ``mtu``), then the bridge's MTU,
    then ``up``. Lowering ports before the bridge keeps the bridge's MTU never above a
    port's in between (the kernel caps a bridge at its smallest port).
    """
    name = state['name']
    if not state['exists']:
        raise LinkError('bridge %s does not exist on this node: the CNI plugin (or kubenet) creates it; '
                        'nothing was changed' % name)
    if not state['is_bridge']:
        raise LinkError('%s is a %s interface, not a bridge; nothing was changed' % (name, state['kind'] or 'plain'))
    commands = []
    if port_mtu:
        if mtu is None:
            raise LinkError('port_mtu needs mtu: the MTU to give the ports; nothing was changed')
        for port in state['ports']:
            if port['kind'] == 'veth' and port['mtu'] != mtu:
                commands.append(['ip', 'link', 'set', 'dev', port['name'], 'mtu', str(mtu)])
    if mtu is not None and state['mtu'] != mtu:
        commands.append(['ip', 'link', 'set', 'dev', name, 'mtu', str(mtu)])
    if not state['admin_up']:
        commands.append(['ip', 'link', 'set', 'dev', name, 'up'])
    return commands


# --- learned MACs (catalog N-8 verification: "arp -an should list pod MACs") ----------------

def learned_macs(fdb_text, bridge):
    """``bridge -j fdb show br <bridge>`` -> ``{port: [MAC, ...]}`` of the MACs the bridge learned.

    Learned entries are the dynamic ones on a port of ``bridge``: not ``self`` (the port's own
    multicast/unicast entries) and not ``permanent``/``static`` (the port's own address).
    """
    out = {}
    for entry in load_json_list(fdb_text, 'bridge -j fdb show'):
        if entry.get('master') != bridge or 'self' in (entry.get('flags') or []):
            continue
        if (entry.get('state') or '') in ('permanent', 'static', 'noarp'):
            continue
        out.setdefault(entry.get('ifname'), []).append(entry.get('mac'))
    return {port: sorted(set(macs)) for port, macs in sorted(out.items())}


def unlearned_ports(state, learned):
    """Ports of ``state`` that are UP and veth but have no learned MAC yet (their pod sent nothing)."""
    return [p['name'] for p in state.get('ports') or []
            if p['kind'] == 'veth' and p['operstate'] in ('UP', 'UNKNOWN') and not learned.get(p['name'])]
