from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import conntrack

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'conntrack'


def test_meminfo_and_auto_limit_from_real_file(fixture_text):
    mem = conntrack.parse_meminfo(fixture_text('conntrack/meminfo-24g.txt'))
    assert mem['MemTotal'] == 24684084
    assert 'HugePages_Total' in mem  # lines without a kB unit parse too
    # Catalog N-2 Fix A: MemTotal (kB) / 32.
    assert conntrack.auto_max(mem['MemTotal']) == 771377


def test_auto_limit_rejects_missing_memory():
    with pytest.raises(conntrack.LimitError, match='MemTotal is 0 kB: cannot compute the automatic limit'):
        conntrack.auto_max(0)


@pytest.mark.parametrize('value, expected', [
    ('auto', 'auto'), ('AUTO', 'auto'), (' auto ', 'auto'),
    (65536, 65536), ('131072', 131072), (1, 1), (2 ** 31 - 1, 2 ** 31 - 1),
])
def test_parse_max_accepts(value, expected):
    assert conntrack.parse_max(value) == expected


@pytest.mark.parametrize('value', [0, -1, '0', '-5', 'lots', '12k', '1.5', '', None, True, False, 2 ** 31, 1.5, [1]])
def test_parse_max_rejects(value):
    with pytest.raises(conntrack.LimitError) as e:
        conntrack.parse_max(value)
    assert 'max' in str(e.value)


@pytest.mark.parametrize('current, desired, allow, expected', [
    (65536, 65536, False, ('keep', 65536)),
    (65536, 131072, False, ('raise', 131072)),
    (262144, 131072, False, ('refuse_lower', 262144)),
    (262144, 131072, True, ('lower', 131072)),
    (262144, 262144, True, ('keep', 262144)),
])
def test_plan_limit(current, desired, allow, expected):
    assert conntrack.plan_limit(current, desired, allow) == expected


def test_usage_percent():
    assert conntrack.usage_percent(1200, 65536) == 1.8
    assert conntrack.usage_percent(None, 65536) is None
    assert conntrack.usage_percent(5, 0) is None


def test_table_full_events_in_real_dmesg(fixture_text):
    events = conntrack.parse_table_full(fixture_text('conntrack/dmesg-table-full.txt'))
    assert events['count'] == 3
    assert events['last'] == '[86410.001002] nf_conntrack: table full, dropping packet'
    assert conntrack.parse_table_full(fixture_text('conntrack/dmesg-clean.txt')) == {'count': 0, 'last': None}


def test_processes_named(tmp_path):
    for pid, comm in ((1, 'systemd'), (42, 'kube-proxy'), (7, 'kube-proxy'), (9, 'containerd')):
        os.makedirs(tmp_path / str(pid))
        (tmp_path / str(pid) / 'comm').write_text(comm + '\n')
    (tmp_path / 'self').mkdir()
    (tmp_path / '99').mkdir()  # a process that exited: no comm file
    assert conntrack.processes_named(('kube-proxy',), proc=str(tmp_path)) == [
        {'pid': 7, 'name': 'kube-proxy'}, {'pid': 42, 'name': 'kube-proxy'}]
    assert conntrack.processes_named(('kube-proxy',), proc=str(tmp_path / 'missing')) == []


def test_breakdown_of_real_conntrack_listing():
    listing = (FIXTURES / 'conntrack-L.txt').read_text()
    counts = conntrack.breakdown(listing + 'conntrack v1.4.7 (conntrack-tools): 16 flow entries have been shown.\n')
    assert counts['total'] == 16
    assert counts['by_protocol'] == {'tcp': 10, 'udp': 6}
    assert counts['tcp_states'] == {'ESTABLISHED': 5, 'TIME_WAIT': 5}
    assert counts['dns'] == 4
    assert counts['top_dports'][:3] == [['8080', 10], ['53', 4], ['123', 2]]
    assert conntrack.advice(counts) == ['mostly TCP (10 of 16): many short-lived connections; use keep-alive / '
                                        'connection pooling in the clients']


def test_breakdown_extended_format_and_udp_advice():
    listing = ('ipv4     2 udp      17 29 src=10.0.0.2 dst=10.96.0.10 sport=40001 dport=53 [UNREPLIED] '
               'src=10.96.0.10 dst=10.0.0.2 sport=53 dport=40001 mark=0 use=1\n') * 3
    listing += ('ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.2 dst=10.0.0.9 sport=5000 dport=443 '
                'src=10.0.0.9 dst=10.0.0.2 sport=443 dport=5000 [ASSURED] mark=0 use=1\n')
    counts = conntrack.breakdown(listing)
    assert counts['by_protocol'] == {'udp': 3, 'tcp': 1} and counts['dns'] == 3
    assert len(conntrack.advice(counts)) == 1 and 'NodeLocal DNSCache' in conntrack.advice(counts)[0]
    assert conntrack.breakdown('') == {'total': 0, 'by_protocol': {}, 'tcp_states': {}, 'dns': 0, 'top_dports': []}
    assert conntrack.advice(conntrack.breakdown('')) == []


def test_nat_usage_counts_masqueraded_entries_per_destination():
    """D-9: entries whose reply goes to another address than the original source were source-NATed."""
    nat = conntrack.nat_usage((FIXTURES / 'conntrack-L-snat.txt').read_text())
    # 92 NATed (80 TCP to 8443 in every state, 12 UDP to 53); the 4 loopback entries are not NATed.
    assert nat['total'] == 92 and nat['max_per_destination'] == 80
    assert nat['destinations'] == [
        {'protocol': 'tcp', 'nat_address': '10.98.0.1', 'dst': '10.98.0.2', 'dport': '8443', 'count': 80},
        {'protocol': 'udp', 'nat_address': '10.98.0.1', 'dst': '10.98.0.2', 'dport': '53', 'count': 12}]


def test_nat_usage_of_a_listing_without_nat_is_empty():
    nat = conntrack.nat_usage((FIXTURES / 'conntrack-L.txt').read_text())
    assert nat == {'total': 0, 'max_per_destination': 0, 'destinations': []}


def test_nat_usage_reads_the_extended_format():
    line = ('ipv4     2 tcp      6 431999 ESTABLISHED src=10.99.0.2 dst=10.98.0.2 sport=1 dport=443 '
            'src=10.98.0.2 dst=10.98.0.1 sport=443 dport=1 [ASSURED] mark=0 use=1\n')
    assert conntrack.nat_usage(line * 3)['destinations'] == [
        {'protocol': 'tcp', 'nat_address': '10.98.0.1', 'dst': '10.98.0.2', 'dport': '443', 'count': 3}]
