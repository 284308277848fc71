# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only node network facts and findings (``node_network_facts``).

:func:`gather` runs every probe against a node seen through a ``Runner`` (commands)
and a :class:`~.hostfs.HostFS` root (files), so unit tests replay recorded tool
output over a fixture tree and the module runs the same code on ``/``.  A probe
whose tool is missing reports ``available: false`` and a ``reason``; a probe that
breaks records the error in itself and in the top-level ``errors`` list and never
stops the others.  :func:`findings` turns the facts into catalog findings.

Nothing here writes, loads kernel modules or changes the node: ``ipvsadm`` is only
run when ``/proc/net/ip_vs`` exists, because on a node without IPVS it would try
to ``modprobe ip_vs``.
"""

from __future__ import annotations

import os
import posixpath

from ansible_collections.netmedic.k8s.plugins.module_utils import cni, conntrack, dnsquery, ipam, ipvs, listeners, neigh, netlink, ports, resolv, runtime
from ansible_collections.netmedic.k8s.plugins.module_utils.node import sysctl as sysctl_utils
from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandError, CommandNotFound

PROBES = ('conntrack', 'ports', 'ipvs', 'cni', 'ipam', 'bridges', 'neighbors', 'dns', 'runtime', 'listeners')
CATALOG = ['N-1', 'N-2', 'N-3', 'N-4', 'N-5', 'N-6', 'N-7', 'N-8', 'C-5', 'D-5', 'D-7', 'D-9', 'D-11']

DEFAULTS = {
    'probes': list(PROBES),
    'nodeport_range': ports.DEFAULT_NODEPORT_RANGE,
    'cni_conf_dir': cni.CONF_DIR,
    'ipam_data_dirs': list(ipam.DEFAULT_DATA_DIRS),
    'flannel_subnet_env': cni.FLANNEL_SUBNET_ENV,
    'bridges': ['cbr0', 'cni0'],
    'pod_mtu': None,
    'resolv_conf_files': list(resolv.DEFAULT_FILES),
    'expected_neighbors': {},
    'ipvs_schedulers': [],
    'conntrack_warn_percent': 80,
    'conntrack_critical_percent': 95,
    'ipam_warn_percent': 90,
    'kernel_log': True,
    'ipv6_ports': [],
    'dns_servers': [],
    'dns_names': ['kubernetes.default.svc.cluster.local'],
    'dns_query_type': 'A',
    'dns_timeout': 2,
    'nat_port_capacity': conntrack.NAT_PORT_CAPACITY,
    'nat_warn_percent': 80,
}

# Bounds that keep the dns probe's run time bounded (servers x names x timeout).
MAX_DNS_SERVERS = 32
MAX_DNS_NAMES = 8

REMEDIATION = {
    'N-1': 'netmedic.k8s.cni_ipam_gc',
    'N-2': 'netmedic.k8s.conntrack_limit',
    'N-3': 'netmedic.k8s.port_range',
    'N-4': 'netmedic.k8s.ipvs_modules',
    'N-5': 'netmedic.k8s.ipvs_timeouts',
    'N-6': 'netmedic.k8s.neighbor_flush',
    'N-7': 'netmedic.k8s.flannel_config',
    'N-8': 'netmedic.k8s.pod_bridge',
    'C-5': 'netmedic.k8s.flannel_config',
    'D-5': 'manual: make the application listen on IPv6 too ([::]), or make the Service SingleStack IPv4 (catalog D-5)',
    'D-7': 'manual: fix or remove the invalid file in the CNI configuration directory (catalog D-7)',
    'D-9': 'manual: spread the connections over more destinations or nodes, reuse connections (keep-alive); '
           'NAT ports per destination are limited (catalog D-9)',
    'D-11': 'manual: make the node resolver configuration list the same nameservers; for failing queries check the '
            'kube-dns Service, its endpoints and the CoreDNS pods (catalog D-11)',
}

PROC_SYS = '/proc/sys'
LOCAL_PORT_RANGE_KEY = 'net.ipv4.ip_local_port_range'
RESERVED_PORTS_KEY = 'net.ipv4.ip_local_reserved_ports'
CONNTRACK_HASHSIZE = '/sys/module/nf_conntrack/parameters/hashsize'
FLANNEL_TMPFS_DATA_DIR = '/var/run/cni/networks'


class ParamError(ValueError):
    pass


def merge_params(params):
    merged = dict(DEFAULTS)
    for key, value in (params or {}).items():
        if value is not None or key == 'pod_mtu':
            merged[key] = value
    return merged


def validate_params(params):
    """Fail on bad input before anything is read (raises ParamError)."""
    p = merge_params(params)
    unknown = [x for x in p['probes'] if x not in PROBES]
    if unknown:
        raise ParamError('unknown probe(s) %s; valid: %s' % (', '.join(unknown), ', '.join(PROBES)))
    try:
        ports.parse_single_range(p['nodeport_range'])
    except ports.PortRangeError as e:
        raise ParamError('nodeport_range: %s' % e) from None
    for sched in p['ipvs_schedulers']:
        try:
            ipvs.scheduler_module(sched)
        except ipvs.SchedulerError as e:
            raise ParamError('ipvs_schedulers: %s' % e) from None
    for ip, mac in (p['expected_neighbors'] or {}).items():
        try:
            neigh.normalize_ip(ip)
            neigh.normalize_mac(mac)
        except neigh.NeighError as e:
            raise ParamError('expected_neighbors: %s' % e) from None
    for key in ('conntrack_warn_percent', 'conntrack_critical_percent', 'ipam_warn_percent'):
        value = p[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 100:
            raise ParamError('%s must be a number above 0 and at most 100, got %r' % (key, value))
    if p['conntrack_warn_percent'] > p['conntrack_critical_percent']:
        raise ParamError('conntrack_warn_percent (%s) is above conntrack_critical_percent (%s)'
                         % (p['conntrack_warn_percent'], p['conntrack_critical_percent']))
    if p['pod_mtu'] is not None and (isinstance(p['pod_mtu'], bool) or not isinstance(p['pod_mtu'], int) or not 68 <= p['pod_mtu'] <= 65535):
        raise ParamError('pod_mtu must be an integer between 68 and 65535, got %r' % (p['pod_mtu'],))
    for port in p['ipv6_ports'] or []:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ParamError('ipv6_ports must hold TCP ports 1-65535, got %r' % (port,))
    if len(p['dns_servers'] or []) > MAX_DNS_SERVERS:
        raise ParamError('dns_servers: at most %d servers, got %d' % (MAX_DNS_SERVERS, len(p['dns_servers'])))
    if len(p['dns_names'] or []) > MAX_DNS_NAMES or not p['dns_names']:
        raise ParamError('dns_names: 1 to %d names, got %d' % (MAX_DNS_NAMES, len(p['dns_names'] or [])))
    try:
        for server in p['dns_servers'] or []:
            dnsquery.validate_server(server)
        for name in p['dns_names']:
            dnsquery.validate_name(name)
        dnsquery.build_query('x', p['dns_query_type'])
    except dnsquery.QueryError as e:
        raise ParamError('%s' % e) from None
    timeout = p['dns_timeout']
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= dnsquery.MAX_TIMEOUT:
        raise ParamError('dns_timeout must be above 0 and at most %d seconds, got %r' % (dnsquery.MAX_TIMEOUT, timeout))
    cap = p['nat_port_capacity']
    if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= 65535:
        raise ParamError('nat_port_capacity must be an integer from 1 to 65535, got %r' % (cap,))
    value = p['nat_warn_percent']
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 100:
        raise ParamError('nat_warn_percent must be a number above 0 and at most 100, got %r' % (value,))
    for key in ('cni_conf_dir', 'flannel_subnet_env'):
        if not str(p[key]).startswith('/'):
            raise ParamError('%s must be an absolute path, got %r' % (key, p[key]))
    for key in ('ipam_data_dirs', 'resolv_conf_files'):
        for path in p[key]:
            if not str(path).startswith('/'):
                raise ParamError('%s must hold absolute paths, got %r' % (key, path))
    return p


class Context(object):
    def __init__(self, runner, params, fs, kernel_release):
        self.runner = runner
        self.params = params
        self.fs = fs
        self.kernel_release = kernel_release
        self.errors = []
        self.facts = {}

    def sysctl(self, key):
        return sysctl_utils.read_value(key, root=self.fs.path(PROC_SYS))

    def error(self, probe, msg):
        self.errors.append({'probe': probe, 'error': msg})

    def dns_query(self, server, name, qtype, timeout):
        return dnsquery.query(server, name, qtype, timeout)


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _unavailable(reason, **extra):
    data = {'available': False, 'reason': reason}
    data.update(extra)
    return data


# --- conntrack (N-2) ---------------------------------------------------------------

def _kernel_log(ctx):
    """(source, text, reasons): dmesg first, then the journal's kernel messages."""
    reasons = []
    try:
        return 'dmesg', ctx.runner.run(['dmesg']).stdout, reasons
    except CommandNotFound:
        reasons.append('dmesg is not installed')
    except CommandError as e:
        reasons.append('dmesg failed: %s' % e.msg)
    try:
        result = ctx.runner.run(['journalctl', '-k', '-o', 'short-monotonic', '--no-pager'])
    except CommandNotFound:
        reasons.append('journalctl is not installed')
        return None, None, reasons
    except CommandError as e:
        reasons.append('journalctl failed: %s' % e.msg)
        return None, None, reasons
    lines = [line for line in result.stdout.splitlines() if line.strip() and not line.startswith('-- ')]
    if not lines and 'No journal files were found' in (result.stderr or ''):
        reasons.append('journalctl: no journal files were found')
        return None, None, reasons
    return 'journalctl', result.stdout, reasons


