"""neigh planners of neighbor_flush (catalog N-6), fed `ip -j neigh` and `arping` output recorded
in a scratch namespace and on the lab's Debian VMs (see fixtures/README.md)."""

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import neigh

from ..conftest import fixture_reply, fixture_text


def entries(name):
    return neigh.parse_neigh_json(fixture_text('ip/' + name))


def test_parse_arping_one_mac_conflict_and_silence():
    rc, out, err = fixture_reply('arping/one-mac')
    assert (rc, err) == (0, '')
    assert neigh.parse_arping(out) == ['52:54:00:77:00:02']
    # Two nodes hold 10.77.0.12: both MACs answer (arping exits 1 although replies came).
    rc, out, err = fixture_reply('arping/conflict-3-probes')
    assert err == ''
    assert rc == 1
    assert neigh.parse_arping(out) == ['52:54:00:77:00:02', '52:54:00:77:00:03']
    assert neigh.parse_arping(fixture_reply('arping/conflict-2-probes')[1]) == ['52:54:00:77:00:03', '52:54:00:77:00:02']
    assert neigh.parse_arping(fixture_reply('arping/no-reply')[1]) == []


def test_vm_table_with_a_permanent_entry():
    table = entries('neigh-vm-permanent.json')
    plan = neigh.plan_removals(table, ['10.77.0.50'], 'eth1', expected_mac='52:54:00:77:00:02')
    assert plan == [{'dst': '10.77.0.50', 'dev': 'eth1', 'lladdr': '02:00:00:00:00:50', 'state': 'PERMANENT',
                     'method': 'del', 'expected': '52:54:00:77:00:02'}]
    assert neigh.removal_command(plan[0]) == ['ip', '-4', 'neigh', 'del', '10.77.0.50', 'dev', 'eth1']
    # The right MAC is kept.
    assert neigh.plan_removals(table, ['10.77.0.12'], None, expected_mac='52:54:00:77:00:02') == []
    assert neigh.plan_removals(table, ['10.77.0.12'], 'eth0', absent=True) == []


def test_ip_omits_dev_when_the_query_names_it():
    # `ip -j neigh show dev eth1` (recorded on the VM) has no "dev" key: the module always reads the whole table.
    table = entries('neigh-vm-dev-eth1.json')
    assert {e['dev'] for e in table} == {None}


def test_expected_mac_keeps_unresolved_entries_and_flushes_dynamic_ones():
    table = entries('neigh-states.json')
    plan = neigh.plan_removals(table, ['10.99.0.2', '10.99.0.78', 'fd99::2'], None, expected_mac='02:00:00:00:00:01')
    assert [(r['dst'], r['state'], r['method']) for r in plan] == [('10.99.0.2', 'DELAY', 'flush'), ('fd99::2', 'STALE', 'flush')]
    assert neigh.removal_command(plan[1]) == ['ip', '-6', 'neigh', 'flush', 'to', 'fd99::2', 'dev', 'vA']


def test_absent_removes_every_entry_of_the_address():
    table = entries('neigh-incomplete-nud-all.json')
    plan = neigh.plan_removals(table, ['10.99.0.201', '10.99.0.78'], 'vA', absent=True)
    assert [(r['dst'], r['method']) for r in plan] == [('10.99.0.201', 'del'), ('10.99.0.78', 'flush')]


def test_flush_all_keeps_static_entries():
    table = entries('neigh-incomplete-nud-all.json')
    states = sorted({r['state'] for r in neigh.plan_flush_all(table)})
    assert states == ['DELAY', 'INCOMPLETE', 'REACHABLE']
    assert neigh.plan_flush_all(table, 'eth9') == []


def test_plan_removals_needs_one_mode():
    with pytest.raises(neigh.NeighError, match='plan_removals needs exactly one of expected_mac or absent'):
        neigh.plan_removals([], ['10.0.0.1'])
    with pytest.raises(neigh.NeighError, match='plan_removals needs exactly one of expected_mac or absent'):
        neigh.plan_removals([], ['10.0.0.1'], expected_mac='02:00:00:00:00:01', absent=True)


@pytest.mark.parametrize('bad', ['', 'a' * 16, 'eth 0', 'eth/0', '..', None, 5])
def test_validate_device_rejects(bad):
    with pytest.raises(neigh.NeighError, match='not a network interface name:'):
        neigh.validate_device(bad)
