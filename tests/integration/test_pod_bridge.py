"""pod_bridge (catalog N-8) in a scratch network namespace on the host's real kernel.

The namespace holds a bridge cbr0 (MTU 1460, down) with two veth ports, one of them at
MTU 1500 - the layout the fixtures were recorded from. The module runs inside the
namespace (`ip netns exec`); every check reads the link with `ip -j` independently.
"""

import importlib.util
import time
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location('netmedic_it_netns', str(Path(__file__).with_name('netns.py')))
netns = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(netns)


@pytest.fixture
def ns(sandbox):  # sandbox: fails (never skips) without root namespace support
    spaces = netns.Namespaces('b')
    try:
        node = spaces.add('node')
        spaces.ip(node, 'link', 'add', 'cbr0', 'mtu', '1460', 'type', 'bridge')
        for i, mtu in ((1, '1460'), (2, '1500')):
            spaces.ip(node, 'link', 'add', 'veth%d' % i, 'mtu', mtu, 'type', 'veth', 'peer', 'name', 'pod%d' % i, 'mtu', mtu)
            spaces.ip(node, 'link', 'set', 'veth%d' % i, 'master', 'cbr0', 'up')
            spaces.ip(node, 'link', 'set', 'pod%d' % i, 'up')
        spaces.node = node
        yield spaces
    finally:
        spaces.cleanup()


@pytest.fixture
def bridge(run, ns):
    def _run(args, check=False, diff=False):
        return run('pod_bridge', args, check=check, diff=diff, wrapper=ns.wrapper(ns.node))
    return _run


def link(ns, name='cbr0'):
    (data,) = ns.json(ns.node, 'link', 'show', 'dev', name)
    return 'UP' in data['flags'], data['mtu']


def operstate(ns, name='cbr0'):
    (data,) = ns.json(ns.node, 'link', 'show', 'dev', name)
    return data['operstate']


def test_check_mode_apply_idempotent(ns, bridge):
    assert link(ns) == (False, 1460)
    checked = bridge({'name': 'cbr0'}, check=True, diff=True)
    assert not checked.failed, checked.output
    assert checked['changed'] is True
    assert checked['commands'] == [['ip', 'link', 'set', 'dev', 'cbr0', 'up']]
    assert checked['before']['admin_up'] is False and checked['after']['admin_up'] is True
    assert checked['bridge']['port_mtus'] == [1460, 1500]
    assert any('port MTUs [1460, 1500]' in w for w in checked.get('warnings', []))
    assert '"admin_up": false' in checked['diff'][0]['before']
    assert link(ns) == (False, 1460), 'check mode changed the bridge'

    applied = bridge({'name': 'cbr0'})
    assert not applied.failed, applied.output
    assert applied['changed'] is True
    assert link(ns) == (True, 1460)
    assert applied['after']['admin_up'] is True
    # Ports with carrier: the kernel marks the bridge operationally UP, asynchronously (linkwatch),
    # so the module's immediate read may still say DOWN; the kernel must get there within seconds.
    assert applied['after']['operstate'] in ('UP', 'DOWN', 'UNKNOWN')
    deadline = time.monotonic() + 10
    while operstate(ns) != 'UP' and time.monotonic() < deadline:
        time.sleep(0.2)
    assert operstate(ns) == 'UP'

    again = bridge({'name': 'cbr0'})
    assert not again.failed, again.output
    assert again['changed'] is False
    assert again['commands'] == []


def test_set_mtu(ns, bridge):
    result = bridge({'name': 'cbr0', 'mtu': 1400})
    assert not result.failed, result.output
    assert result['commands'][0] == ['ip', 'link', 'set', 'dev', 'cbr0', 'mtu', '1400']
    assert link(ns) == (True, 1400)
    again = bridge({'name': 'cbr0', 'mtu': 1400})
    assert again['changed'] is False, again


@pytest.mark.parametrize('args, words', [
    ({'name': 'nosuch0'}, 'does not exist'),
    ({'name': 'veth1'}, 'not a bridge'),
    ({'name': 'cbr0', 'mtu': 10}, 'between 68 and 65535'),
    ({'name': 'cbr0', 'mtu': 70000}, 'between 68 and 65535'),
    ({'name': 'cbr0/x'}, 'not a network interface name'),
    ({'name': 'cbr0', 'mtu': 'big'}, 'mtu'),
])
def test_bad_input_fails_before_any_change(ns, bridge, args, words):
    result = bridge(args)
    assert result.failed
    assert result['changed'] is False
    assert words in result['msg']
    assert link(ns) == (False, 1460)
    assert link(ns, 'veth1') == (True, 1460)