def _conntrack_breakdown(ctx):
    """``conntrack -L`` counted by protocol, TCP state and destination port (opt-in: the table can be big)."""
    try:
        listing = ctx.runner.run(['conntrack', '-L']).stdout
    except CommandNotFound:
        return _unavailable('conntrack (conntrack-tools) is not installed')
    except CommandError as e:
        return _unavailable('conntrack -L failed: %s' % e.msg)
    counts = conntrack.breakdown(listing)
    counts['nat'] = conntrack.nat_usage(listing)
    counts['available'] = True
    counts['advice'] = conntrack.advice(counts)
    return counts


def probe_conntrack(ctx):
    maximum = _int(ctx.sysctl(conntrack.MAX_KEY))
    if maximum is None:
        data = _unavailable('%s does not exist: the nf_conntrack kernel module is not loaded'
                            % sysctl_utils.key_to_path(conntrack.MAX_KEY))
    else:
        count = _int(ctx.sysctl(conntrack.COUNT_KEY))
        data = {
            'available': True,
            'count': count,
            'max': maximum,
            'usage_percent': conntrack.usage_percent(count, maximum),
            'buckets': _int(ctx.sysctl(conntrack.BUCKETS_KEY)),
            'hashsize': _int((ctx.fs.read_text(CONNTRACK_HASHSIZE) or '').strip()),
        }
    if data.get('available') and ctx.params.get('conntrack_breakdown'):
        data['breakdown'] = _conntrack_breakdown(ctx)
    if not ctx.params['kernel_log']:
        data['table_full_events'] = _unavailable('kernel_log=false')
        return data
    source, text, reasons = _kernel_log(ctx)
    if source is None:
        data['table_full_events'] = _unavailable('; '.join(reasons), source=None)
    else:
        events = conntrack.parse_table_full(text)
        data['table_full_events'] = {
            'available': True,
            'source': source,
            'count': events['count'],
            'last': events['last'],
            'lines_scanned': len(text.splitlines()),
            'fallback_reason': '; '.join(reasons) or None,
        }
    return data


