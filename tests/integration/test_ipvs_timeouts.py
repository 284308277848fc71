"""ipvs_timeouts (catalog N-5) on this host, whose kernel has no IPVS.

Without ip_vs the module must fail clearly and run nothing that could load it
(ipvsadm would modprobe ip_vs implicitly). Setting, persisting and a real reboot are
proven on the lab's Debian kernel in tests/labvm/test_ipvs_timeouts.py.
"""

import os

import pytest


@pytest.fixture
def node(sandbox):
    sandbox.units = sandbox.directory('/etc/systemd/system')
    return sandbox


def test_kernel_without_ipvs_fails_clearly_and_writes_nothing(node):
    assert not os.path.exists('/proc/net/ip_vs'), 'this test expects a kernel without IPVS'
    for check in (True, False):
        result = node.run('ipvs_timeouts', {'tcp': 900, 'tcpfin': 120, 'udp': 10}, check=check)
        assert result.failed
        assert result['changed'] is False
        assert 'ip_vs is not loaded' in result['msg'] and 'ipvs_modules' in result['msg']
        assert os.listdir(node.units) == []


@pytest.mark.parametrize('args, words', [
    ({'udp': -1}, 'between 0'),
    ({'udp': 'ten'}, 'udp'),
    ({'tcp': 0}, 'at least one'),
    ({'udp': 10 ** 8}, 'between 0'),
    ({'udp': 10, 'cluster_version': 'one.sixteen'}, 'cluster_version'),
    ({'udp': 10, 'unit_file': '/etc/systemd/system/ipvs.timer'}, '.service'),
])
def test_bad_input_fails_before_reading_anything(node, args, words):
    result = node.run('ipvs_timeouts', args)
    assert result.failed
    assert result['changed'] is False
    assert words in result['msg']
    assert 'not loaded' not in result['msg']
    assert os.listdir(node.units) == []
