"""netlink.plan_bridge (catalog N-8) on `ip -j -d link show` recorded in a scratch namespace."""

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import netlink

from ..conftest import fixture_text


def state(fixture, name='cbr0', mtu=None):
    return netlink.bridge_state(netlink.parse_links(fixture_text('ip/' + fixture)), name, mtu)


def test_down_bridge_is_brought_up():
    assert netlink.plan_bridge(state('link-cbr0-down.json')) == [['ip', 'link', 'set', 'dev', 'cbr0', 'up']]


def test_up_bridge_needs_nothing_and_mtu_goes_first():
    assert netlink.plan_bridge(state('link-cbr0-up.json')) == []
    assert netlink.plan_bridge(state('link-cbr0-up.json', mtu=1460), 1460) == []
    assert netlink.plan_bridge(state('link-cbr0-down.json', mtu=1400), 1400) == [
        ['ip', 'link', 'set', 'dev', 'cbr0', 'mtu', '1400'], ['ip', 'link', 'set', 'dev', 'cbr0', 'up']]


def test_recorded_port_mtus_are_reported():
    s = state('link-cbr0-down.json')
    assert (s['mtu'], s['port_mtus'], s['mtu_mismatch']) == (1460, [1460, 1500], True)


@pytest.mark.parametrize('name, words', [('nosuch', 'does not exist'), ('veth1a2b3c4d', 'not a bridge')])
def test_refuses_missing_or_non_bridge(name, words):
    with pytest.raises(netlink.LinkError) as e:
        netlink.plan_bridge(state('link-cbr0-down.json', name=name))
    assert words in str(e.value)


@pytest.mark.parametrize('bad', [0, 67, 65536, -1, True, '1500'])
def test_validate_mtu_rejects(bad):
    with pytest.raises(netlink.LinkError, match='mtu must be a whole number between 68 and 65535, got'):
        netlink.validate_mtu(bad)


# --- N-8 verification and port MTUs (issue 10, partial N-8) ----------------------------------

def test_port_mtu_sets_veth_ports_before_the_bridge():
    s = state('link-cbr0-down.json')
    ports = {p['name']: p['mtu'] for p in s['ports'] if p['kind'] == 'veth'}
    commands = netlink.plan_bridge(s, 1460, port_mtu=True)
    port_cmds = [c for c in commands if c[4] != 'cbr0']
    assert port_cmds == [['ip', 'link', 'set', 'dev', name, 'mtu', '1460'] for name, mtu in sorted(ports.items()) if mtu != 1460]
    assert port_cmds and commands[-1] == ['ip', 'link', 'set', 'dev', 'cbr0', 'up']
    assert commands.index(port_cmds[-1]) < commands.index(commands[-1])
    with pytest.raises(netlink.LinkError, match='port_mtu needs mtu'):
        netlink.plan_bridge(s, None, port_mtu=True)


def test_learned_macs_from_a_recorded_forwarding_database():
    """Two pods sent traffic (veth1, veth2); veth3's peer is down (LOWERLAYERDOWN), so nothing is expected there."""
    learned = netlink.learned_macs(fixture_text('bridge/fdb-cbr0-two-pods-one-idle.json'), 'cbr0')
    assert learned == {'veth1': ['16:7a:5e:ac:d0:64'], 'veth2': ['72:5d:44:13:02:65']}
    s = netlink.bridge_state(netlink.parse_links(fixture_text('bridge/link-cbr0-three-ports.json')), 'cbr0')
    assert [(p['name'], p['operstate']) for p in s['ports']] == [('veth1', 'UP'), ('veth2', 'UP'), ('veth3', 'LOWERLAYERDOWN')]
    assert netlink.unlearned_ports(s, learned) == []
    assert netlink.unlearned_ports(s, {'veth1': learned['veth1']}) == ['veth2']
    assert netlink.unlearned_ports(s, {}) == ['veth1', 'veth2']


def test_learned_macs_bad_output_raises():
    with pytest.raises(netlink.LinkError, match='invalid JSON'):
        netlink.learned_macs('{not json', 'cbr0')
