# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the node facts mean: the finding rules of ``node_network_facts`` (pure, no I/O).

Facts in (the dictionary :mod:`.node_probes` gathers), findings out: each finding names
the catalog entry (``id``), a ``severity`` (critical, warning, info), a ``summary``, the
``evidence`` that triggered it and the ``remediation`` (the netmedic module, or what to
do by hand).  Nothing is read here; the rules speak only from what was read: a probe
that did not run, or a value it reports as unknown (``available: false``, ``None``),
yields no finding for that rule.
"""

from __future__ import annotations

from ansible_collections.netmedic.k8s.plugins.module_utils import dnsquery, ipvs, neigh

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


def _read(section):
    """True when a probe ran and could read what it reports (``available: true``)."""
    return bool(section) and bool(section.get('available'))


def _finding(fid, severity, summary, evidence):
    return {'id': fid, 'severity': severity, 'summary': summary, 'evidence': evidence, 'remediation': REMEDIATION[fid]}


def _conntrack_findings(ct, p):
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
        yield _finding('N-2', severity, '; '.join(parts), {
            'count': ct['count'], 'max': ct['max'], 'usage_percent': pct,
            'by_protocol': breakdown.get('by_protocol'), 'dns': breakdown.get('dns'),
            'table_full_events': events.get('count'), 'last_event': events.get('last'),
        })


def _nat_findings(ct, p):
    nat = (ct.get('breakdown') or {}).get('nat')
    if not nat or not nat['destinations']:
        return
    cap = p['nat_port_capacity']
    worst = nat['destinations'][0]
    pct = round(100.0 * worst['count'] / cap, 1)
    if pct < p['nat_warn_percent']:
        return
    yield _finding('D-9', 'critical' if worst['count'] >= cap else 'warning',
                   '%s connections to %s:%s are source-NATed from %s: %d of at most %d NAT ports (%s%%); beyond it new '
                   'connections are dropped ("No mapping for NAT masquerade")'
                   % (worst['protocol'].upper(), worst['dst'], worst['dport'], worst['nat_address'], worst['count'], cap, pct),
                   {'nat_port_capacity': cap, 'usage_percent': pct, 'destinations': nat['destinations'],
                    'nat_entries': nat['total']})


def _ports_findings(pr, _p):
    if not pr.get('conflict'):
        return
    yield _finding('N-3', 'warning',
                   'ephemeral port range %d-%d overlaps the NodePort range %s on %d port(s) not reserved in ip_local_reserved_ports'
                   % (pr['ephemeral']['start'], pr['ephemeral']['end'], pr['nodeport_range'], pr['uncovered_ports']),
                   {'ip_local_port_range': pr['ip_local_port_range'], 'ip_local_reserved_ports': pr['ip_local_reserved_ports'],
                    'nodeport_range': pr['nodeport_range'], 'overlap': pr['overlap'], 'uncovered': pr['uncovered']})


def _ipvs_findings(iv, _p):
    if iv.get('schedulers_missing'):
        yield _finding('N-4', 'warning', 'IPVS scheduler module(s) not loaded: %s'
                       % ', '.join(ipvs.scheduler_module(s) for s in iv['schedulers_missing']),
                       {'wanted': iv['schedulers_wanted'], 'missing': iv['schedulers_missing'],
                        'modules_loaded': iv['modules_loaded'], 'modules_available': iv['modules_available']})
    timeouts = iv.get('timeouts') or {}
    if iv.get('available') and iv.get('services') and timeouts.get('available') and timeouts['udp'] >= ipvs.DEFAULT_UDP_TIMEOUT:
        yield _finding('N-5', 'info', 'IPVS keeps UDP sessions %d s: DNS may time out for minutes after a CoreDNS pod '
                       'goes away (Kubernetes <= 1.16: ipvs_timeouts; >= 1.18: kube-proxy ipvs.udpTimeout, catalog C-3)'
                       % timeouts['udp'],
                       {'tcp': timeouts['tcp'], 'tcpfin': timeouts['tcpfin'], 'udp': timeouts['udp'], 'services': iv['services']})


def _cni_findings(c, _p):
    for conf in c['files']:
        if not conf.get('valid'):
            yield _finding('D-7', 'warning', 'CNI config %s is not usable: %s' % (conf['path'], conf.get('error')),
                           {'path': conf['path'], 'error': conf.get('error'), 'default': c.get('default')})
        elif conf.get('flannel') and not conf.get('cniVersion'):
            yield _finding('C-5', 'warning', 'Flannel CNI config %s has no cniVersion (nodes go NotReady on Kubernetes >= 1.16)'
                           % conf['path'], {'path': conf['path'], 'name': conf['name']})


def _ipam_findings(ip, p):
    for net in ip['networks']:
        if net['used_percent'] is None or not net['exists']:
            continue
        if net['exhausted'] or net['used_percent'] >= p['ipam_warn_percent']:
            yield _finding('N-1', 'critical' if net['exhausted'] else 'warning',
                           'host-local network %s in %s is %s%% full (%d allocated, %d free): check for leaked allocations'
                           % (net['name'], net['data_dir'], net['used_percent'], net['allocated'], net['free']),
                           {'path': net['path'], 'allocated': net['allocated'], 'containers': net['containers'],
                            'size': net['size'], 'free': net['free'], 'range_sets': net['range_sets'],
                            'range_source': net['range_source']})
    fl = ip.get('flannel') or {}
    if fl.get('detected') and not fl.get('tmpfs'):
        yield _finding('N-7', 'info', 'Flannel network %s keeps host-local IPAM data on disk (not under /var/run on tmpfs): '
                       'leaked allocations survive reboots' % fl['network'],
                       {k: fl.get(k) for k in ('network', 'conf', 'config_data_dir', 'run_dir', 'run_dir_exists',
                                               'run_dir_fstype', 'legacy_dir', 'legacy_dir_exists')})


def _bridge_findings(br, _p):
    for b in br['bridges']:
        if not b.get('exists'):
            continue
        evidence = {'bridge': b['name'], 'admin_up': b['admin_up'], 'operstate': b['operstate'], 'mtu': b['mtu'],
                    'port_mtus': b['port_mtus'], 'veth_count': b['veth_count'], 'expected_mtu': b['expected_mtu']}
        if 'admin_down' in b['problems']:
            yield _finding('N-8', 'critical', 'pod bridge %s is down (ip link set %s up)' % (b['name'], b['name']), evidence)
        elif 'oper_down' in b['problems']:
            yield _finding('N-8', 'warning', 'pod bridge %s is up but its operational state is DOWN' % b['name'], evidence)
        if 'mtu_mismatch' in b['problems']:
            yield _finding('N-8', 'warning', 'MTU mismatch on pod bridge %s: bridge %s, ports %s%s'
                           % (b['name'], b['mtu'], b['port_mtus'],
                              ', expected %s' % b['expected_mtu'] if b['expected_mtu'] else ''), evidence)


def _neighbor_findings(nb, _p):
    for m in nb['mismatches']:
        yield _finding('N-6', 'critical', 'neighbor entry for %s on %s points to %s, the owner has %s (stale ARP entry)'
                       % (m['dst'], m['dev'], m['lladdr'], m['expected']), m)
    bad = [e for e in nb['entries'] if e['state'] in neigh.UNRESOLVED_STATES]
    if bad:
        yield _finding('N-6', 'warning', '%d neighbor entr%s in FAILED/INCOMPLETE state'
                       % (len(bad), 'y' if len(bad) == 1 else 'ies'), {'entries': bad})


def _dns_query_findings(d, _p):
    failed = [q for q in d.get('queries') or [] if dnsquery.SEVERITY.get(q['result'])]
    if not failed:
        return
    severity = 'critical' if any(dnsquery.SEVERITY[q['result']] == 'critical' for q in failed) else 'warning'
    parts = sorted({'%s: %s for %s' % (q['server'], q['result'].upper(), q['name']) for q in failed})
    yield _finding('D-11', severity, 'DNS queries failed (%s)' % '; '.join(parts),
                   {'failed': failed, 'queries': len(d['queries'])})


def _listener_findings(ls, _p):
    ports_ = ls.get('ipv6_ports_ipv4_only')
    if not ports_:
        return
    yield _finding('D-5', 'warning', 'port(s) %s listen on IPv4 only: IPv6 clients of a dual-stack Service are refused'
                   % ', '.join(str(x) for x in ports_),
                   {'ipv4_only': ports_, 'ipv6': ls['ipv6'], 'wanted': ls['ipv6_ports_wanted'],
                    'tcp': [e for e in ls['tcp'] if e['port'] in ports_]})


def _resolv_findings(d, _p):
    if d.get('agree') is not False:
        return
    severity = 'info' if d.get('stub') else 'warning'
    summary = 'resolv.conf files disagree'
    if d.get('stub'):
        summary += ' (%s is the systemd-resolved stub; pods with the node\'s DNS get %s)' % (
            d['files'][0]['path'], ', '.join(d['effective_nameservers'] or []))
    yield _finding('D-11', severity, summary, {'differences': d['differences']})


# (probe, rule, the rule needs the probe's ``available: true``), in the order findings are listed.
# The N-4 rule also speaks when IPVS is not in the kernel (the modules are then missing);
# NAT usage and DNS queries exist only where they were read.
RULES = (
    ('conntrack', _conntrack_findings, True),
    ('conntrack', _nat_findings, False),
    ('ports', _ports_findings, True),
    ('ipvs', _ipvs_findings, False),
    ('cni', _cni_findings, True),
    ('ipam', _ipam_findings, True),
    ('bridges', _bridge_findings, True),
    ('neighbors', _neighbor_findings, True),
    ('dns', _dns_query_findings, False),
    ('dns', _resolv_findings, True),
    ('listeners', _listener_findings, True),
)


def findings(facts, params):
    """Every finding for ``facts``, most severe first.

    ``params`` holds the thresholds (``conntrack_warn_percent``, ``conntrack_critical_percent``,
    ``ipam_warn_percent``, ``nat_port_capacity``, ``nat_warn_percent``), as
    ``node_facts.merge_params`` completes them.
    """
    out = []
    for probe, rule, needs_read in RULES:
        section = facts.get(probe)
        if section and (_read(section) or not needs_read):
            out.extend(rule(section, params))
    order = {'critical': 0, 'warning': 1, 'info': 2}
    return sorted(out, key=lambda f: order[f['severity']])


def summarize(found):
    counts = {'critical': 0, 'warning': 0, 'info': 0}
    for f in found:
        counts[f['severity']] += 1
    return counts
