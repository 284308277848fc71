# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Listening TCP sockets from ``/proc/net/tcp`` and ``/proc/net/tcp6`` (catalog D-5).

In a dual-stack cluster a Service with ``ipFamilyPolicy`` other than SingleStack sends
IPv6 clients to the application; an application listening on IPv4 only (``0.0.0.0``)
refuses them.  The seed checks it with ``netstat -anp``; the kernel's own tables give
the same answer without a host binary.  ``/proc/net/tcp6`` cannot tell whether an
``[::]`` socket is IPV6_V6ONLY, which does not matter here: any ``[::]`` or global IPv6
listener accepts IPv6 clients.
"""

from __future__ import annotations

import ipaddress

PROC_TCP = '/proc/net/tcp'
PROC_TCP6 = '/proc/net/tcp6'
TCP_LISTEN = '0A'


class ListenerError(ValueError):
    pass


def _address(hex_addr, family):
    """The kernel prints each 32-bit word of the address in host (little-endian) order."""
    if family == 4:
        if len(hex_addr) != 8:
            raise ListenerError('bad IPv4 address %r' % hex_addr)
        return str(ipaddress.IPv4Address(bytes.fromhex(hex_addr)[::-1]))
    if len(hex_addr) != 32:
        raise ListenerError('bad IPv6 address %r' % hex_addr)
    raw = b''.join(bytes.fromhex(hex_addr[i:i + 8])[::-1] for i in range(0, 32, 8))
    return str(ipaddress.IPv6Address(raw))


def parse_proc_net_tcp(text, family):
    """Listening sockets of one table: ``[{'family', 'address', 'port'}]`` (sorted, unique)."""
    if family not in (4, 6):
        raise ValueError('family must be 4 or 6')
    found = set()
    for lineno, line in enumerate((text or '').splitlines()):
        fields = line.split()
        if not fields or fields[0] == 'sl':
            continue
        if len(fields) < 4 or ':' not in fields[1]:
            raise ListenerError('unexpected line %d of /proc/net/tcp%s: %r' % (lineno + 1, '6' if family == 6 else '', line[:120]))
        if fields[3] != TCP_LISTEN:
            continue
        hex_addr, hex_port = fields[1].rsplit(':', 1)
        found.add((_address(hex_addr, family), int(hex_port, 16)))
    return [{'family': family, 'address': a, 'port': p} for a, p in sorted(found, key=lambda x: (x[1], x[0]))]


def _reachable(entry):
    """Not loopback-only (another host or pod can connect)."""
    return not ipaddress.ip_address(entry['address']).is_loopback


def summarize(tcp4, tcp6):
    """Ports by reachable family: ``{'ipv4_only': [...], 'ipv6': [...], 'loopback_only': [...]}``."""
    v4 = {e['port'] for e in tcp4 if _reachable(e)}
    v6 = {e['port'] for e in tcp6 if _reachable(e) and not ipaddress.ip_address(e['address']).ipv4_mapped}
    every = {e['port'] for e in tcp4 + tcp6}
    return {
        'ipv4_only': sorted(v4 - v6),
        'ipv6': sorted(v6),
        'loopback_only': sorted(every - v4 - v6),
    }


def ipv6_gaps(summary, wanted_ports):
    """Of ``wanted_ports`` (must accept IPv6 clients): ``(ipv4_only, not_listening)``."""
    v4only = set(summary['ipv4_only'])
    v6 = set(summary['ipv6'])
    wanted = sorted(set(wanted_ports or ()))
    return [p for p in wanted if p in v4only], [p for p in wanted if p not in v4only and p not in v6]
