"""ipvs_modules (catalog N-4) on this host, whose kernel has no loadable modules and no IPVS.

This is the "kernel without such a module" case for real: the module must fail clearly
and write nothing. Loading and persisting are proven on a real Debian kernel in
tests/labvm/test_ipvs_modules.py.
"""

import os

import pytest


@pytest.fixture
def node(sandbox):
    sandbox.modules_load = sandbox.directory('/etc/modules-load.d')
    return sandbox


def test_host_kernel_without_module_support_fails_and_writes_nothing(node):
    assert not os.path.exists('/proc/modules'), 'this test expects a kernel without loadable modules'
    for check in (True, False):
        result = node.run('ipvs_modules', {'schedulers': ['rr', 'lc']}, check=check)
        assert result.failed
        assert result['changed'] is False
        assert 'no loadable module support' in result['msg']
        assert 'ip_vs, ip_vs_rr, ip_vs_lc are not built in' in result['msg']
        assert result['before']['modules_loaded'] == []
        assert os.listdir(node.modules_load) == []


@pytest.mark.parametrize('args, words', [
    ({'schedulers': ['roundrobin']}, 'unknown IPVS scheduler'),
    ({'schedulers': []}, 'at least one'),
    ({'schedulers': ['rr', 'RR']}, 'unknown IPVS scheduler'),
    ({'schedulers': ['rr'], 'persist_file': '/etc/modules-load.d/ipvs'}, '.conf'),
])
def test_bad_input_fails_before_reading_the_kernel(node, args, words):
    result = node.run('ipvs_modules', args)
    assert result.failed
    assert result['changed'] is False
    assert words in result['msg']
    assert 'no loadable module support' not in result['msg']
    assert os.listdir(node.modules_load) == []
