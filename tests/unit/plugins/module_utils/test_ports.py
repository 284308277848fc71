from __future__ import annotations

import re

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import ports


def test_parse_port_ranges_kernel_syntax():
    assert ports.parse_port_ranges('30000-32767,40000') == [(30000, 32767), (40000, 40000)]
    assert ports.parse_port_ranges(' 40000 , 30000 - 32767 ') == [(30000, 32767), (40000, 40000)]
    # Overlapping and adjacent items merge, as the kernel's bitmap would.
    assert ports.parse_port_ranges('100-200,150-250,251,300') == [(100, 251), (300, 300)]
    assert ports.parse_port_ranges('') == []
    assert ports.parse_port_ranges(None) == []
    assert ports.parse_port_ranges(['30000-32767', 40000]) == [(30000, 32767), (40000, 40000)]


@pytest.mark.parametrize('bad, words', [
    ('30000-', "not a port or a port range: '30000-'"), ('abc', "not a port or a port range: 'abc'"),
    ('1,,2', "empty item in port list '1,,2'"), ('70000', 'port 70000 out of range 0-65535'),
    ('200-100', "range '200-100' ends before it starts"), ('-5', "not a port or a port range: '-5'"),
    ('1-2-3', "not a port or a port range: '1-2-3'"), ('30000:32767', "not a port or a port range: '30000:32767'"),
])
def test_parse_port_ranges_rejects(bad, words):
    with pytest.raises(ports.PortRangeError, match=re.escape(words)):
        ports.parse_port_ranges(bad)


def test_parse_single_range():
    assert ports.parse_single_range('30000-32767') == (30000, 32767)
    with pytest.raises(ports.PortRangeError, match='expected one port range like 30000-32767, got'):
        ports.parse_single_range('30000-31000,32000-32767')
    with pytest.raises(ports.PortRangeError, match="expected one port range like 30000-32767, got ''"):
        ports.parse_single_range('')


def test_parse_local_port_range_reads_the_kernel_tab_format():
    # /proc/sys/net/ipv4/ip_local_port_range is tab separated (read on the CI machine).
    assert ports.parse_local_port_range('32768\t60999\n') == (32768, 60999)
    assert ports.parse_local_port_range('32768 60999') == (32768, 60999)
    for bad in ('32768', 'a b', '60999 32768', '1 2 3', ''):
        with pytest.raises(ports.PortRangeError, match='ip_local_port_range'):
            ports.parse_local_port_range(bad)


def test_formatting_round_trips():
    ranges = [(30000, 32767), (40000, 40000)]
    assert ports.format_ranges(ranges) == '30000-32767,40000'
    assert ports.parse_port_ranges(ports.format_ranges(ranges)) == ranges
    assert ports.format_local_port_range((1024, 29999)) == '1024 29999'


def test_overlap_union_subtract_count():
    assert ports.overlap((32768, 60999), (30000, 32767)) == []
    assert ports.overlap((30000, 40000), '30000-32767') == [(30000, 32767)]
    assert ports.overlap('1-10,20-30', '5-25') == [(5, 10), (20, 25)]
    assert ports.union('1-10', '11-20') == [(1, 20)]
    assert ports.subtract((1, 100), '10-20,50') == [(1, 9), (21, 49), (51, 100)]
    assert ports.subtract((1, 10), (1, 10)) == []
    assert ports.count('30000-32767') == 2768
    assert ports.count([(1, 1), (3, 4)]) == 3


def test_covered_by_reserved():
    assert ports.covered_by_reserved([(30000, 32767)], '30000-32767')
    assert ports.covered_by_reserved([(30000, 32767)], '29000-33000,40000')
    assert not ports.covered_by_reserved([(30000, 32767)], '30000-32766')
    assert ports.covered_by_reserved([], '')


def test_analyze_default_debian_range_does_not_touch_nodeports():
    result = ports.analyze('32768\t60999', '', '30000-32767')
    assert result['overlap'] == []
    assert result['covered_by_reserved'] is None
    assert result['conflict'] is False
    assert result['ephemeral'] == {'start': 32768, 'end': 60999}


def test_analyze_overlap_not_reserved_is_a_conflict():
    # GKE Dataplane V2 known issue (catalog N-3): an ephemeral range reaching into NodePorts.
    result = ports.analyze('30000 40000', '31000-31999', '30000-32767')
    assert result['overlap'] == ['30000-32767']
    assert result['overlap_ports'] == 2768
    assert result['uncovered'] == ['30000-30999', '32000-32767']
    assert result['uncovered_ports'] == 1768
    assert result['covered_by_reserved'] is False
    assert result['conflict'] is True


def test_analyze_overlap_fully_reserved_is_not_a_conflict():
    result = ports.analyze('30000 40000', '30000-32767', '30000-32767')
    assert result['overlap'] == ['30000-32767']
    assert result['covered_by_reserved'] is True
    assert result['conflict'] is False
    assert result['reserved'] == ['30000-32767']
