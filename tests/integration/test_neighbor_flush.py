"""neighbor_flush (catalog N-6) in scratch network namespaces on a real (host) kernel.

Three namespaces share a bridge: the node (10.99.7.1), the VIP owner (10.99.7.2,
MAC 02:00:00:00:00:02) and a third member that can be made to claim the VIP too
(conflict). The node's neighbor table is real; the fault is planted with
`ip neigh replace` and every check reads the table with `ip -j neigh` independently of
the module. The two-VM variant is tests/labvm/test_neighbor_flush.py.
"""

import importlib.util
from pathlib import Path

import pytest

# tests/integration is not a package (pytest --import-mode=importlib): load the helper by path.
_spec = importlib.util.spec_from_file_location('netmedic_it_netns', str(Path(__file__).with_name('netns.py')))
netns = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(netns)

NODE_IP, VIP, THIRD_IP = '10.99.7.1', '10.99.7.2', '10.99.7.3'
OWNER_MAC, STALE_MAC = '02:00:00:00:00:02', '02:00:00:00:00:99'


@pytest.fixture
def seg(sandbox, require):  # sandbox: fails (never skips) when the host cannot do root namespace work
    require('ip')
    require('arping')  # probe=true runs it; without it the probe tests would fail unclearly (issue 12)
    segment = netns.Segment('n')
    try:
        segment.node = segment.member(1, NODE_IP)
        segment.member(2, VIP)
        segment.third = segment.member(3, THIRD_IP)
        yield segment
    finally:
        segment.cleanup()


def table(seg, ip=None):
    rows = seg.json(seg.node, 'neigh', 'show', 'nud', 'all')
    # (IPv6 multicast NOARP entries of the namespace are not part of these scenarios)
    return sorted((r['dst'], r.get('lladdr'), r['state'][0]) for r in rows if (r['dst'] == ip if ip else r['dst'].startswith('10.99.7.')))


@pytest.fixture
def flush(run, seg):
    """neighbor_flush through Ansible, inside the node's namespace."""
    def _run(args, check=False, diff=False):
        return run('neighbor_flush', args, check=check, diff=diff, wrapper=seg.wrapper(seg.node))
    return _run


def plant(seg, ip, mac, nud):
    seg.ip(seg.node, 'neigh', 'replace', ip, 'lladdr', mac, 'nud', nud, 'dev', 'eth1')


def test_expected_mac_check_mode_apply_idempotent(flush, seg):
    plant(seg, VIP, STALE_MAC, 'stale')
    plant(seg, THIRD_IP, '02:00:00:00:00:03', 'reachable')
    assert table(seg, VIP) == [(VIP, STALE_MAC, 'STALE')]

    checked = flush({'address': VIP, 'expected_mac': OWNER_MAC}, check=True, diff=True)
    assert not checked.failed, checked.output
    assert checked['changed'] is True
    assert checked['removed'] == [{'dst': VIP, 'dev': 'eth1', 'lladdr': STALE_MAC, 'state': 'STALE', 'method': 'flush', 'expected': OWNER_MAC}]
    assert checked['before'] == {'entries': [{'dst': VIP, 'dev': 'eth1', 'lladdr': STALE_MAC, 'state': 'STALE'}]}
    assert checked['after'] == {'entries': []}
    assert STALE_MAC in checked['diff'][0]['before'] and STALE_MAC not in checked['diff'][0]['after']
    assert table(seg, VIP) == [(VIP, STALE_MAC, 'STALE')], 'check mode removed the entry'

    applied = flush({'address': VIP, 'expected_mac': OWNER_MAC})
    assert not applied.failed, applied.output
    assert applied['changed'] is True
    assert table(seg, VIP) == []
    assert table(seg, THIRD_IP) == [(THIRD_IP, '02:00:00:00:00:03', 'REACHABLE')], 'an unrelated entry was touched'

    again = flush({'address': VIP, 'expected_mac': OWNER_MAC})
    assert not again.failed, again.output
    assert again['changed'] is False
    assert again['removed'] == []

    # The right entry, once learned by real traffic, is kept.
    seg.ip(seg.node, 'neigh', 'replace', VIP, 'lladdr', OWNER_MAC, 'nud', 'reachable', 'dev', 'eth1')
    kept = flush({'address': VIP, 'expected_mac': OWNER_MAC.upper()})
    assert kept['changed'] is False, kept
    assert table(seg, VIP) == [(VIP, OWNER_MAC, 'REACHABLE')]