# --- ports (N-3) -----------------------------------------------------------------

def probe_ports(ctx):
    local = ctx.sysctl(LOCAL_PORT_RANGE_KEY)
    if local is None:
        return _unavailable('%s does not exist' % sysctl_utils.key_to_path(LOCAL_PORT_RANGE_KEY))
    reserved = ctx.sysctl(RESERVED_PORTS_KEY) or ''
    data = {'available': True, 'ip_local_port_range': local, 'ip_local_reserved_ports': reserved}
    data.update(ports.analyze(local, reserved, ctx.params['nodeport_range']))
    return data


# --- IPVS (N-4, N-5) ---------------------------------------------------------------

def probe_ipvs(ctx):
    text = ctx.fs.read_text(ipvs.PROC_IP_VS)
    modules_text = ctx.fs.read_text(ipvs.PROC_MODULES)
    builtin_text = ctx.fs.read_text('/lib/modules/%s/modules.builtin' % ctx.kernel_release) if ctx.kernel_release else None
    loaded = [m['name'] for m in ipvs.parse_modules(modules_text)] if modules_text is not None else []
    builtin = ipvs.parse_modules_builtin(builtin_text) if builtin_text is not None else []
    data = {
        'modules_available': modules_text is not None,
        'modules_loaded': ipvs.ipvs_module_names(loaded),
        'modules_builtin': ipvs.ipvs_module_names(builtin),
        'schedulers_available': ipvs.schedulers_of(ipvs.ipvs_module_names(loaded + builtin)),
    }
    if modules_text is None:
        data['modules_reason'] = '%s does not exist: kernel without loadable module support' % ipvs.PROC_MODULES
    wanted = list(ctx.params['ipvs_schedulers'])
    data['schedulers_wanted'] = wanted
    if modules_text is None and builtin_text is None:
        # Neither loaded nor built-in modules can be listed: unknown, not missing.
        data['schedulers_missing'] = None
    else:
        data['schedulers_missing'] = ipvs.missing_schedulers(wanted, loaded, builtin)
    if text is None:
        data.update(available=False, reason='%s does not exist: IPVS (ip_vs) is not loaded or not built into the kernel' % ipvs.PROC_IP_VS,
                    version=None, table_size=None, services=0, real_servers=0, schedulers_in_use=[],
                    timeouts=_unavailable('no IPVS in the kernel (ipvsadm not run: it would try to load ip_vs)'))
        return data
    parsed = ipvs.parse_proc_ip_vs(text)
    data.update(
        available=True,
        version=parsed['version'],
        table_size=parsed['table_size'],
        services=len(parsed['services']),
        real_servers=sum(len(s['real_servers']) for s in parsed['services']),
        schedulers_in_use=sorted({s['scheduler'] for s in parsed['services']}),
    )
    if not ctx.runner.has('ipvsadm'):
        data['timeouts'] = _unavailable('ipvsadm is not installed')
        return data
    try:
        result = ctx.runner.run(['ipvsadm', '-L', '--timeout'])
    except CommandError as e:
        ctx.error('ipvs', e.msg)
        data['timeouts'] = _unavailable(e.msg)
        return data
    timeouts = ipvs.parse_timeout(result.stdout)
    if timeouts is None:
        msg = 'unexpected ipvsadm -L --timeout output: %r' % result.stdout[:200]
        ctx.error('ipvs', msg)
        data['timeouts'] = _unavailable(msg)
    else:
        timeouts['available'] = True
        data['timeouts'] = timeouts
    return data


