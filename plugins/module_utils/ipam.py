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

import errno
import fcntl
import ipaddress
import os
import posixpath
import re
import time

from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS

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


# --- garbage collection of leaked allocations (catalog N-1) ------------------------
#
# read_allocations() reads one network directory; plan_gc() is pure: it decides, from the
# files, one runtime listing and the clock, which allocations are leaked.  lock_network()
# and move_to_backup() are the only functions here that act on the node.  Every file operation
# of this part goes through a HostFS (``fs``; default the machine's root ``/``), so a test can
# hand in a fake one.

_LOCAL = HostFS('/')


def _fs(fs):
    return _LOCAL if fs is None else fs


GC_LIVE = 'live'
GC_YOUNG = 'young'
GC_LEAKED = 'leaked'
GC_UNKNOWN = 'unknown'
READ_LIMIT = 4096
# CNI spec: a container ID is non-empty and only alphanumerics, hyphen, underscore and period.
_CNI_ID_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')


def looks_like_network(dir_path, fs=None):
    """True when ``dir_path`` holds what host-local writes: a regular file named as an IP
    address or a ``last_reserved_ip.*`` file.

    A ``data_dir`` given by mistake (``/var/lib``) holds ``dpkg``, ``apt``...: none of them
    may be locked, read or written (issue #10 hole 7).  Raises OSError when the directory
    cannot be listed.
    """
    for entry in _fs(fs).scandir(dir_path):
        if not entry.is_file(follow_symlinks=False):
            continue
        if entry.name.startswith(LAST_RESERVED_PREFIX) or is_allocation_name(entry.name):
            return True
    return False


def read_allocations(dir_path, fs=None):
    """The allocation files of one ``<dataDir>/<network>`` directory (through ``fs``, a HostFS).

    Returns ``{'allocations': [{'ip', 'path', 'container_id', 'ifname', 'mtime'}],
    'other_files': [names], 'lock': bool, 'last_reserved': [names]}``.  Only regular
    files named as an IP address are allocations; symbolic links and anything else are
    listed in ``other_files`` and never collected.
    """
    allocations = []
    other = []
    reserved = []
    has_lock = False
    fs = _fs(fs)
    for entry in fs.scandir(dir_path):
        name = entry.name
        if name == LOCK:
            has_lock = True
            continue
        if name.startswith(LAST_RESERVED_PREFIX):
            reserved.append(name)
            continue
        try:
            addr = ipaddress.ip_address(name)
        except ValueError:
            addr = None
        if addr is None or not entry.is_file(follow_symlinks=False):
            other.append(name)
            continue
        st = entry.stat(follow_symlinks=False)
        path = os.path.join(dir_path, name)     # the path as given (os.scandir's entry.path)
        item = parse_allocation(fs.read_head(path, READ_LIMIT))
        item.update({'ip': name, 'path': path, 'mtime': st.st_mtime, '_key': (addr.version, int(addr))})
        allocations.append(item)
    allocations.sort(key=lambda a: a['_key'])
    for item in allocations:
        del item['_key']
    return {'allocations': allocations, 'other_files': sorted(other), 'lock': has_lock, 'last_reserved': sorted(reserved)}


def plan_gc(networks, live_ids, now, grace_period):
    """Decide every allocation of every network: live, young, leaked or unknown.

    ``networks``: ``[{'path', 'allocations': [...]}]`` as :func:`read_allocations`
    returns them; ``live_ids``: every sandbox and container ID the runtime listed (one
    listing); ``now``: the node's clock (seconds since the epoch).

    - The match is on the full container ID (exact string; never a prefix or a
      substring, unlike the seed's ``grep``).
    - The files of one container ID share one decision, in every network: a dual-stack
      pod's v4 and v6 files (and a pod's other interfaces) are kept or collected
      together.  A container is young when ANY of its files is younger than
      ``grace_period``.
    - A file without a readable container ID (empty, or not a valid CNI container ID)
      is ``unknown`` and kept.
    - A network where something would be collected but no allocation belongs to a
      listed container is ``refused``: that is what an empty or wrong runtime listing
      looks like (the caller collects it only with ``allow_all``).

    Returns ``[{'path', 'allocated', 'live', 'young', 'leaked', 'unknown', 'refused'}]``
    in the order given, where ``live`` is a count and the others are lists of
    ``{'ip', 'container_id', 'ifname', 'age', 'path'}``.
    """
    live_ids = frozenset(live_ids)
    youngest_age = {}
    for net in networks:
        for a in net['allocations']:
            cid = a.get('container_id')
            if cid and _CNI_ID_RE.match(cid):
                age = now - a['mtime']
                prev = youngest_age.get(cid)
                # the youngest file of the container decides
                youngest_age[cid] = age if prev is None else min(prev, age)
    decision = {}
    for cid, youngest in youngest_age.items():
        if cid in live_ids:
            decision[cid] = GC_LIVE
        elif youngest < grace_period:
            decision[cid] = GC_YOUNG
        else:
            decision[cid] = GC_LEAKED
    plans = []
    for net in networks:
        out = {GC_YOUNG: [], GC_LEAKED: [], GC_UNKNOWN: []}
        live = 0
        for a in net['allocations']:
            cid = a.get('container_id')
            verdict = decision.get(cid, GC_UNKNOWN) if cid else GC_UNKNOWN  # not in decision: not a valid ID
            if verdict == GC_LIVE:
                live += 1
                continue
            out[verdict].append({'ip': a['ip'], 'container_id': cid, 'ifname': a.get('ifname'),
                                 'age': int(now - a['mtime']), 'path': a['path']})
        plans.append({
            'path': net['path'],
            'allocated': len(net['allocations']),
            'live': live,
            'young': out[GC_YOUNG],
            'leaked': out[GC_LEAKED],
            'unknown': out[GC_UNKNOWN],
            'refused': bool(out[GC_LEAKED]) and live == 0,
        })
    return plans