def test_permanent_entry_needs_del(flush, seg):
    plant(seg, VIP, STALE_MAC, 'permanent')
    result = flush({'address': [VIP], 'expected_mac': OWNER_MAC, 'device': 'eth1'})
    assert not result.failed, result.output
    assert result['removed'][0]['method'] == 'del'
    assert table(seg, VIP) == []


def test_probe_learns_the_owner_mac(flush, seg):
    plant(seg, VIP, STALE_MAC, 'permanent')
    checked = flush({'address': VIP, 'probe': True, 'device': 'eth1'}, check=True)
    assert not checked.failed, checked.output
    assert checked['probe'] == {VIP: {'device': 'eth1', 'macs': [OWNER_MAC], 'conflict': False}}
    assert checked['conflict'] is False
    assert table(seg, VIP) == [(VIP, STALE_MAC, 'PERMANENT')]

    applied = flush({'address': VIP, 'probe': True})  # device taken from the entry
    assert not applied.failed, applied.output
    assert applied['changed'] is True
    assert table(seg, VIP) in ([], [(VIP, OWNER_MAC, 'REACHABLE')], [(VIP, OWNER_MAC, 'STALE')])

    again = flush({'address': VIP, 'probe': True, 'device': 'eth1'})
    assert again['changed'] is False, again


def test_probe_reports_a_conflict_and_changes_nothing(flush, seg):
    seg.ip(seg.third, 'addr', 'add', VIP + '/32', 'dev', 'eth1')
    plant(seg, VIP, STALE_MAC, 'permanent')
    result = flush({'address': VIP, 'probe': True, 'device': 'eth1'})
    assert not result.failed, result.output
    assert result['changed'] is False
    assert result['conflict'] is True
    assert sorted(result['probe'][VIP]['macs']) == [OWNER_MAC, '02:00:00:00:00:03']
    assert any('conflict' in w for w in result.get('warnings', []))
    assert table(seg, VIP) == [(VIP, STALE_MAC, 'PERMANENT')]


def test_state_absent_and_flush_all(flush, seg):
    plant(seg, VIP, STALE_MAC, 'permanent')
    plant(seg, THIRD_IP, '02:00:00:00:00:03', 'stale')
    gone = flush({'address': VIP, 'state': 'absent'})
    assert not gone.failed, gone.output
    assert table(seg, VIP) == []

    plant(seg, VIP, STALE_MAC, 'permanent')
    flushed = flush({'all': True})
    assert not flushed.failed, flushed.output
    assert [r['dst'] for r in flushed['removed']] == [THIRD_IP]
    # flush all keeps PERMANENT entries (they need `ip neigh del`)
    assert table(seg) == [(VIP, STALE_MAC, 'PERMANENT')]


@pytest.mark.parametrize('args, words', [
    ({'address': VIP}, 'exactly one of expected_mac, state=absent or probe=true'),
    ({'address': VIP, 'expected_mac': OWNER_MAC, 'state': 'absent'}, 'exactly one of'),
    ({'address': VIP, 'all': True, 'state': 'absent'}, 'mutually exclusive'),
    ({'all': True, 'probe': True}, 'apply to address only'),
    ({'probe': True}, 'give address'),
    ({'address': '10.99.7.300', 'state': 'absent'}, 'not an IP address'),
    ({'address': VIP, 'expected_mac': '02:00:00:00:00'}, 'not a MAC address'),
    ({'address': VIP, 'expected_mac': 'ff:ff:ff:ff:ff:ff'}, 'not a unicast MAC'),
    ({'address': VIP, 'expected_mac': '01:00:5e:00:00:01'}, 'not a unicast MAC'),
    ({'address': 'fd00::2', 'probe': True, 'device': 'eth1'}, 'IPv4 only'),
    ({'address': VIP, 'state': 'absent', 'device': 'eth/1'}, 'not a network interface name'),
    ({'address': VIP, 'state': 'absent', 'device': 'nosuch0'}, 'does not exist'),
    ({'address': VIP, 'state': 'present'}, 'state'),
])
def test_bad_input_fails_before_any_change(flush, seg, args, words):
    plant(seg, VIP, STALE_MAC, 'permanent')
    result = flush(args)
    assert result.failed
    assert result['changed'] is False
    assert words in result['msg']
    assert table(seg, VIP) == [(VIP, STALE_MAC, 'PERMANENT')]
