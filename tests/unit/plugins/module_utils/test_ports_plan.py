"""ports planners of the port_range module (catalog N-3), fed the kernel's own formats."""

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import ports

from ..conftest import fixture_text

NODEPORT = (30000, 32767)


def test_host_kernel_values_parse():
    # Read from /proc/sys on the CI machine: tab separated range, empty reserved list.
    assert ports.parse_local_port_range(fixture_text('proc/ip_local_port_range-host.txt')) == (32768, 60999)
    assert ports.parse_port_ranges(fixture_text('proc/ip_local_reserved_ports-host.txt')) == []


@pytest.mark.parametrize('text, expected', [('30000-32767', (30000, 32767)), (' 1 - 65535 ', (1, 65535)), ('8080-8080', (8080, 8080))])
def test_parse_strict_range(text, expected):
    assert ports.parse_strict_range(text) == expected


@pytest.mark.parametrize('bad, words', [
    ('30000', 'start-end'), ('', 'start-end'), ('a-b', 'start-end'), ('1-2-3', 'start-end'), ('30000:32767', 'start-end'),
    ('30000-32767,40000', 'start-end'), ('0-10', 'outside'), ('1-65536', 'outside'), ('200-100', 'greater than'),
    (30000, 'must be a string'), (None, 'must be a string'), (True, 'must be a string'), ('123456-123457', 'start-end'),
])
def test_parse_strict_range_rejects(bad, words):
    with pytest.raises(ports.PortRangeError, match='nodeport_range') as e:
        ports.parse_strict_range(bad, 'nodeport_range')
    assert words in str(e.value)


def test_plan_reserve_merges_with_existing_entries():
    plan = ports.plan_reserve((1024, 65535), ports.parse_port_ranges('10250,31000-33000'), NODEPORT)
    assert ports.format_ranges(plan['reserved']) == '10250,30000-33000'
    assert plan['local_port_range'] == (1024, 65535)
    assert plan['free_ephemeral'] == 64512 - 1 - 3001


def test_plan_reserve_is_a_fixed_point():
    first = ports.plan_reserve((1024, 65535), [], NODEPORT)
    second = ports.plan_reserve((1024, 65535), first['reserved'], NODEPORT)
    assert first['reserved'] == second['reserved'] == [NODEPORT]


def test_plan_reserve_refuses_to_starve_the_ephemeral_range():
    with pytest.raises(ports.PortRangeError, match='reserving 30000-32767 would leave 0 usable ephemeral ports in') as e:
        ports.plan_reserve((30000, 32000), [], NODEPORT)
    assert 'would leave 0 usable' in str(e.value)


def test_plan_move_picks_the_largest_clear_piece():
    assert ports.plan_move((1024, 65535), [], NODEPORT)['local_port_range'] == (32768, 65535)
    assert ports.plan_move((20000, 33000), [], NODEPORT)['local_port_range'] == (20000, 29999)


def test_plan_move_keeps_a_clear_range_and_uses_move_to():
    assert ports.plan_move((32768, 60999), [], NODEPORT)['local_port_range'] == (32768, 60999)
    assert ports.plan_move((1024, 65535), [], NODEPORT, move_to=(40000, 60999))['local_port_range'] == (40000, 60999)


@pytest.mark.parametrize('ephemeral, move_to, unpriv, words', [
    ((1024, 65535), (31000, 40000), 1024, 'overlaps'),
    ((30500, 31000), None, 1024, 'lies inside'),
    ((1024, 65535), (100, 20000), 1024, 'ip_unprivileged_port_start'),
    ((1024, 65535), (40000, 40100), 1024, 'usable ports'),
    ((1024, 65535), (40000, 40000), 1024, 'two different ends'),
])
def test_plan_move_rejects(ephemeral, move_to, unpriv, words):
    with pytest.raises(ports.PortRangeError) as e:
        ports.plan_move(ephemeral, [], NODEPORT, move_to, unpriv)
    assert words in str(e.value)