# --- CNI configs and host-local IPAM (N-1, N-7, C-5, D-7) ----------------------------

def probe_cni(ctx):
    conf_dir = ctx.params['cni_conf_dir']
    if not ctx.fs.isdir(conf_dir):
        return _unavailable('%s does not exist' % conf_dir, conf_dir=conf_dir, files=[], default=None)
    files = []
    for name in cni.conf_files(ctx.fs.listdir(conf_dir)):
        path = posixpath.join(conf_dir, name)
        try:
            text = ctx.fs.read_text(path, '')
        except (IOError, OSError) as e:
            conf = {'file': name, 'valid': False, 'error': 'cannot read: %s' % e}
        else:
            conf = cni.parse_conf(text, name)
        conf['path'] = path
        files.append(conf)
    cni.mark_default(files)
    default = [f['file'] for f in files if f.get('default')]
    return {'available': True, 'conf_dir': conf_dir, 'files': files, 'default': default[0] if default else None}


def _flannel_ranges(ctx, subnet_file):
    path = subnet_file or ctx.params['flannel_subnet_env']
    text = ctx.fs.read_text(path)
    if text is None:
        return path, None
    return path, cni.flannel_range_sets(cni.parse_subnet_env(text))


def probe_ipam(ctx):
    fs = ctx.fs
    confs = (ctx.facts.get('cni') or {}).get('files') or []
    # data dirs: the options first, then every host-local dataDir a config names
    dirs = []
    origin = {}
    for path in ctx.params['ipam_data_dirs']:
        if path not in origin:
            dirs.append(path)
            origin[path] = ['option']
    configured = []
    for conf in confs:
        for entry in conf.get('ipam') or []:
            if entry['type'] != 'host-local' or not entry.get('data_dir'):
                continue
            if entry['ranges_from'] == 'flannel_subnet_env':
                source, sets = _flannel_ranges(ctx, entry.get('subnet_file'))
                source = 'flannel:%s' % source
            else:
                source, sets = 'cni:%s' % conf['path'], entry['range_sets']
            configured.append({'network': entry['network'], 'data_dir': entry['data_dir'], 'range_sets': sets,
                               'source': source, 'flannel': entry['plugin'] == 'flannel', 'conf': conf['file']})
            if entry['data_dir'] not in origin:
                dirs.append(entry['data_dir'])
                origin[entry['data_dir']] = []
            origin[entry['data_dir']].append(conf['path'])
    mounts = fs.mounts()

    def _configured_for(real_dir, name):
        exact = [c for c in configured if c['network'] == name and fs.realpath(c['data_dir']) == real_dir]
        if exact:
            return exact[0], 'exact'
        same_name = [c for c in configured if c['network'] == name and c['range_sets']]
        return (same_name[0], 'name') if same_name else (None, None)

    data_dirs = []
    networks = []
    seen_real = set()
    for path in dirs:
        real = fs.realpath(path)
        info = {'path': path, 'real_path': real, 'exists': fs.isdir(path), 'configured_by': origin[path]}
        info.update({k: v for k, v in fs.filesystem_of(path, mounts).items() if k != 'path'})
        info['duplicate_of'] = None
        if real in seen_real:
            info['duplicate_of'] = next(d['path'] for d in data_dirs if d['real_path'] == real)
        data_dirs.append(info)
        if not info['exists'] or info['duplicate_of']:
            continue
        seen_real.add(real)
        for name in fs.listdir(path):
            node_dir = posixpath.join(path, name)
            if not fs.isdir(node_dir):
                continue
            conf, match = _configured_for(real, name)
            try:
                scan = ipam.scan_network(fs, node_dir)
            except (IOError, OSError) as e:
                msg = 'cannot read %s: %s' % (node_dir, e)
                ctx.error('ipam', msg)
                networks.append({'name': name, 'data_dir': path, 'path': node_dir, 'exists': True, 'error': msg,
                                 'allocated': None, 'used_percent': None, 'exhausted': False, 'tmpfs': info['tmpfs']})
                continue
            summary = ipam.network_summary(name, path, scan, conf['range_sets'] if conf else None,
                                           conf['source'] if conf else None)
            summary['config_match'] = match
            summary['tmpfs'] = info['tmpfs']
            networks.append(summary)
    present = {(fs.realpath(n['data_dir']), n['name']) for n in networks}
    for conf in configured:
        key = (fs.realpath(conf['data_dir']), conf['network'])
        if key in present:
            continue
        present.add(key)
        empty = ipam.network_summary(conf['network'], conf['data_dir'],
                                     {'allocations': [], 'last_reserved': {}, 'lock': False, 'other_files': []},
                                     conf['range_sets'], conf['source'])
        empty.update(exists=False, config_match='exact', tmpfs=fs.filesystem_of(conf['data_dir'], mounts)['tmpfs'])
        networks.append(empty)
    return {
        'available': True,
        'data_dirs': data_dirs,
        'networks': networks,
        'flannel': _flannel_state(ctx, configured, networks, mounts),
    }