class LockTimeout(Exception):
    pass


def lock_network(dir_path, timeout, create=True, interval=0.1, clock=time.monotonic, sleep=time.sleep, fs=None):
    """Hold host-local's own lock: ``flock(LOCK_EX)`` on ``<dir>/lock``, as the plugin does.

    Waits up to ``timeout`` seconds (LockTimeout after).  Returns ``(fd, waited)``;
    ``fd`` is None when there is no lock file and ``create`` is false (check mode never
    creates it).  The lock file is opened, never written or truncated.  Release it with
    :func:`unlock_network` and the same ``fs``.
    """
    fs = _fs(fs)
    path = os.path.join(dir_path, LOCK)
    try:
        fd = fs.open_fd(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0))
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, 'is a symbolic link, not host-local\'s lock file (a regular file)', path)
        if e.errno != errno.ENOENT or not create:
            if e.errno == errno.ENOENT:
                return None, 0.0
            raise
        # host-local opens it with O_RDWR|O_CREATE itself; an empty file either way.
        fd = fs.open_fd(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0), 0o644)
    start = clock()
    while True:
        try:
            fs.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd, clock() - start
        except (IOError, OSError) as e:
            if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                fs.close(fd)
                raise
        waited = clock() - start
        if waited >= timeout:
            fs.close(fd)
            raise LockTimeout('%s is held by another process (host-local or another cleanup) after waiting %.1f s'
                              % (path, waited))
        sleep(min(interval, max(timeout - waited, 0.001)))


def unlock_network(fd, fs=None):
    """Release what :func:`lock_network` returned (``None``: nothing was held)."""
    if fd is not None:
        fs = _fs(fs)
        try:
            fs.flock(fd, fcntl.LOCK_UN)
        finally:
            fs.close(fd)


def fsync_dir(path, fs=None):
    _fs(fs).fsync_dir(path)


def copy_exclusive(src, dst, mode, fs=None):
    """Create ``dst`` (``mode``, never following a link) with ``src``'s bytes and times, fsynced.

    Raises OSError ``EEXIST`` when ``dst`` already exists: nothing is ever overwritten.
    """
    fs = _fs(fs)
    st = fs.lstat(src)
    data = fs.read_head(src, -1)
    fd = fs.open_fd(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0), mode)
    try:
        fs.write_fd(fd, data)
        fs.fsync(fd)
    finally:
        fs.close(fd)
    fs.utime(dst, (st.st_atime, st.st_mtime))


def move_to_backup(src, dst, sync_dirs=True, fs=None):
    """Move one file so that it always exists in at least one of the two places.

    Same file system: ``rename`` (atomic; a crash leaves the file in one place or the
    other, so no fsync is needed for safety, only for durability: ``sync_dirs``).
    Across file systems (``EXDEV``, e.g. the tmpfs ``/var/run/cni/networks`` to a disk
    backup): copy to ``<dst>.partial``, ``fsync``, rename to ``dst``, ``fsync`` its
    directory, and only then unlink the source (always, whatever ``sync_dirs``).
    Never overwrites ``dst``.  Returns ``'rename'`` or ``'copy'``.
    """
    fs = _fs(fs)
    if fs.lexists(dst):
        raise OSError(errno.EEXIST, 'backup target already exists', dst)
    try:
        fs.rename(src, dst)
        method = 'rename'
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        method = 'copy'
        tmp = dst + '.partial'
        copy_exclusive(src, tmp, 0o600, fs=fs)
        fs.rename(tmp, dst)
        fs.fsync_dir(os.path.dirname(dst))
        fs.unlink(src)
    if sync_dirs:
        fs.fsync_dir(os.path.dirname(src))
        if method == 'rename':
            fs.fsync_dir(os.path.dirname(dst))
    return method
