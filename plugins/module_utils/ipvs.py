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

from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import proc_rows

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


def _count(field):
    return int(field) if field.isdigit() else None


def parse_modules(text):
    """``/proc/modules`` -> ``[{'name', 'size', 'refcount', 'used_by', 'state'}]``."""
    return [{'name': parts[0], 'size': _count(parts[1]), 'refcount': _count(parts[2]),
             'used_by': [m for m in parts[3].split(',') if m and m != '-'], 'state': parts[4]}
            for parts in proc_rows(text, 5)]


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


# --- ipvs_modules module (catalog N-4 fix) -----------------------------------------------------

def validate_schedulers(schedulers):
    """User input -> kernel module names ``['ip_vs', 'ip_vs_<s>', ...]`` (order kept, no duplicates).

    Raises SchedulerError for anything but a non-empty list of known scheduler names.
    """
    if isinstance(schedulers, (str, bytes)) or not isinstance(schedulers, (list, tuple)):
        raise SchedulerError('schedulers must be a list of IPVS scheduler names, got %r' % (schedulers,))
    if not schedulers:
        raise SchedulerError('schedulers must name at least one IPVS scheduler (kube-proxy uses rr by default)')
    names = [MODULE_PREFIX]
    for sched in schedulers:
        if not isinstance(sched, str):
            raise SchedulerError('IPVS scheduler names are strings, got %r; valid: %s' % (sched, ', '.join(ALL_SCHEDULERS)))
        module = scheduler_module(sched)
        if sched != sched.strip():
            raise SchedulerError('unknown IPVS scheduler %r (white space); valid: %s' % (sched, ', '.join(ALL_SCHEDULERS)))
        if module not in names:
            names.append(module)
    return names


# --- ipvs_timeouts module (catalog N-5 fix) ----------------------------------------------------

TIMEOUT_KEYS = ('tcp', 'tcpfin', 'udp')
# ipvsadm --set takes seconds; the kernel keeps them as jiffies in an int (MAX_SCHEDULE_TIMEOUT / HZ
# bounds them); a day is far beyond any documented value, so larger values are refused as typos.
MAX_TIMEOUT = 86400 * 30


class TimeoutError_(ValueError):
    pass


def validate_timeouts(values):
    """``{'tcp': 900, 'tcpfin': 120, 'udp': 10}`` (None/0 = leave as is) -> ints; bad input raises."""
    result = {}
    for key in TIMEOUT_KEYS:
        value = values.get(key)
        if value is None:
            value = 0
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value.strip())
            else:
                raise TimeoutError_('%s must be a whole number of seconds (0 = leave as is), got %r' % (key, value))
        if value < 0 or value > MAX_TIMEOUT:
            raise TimeoutError_('%s must be between 0 and %d seconds, got %d' % (key, MAX_TIMEOUT, value))
        result[key] = value
    if not any(result.values()):
        raise TimeoutError_('set at least one of tcp, tcpfin, udp to a value above 0 (0 means leave as is)')
    return result


def plan_timeouts(current, wanted):
    """Target timeouts: ``wanted`` values, with 0 meaning ``current`` (as ``ipvsadm --set`` does)."""
    return {key: (wanted[key] if wanted.get(key) else current[key]) for key in TIMEOUT_KEYS}


def set_args(values):
    """``ipvsadm --set tcp tcpfin udp`` argument list (a 0 keeps that value, as ipvsadm documents)."""
    return ['ipvsadm', '--set'] + [str(values[k]) for k in TIMEOUT_KEYS]


TIMEOUT_UNIT = """# Managed by netmedic.k8s ({module}); catalog {catalog}.
# Manual edits are overwritten; the previous file is kept as a backup.
[Unit]
Description=IPVS connection timeouts tcp={tcp} tcpfin={tcpfin} udp={udp} (netmedic.k8s, catalog {catalog})
Documentation=man:ipvsadm(8)
After=systemd-modules-load.service
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStartPre={modprobe} ip_vs
ExecStart={ipvsadm} --set {tcp} {tcpfin} {udp}

[Install]
WantedBy=multi-user.target
"""


def render_timeout_unit(values, ipvsadm_path, modprobe_path, module_name='ipvs_timeouts', catalog='N-5'):
    """systemd oneshot unit that loads ip_vs and re-applies ``ipvsadm --set`` at every boot."""
    return TIMEOUT_UNIT.format(module=module_name, catalog=catalog, ipvsadm=ipvsadm_path, modprobe=modprobe_path,
                               tcp=values['tcp'], tcpfin=values['tcpfin'], udp=values['udp'])


def udp_timeout_advice(version):
    """Catalog W-4: which fix a Kubernetes version calls for: ``'N-5'``, ``'C-3'`` or None (1.17).

    ``version`` is a versions.Version (or None when unknown).
    """
    if version is None:
        return None
    minor = tuple(version.minor)
    if minor <= (1, 16):
        return 'N-5'
    if minor >= (1, 18):
        return 'C-3'
    return None