def _flannel_state(ctx, configured, networks, mounts):
    """Catalog N-7 verification: the network's directory under /var/run on tmpfs, none left in /var/lib."""
    fs = ctx.fs
    flannel_confs = [c for c in configured if c['flannel']]
    names = [c['network'] for c in flannel_confs]
    subnet_env_exists = fs.exists(ctx.params['flannel_subnet_env'])
    if not names:
        # No Flannel CNI config: Flannel still runs when flanneld wrote subnet.env;
        # the network is then named after an existing directory (ACK cb0, upstream cbr0).
        if not subnet_env_exists:
            return {'detected': False, 'tmpfs': None}
        names = [n['name'] for n in networks if n['exists'] and n['name'] in ('cb0', 'cbr0')] or ['cbr0']
    name = names[0]
    conf = flannel_confs[0] if flannel_confs else None
    run_dir = posixpath.join(FLANNEL_TMPFS_DATA_DIR, name)
    if conf and fs.realpath(conf['data_dir']).startswith('/run/'):
        run_dir = posixpath.join(conf['data_dir'], name)
    legacy_dir = posixpath.join(cni.HOST_LOCAL_DATA_DIR, name)
    run_fs = fs.filesystem_of(run_dir, mounts)
    state = {
        'detected': True,
        'network': name,
        'conf': conf['conf'] if conf else None,
        'config_data_dir': conf['data_dir'] if conf else None,
        'config_data_dir_tmpfs': fs.filesystem_of(conf['data_dir'], mounts)['tmpfs'] if conf else None,
        'subnet_env_exists': subnet_env_exists,
        'run_dir': run_dir,
        'run_dir_exists': fs.isdir(run_dir),
        'run_dir_fstype': run_fs['fstype'],
        'legacy_dir': legacy_dir,
        'legacy_dir_exists': fs.isdir(legacy_dir),
    }
    state['tmpfs'] = bool(state['run_dir_exists'] and run_fs['tmpfs'] and run_fs['path'].startswith('/run/')
                          and not state['legacy_dir_exists'])
    return state


# --- links, neighbors, DNS, runtime (N-8, N-6, D-11) -----------------------------------

def probe_bridges(ctx):
    if not ctx.runner.has('ip'):
        return _unavailable('ip (iproute2) is not installed', bridges=[])
    result = ctx.runner.run(['ip', '-j', '-d', 'link', 'show'])
    links = netlink.parse_links(result.stdout)
    return {'available': True,
            'bridges': [netlink.bridge_state(links, name, ctx.params['pod_mtu']) for name in ctx.params['bridges']]}


def probe_neighbors(ctx):
    if not ctx.runner.has('ip'):
        return _unavailable('ip (iproute2) is not installed')
    result = ctx.runner.run(['ip', '-j', 'neigh', 'show'])
    entries = neigh.parse_neigh_json(result.stdout)
    reported = neigh.in_states(entries, neigh.REPORTED_STATES)
    return {
        'available': True,
        'total': len(entries),
        'counts': neigh.count_states(entries),
        'entries': [{k: e[k] for k in ('dst', 'dev', 'lladdr', 'state')} for e in reported],
        'unresolved': len(neigh.in_states(entries, neigh.UNRESOLVED_STATES)),
        'expected': {neigh.normalize_ip(ip): neigh.normalize_mac(mac) for ip, mac in (ctx.params['expected_neighbors'] or {}).items()},
        'mismatches': neigh.mismatches(entries, ctx.params['expected_neighbors']),
    }


