from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import netlink


def test_parse_links_of_a_bridge_with_veths(fixture_text):
    links = netlink.parse_links(fixture_text('ip/link-cbr0-up.json'))
    assert sorted(links) == ['cbr0', 'cni0', 'eth0p1', 'eth0p2', 'lo', 'veth1a2b3c4d', 'veth5e6f7a8b']
    cbr0 = links['cbr0']
    assert cbr0['kind'] == 'bridge'
    assert cbr0['admin_up'] is True and cbr0['lower_up'] is True
    assert cbr0['operstate'] == 'UP'
    assert cbr0['mtu'] == 1460
    assert links['veth1a2b3c4d']['master'] == 'cbr0'
    assert links['veth1a2b3c4d']['slave_kind'] == 'bridge'
    assert links['eth0p1']['master'] is None
    assert [p['name'] for p in netlink.ports_of(links, 'cbr0')] == ['veth1a2b3c4d', 'veth5e6f7a8b']


def test_bridge_up_with_mismatched_port_mtu(fixture_text):
    links = netlink.parse_links(fixture_text('ip/link-cbr0-up.json'))
    state = netlink.bridge_state(links, 'cbr0')
    assert state['exists'] and state['is_bridge']
    assert state['admin_up'] is True
    assert state['port_mtus'] == [1460, 1500]
    assert state['veth_count'] == 2
    assert state['mtu_mismatch'] is True
    assert state['problems'] == ['mtu_mismatch']


def test_bridge_admin_down(fixture_text):
    links = netlink.parse_links(fixture_text('ip/link-cbr0-down.json'))
    state = netlink.bridge_state(links, 'cbr0')
    assert state['admin_up'] is False
    assert state['operstate'] == 'DOWN'
    assert 'admin_down' in state['problems']
    empty = netlink.bridge_state(links, 'cni0')
    assert empty['ports'] == [] and empty['veth_count'] == 0
    assert empty['problems'] == ['admin_down']
    assert empty['mtu_mismatch'] is False


def test_empty_bridge_up_is_fine_and_expected_mtu(fixture_text):
    links = netlink.parse_links(fixture_text('ip/link-cbr0-up.json'))
    cni0 = netlink.bridge_state(links, 'cni0')
    # An up bridge without ports reports UNKNOWN on this kernel: not a problem.
    assert cni0['operstate'] == 'UNKNOWN'
    assert cni0['problems'] == []
    assert netlink.bridge_state(links, 'cni0', expected_mtu=1450)['problems'] == ['mtu_mismatch']
    assert netlink.bridge_state(links, 'cni0', expected_mtu=1500)['problems'] == []


def test_missing_bridge_and_single_link_output(fixture_text):
    links = netlink.parse_links(fixture_text('ip/link-host.json'))
    assert netlink.bridge_state(links, 'cbr0') == {'name': 'cbr0', 'exists': False}
    single = netlink.parse_links(fixture_text('ip/link-dev-cbr0.json'))
    assert list(single) == ['cbr0']
    assert netlink.parse_links(fixture_text('ip/link-dev-nosuch.stdout')) == {}
    master = netlink.parse_links(fixture_text('ip/link-master-cbr0.json'))
    assert sorted(master) == ['veth1a2b3c4d', 'veth5e6f7a8b']
    with pytest.raises(netlink.LinkError, match='ip -j link show printed invalid JSON: Expecting value: line 1 column'):
        netlink.parse_links(fixture_text('ip/link-dev-nosuch.stderr'))


def test_parse_addresses(fixture_text):
    rows = netlink.parse_addresses(fixture_text('ip/addr-ns.json'))
    by_ip = {r['local']: r for r in rows}
    assert by_ip['10.99.0.1']['ifname'] == 'vA'
    assert by_ip['10.99.0.1']['prefixlen'] == 24
    assert by_ip['fd99::1']['family'] == 'inet6'
    assert by_ip['10.99.0.1']['address'] == by_ip['fd99::1']['address']
    host = netlink.parse_addresses(fixture_text('ip/addr-host.json'))
    assert any(r['local'] == '127.0.0.1' and r['ifname'] == 'lo' for r in host)
