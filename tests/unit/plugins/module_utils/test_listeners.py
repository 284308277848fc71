"""listeners (catalog D-5): /proc/net/tcp{,6} of a namespace with known listeners."""

from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import listeners

from ..conftest import fixture_text


def tables():
    return (listeners.parse_proc_net_tcp(fixture_text('proc/net-tcp-listeners.txt'), 4),
            listeners.parse_proc_net_tcp(fixture_text('proc/net-tcp6-listeners.txt'), 6))


def test_parses_only_listening_sockets_with_kernel_byte_order():
    v4, v6 = tables()
    # The established loopback pair (state 01) is not a listener.
    assert v4 == [{'family': 4, 'address': '127.0.0.1', 'port': 5050},
                  {'family': 4, 'address': '0.0.0.0', 'port': 7070},
                  {'family': 4, 'address': '0.0.0.0', 'port': 9090}]
    assert v6 == [{'family': 6, 'address': '::1', 'port': 6060},
                  {'family': 6, 'address': '::', 'port': 8080},
                  {'family': 6, 'address': '::', 'port': 9090}]


def test_summary_by_reachable_family():
    v4, v6 = tables()
    assert listeners.summarize(v4, v6) == {'ipv4_only': [7070], 'ipv6': [8080, 9090], 'loopback_only': [5050, 6060]}


def test_ipv6_gaps_names_ipv4_only_and_absent_ports():
    summary = listeners.summarize(*tables())
    assert listeners.ipv6_gaps(summary, [7070, 8080, 5050, 1234]) == ([7070], [1234, 5050])
    assert listeners.ipv6_gaps(summary, []) == ([], [])


def test_ipv4_mapped_listener_is_not_ipv6():
    v6 = listeners.parse_proc_net_tcp(
        '  sl  local_address remote st\n   0: 0000000000000000FFFF00000100000A:0050 00000000000000000000000000000000:0000 0A 0\n', 6)
    assert v6 == [{'family': 6, 'address': '::ffff:10.0.0.1', 'port': 80}]
    assert listeners.summarize([], v6)['ipv6'] == []


@pytest.mark.parametrize('text', ['   0: zz 00000000:0000 0A', '   0: 0100007F:1F90'])
def test_unexpected_lines_raise(text):
    with pytest.raises(listeners.ListenerError, match='unexpected line 1'):
        listeners.parse_proc_net_tcp(text, 4)


def test_bad_address_width_raises():
    with pytest.raises(listeners.ListenerError, match='bad IPv6 address'):
        listeners.parse_proc_net_tcp('   0: 0100007F:1F90 00000000:0000 0A 0', 6)
