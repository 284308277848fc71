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
    out = []
    if not _read(ct):
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
    if not _read(pr) or not pr.get('conflict'):
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
    if not _read(c):
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
    if not _read(ip):
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
    if not _read(br):
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
    if not _read(nb):
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
    if not _read(ls) or not ls.get('ipv6_ports_ipv4_only'):
        return []
    ports_ = ls['ipv6_ports_ipv4_only']
    return [_finding('D-5', 'warning', 'port(s) %s listen on IPv4 only: IPv6 clients of a dual-stack Service are refused'
                     % ', '.join(str(x) for x in ports_),
                     {'ipv4_only': ports_, 'ipv6': ls['ipv6'], 'wanted': ls['ipv6_ports_wanted'],
                      'tcp': [e for e in ls['tcp'] if e['port'] in ports_]})]


def _dns_findings(d):
    out = _dns_query_findings(d)
    if not _read(d) or d.get('agree') is not False:
        return out
    severity = 'info' if d.get('stub') else 'warning'
    summary = 'resolv.conf files disagree'
    if d.get('stub'):
        summary += ' (%s is the systemd-resolved stub; pods with the node\'s DNS get %s)' % (
            d['files'][0]['path'], ', '.join(d['effective_nameservers'] or []))
    return out + [_finding('D-11', severity, summary, {'differences': d['differences']})]


def findings(facts, params):
    """Every finding for ``facts``, most severe first.

    ``params`` holds the thresholds (``conntrack_warn_percent``, ``conntrack_critical_percent``,
    ``ipam_warn_percent``, ``nat_port_capacity``, ``nat_warn_percent``), as
    ``node_facts.merge_params`` completes them.
    """
    p = params
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
