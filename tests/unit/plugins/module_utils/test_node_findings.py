"""node_findings: the finding rules of node_network_facts, pure, fed facts made from real tool output.

Each section below is what a probe reports, built by the same domain parsers the probe uses
(``conntrack``, ``ipvs``, ``ports``, ``cni``, ``netlink``, ``neigh``, ``resolv``, ``listeners``)
from recorded output in tests/unit/fixtures; nothing is read from a node and no probe runs
(issue 13: node_facts split into probes and findings).
"""

from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import cni, conntrack, ipvs, listeners, neigh, netlink, node_facts, node_findings, ports, resolv

from ..conftest import fixture_text

P = node_facts.merge_params({})


def found(facts, **params):
    return [(f['id'], f['severity']) for f in node_findings.findings(facts, dict(P, **params))]


def conntrack_section(count, maximum, kernel_log=None, listing=None):
    data = {'available': True, 'count': count, 'max': maximum, 'usage_percent': conntrack.usage_percent(count, maximum)}
    if kernel_log is not None:
        events = conntrack.parse_table_full(kernel_log)
        data['table_full_events'] = {'available': True, 'source': 'dmesg', 'count': events['count'], 'last': events['last']}
    if listing is not None:
        counts = conntrack.breakdown(listing)
        counts['nat'] = conntrack.nat_usage(listing)
        counts['advice'] = conntrack.advice(counts)
        data['breakdown'] = counts
    return data


def test_n2_full_table_with_kernel_drops_is_critical():
    ct = conntrack_section(16, 16, kernel_log=fixture_text('dmesg/debian-6.1-table-full.txt'))
    (f,) = node_findings.findings({'conntrack': ct}, P)
    assert (f['id'], f['severity'], f['remediation']) == ('N-2', 'critical', 'netmedic.k8s.conntrack_limit')
    assert f['evidence']['table_full_events'] == 10
    assert f['evidence']['last_event'] == '[    4.512457] nf_conntrack: nf_conntrack: table full, dropping packet'
    assert 'conntrack table 100.0% full (16 of 16)' in f['summary']


def test_n2_thresholds_and_drops_alone():
    clean = fixture_text('conntrack/dmesg-clean.txt')
    assert found({'conntrack': conntrack_section(13, 16, kernel_log=clean)}) == [('N-2', 'warning')]  # 81.2 %
    assert found({'conntrack': conntrack_section(13, 16, kernel_log=clean)}, conntrack_warn_percent=85) == []
    assert found({'conntrack': conntrack_section(13, 16, kernel_log=clean)}, conntrack_critical_percent=81) == [('N-2', 'critical')]
    # Low usage now, but the kernel dropped packets: a warning.
    drops = fixture_text('conntrack/dmesg-table-full.txt')
    assert found({'conntrack': conntrack_section(1, 16, kernel_log=drops)}) == [('N-2', 'warning')]


def test_d9_nat_ports_of_the_busiest_destination():
    ct = conntrack_section(100, 262144, listing=fixture_text('conntrack/conntrack-L-snat.txt'))
    assert ct['breakdown']['nat']['max_per_destination'] == 80
    assert found({'conntrack': ct}) == []  # 80 of 32767
    (d9,) = node_findings.findings({'conntrack': ct}, dict(P, nat_port_capacity=100))
    assert (d9['id'], d9['severity'], d9['evidence']['usage_percent']) == ('D-9', 'warning', 80.0)
    assert '10.98.0.2:8443' in d9['summary'] and '10.98.0.1' in d9['summary']
    assert found({'conntrack': ct}, nat_port_capacity=80) == [('D-9', 'critical')]
    assert found({'conntrack': ct}, nat_port_capacity=100, nat_warn_percent=81) == []