def probe_dns(ctx):
    files = []
    for path in ctx.params['resolv_conf_files']:
        text = ctx.fs.read_text(path)
        entry = {'path': path, 'exists': text is not None}
        entry.update(resolv.parse_resolv_conf(text or ''))
        files.append(entry)
    data = {'available': True, 'files': files}
    data.update(resolv.compare(files))
    p = ctx.params
    if p['dns_servers']:
        data['queries'] = [ctx.dns_query(server, name, p['dns_query_type'], p['dns_timeout'])
                           for server in p['dns_servers'] for name in p['dns_names']]
    return data


# --- listening sockets (D-5) ---------------------------------------------------------

def probe_listeners(ctx):
    tcp = ctx.fs.read_text(listeners.PROC_TCP)
    if tcp is None:
        return _unavailable('%s does not exist' % listeners.PROC_TCP)
    tcp6 = ctx.fs.read_text(listeners.PROC_TCP6)
    v4 = listeners.parse_proc_net_tcp(tcp, 4)
    v6 = listeners.parse_proc_net_tcp(tcp6, 6) if tcp6 is not None else []
    data = {'available': True, 'ipv6_enabled': tcp6 is not None, 'tcp': v4, 'tcp6': v6}
    data.update(listeners.summarize(v4, v6))
    data['ipv6_ports_wanted'] = sorted(set(ctx.params['ipv6_ports'] or []))
    data['ipv6_ports_ipv4_only'], data['ipv6_ports_not_listening'] = listeners.ipv6_gaps(data, ctx.params['ipv6_ports'])
    return data


def probe_runtime(ctx):
    endpoint, where = runtime.kubelet_endpoint(ctx.fs)
    data = runtime.detect(ctx.fs.is_socket, ctx.runner.which, endpoint)
    data['endpoint_source'] = where
    data['available'] = data['name'] is not None
    if data['name'] is None:
        data['reason'] = 'no container runtime socket found (%s)' % ', '.join(r['socket'] for r in data['runtimes'])
    return data


PROBE_FUNCS = (
    ('conntrack', probe_conntrack),
    ('ports', probe_ports),
    ('ipvs', probe_ipvs),
    ('cni', probe_cni),
    ('ipam', probe_ipam),
    ('bridges', probe_bridges),
    ('neighbors', probe_neighbors),
    ('dns', probe_dns),
    ('runtime', probe_runtime),
    ('listeners', probe_listeners),
)


def gather(runner, params=None, root='/', kernel_release=None, dns_query=None):
    """Run the selected probes; returns the ``netmedic`` facts dict (never raises for a probe).

    ``dns_query`` replaces :func:`dnsquery.query` (tests).
    """
    p = validate_params(params)
    if kernel_release is None:
        kernel_release = os.uname()[2] if root in ('/', None) else None
    ctx = Context(runner, p, HostFS(root), kernel_release)
    if dns_query is not None:
        ctx.dns_query = dns_query
    wanted = set(p['probes'])
    if 'ipam' in wanted:
        wanted.add('cni')  # IPAM ranges come from the CNI configs
    for name, func in PROBE_FUNCS:
        if name not in wanted:
            continue
        try:
            ctx.facts[name] = func(ctx)
        except CommandNotFound as e:
            ctx.facts[name] = _unavailable(e.msg)
        except Exception as e:  # one broken probe never fails the module
            msg = '%s: %s' % (type(e).__name__, e)
            ctx.error(name, msg)
            ctx.facts[name] = _unavailable('probe failed: %s' % msg, error=msg)
    facts = dict(ctx.facts)
    facts['probes'] = [name for name, _f in PROBE_FUNCS if name in wanted]
    facts['catalog'] = list(CATALOG)
    facts['errors'] = ctx.errors
    facts['findings'] = findings(facts, p)
    facts['summary'] = summarize(facts['findings'])
    return facts


# --- findings --------------------------------------------------------------------

def _finding(fid, severity, summary, evidence):
    return {'id': fid, 'severity': severity, 'summary': summary, 'evidence': evidence, 'remediation': REMEDIATION[fid]}


def _conntrack_findings(ct, p):
    out = []
    if not ct or not ct.get('available'):
        return out
    events = ct.get('table_full_events') or {}
    pct = ct.get('usage_percent')
    severity = None
    if pct is not None and pct >= p['conntrack_critical_percent']:
        severity = 'critical'
    elif pct is not None and pct >= p['conntrack_warn_percent']:
        severity = 'warning'
    if events.get('count'):
        severity = severity or 'warning'
    if severity:
        parts = []
        if pct is not None and pct >= p['conntrack_warn_percent']:
            parts.append('conntrack table %s%% full (%s of %s)' % (pct, ct['count'], ct['max']))
        if events.get('count'):
            parts.append('%d "table full, dropping packet" kernel messages (%s)' % (events['count'], events['source']))
        breakdown = ct.get('breakdown') or {}
        if breakdown.get('advice'):
            parts.append('; '.join(breakdown['advice']))
        out.append(_finding('N-2', severity, '; '.join(parts), {
            'count': ct['count'], 'max': ct['max'], 'usage_percent': pct,
            'by_protocol': breakdown.get('by_protocol'), 'dns': breakdown.get('dns'),
            'table_full_events': events.get('count'), 'last_event': events.get('last'),
        }))
    return out


