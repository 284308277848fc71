# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""IPVS (catalog N-4 scheduler modules, N-5 timeouts): parsers and validation.

Formats (recorded from a Debian 6.1 kernel, see tests/unit/fixtures/README.md):

- ``/proc/net/ip_vs``: ``IP Virtual Server version 1.2.1 (size=4096)``, two header
  lines, then per virtual service ``TCP  0A60000A:0035 rr`` followed by its
  ``  -> 0AF40105:0035      Masq    1      0          0`` real servers (hex
  addresses; IPv6 services print ``[addr]:port``);
- ``/proc/modules``: ``name size refcount deps, state address``;
- ``ipvsadm -L --timeout``: ``Timeout (tcp tcpfin udp): 900 120 300``.
"""

from __future__ import annotations

import re

PROC_IP_VS = '/proc/net/ip_vs'
PROC_MODULES = '/proc/modules'
MODULE_PREFIX = 'ip_vs'

# Catalog N-4: the schedulers kube-proxy accepts, plus those of newer kernels.
VALID_SCHEDULERS = ('rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq')
NEWER_KERNEL_SCHEDULERS = ('fo', 'ovf', 'mh', 'twos')
ALL_SCHEDULERS = VALID_SCHEDULERS + NEWER_KERNEL_SCHEDULERS
# IPVS keeps UDP sessions this long unless told otherwise (catalog N-5).
DEFAULT_UDP_TIMEOUT = 300

_VERSION_RE = re.compile(r'^IP Virtual Server version (?P<version>[\d.]+) \(size=(?P<size>\d+)\)')
_SERVICE_RE = re.compile(r'^(?P<proto>TCP|UDP|SCTP|FWM)\s+(?P<addr>\S+)\s+(?P<sched>\S+)(?:\s+(?P<flags>.*\S))?\s*$')
_REAL_RE = re.compile(r'^\s+->\s+(?P<addr>\S+)\s+(?P<fwd>\S+)\s+(?P<weight>\d+)\s+(?P<active>\d+)\s+(?P<inactive>\d+)')
_TIMEOUT_RE = re.compile(r'Timeout \(tcp tcpfin udp\):\s*(?P<tcp>\d+)\s+(?P<tcpfin>\d+)\s+(?P<udp>\d+)')


class SchedulerError(ValueError):
    pass


def _hex_endpoint(text):
    """``0A60000A:0035`` -> ``10.96.0.10:53``; other forms are returned unchanged."""
    addr, sep, port = text.rpartition(':')
    if sep and len(addr) == 8 and re.match(r'^[0-9A-Fa-f]{8}$', addr) and re.match(r'^[0-9A-Fa-f]{4}$', port):
        octets = [str(int(addr[i:i + 2], 16)) for i in range(0, 8, 2)]
        return '%s:%d' % ('.'.join(octets), int(port, 16))
    if sep and re.match(r'^[0-9A-Fa-f]{4}$', port):
        return '%s:%d' % (addr, int(port, 16))
    return text


def parse_proc_ip_vs(text):
    """``/proc/net/ip_vs`` -> version, table size and the virtual services.

    Returns ``{'version', 'table_size', 'services': [{'protocol', 'address',
    'scheduler', 'flags', 'real_servers': [...]}]}``.
    """
    lines = text.splitlines()
    result = {'version': None, 'table_size': None, 'services': []}
    if lines:
        match = _VERSION_RE.match(lines[0].strip())
        if match:
            result['version'] = match.group('version')
            result['table_size'] = int(match.group('size'))
    current = None
    for line in lines[1:]:
        service = _SERVICE_RE.match(line)
        if service:
            addr = service.group('addr')
            current = {
                'protocol': service.group('proto'),
                'address': addr if service.group('proto') == 'FWM' else _hex_endpoint(addr),
                'scheduler': service.group('sched'),
                'flags': (service.group('flags') or '').strip(),
                'real_servers': [],
            }
            result['services'].append(current)
            continue
        real = _REAL_RE.match(line)
        if real and current is not None and real.group('addr') != 'RemoteAddress:Port':
            current['real_servers'].append({
                'address': _hex_endpoint(real.group('addr')),
                'forward': real.group('fwd'),
                'weight': int(real.group('weight')),
                'active': int(real.group('active')),
                'inactive': int(real.group('inactive')),
            })
    return result


def parse_modules(text):
    """``/proc/modules`` -> ``[{'name', 'size', 'refcount', 'used_by', 'state'}]``."""
    modules = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5:
            continue
        used_by = [m for m in parts[3].split(',') if m and m != '-']
        modules.append({
            'name': parts[0],
            'size': int(parts[1]) if parts[1].isdigit() else None,
            'refcount': int(parts[2]) if parts[2].isdigit() else None,
            'used_by': used_by,
            'state': parts[4],
        })
    return modules


def parse_modules_builtin(text):
    """``/lib/modules/<release>/modules.builtin`` -> module names (``kernel/.../ip_vs_rr.ko``)."""
    names = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        base = line.rsplit('/', 1)[-1]
        for ext in ('.ko.xz', '.ko.zst', '.ko.gz', '.ko'):
            if base.endswith(ext):
                base = base[:-len(ext)]
                break
        names.append(base.replace('-', '_'))
    return names


def ipvs_module_names(names):
    """The ``ip_vs`` and ``ip_vs_*`` names among ``names``, sorted."""
    return sorted(n for n in set(names) if n == MODULE_PREFIX or n.startswith(MODULE_PREFIX + '_'))


def scheduler_module(scheduler):
    """Kernel module of a scheduler (``lc`` -> ``ip_vs_lc``); bad input raises SchedulerError."""
    name = str(scheduler or '').strip()
    if name not in ALL_SCHEDULERS:
        raise SchedulerError('unknown IPVS scheduler %r; valid: %s' % (scheduler, ', '.join(ALL_SCHEDULERS)))
    return MODULE_PREFIX + '_' + name


def schedulers_of(module_names):
    """Schedulers whose module is in ``module_names`` (``ip_vs_rr`` -> ``rr``)."""
    found = []
    for name in module_names:
        if name.startswith(MODULE_PREFIX + '_') and name[len(MODULE_PREFIX) + 1:] in ALL_SCHEDULERS:
            found.append(name[len(MODULE_PREFIX) + 1:])
    return sorted(set(found))


def missing_schedulers(wanted, loaded_modules, builtin_modules=()):
    """Schedulers of ``wanted`` whose module is neither loaded nor built in."""
    present = set(loaded_modules) | set(builtin_modules)
    return [s for s in wanted if scheduler_module(s) not in present]


def parse_timeout(text):
    """``Timeout (tcp tcpfin udp): 900 120 300`` -> ``{'tcp': 900, 'tcpfin': 120, 'udp': 300}``.

    Returns None when the text holds no timeout line.
    """
    match = _TIMEOUT_RE.search(text or '')
    if not match:
        return None
    return {k: int(match.group(k)) for k in ('tcp', 'tcpfin', 'udp')}