def test_n3_ephemeral_range_over_nodeports():
    reserved = fixture_text('proc/ip_local_reserved_ports-host.txt').strip()
    host = dict(ports.analyze(fixture_text('proc/ip_local_port_range-host.txt').strip(), reserved),
                available=True, ip_local_port_range='host', ip_local_reserved_ports=reserved)
    assert found({'ports': host}) == []
    wide = dict(ports.analyze('30000\t40000', ''), available=True, ip_local_port_range='30000\t40000', ip_local_reserved_ports='')
    (f,) = node_findings.findings({'ports': wide}, P)
    assert (f['id'], f['severity'], f['evidence']['uncovered']) == ('N-3', 'warning', ['30000-32767'])
    covered = dict(ports.analyze('30000\t40000', '30000-32767'), available=True, ip_local_port_range='30000\t40000',
                   ip_local_reserved_ports='30000-32767')
    assert found({'ports': covered}) == []


def ipvs_section(timeouts_text, wanted=(), modules_text=None, available=True):
    loaded = [m['name'] for m in ipvs.parse_modules(modules_text)] if modules_text is not None else []
    data = {'available': available, 'services': 3 if available else 0, 'modules_available': modules_text is not None,
            'modules_loaded': ipvs.ipvs_module_names(loaded), 'schedulers_wanted': list(wanted),
            'schedulers_missing': ipvs.missing_schedulers(list(wanted), loaded, []) if modules_text is not None else None}
    timeouts = ipvs.parse_timeout(timeouts_text) if timeouts_text else None
    data['timeouts'] = dict(timeouts, available=True) if timeouts else {'available': False}
    return data


def test_n5_default_udp_timeout_is_info_and_a_short_one_is_not():
    (f,) = node_findings.findings({'ipvs': ipvs_section(fixture_text('ipvsadm/timeout-default.txt'))}, P)
    assert (f['id'], f['severity'], f['evidence']['udp']) == ('N-5', 'info', 300)
    assert found({'ipvs': ipvs_section(fixture_text('ipvsadm/timeout-after-set-900-120-10.txt'))}) == []


def test_n4_missing_scheduler_also_without_ipvs_in_the_kernel():
    iv = ipvs_section(None, wanted=['rr', 'wlc'], modules_text=fixture_text('proc/modules-ipvs-in-use.txt'))
    (f,) = node_findings.findings({'ipvs': iv}, P)
    assert (f['id'], f['evidence']['missing']) == ('N-4', ['wlc']) and 'ip_vs_wlc' in f['summary']
    bare = ipvs_section(None, wanted=['rr'], modules_text=fixture_text('proc/modules-vm-no-ipvs.txt'), available=False)
    assert found({'ipvs': bare}) == [('N-4', 'warning')]
    # Module lists unreadable: unknown, not missing.
    assert found({'ipvs': ipvs_section(None, wanted=['rr'], available=False)}) == []


def cni_section(*fixtures):
    files = []
    for i, name in enumerate(fixtures):
        conf = cni.parse_conf(fixture_text('cni/' + name), '%d-%s' % (10 + i, name))
        conf['path'] = '/etc/cni/net.d/' + conf.get('file', name)
        files.append(conf)
    cni.mark_default(files)
    return {'available': True, 'files': files}


def test_d7_and_c5_cni_configs():
    c = cni_section('10-flannel.conflist.pasted-with-comment', '10-flannel.conf.no-cniversion')
    assert sorted(found({'cni': c})) == [('C-5', 'warning'), ('D-7', 'warning')]
    assert found({'cni': cni_section('10-flannel.conflist.ack-after', '10-containerd-net.conflist.gke')}) == []


def test_n8_bridge_down_and_mtu_mismatch():
    links = netlink.parse_links(fixture_text('ip/link-cbr0-down.json'))
    br = {'available': True, 'bridges': [netlink.bridge_state(links, 'cbr0'), netlink.bridge_state(links, 'cni0')]}
    assert found({'bridges': br}) == [('N-8', 'critical'), ('N-8', 'critical'), ('N-8', 'warning')]
    up = netlink.parse_links(fixture_text('ip/link-cbr0-up.json'))
    assert [f for f in found({'bridges': {'available': True, 'bridges': [netlink.bridge_state(up, 'cbr0')]}})
            if f[1] == 'critical'] == []