def _nat_findings(ct, p):
    nat = ((ct or {}).get('breakdown') or {}).get('nat')
    if not nat or not nat['destinations']:
        return []
    cap = p['nat_port_capacity']
    worst = nat['destinations'][0]
    pct = round(100.0 * worst['count'] / cap, 1)
    if pct < p['nat_warn_percent']:
        return []
    return [_finding('D-9', 'critical' if worst['count'] >= cap else 'warning',
                     '%s connections to %s:%s are source-NATed from %s: %d of at most %d NAT ports (%s%%); beyond it new '
                     'connections are dropped ("No mapping for NAT masquerade")'
                     % (worst['protocol'].upper(), worst['dst'], worst['dport'], worst['nat_address'], worst['count'], cap, pct),
                     {'nat_port_capacity': cap, 'usage_percent': pct, 'destinations': nat['destinations'],
                      'nat_entries': nat['total']})]


def _ports_findings(pr):
    if not pr or not pr.get('available') or not pr.get('conflict'):
        return []
    return [_finding('N-3', 'warning',
                     'ephemeral port range %d-%d overlaps the NodePort range %s on %d port(s) not reserved in ip_local_reserved_ports'
                     % (pr['ephemeral']['start'], pr['ephemeral']['end'], pr['nodeport_range'], pr['uncovered_ports']),
                     {'ip_local_port_range': pr['ip_local_port_range'], 'ip_local_reserved_ports': pr['ip_local_reserved_ports'],
                      'nodeport_range': pr['nodeport_range'], 'overlap': pr['overlap'], 'uncovered': pr['uncovered']})]


def _ipvs_findings(iv):
    out = []
    if not iv:
        return out
    if iv.get('schedulers_missing'):
        out.append(_finding('N-4', 'warning', 'IPVS scheduler module(s) not loaded: %s'
                            % ', '.join(ipvs.scheduler_module(s) for s in iv['schedulers_missing']),
                            {'wanted': iv['schedulers_wanted'], 'missing': iv['schedulers_missing'],
                             'modules_loaded': iv['modules_loaded'], 'modules_available': iv['modules_available']}))
    timeouts = iv.get('timeouts') or {}
    if iv.get('available') and iv.get('services') and timeouts.get('available') and timeouts['udp'] >= ipvs.DEFAULT_UDP_TIMEOUT:
        out.append(_finding('N-5', 'info', 'IPVS keeps UDP sessions %d s: DNS may time out for minutes after a CoreDNS pod '
                            'goes away (Kubernetes <= 1.16: ipvs_timeouts; >= 1.18: kube-proxy ipvs.udpTimeout, catalog C-3)'
                            % timeouts['udp'],
                            {'tcp': timeouts['tcp'], 'tcpfin': timeouts['tcpfin'], 'udp': timeouts['udp'], 'services': iv['services']}))
    return out


def _cni_findings(c):
    out = []
    if not c or not c.get('available'):
        return out
    for conf in c['files']:
        if not conf.get('valid'):
            out.append(_finding('D-7', 'warning', 'CNI config %s is not usable: %s' % (conf['path'], conf.get('error')),
                                {'path': conf['path'], 'error': conf.get('error'), 'default': c.get('default')}))
        elif conf.get('flannel') and not conf.get('cniVersion'):
            out.append(_finding('C-5', 'warning', 'Flannel CNI config %s has no cniVersion (nodes go NotReady on Kubernetes >= 1.16)'
                                % conf['path'], {'path': conf['path'], 'name': conf['name']}))
    return out


def _ipam_findings(ip, p):
    out = []
    if not ip or not ip.get('available'):
        return out
    for net in ip['networks']:
        if net['used_percent'] is None or not net['exists']:
            continue
        if net['exhausted'] or net['used_percent'] >= p['ipam_warn_percent']:
            out.append(_finding('N-1', 'critical' if net['exhausted'] else 'warning',
                                'host-local network %s in %s is %s%% full (%d allocated, %d free): check for leaked allocations'
                                % (net['name'], net['data_dir'], net['used_percent'], net['allocated'], net['free']),
                                {'path': net['path'], 'allocated': net['allocated'], 'containers': net['containers'],
                                 'size': net['size'], 'free': net['free'], 'range_sets': net['range_sets'],
                                 'range_source': net['range_source']}))
    fl = ip.get('flannel') or {}
    if fl.get('detected') and not fl.get('tmpfs'):
        out.append(_finding('N-7', 'info', 'Flannel network %s keeps host-local IPAM data on disk (not under /var/run on tmpfs): '
                            'leaked allocations survive reboots' % fl['network'],
                            {k: fl.get(k) for k in ('network', 'conf', 'config_data_dir', 'run_dir', 'run_dir_exists',
                                                    'run_dir_fstype', 'legacy_dir', 'legacy_dir_exists')}))
    return out


