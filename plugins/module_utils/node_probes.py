# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``node_network_facts`` reads from a node: the probes (catalog N-1 to N-8, C-5, D-5, D-7, D-9, D-11).

Each probe sees the node through a ``Runner`` (commands, :mod:`.node.runner`) and a
:class:`~.node.hostfs.HostFS` root (files), so unit tests replay recorded tool output
over a fixture tree and the module runs the same code on ``/``.  Parsing is done by the
domain modules (``conntrack``, ``ipvs``, ``cni``, ``ipam``, ``netlink``, ``neigh``,
``resolv``, ``listeners``, ``runtime``); what the facts mean is decided by
:mod:`.node_findings`.  A probe whose tool is missing reports ``available: false`` and
a ``reason``; a probe that breaks records the error in itself and in ``errors`` and
never stops the others.

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

PROC_SYS = '/proc/sys'
LOCAL_PORT_RANGE_KEY = 'net.ipv4.ip_local_port_range'
RESERVED_PORTS_KEY = 'net.ipv4.ip_local_reserved_ports'
CONNTRACK_HASHSIZE = '/sys/module/nf_conntrack/parameters/hashsize'
FLANNEL_TMPFS_DATA_DIR = '/var/run/cni/networks'


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


def run(runner, params, root='/', kernel_release=None, dns_query=None):
    """Run the probes named in ``params['probes']`` (validated, complete options).

    Returns ``{probe: facts, ..., 'probes': [names run], 'errors': [{'probe', 'error'}]}``;
    never raises for a probe.  ``dns_query`` replaces :func:`dnsquery.query` (tests).
    """
    if kernel_release is None:
        kernel_release = os.uname()[2] if root in ('/', None) else None
    ctx = Context(runner, params, HostFS(root), kernel_release)
    if dns_query is not None:
        ctx.dns_query = dns_query
    wanted = set(params['probes'])
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
    facts['errors'] = ctx.errors
    return facts
