# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection tracking (catalog N-2, C-1): parsers and the limit planner."""

from __future__ import annotations

import os
import re

MAX_KEY = 'net.netfilter.nf_conntrack_max'
COUNT_KEY = 'net.netfilter.nf_conntrack_count'
BUCKETS_KEY = 'net.netfilter.nf_conntrack_buckets'
# Fix A of the catalog (source 003): nf_conntrack_max = MemTotal in kB / 32.
AUTO_DIVISOR = 32
# The kernel stores the limit in an int.
KERNEL_MAX = 2 ** 31 - 1

TABLE_FULL_RE = re.compile(r'nf_conntrack: (?:nf_conntrack: )?table full, dropping packet')
_DMESG_TS_RE = re.compile(r'^\[\s*(?P<ts>\d+\.\d+)\]')


class LimitError(ValueError):
    pass


def parse_meminfo(text):
    """``/proc/meminfo`` as a dict of kB values."""
    result = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(':')
        if not sep:
            continue
        parts = rest.split()
        if parts and parts[0].isdigit():
            result[name.strip()] = int(parts[0])
    return result


def auto_max(mem_total_kb):
    if mem_total_kb <= 0:
        raise LimitError('MemTotal is %r kB: cannot compute the automatic limit' % (mem_total_kb,))
    return mem_total_kb // AUTO_DIVISOR


def parse_max(value):
    """Validate the ``max`` option: a positive integer or ``auto``.

    Returns the integer, or the string ``'auto'``.
    """
    if isinstance(value, bool):
        raise LimitError('max must be a positive integer or "auto", got %r' % (value,))
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if text.lower() == 'auto':
            return 'auto'
        if not re.match(r'^[0-9]+$', text):
            raise LimitError('max must be a positive integer or "auto", got %r' % (value,))
        number = int(text)
    if number <= 0:
        raise LimitError('max must be a positive integer or "auto", got %r' % (value,))
    if number > KERNEL_MAX:
        raise LimitError('max %d is larger than the kernel accepts (%d)' % (number, KERNEL_MAX))
    return number


def plan_limit(current, desired, allow_decrease):
    """What to do with the runtime limit.

    Returns (action, target): action is ``keep`` (already right), ``raise``, ``lower``,
    or ``refuse_lower`` (desired is lower than the current value and lowering was not
    allowed: the current value stays).
    """
    if current == desired:
        return 'keep', current
    if desired > current:
        return 'raise', desired
    if allow_decrease:
        return 'lower', desired
    return 'refuse_lower', current


def usage_percent(count, maximum):
    if count is None or not maximum:
        return None
    return round(100.0 * count / maximum, 1)


def parse_table_full(kernel_log):
    """Count ``table full, dropping packet`` events in dmesg/journal text.

    Returns ``{'count': n, 'last': line-or-None}``.
    """
    count = 0
    last = None
    for line in kernel_log.splitlines():
        if TABLE_FULL_RE.search(line):
            count += 1
            last = line.strip()
    return {'count': count, 'last': last}


def processes_named(names, proc='/proc'):
    """PIDs of running processes whose command name is in ``names``."""
    found = []
    try:
        entries = os.listdir(proc)
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, 'comm')) as f:
                comm = f.read().strip()
        except (IOError, OSError):
            continue
        if comm in names:
            found.append({'pid': int(entry), 'name': comm})
    return sorted(found, key=lambda p: p['pid'])


_FAMILIES = ('ipv4', 'ipv6')
DNS_PORT = '53'


def _entries(listing):
    """The fields of each entry of a ``conntrack -L`` listing, from the protocol name on.

    The trailer line ("conntrack v1.4.7 (conntrack-tools): N flow entries have been shown")
    and the ``-o extended`` family columns (``ipv4 2``) are dropped, and so are lines too short
    to be an entry.
    """
    for line in (listing or '').splitlines():
        fields = line.split()
        if not fields or fields[0].startswith('conntrack'):
            continue
        if fields[0] in _FAMILIES:
            fields = fields[2:]
        if len(fields) >= 3:
            yield fields