def _bridge_findings(br):
    out = []
    if not br or not br.get('available'):
        return out
    for b in br['bridges']:
        if not b.get('exists'):
            continue
        evidence = {'bridge': b['name'], 'admin_up': b['admin_up'], 'operstate': b['operstate'], 'mtu': b['mtu'],
                    'port_mtus': b['port_mtus'], 'veth_count': b['veth_count'], 'expected_mtu': b['expected_mtu']}
        if 'admin_down' in b['problems']:
            out.append(_finding('N-8', 'critical', 'pod bridge %s is down (ip link set %s up)' % (b['name'], b['name']), evidence))
        elif 'oper_down' in b['problems']:
            out.append(_finding('N-8', 'warning', 'pod bridge %s is up but its operational state is DOWN' % b['name'], evidence))
        if 'mtu_mismatch' in b['problems']:
            out.append(_finding('N-8', 'warning', 'MTU mismatch on pod bridge %s: bridge %s, ports %s%s'
                                % (b['name'], b['mtu'], b['port_mtus'],
                                   ', expected %s' % b['expected_mtu'] if b['expected_mtu'] else ''), evidence))
    return out


def _neighbor_findings(nb):
    out = []
    if not nb or not nb.get('available'):
        return out
    for m in nb['mismatches']:
        out.append(_finding('N-6', 'critical', 'neighbor entry for %s on %s points to %s, the owner has %s (stale ARP entry)'
                            % (m['dst'], m['dev'], m['lladdr'], m['expected']), m))
    bad = [e for e in nb['entries'] if e['state'] in neigh.UNRESOLVED_STATES]
    if bad:
        out.append(_finding('N-6', 'warning', '%d neighbor entr%s in FAILED/INCOMPLETE state'
                            % (len(bad), 'y' if len(bad) == 1 else 'ies'), {'entries': bad}))
    return out


def _dns_query_findings(d):
    failed = [q for q in (d or {}).get('queries') or [] if dnsquery.SEVERITY.get(q['result'])]
    if not failed:
        return []
    severity = 'critical' if any(dnsquery.SEVERITY[q['result']] == 'critical' for q in failed) else 'warning'
    parts = sorted({'%s: %s for %s' % (q['server'], q['result'].upper(), q['name']) for q in failed})
    return [_finding('D-11', severity, 'DNS queries failed (%s)' % '; '.join(parts),
                     {'failed': failed, 'queries': len(d['queries'])})]


def _listener_findings(ls):
    if not ls or not ls.get('available') or not ls.get('ipv6_ports_ipv4_only'):
        return []
    ports_ = ls['ipv6_ports_ipv4_only']
    return [_finding('D-5', 'warning', 'port(s) %s listen on IPv4 only: IPv6 clients of a dual-stack Service are refused'
                     % ', '.join(str(x) for x in ports_),
                     {'ipv4_only': ports_, 'ipv6': ls['ipv6'], 'wanted': ls['ipv6_ports_wanted'],
                      'tcp': [e for e in ls['tcp'] if e['port'] in ports_]})]


def _dns_findings(d):
    out = _dns_query_findings(d)
    if not d or not d.get('available') or d.get('agree') is not False:
        return out
    severity = 'info' if d.get('stub') else 'warning'
    summary = 'resolv.conf files disagree'
    if d.get('stub'):
        summary += ' (%s is the systemd-resolved stub; pods with the node\'s DNS get %s)' % (
            d['files'][0]['path'], ', '.join(d['effective_nameservers'] or []))
    return out + [_finding('D-11', severity, summary, {'differences': d['differences']})]


def findings(facts, params):
    p = merge_params(params)
    out = []
    out += _conntrack_findings(facts.get('conntrack'), p)
    out += _nat_findings(facts.get('conntrack'), p)
    out += _ports_findings(facts.get('ports'))
    out += _ipvs_findings(facts.get('ipvs'))
    out += _cni_findings(facts.get('cni'))
    out += _ipam_findings(facts.get('ipam'), p)
    out += _bridge_findings(facts.get('bridges'))
    out += _neighbor_findings(facts.get('neighbors'))
    out += _dns_findings(facts.get('dns'))
    out += _listener_findings(facts.get('listeners'))
    order = {'critical': 0, 'warning': 1, 'info': 2}
    return sorted(out, key=lambda f: order[f['severity']])


def summarize(found):
    counts = {'critical': 0, 'warning': 0, 'info': 0}
    for f in found:
        counts[f['severity']] += 1
    return counts