def test_n6_stale_entry_and_unresolved_neighbors():
    entries = neigh.parse_neigh_json(fixture_text('ip/neigh-states.json'))
    expected = {'10.99.0.3': '52:54:00:12:34:22'}
    nb = {'available': True, 'entries': neigh.in_states(entries, neigh.REPORTED_STATES), 'mismatches': neigh.mismatches(entries, expected)}
    result = node_findings.findings({'neighbors': nb}, P)
    assert [(f['id'], f['severity']) for f in result] == [('N-6', 'critical'), ('N-6', 'warning')]
    assert result[0]['evidence']['lladdr'] == '0a:d2:2f:cf:41:bc'
    assert result[1]['summary'] == '2 neighbor entries in FAILED/INCOMPLETE state'


def resolv_files(*pairs):
    files = []
    for path, fixture in pairs:
        entry = {'path': path, 'exists': True}
        entry.update(resolv.parse_resolv_conf(fixture_text('resolv/' + fixture)))
        files.append(entry)
    data = {'available': True, 'files': files}
    data.update(resolv.compare(files))
    return data


def test_d11_resolvers_disagree_and_queries_fail():
    stub = resolv_files(('/etc/resolv.conf', 'stub-resolv.conf'), ('/run/systemd/resolve/resolv.conf', 'systemd-upstream.conf'))
    (f,) = node_findings.findings({'dns': stub}, P)
    assert (f['id'], f['severity']) == ('D-11', 'info') and 'systemd-resolved stub' in f['summary']
    stub['queries'] = [{'server': '10.96.0.10', 'name': 'kubernetes.default.svc.cluster.local', 'result': 'timeout'},
                       {'server': '10.244.1.5', 'name': 'kubernetes.default.svc.cluster.local', 'result': 'noerror'}]
    result = node_findings.findings({'dns': stub}, P)
    assert [(f['id'], f['severity']) for f in result] == [('D-11', 'critical'), ('D-11', 'info')]
    assert result[0]['evidence']['queries'] == 2


def test_d5_ipv4_only_port():
    v4 = listeners.parse_proc_net_tcp(fixture_text('proc/net-tcp-listeners.txt'), 4)
    v6 = listeners.parse_proc_net_tcp(fixture_text('proc/net-tcp6-listeners.txt'), 6)
    ls = {'available': True, 'tcp': v4, 'tcp6': v6}
    ls.update(listeners.summarize(v4, v6))
    ls['ipv6_ports_wanted'] = [1234, 7070, 8080]
    ls['ipv6_ports_ipv4_only'], ls['ipv6_ports_not_listening'] = listeners.ipv6_gaps(ls, [7070, 8080, 1234])
    (f,) = node_findings.findings({'listeners': ls}, P)
    assert (f['id'], f['evidence']['ipv4_only']) == ('D-5', [7070])


@pytest.mark.parametrize('probe', ['conntrack', 'ports', 'cni', 'ipam', 'bridges', 'neighbors', 'dns', 'listeners'])
def test_what_could_not_be_read_yields_no_finding(probe):
    """available: false is unknown, never a finding (and a probe that did not run is none either)."""
    assert node_findings.findings({probe: {'available': False, 'reason': 'x'}}, P) == []
    assert node_findings.findings({}, P) == []


def test_order_and_summary():
    facts = {'ipvs': ipvs_section(fixture_text('ipvsadm/timeout-default.txt')),
             'conntrack': conntrack_section(16, 16, kernel_log=fixture_text('dmesg/debian-6.1-table-full.txt'))}
    result = node_findings.findings(facts, P)
    assert [f['severity'] for f in result] == ['critical', 'info']
    assert node_findings.summarize(result) == {'critical': 1, 'warning': 0, 'info': 1}