def mac(ns, name):
    (data,) = ns.json(ns.node, 'link', 'show', 'dev', name)
    return data['address']


def say_hello(ns, port):
    """One ARP probe from the pod side (DAD mode: sender 0.0.0.0, no address needed): the bridge learns its MAC."""
    netns.sh('ip', 'netns', 'exec', ns.node, 'arping', '-D', '-c', '1', '-w', '2', '-I', port, '10.60.0.1', check=False)


def test_n8_verify_learned_reports_pod_macs_and_names_silent_ports(ns, bridge):
    """Issue 10 partial N-8: the seed's check that the bridge learns pod MACs, with a port that stays silent."""
    up = bridge({'name': 'cbr0'})
    assert not up.failed, up.output
    say_hello(ns, 'pod1')
    say_hello(ns, 'pod2')
    checked = bridge({'name': 'cbr0', 'verify_learned': 5})
    assert not checked.failed, checked.output
    assert checked['changed'] is False
    assert checked['learned'] == {'veth1': [mac(ns, 'pod1')], 'veth2': [mac(ns, 'pod2')]}
    assert checked['unlearned_ports'] == []

    ns.ip(ns.node, 'link', 'add', 'veth3', 'mtu', '1460', 'type', 'veth', 'peer', 'name', 'pod3', 'mtu', '1460')
    ns.ip(ns.node, 'link', 'set', 'veth3', 'master', 'cbr0', 'up')
    # A truly silent pod: no IPv6 autoconfiguration (its DAD and MLD packets would teach the bridge its MAC).
    netns.sh('ip', 'netns', 'exec', ns.node, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv6/conf/pod3/disable_ipv6')
    ns.ip(ns.node, 'link', 'set', 'pod3', 'up')
    silent = bridge({'name': 'cbr0', 'verify_learned': 2})
    assert silent.failed and silent['changed'] is False
    assert 'veth3' in silent['msg'] and 'veth1' not in silent['msg']
    assert silent['unlearned_ports'] == ['veth3']


def test_n8_port_mtu_check_mode_apply_idempotent(ns, bridge):
    """Issue 10 partial N-8: the veth ports' host side gets the MTU on request, ports before the bridge."""
    checked = bridge({'name': 'cbr0', 'mtu': 1460, 'port_mtu': True}, check=True, diff=True)
    assert not checked.failed, checked.output
    assert checked['changed'] is True
    assert checked['commands'] == [['ip', 'link', 'set', 'dev', 'veth2', 'mtu', '1460'], ['ip', 'link', 'set', 'dev', 'cbr0', 'up']]
    assert checked['before']['port_mtus'] == {'veth1': 1460, 'veth2': 1500}
    assert checked['after']['port_mtus'] == {'veth1': 1460, 'veth2': 1460}
    assert link(ns, 'veth2') == (True, 1500), 'check mode changed a port'

    applied = bridge({'name': 'cbr0', 'mtu': 1460, 'port_mtu': True})
    assert not applied.failed, applied.output
    assert link(ns, 'veth2') == (True, 1460) and link(ns) == (True, 1460)
    assert link(ns, 'pod2')[1] == 1500, 'the pod side is never changed'
    again = bridge({'name': 'cbr0', 'mtu': 1460, 'port_mtu': True})
    assert again['changed'] is False and again['commands'] == []


@pytest.mark.parametrize('args, words', [
    ({'name': 'cbr0', 'port_mtu': True}, 'port_mtu needs mtu'),
    ({'name': 'cbr0', 'verify_learned': 601}, 'verify_learned must be 0 to 600'),
    ({'name': 'cbr0', 'verify_learned': -1}, 'verify_learned must be 0 to 600'),
])
def test_n8_bad_new_inputs_fail_before_any_change(ns, bridge, args, words):
    result = bridge(args)
    assert result.failed and result['changed'] is False
    assert words in result['msg']
    assert link(ns) == (False, 1460) and link(ns, 'veth2') == (True, 1500)
