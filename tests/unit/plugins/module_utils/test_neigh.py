from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import neigh


def test_parse_real_neighbor_table(fixture_text):
    entries = neigh.parse_neigh_json(fixture_text('ip/neigh-states.json'))
    by_dst = {e['dst']: e for e in entries}
    assert len(entries) == 7
    assert by_dst['10.99.0.77'] == {'dst': '10.99.0.77', 'dev': 'vA', 'lladdr': None, 'state': 'FAILED',
                                    'states': ['FAILED'], 'router': False}
    assert by_dst['fd99::2']['state'] == 'STALE'
    assert by_dst['fd99::2']['lladdr'] == '0a:d2:2f:cf:41:bc'
    assert by_dst['10.99.0.200']['state'] == 'PERMANENT'
    assert neigh.count_states(entries) == {'FAILED': 2, 'PERMANENT': 1, 'DELAY': 2, 'STALE': 2}


def test_incomplete_and_noarp_entries(fixture_text):
    entries = neigh.parse_neigh_json(fixture_text('ip/neigh-incomplete-nud-all.json'))
    counts = neigh.count_states(entries)
    assert counts['INCOMPLETE'] == 2
    assert counts['NOARP'] == 5
    unresolved = neigh.in_states(entries, neigh.UNRESOLVED_STATES)
    assert sorted(e['dst'] for e in unresolved) == ['10.99.0.77', '10.99.0.78']


def test_reported_states(fixture_text):
    entries = neigh.parse_neigh_json(fixture_text('ip/neigh-states.json'))
    reported = neigh.in_states(entries, neigh.REPORTED_STATES)
    assert sorted(e['dst'] for e in reported) == ['10.99.0.77', '10.99.0.78', 'fd99::2', 'fe80::8d2:2fff:fecf:41bc']


def test_host_table_and_empty_output(fixture_text):
    entries = neigh.parse_neigh_json(fixture_text('ip/neigh-host.json'))
    assert [e['dst'] for e in entries] == ['192.0.2.1', 'fd00::1']
    assert neigh.parse_neigh_json('') == []
    assert neigh.parse_neigh_json('[]\n') == []
    with pytest.raises(neigh.NeighError, match='ip -j neigh printed invalid JSON: Expecting value: line 1 column 1'):
        neigh.parse_neigh_json('Object "neigh" is unknown')
    with pytest.raises(neigh.NeighError, match='ip -j neigh printed dict, expected a list'):
        neigh.parse_neigh_json('{"dst": "1.2.3.4"}')


def test_find_compares_addresses_not_strings(fixture_text):
    entries = neigh.parse_neigh_json(fixture_text('ip/neigh-states.json'))
    assert [e['state'] for e in neigh.find(entries, 'fd99:0::2')] == ['STALE']
    assert neigh.find(entries, '10.99.0.3', dev='vA')[0]['lladdr'] == '0a:d2:2f:cf:41:bc'
    assert neigh.find(entries, '10.99.0.3', dev='eth0') == []
    with pytest.raises(neigh.NeighError, match="not an IP address: 'not-an-ip'"):
        neigh.find(entries, 'not-an-ip')


def test_mismatches_detect_a_stale_mac_for_a_vip(fixture_text):
    # Catalog N-6: the admin node holds another MAC for the VIP than its owner's interface.
    entries = neigh.parse_neigh_json(fixture_text('ip/neigh-states.json'))
    found = neigh.mismatches(entries, {'10.99.0.3': '52:54:00:12:34:22', '10.99.0.2': '0A:D2:2F:CF:41:BC',
                                       '10.99.0.77': '52:54:00:00:00:01'})
    assert found == [{'dst': '10.99.0.3', 'dev': 'vA', 'lladdr': '0a:d2:2f:cf:41:bc',
                      'expected': '52:54:00:12:34:22', 'state': 'DELAY'}]


def test_normalizers():
    assert neigh.normalize_mac('02:FC:0:0:0:5') == '02:fc:00:00:00:05'
    assert neigh.normalize_mac('02-fc-00-00-00-05') == '02:fc:00:00:00:05'
    assert neigh.normalize_mac(None) is None
    for bad in ('02:fc:00', 'zz:zz:zz:zz:zz:zz', '0211:22:33:44:55'):
        with pytest.raises(neigh.NeighError, match='not a MAC address:'):
            neigh.normalize_mac(bad)
    assert neigh.normalize_ip(' fd00:0::1 ') == 'fd00::1'
