# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""host-local IPAM directories (catalog N-1 leaks, N-7 tmpfs migration).

host-local (containernetworking-plugins) keeps ``<dataDir>/<network>/``:

- one file per allocated address, named as the address (``10.8.3.2``,
  ``fd00:10:8:3::2``), holding ``<container id>\\r\\n<ifname>`` (older releases: the
  ID only); a dual-stack pod has one file per family;
- ``last_reserved_ip.<n>`` per range set and an empty ``lock``: not allocations.

Range sizes follow host-local's rules (``range.go`` ``Canonicalize``): the range
runs from ``rangeStart`` (default: first address after the network address) to
``rangeEnd`` (default: last address, minus the broadcast address for IPv4), and
the gateway (default: first address) is never handed out.  For a /29 that is
``.1-.6`` minus the gateway: 5 addresses, as the plugin's own
``no IP addresses available in range set: 172.20.5.1-172.20.5.6`` says.
"""

from __future__ import annotations

import ipaddress
import posixpath

LOCK = 'lock'
LAST_RESERVED_PREFIX = 'last_reserved_ip.'
DEFAULT_DATA_DIRS = ('/var/lib/cni/networks', '/var/run/cni/networks')


class RangeError(ValueError):
    pass


def is_allocation_name(name):
    """True for a file named as an IP address (never ``lock``/``last_reserved_ip.*``)."""
    if name == LOCK or name.startswith(LAST_RESERVED_PREFIX):
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def parse_allocation(content):
    """Allocation file content -> ``{'container_id', 'ifname'}`` (ifname may be None)."""
    if isinstance(content, bytes):
        content = content.decode('utf-8', 'replace')
    lines = [line.strip() for line in content.replace('\r\n', '\n').replace('\r', '\n').split('\n')]
    lines = [line for line in lines if line]
    return {
        'container_id': lines[0] if lines else None,
        'ifname': lines[1] if len(lines) > 1 else None,
    }


def range_bounds(rng):
    """host-local's canonical form of one range dict.

    Returns ``(start, end, gateway)`` as ``ipaddress`` objects.  Raises RangeError
    for a config host-local itself would refuse.
    """
    subnet_text = (rng or {}).get('subnet')
    if not subnet_text:
        raise RangeError('range without a subnet')
    try:
        subnet = ipaddress.ip_network(str(subnet_text), strict=False)
    except ValueError as e:
        raise RangeError('invalid subnet %r: %s' % (subnet_text, e)) from None
    if subnet.prefixlen > subnet.max_prefixlen - 2:
        raise RangeError('network %s too small to allocate from' % subnet)
    first = subnet.network_address + 1
    last = subnet.broadcast_address - 1 if subnet.version == 4 else subnet.broadcast_address

    def _addr(key, default):
        value = rng.get(key)
        if not value:
            return default
        try:
            addr = ipaddress.ip_address(str(value))
        except ValueError as e:
            raise RangeError('invalid %s %r: %s' % (key, value, e)) from None
        if addr not in subnet:
            raise RangeError('%s %s is not in subnet %s' % (key, addr, subnet))
        return addr

    start = _addr('rangeStart', first)
    end = _addr('rangeEnd', last)
    gateway = _addr('gateway', first)
    if start > end:
        raise RangeError('rangeStart %s is after rangeEnd %s' % (start, end))
    return start, end, gateway


def range_size(rng):
    """Addresses host-local can hand out from one range."""
    start, end, gateway = range_bounds(rng)
    size = int(end) - int(start) + 1
    if start <= gateway <= end:
        size -= 1
    return size


def describe_range(rng):
    """``172.20.5.1-172.20.5.6``: how host-local names a range in its errors."""
    start, end, _gateway = range_bounds(rng)
    return '%s-%s' % (start, end)


def in_range(ip, rng):
    start, end, _gateway = range_bounds(rng)
    addr = ipaddress.ip_address(ip)
    return addr.version == start.version and start <= addr <= end


def usage(addresses, range_sets):
    """Per range set: size, allocated, free, used_percent (catalog N-1).

    ``addresses``: allocated IPs (strings).  Returns ``(sets, outside)`` where
    ``sets`` is ``[{'ranges', 'size', 'allocated', 'free', 'used_percent',
    'error'}]`` and ``outside`` lists addresses in no known range (left over from an
    earlier configuration).
    """
    sets = []
    claimed = set()
    for rset in range_sets or []:
        names = []
        size = 0
        error = None
        bounds = []
        for rng in rset:
            try:
                bounds.append(range_bounds(rng))
                names.append(describe_range(rng))
                size += range_size(rng)
            except RangeError as e:
                error = str(e)
        if error:
            sets.append({'ranges': names, 'size': None, 'allocated': None, 'free': None,
                         'used_percent': None, 'error': error})
            continue
        allocated = 0
        for ip in addresses:
            addr = ipaddress.ip_address(ip)
            if any(addr.version == s.version and s <= addr <= e for s, e, _g in bounds):
                allocated += 1
                claimed.add(ip)
        free = max(size - allocated, 0)
        sets.append({
            'ranges': names,
            'size': size,
            'allocated': allocated,
            'free': free,
            'used_percent': round(100.0 * allocated / size, 1) if size else None,
            'error': None,
        })
    outside = sorted((ip for ip in addresses if ip not in claimed), key=_ip_key)
    return sets, outside


def _ip_key(ip):
    addr = ipaddress.ip_address(ip)
    return (addr.version, int(addr))


def scan_network(fs, node_dir):
    """Read one ``<dataDir>/<network>`` directory through a HostFS.

    Returns ``{'allocations': [{'ip', 'container_id', 'ifname', 'mtime'}],
    'last_reserved': {'0': ip}, 'lock': bool, 'other_files': [...]}``.
    """
    allocations = []
    last_reserved = {}
    other = []
    has_lock = False
    for name in fs.listdir(node_dir):
        path = posixpath.join(node_dir, name)
        if name == LOCK:
            has_lock = True
        elif name.startswith(LAST_RESERVED_PREFIX):
            last_reserved[name[len(LAST_RESERVED_PREFIX):]] = (fs.read_text(path, '') or '').strip()
        elif is_allocation_name(name):
            entry = {'ip': name}
            entry.update(parse_allocation(fs.read_bytes(path)))
            entry['mtime'] = int(fs.mtime(path))
            allocations.append(entry)
        else:
            other.append(name)
    allocations.sort(key=lambda a: _ip_key(a['ip']))
    return {'allocations': allocations, 'last_reserved': last_reserved, 'lock': has_lock, 'other_files': other}


def network_summary(name, data_dir, scan, range_sets, range_source):
    """One network's facts: counts, per-set usage and the worst set's percentage."""
    addresses = [a['ip'] for a in scan['allocations']]
    sets, outside = usage(addresses, range_sets) if range_sets else ([], [])
    known = [s for s in sets if s['size']]
    worst = max(known, key=lambda s: s['used_percent']) if known else None
    return {
        'name': name,
        'data_dir': data_dir,
        'path': posixpath.join(data_dir, name),
        'exists': True,
        'allocated': len(addresses),
        'containers': len({a['container_id'] for a in scan['allocations'] if a['container_id']}),
        'allocations': scan['allocations'],
        'last_reserved': scan['last_reserved'],
        'range_source': range_source,
        'range_sets': sets,
        'outside_ranges': outside,
        'size': sum(s['size'] for s in known) if known else None,
        'free': sum(s['free'] for s in known) if known else None,
        'used_percent': worst['used_percent'] if worst else None,
        'exhausted': any(s['free'] == 0 for s in known),
    }
