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
