# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Neighbor (ARP/NDP) table (catalog N-6): parse ``ip -j neigh show`` and judge it.

``ip -j neigh show`` prints a JSON list of
``{"dst": "10.99.0.77", "dev": "vA", "lladdr": "...", "state": ["FAILED"]}``;
``lladdr`` is absent for INCOMPLETE/FAILED entries, ``state`` is a list (flags such
as ``router`` are separate keys).  Without ``nud all`` the command hides NOARP
entries.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.netmedic.k8s.plugins.module_utils import netlink

# Entries that point to nothing (resolution failed or in progress).
UNRESOLVED_STATES = ('FAILED', 'INCOMPLETE')
# Entries reported by the facts module (STALE is normal on its own, listed for N-6).
REPORTED_STATES = ('FAILED', 'INCOMPLETE', 'STALE')
# Entries a flush never removes (they need `ip neigh del`).
STATIC_STATES = ('PERMANENT', 'NOARP')


class NeighError(ValueError):
    pass


def normalize_mac(mac):
    """``02:FC:0:0:0:5`` -> ``02:fc:00:00:00:05``; None stays None."""
    if mac is None:
        return None
    parts = str(mac).strip().lower().replace('-', ':').split(':')
    if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
        raise NeighError('not a MAC address: %r' % (mac,))
    try:
        return ':'.join('%02x' % int(p, 16) for p in parts)
    except ValueError:
        raise NeighError('not a MAC address: %r' % (mac,)) from None


def normalize_ip(ip):
    try:
        return str(ipaddress.ip_address(str(ip).strip()))
    except ValueError:
        raise NeighError('not an IP address: %r' % (ip,)) from None


def parse_neigh_json(text):
    """``ip -j neigh show`` output -> list of entries.

    Each entry: ``{'dst', 'dev', 'lladdr' (or None), 'state' (first state word or
    None), 'states' (all), 'router' (bool)}``.
    """
    entries = []
    for item in netlink.load_json_list(text, 'ip -j neigh', NeighError):
        if 'dst' not in item:
            continue
        states = item.get('state') or []
        if isinstance(states, str):
            states = [states]
        entries.append({
            'dst': item['dst'],
            'dev': item.get('dev'),
            'lladdr': item.get('lladdr'),
            'state': states[0] if states else None,
            'states': list(states),
            'router': 'router' in item,
        })
    return entries


def count_states(entries):
    """``{'REACHABLE': 3, 'FAILED': 1, ...}`` (an entry counts once per state word)."""
    counts = {}
    for entry in entries:
        for state in entry['states'] or ['NONE']:
            counts[state] = counts.get(state, 0) + 1
    return counts


def in_states(entries, states):
    wanted = set(states)
    return [e for e in entries if wanted.intersection(e['states'])]


def find(entries, dst, dev=None):
    """Entries for ``dst`` (compared as IP addresses), optionally on ``dev``."""
    target = normalize_ip(dst)
    found = []
    for entry in entries:
        try:
            same = normalize_ip(entry['dst']) == target
        except NeighError:
            continue
        if same and (dev is None or entry['dev'] == dev):
            found.append(entry)
    return found


def mismatches(entries, expected):
    """Catalog N-6 detection: entries whose MAC differs from the known owner's MAC.

    ``expected`` maps IP -> MAC (the MAC of the interface holding the VIP on its
    owner).  Returns ``[{'dst', 'dev', 'lladdr', 'expected', 'state'}]`` for entries
    that resolve the IP to another MAC (unresolved entries are not mismatches).
    """
    result = []
    for ip, mac in sorted((expected or {}).items()):
        want = normalize_mac(mac)
        for entry in find(entries, ip):
            have = entry['lladdr']
            if have is None:
                continue
            if normalize_mac(have) != want:
                result.append({'dst': entry['dst'], 'dev': entry['dev'], 'lladdr': have,
                               'expected': want, 'state': entry['state']})
    return result


# --- neighbor_flush module (catalog N-6 fix) ---------------------------------------------------

# `arping -c 2 -I eth1 10.77.0.12` (iputils 20221126) prints one line per reply:
#   Unicast reply from 10.77.0.12 [52:54:00:77:00:02]  2.333ms
_ARPING_REPLY_RE = re.compile(r'^(?:Unicast|Broadcast) reply from (?P<ip>\S+) \[(?P<mac>[0-9A-Fa-f:]+)\]', re.M)
_DEVICE_RE = re.compile(r'^[A-Za-z0-9_.:@-]{1,15}$')


def validate_device(name):
    """Interface names: 1-15 characters, no '/', no white space (as the kernel allows)."""
    if not isinstance(name, str) or not _DEVICE_RE.match(name) or name in ('.', '..'):
        raise NeighError('not a network interface name: %r (1-15 characters, no "/" or white space)' % (name,))
    return name


def parse_arping(text):
    """MACs that answered, in order of first answer, normalized: ``['52:54:00:77:00:02', ...]``."""
    macs = []
    for match in _ARPING_REPLY_RE.finditer(text or ''):
        mac = normalize_mac(match.group('mac'))
        if mac not in macs:
            macs.append(mac)
    return macs


def family(ip):
    """``'-4'`` or ``'-6'``: the ``ip`` family flag for an address."""
    return '-6' if ':' in normalize_ip(ip) else '-4'


def removal_command(entry):
    """Argument list that removes one entry.

    Dynamic entries are flushed (``ip neigh flush to IP dev DEV``, the documented fix);
    PERMANENT and NOARP entries survive a flush and are deleted (``ip neigh del``).
    """
    fam = family(entry['dst'])
    verb = ['del', entry['dst']] if entry['state'] in STATIC_STATES else ['flush', 'to', entry['dst']]
    return ['ip', fam, 'neigh'] + verb + ['dev', entry['dev']]


def plan_removals(entries, addresses, device=None, expected_mac=None, absent=False):
    """Entries to remove for ``addresses`` (normalized IPs), optionally only on ``device``.

    With ``expected_mac``: entries that resolve the address to another MAC (entries without
    a MAC - FAILED, INCOMPLETE - point nowhere and are left alone). With ``absent``: every
    entry for the address. Returns ``[{'dst', 'dev', 'lladdr', 'state', 'method', 'expected'}]``
    (``expected``: the wanted MAC, or None with ``absent``).
    """
    if (expected_mac is None) == (not absent):
        raise NeighError('plan_removals needs exactly one of expected_mac or absent')
    want = normalize_mac(expected_mac) if expected_mac is not None else None
    result = []
    for ip in addresses:
        for entry in find(entries, ip, device):
            if want is not None and (entry['lladdr'] is None or normalize_mac(entry['lladdr']) == want):
                continue
            result.append({'dst': entry['dst'], 'dev': entry['dev'], 'lladdr': entry['lladdr'], 'state': entry['state'],
                           'method': 'del' if entry['state'] in STATIC_STATES else 'flush', 'expected': want})
    return result


def plan_flush_all(entries, device=None):
    """What ``ip neigh flush all`` (or ``flush dev DEV``) removes: every entry but PERMANENT/NOARP."""
    return [{'dst': e['dst'], 'dev': e['dev'], 'lladdr': e['lladdr'], 'state': e['state'], 'method': 'flush', 'expected': None}
            for e in entries if (device is None or e['dev'] == device) and not set(e['states']) & set(STATIC_STATES)]


def entry_view(entry):
    """The stable part of an entry, for before/after and diffs."""
    return {'dst': entry['dst'], 'dev': entry['dev'], 'lladdr': entry['lladdr'], 'state': entry['state']}
