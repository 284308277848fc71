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
import json

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
    text = (text or '').strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError as e:
        raise NeighError('ip -j neigh printed invalid JSON: %s' % e) from None
    if not isinstance(data, list):
        raise NeighError('ip -j neigh printed %s, expected a list' % type(data).__name__)
    entries = []
    for item in data:
        if not isinstance(item, dict) or 'dst' not in item:
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
