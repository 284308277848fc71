from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import ipam
from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures'


def test_fixture_files_kept_their_crlf(host_local_networks):
    # .gitattributes keeps host-local's exact bytes: "<id>\r\neth0", no trailing newline.
    data = (host_local_networks / 'gke-pod-network' / '10.8.3.2').read_bytes()
    assert data == b'3f4e1c9a0b7d2e6f8a1c4b5d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f\r\neth0'
    assert (host_local_networks / 'cb0' / 'lock').read_bytes() == b''
    assert (host_local_networks / 'cb0' / 'last_reserved_ip.0').read_bytes() == b'172.20.5.6'


@pytest.mark.parametrize('name, expected', [
    ('10.8.3.2', True), ('fd00:10:8:3::2', True), ('lock', False), ('last_reserved_ip.0', False),
    ('last_reserved_ip.1', False), ('10.8.3.2.bak', False), ('README', False), ('', False),
])
def test_is_allocation_name(name, expected):
    assert ipam.is_allocation_name(name) is expected


def test_parse_allocation_forms():
    assert ipam.parse_allocation(b'abc\r\neth0') == {'container_id': 'abc', 'ifname': 'eth0'}
    assert ipam.parse_allocation('abc\n') == {'container_id': 'abc', 'ifname': None}
    assert ipam.parse_allocation('') == {'container_id': None, 'ifname': None}


def test_range_sizes_follow_host_local():
    # /29: .1-.6 minus the gateway .1 = 5 (the real plugin allocated .2-.6, then refused).
    assert ipam.range_size({'subnet': '172.20.5.0/29'}) == 5
    assert ipam.describe_range({'subnet': '172.20.5.0/29'}) == '172.20.5.1-172.20.5.6'
    assert ipam.range_size({'subnet': '10.8.3.0/24'}) == 253
    # IPv6 has no broadcast: ::1-::ffff minus the gateway.
    assert ipam.range_size({'subnet': 'fd00:10:8:3::/112'}) == 65534
    assert ipam.range_size({'subnet': '10.0.0.0/24', 'rangeStart': '10.0.0.100', 'rangeEnd': '10.0.0.199'}) == 100
    assert ipam.range_size({'subnet': '10.0.0.0/24', 'rangeStart': '10.0.0.100', 'rangeEnd': '10.0.0.199',
                            'gateway': '10.0.0.150'}) == 99
    assert ipam.range_size({'subnet': '10.0.0.7/24'}) == 253  # host bits are masked


@pytest.mark.parametrize('rng, words', [
    ({'subnet': '10.0.0.0/31'}, 'network 10.0.0.0/31 too small to allocate from'),
    ({'subnet': 'nope'}, "invalid subnet 'nope'"),
    ({}, 'range without a subnet'),
    ({'subnet': '10.0.0.0/24', 'rangeStart': '10.0.1.1'}, 'rangeStart 10.0.1.1 is not in subnet 10.0.0.0/24'),
    ({'subnet': '10.0.0.0/24', 'rangeStart': '10.0.0.9', 'rangeEnd': '10.0.0.2'}, 'rangeStart 10.0.0.9 is after rangeEnd 10.0.0.2'),
    ({'subnet': '10.0.0.0/24', 'gateway': 'x'}, "invalid gateway 'x'"),
])
def test_range_errors(rng, words):
    with pytest.raises(ipam.RangeError, match=re.escape(words)):
        ipam.range_size(rng)


def test_exhausted_message_matches_the_plugin():
    out = json.loads((FIXTURES / 'host-local' / 'add-exhausted.stdout.json').read_text())
    assert out['msg'].endswith('range set: %s' % ipam.describe_range({'subnet': '172.20.5.0/29'}))


def test_scan_real_dual_stack_directory_after_del(host_local_networks):
    fs = HostFS(str(host_local_networks))
    scan = ipam.scan_network(fs, '/gke-pod-network')
    assert [a['ip'] for a in scan['allocations']] == ['10.8.3.2', '10.8.3.4', 'fd00:10:8:3::2', 'fd00:10:8:3::4']
    assert {a['container_id'][:8] for a in scan['allocations']} == {'3f4e1c9a', 'c0ffee00'}
    assert all(a['ifname'] == 'eth0' for a in scan['allocations'])
    assert scan['last_reserved'] == {'0': '10.8.3.4', '1': 'fd00:10:8:3::4'}
    assert scan['lock'] is True
    assert scan['other_files'] == []


def test_network_summary_dual_stack(host_local_networks):
    fs = HostFS(str(host_local_networks))
    scan = ipam.scan_network(fs, '/gke-pod-network')
    sets = [[{'subnet': '10.8.3.0/24'}], [{'subnet': 'fd00:10:8:3::/112'}]]
    net = ipam.network_summary('gke-pod-network', '/var/lib/cni/networks', scan, sets, 'cni:test')
    assert net['allocated'] == 4
    assert net['containers'] == 2
    assert [(s['size'], s['allocated'], s['free']) for s in net['range_sets']] == [(253, 2, 251), (65534, 2, 65532)]
    assert net['used_percent'] == 0.8
    assert net['exhausted'] is False
    assert net['outside_ranges'] == []
    assert net['path'] == '/var/lib/cni/networks/gke-pod-network'


def test_network_summary_exhausted_and_unknown_ranges(host_local_networks):
    fs = HostFS(str(host_local_networks))
    scan = ipam.scan_network(fs, '/cb0')
    assert len(scan['allocations']) == 5
    full = ipam.network_summary('cb0', '/var/lib/cni/networks', scan, [[{'subnet': '172.20.5.0/29'}]], 'flannel:x')
    assert (full['size'], full['allocated'], full['free'], full['used_percent'], full['exhausted']) == (5, 5, 0, 100.0, True)
    unknown = ipam.network_summary('cb0', '/var/lib/cni/networks', scan, None, None)
    assert unknown['allocated'] == 5
    assert unknown['size'] is None and unknown['used_percent'] is None and unknown['exhausted'] is False
    # After a range change, the old allocations are reported as outside the configured range.
    moved = ipam.network_summary('cb0', '/d', scan, [[{'subnet': '10.0.0.0/24'}]], 'cni:x')
    assert moved['range_sets'][0]['allocated'] == 0
    assert moved['outside_ranges'] == ['172.20.5.2', '172.20.5.3', '172.20.5.4', '172.20.5.5', '172.20.5.6']


def test_usage_reports_bad_range_without_raising():
    sets, outside = ipam.usage(['10.0.0.5'], [[{'subnet': '10.0.0.0/32'}]])
    assert sets[0]['size'] is None
    assert 'too small' in sets[0]['error']
    assert outside == ['10.0.0.5']