def breakdown(listing, top=5):
    """Counts of a ``conntrack -L`` listing (plain or ``-o extended``), the N-2 diagnosis step.

    Returns ``total``, ``by_protocol`` ({tcp: n, udp: n, ...}), ``tcp_states`` ({ESTABLISHED: n, ...}),
    ``dns`` (entries whose original destination port is 53) and ``top_dports`` ([[port, n], ...]).
    The trailer line conntrack prints on stderr ("N flow entries have been shown") is ignored if
    it is passed in.
    """
    by_protocol, states, dports = {}, {}, {}
    total = dns = 0
    for fields in _entries(listing):
        proto = fields[0]
        total += 1
        by_protocol[proto] = by_protocol.get(proto, 0) + 1
        if proto == 'tcp' and len(fields) > 3 and '=' not in fields[3]:
            states[fields[3]] = states.get(fields[3], 0) + 1
        dport = next((f.split('=', 1)[1] for f in fields if f.startswith('dport=')), None)
        if dport is not None:
            dports[dport] = dports.get(dport, 0) + 1
            if dport == DNS_PORT:
                dns += 1
    ranked = sorted(dports.items(), key=lambda kv: (-kv[1], int(kv[0]) if kv[0].isdigit() else 0))
    return {'total': total, 'by_protocol': by_protocol, 'tcp_states': states, 'dns': dns,
            'top_dports': [[port, n] for port, n in ranked[:top]]}


# D-9: a node masquerades every connection to one destination (address, port, protocol) from
# one address: the source port is what tells them apart, so at most this many can be open at
# once (the GKE guide: ports 32768-65535, "No mapping for NAT masquerade DROPPED" beyond it).
NAT_PORT_CAPACITY = 32767


def _directions(fields):
    """The ``key=value`` fields of each direction: a new direction starts at every ``src=``."""
    out = []
    for f in fields:
        if '=' not in f:
            continue
        k, v = f.split('=', 1)
        if k == 'src':
            out.append({})
        if out and k not in out[-1]:
            out[-1][k] = v
    return out


def nat_usage(listing, top=5):
    """Source-NATed entries of a ``conntrack -L`` listing per (protocol, NAT address, destination).

    An entry is source-NATed when its reply's destination differs from its original source
    (MASQUERADE/SNAT rewrote the source).  Returns ``{'total': n, 'destinations': [{'protocol',
    'nat_address', 'dst', 'dport', 'count'}, ...]}`` largest first (``top`` of them) and
    ``max_per_destination``: the number to compare with :data:`NAT_PORT_CAPACITY`.
    """
    groups = {}
    total = 0
    for fields in _entries(listing):
        if fields[0] not in ('tcp', 'udp', 'sctp', 'dccp'):
            continue
        dirs = _directions(fields)
        if len(dirs) < 2:
            continue
        orig, reply = dirs[0], dirs[1]
        if not {'src', 'dst', 'dport'} <= set(orig) or 'dst' not in reply:
            continue
        if reply['dst'] == orig['src']:
            continue
        total += 1
        key = (fields[0], reply['dst'], orig['dst'], orig['dport'])
        groups[key] = groups.get(key, 0) + 1
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))
    return {'total': total,
            'max_per_destination': ranked[0][1] if ranked else 0,
            'destinations': [{'protocol': k[0], 'nat_address': k[1], 'dst': k[2], 'dport': k[3], 'count': n}
                             for k, n in ranked[:top]]}


def advice(counts, share=0.5):
    """The source documents' N-2 advice for what dominates the table (empty when nothing does)."""
    total = counts.get('total') or 0
    if not total:
        return []
    out = []
    tcp = counts['by_protocol'].get('tcp', 0)
    udp = counts['by_protocol'].get('udp', 0)
    if tcp >= share * total:
        out.append('mostly TCP (%d of %d): many short-lived connections; use keep-alive / connection pooling '
                   'in the clients' % (tcp, total))
    if udp >= share * total or counts.get('dns', 0) >= share * total:
        out.append('mostly UDP (%d of %d, %d DNS): deploy NodeLocal DNSCache so DNS queries stop filling the '
                   'table' % (udp, total, counts.get('dns', 0)))
    return out
