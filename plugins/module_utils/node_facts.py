# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only node network facts and findings (``node_network_facts``): the options and one call.

:func:`validate_params` checks the module's options before anything is read;
:func:`gather` runs the probes (:mod:`.node_probes`: what is read from the node,
through the node runner and ``HostFS``) and hands their facts to the finding rules
(:mod:`.node_findings`: pure, facts in, findings out).
"""

from __future__ import annotations

from ansible_collections.netmedic.k8s.plugins.module_utils import cni, conntrack, dnsquery, ipam, ipvs, neigh, node_findings, node_probes, ports, resolv

PROBES = tuple(name for name, _probe in node_probes.PROBE_FUNCS)  # conntrack, ports, ipvs, cni, ipam, bridges, ...
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


def gather(runner, params=None, root='/', kernel_release=None, dns_query=None):
    """Run the selected probes; returns the ``netmedic`` facts dict (never raises for a probe).

    ``dns_query`` replaces :func:`dnsquery.query` (tests).
    """
    p = validate_params(params)
    facts = node_probes.run(runner, p, root=root, kernel_release=kernel_release, dns_query=dns_query)
    facts['catalog'] = list(CATALOG)
    facts['findings'] = findings(facts, p)
    facts['summary'] = node_findings.summarize(facts['findings'])
    return facts


def findings(facts, params):
    """The findings for ``facts`` with the thresholds of ``params`` (defaults filled in)."""
    return node_findings.findings(facts, merge_params(params))
