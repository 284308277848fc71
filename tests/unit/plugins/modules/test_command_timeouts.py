"""A command that runs past its timeout ends the module with a clear failure, never a traceback (issue 10 hole 3, issue 13).

``Runner.run`` raises ``CommandTimeout`` whatever ``check`` says (a killed command's output is never used). A
review of the lifecycle ports found four calls whose caller caught nothing around it, so the module died with a
Python traceback instead of a result: the ``arping`` probe of neighbor_flush, the ``map show`` read of
cilium_lb_maps, and the read-backs after a change of pod_bridge and cilium_lb_maps. Each case here runs the
module's ``main()`` on a fake node (recorded tool output; the command that "hangs" raises ``CommandTimeout``) and
asserts a failure result that names the command and the timeout, says whether anything was changed, and carries
no traceback.
"""

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandTimeout, Runner
from ansible_collections.netmedic.k8s.plugins.modules import cilium_lb_maps, neighbor_flush, pod_bridge
from tests.harness import run_main

from ..conftest import FIXTURES

MAP = '/sys/fs/bpf/tc/globals/cilium_lb4_services_v2'


def _fake_node(monkeypatch, replies, hang):
    """``Runner`` on a node whose binaries all exist; ``replies``: [(argv prefix, stdout)] in order of use (a prefix
    may answer several calls); ``hang``: (argv prefix, nth call) that times out. Returns the list of commands run."""
    ran = []
    calls = {}

    def spawn(_runner, cmd, _data, timeout):
        args = [cmd[0].rsplit('/', 1)[-1]] + list(cmd[1:])
        ran.append(args)
        key = tuple(hang[0])
        if tuple(args[:len(key)]) == key:
            calls[key] = calls.get(key, 0) + 1
            if calls[key] == hang[1]:
                raise CommandTimeout(cmd, timeout)
        for prefix, stdout in replies:
            if args[:len(prefix)] == prefix:
                return 0, stdout, ''
        raise AssertionError('unexpected command on the fake node: %s' % args)

    monkeypatch.setattr(Runner, 'which', lambda self, name: '/usr/sbin/' + name)
    monkeypatch.setattr(Runner, '_spawn', spawn)
    return ran


def _assert_clean_failure(code, result, raw, words):
    assert code == 1, raw
    assert result.get('failed') is True, result
    assert 'module_stderr' not in result and 'Traceback' not in raw, raw
    assert 'exception' not in result or 'Traceback' not in str(result['exception']), result
    for word in words:
        assert word in result['msg'], result['msg']


def test_neighbor_flush_arping_probe_timeout_is_a_refusal(monkeypatch):
    neigh_json = (FIXTURES / 'ip' / 'neigh-vm-dev-eth1.json').read_text()
    ran = _fake_node(monkeypatch, [(['ip', '-j', 'neigh', 'show'], neigh_json), (['ip', '-j', 'link', 'show', 'dev'], '[{"ifname": "eth1"}]')],
                     (['arping'], 1))
    code, result, raw = run_main(neighbor_flush, {'address': ['10.77.0.12'], 'probe': True, 'device': 'eth1'})
    _assert_clean_failure(code, result, raw, ['arping', 'did not finish within', 'othing was changed'])
    assert result['changed'] is False
    assert not [c for c in ran if c[:3] == ['ip', 'neigh', 'del']]


def test_cilium_lb_maps_map_show_timeout_is_a_refusal(monkeypatch, tmp_path):
    _fake_node(monkeypatch, [], (['bpftool', '-j', 'map', 'show'], 1))
    code, result, raw = run_main(cilium_lb_maps, {'maps': [MAP], 'backup_dir': str(tmp_path)})
    _assert_clean_failure(code, result, raw, ['bpftool', 'did not finish within', 'othing was changed'])
    assert result['changed'] is False


def test_cilium_lb_maps_read_back_timeout_after_clearing_fails_as_changed(monkeypatch, tmp_path):
    show = (FIXTURES / 'bpftool' / 'map-show-services.json').read_text()
    dump = (FIXTURES / 'bpftool' / 'map-dump-services.json').read_text()
    ran = _fake_node(monkeypatch, [(['bpftool', '-j', 'map', 'show'], show), (['bpftool', '-j', 'map', 'dump'], dump),
                                   (['bpftool', 'batch'], '')], (['bpftool', '-j', 'map', 'dump'], 2))
    code, result, raw = run_main(cilium_lb_maps, {'maps': [MAP], 'state': 'cleared', 'threshold': 10, 'backup_dir': str(tmp_path)})
    _assert_clean_failure(code, result, raw, ['did not finish within', MAP])
    assert result['changed'] is True                      # the map was cleared before the read-back hung
    assert ['bpftool', 'batch', 'file', '-'] in ran
    assert [b['path'] for b in result['backups']] == [str(p) for p in tmp_path.iterdir()]


def test_pod_bridge_read_back_timeout_after_the_change_fails_as_changed(monkeypatch):
    down = (FIXTURES / 'ip' / 'link-cbr0-down.json').read_text()
    ran = _fake_node(monkeypatch, [(['ip', '-j', '-d', 'link', 'show'], down), (['ip', 'link', 'set'], '')],
                     (['ip', '-j', '-d', 'link', 'show'], 2))
    code, result, raw = run_main(pod_bridge, {'name': 'cbr0'})
    _assert_clean_failure(code, result, raw, ['did not finish within', 'cbr0'])
    assert result['changed'] is True
    assert ['ip', 'link', 'set', 'dev', 'cbr0', 'up'] in ran


@pytest.mark.parametrize('hang', [(['ip', '-j', '-d', 'link', 'show'], 1), (['ip', '-j', 'neigh', 'show', 'dev'], 1)])
def test_pod_bridge_read_timeouts_before_any_change_are_refusals(monkeypatch, hang):
    up = (FIXTURES / 'ip' / 'link-cbr0-up.json').read_text()
    ran = _fake_node(monkeypatch, [(['ip', '-j', '-d', 'link', 'show'], up), (['ip', '-j', 'neigh', 'show'], '[]'),
                                   (['bridge', '-j', 'fdb', 'show'], '[]')], hang)
    code, result, raw = run_main(pod_bridge, {'name': 'cbr0'})
    _assert_clean_failure(code, result, raw, ['did not finish within'])
    assert result['changed'] is False
    assert not [c for c in ran if c[:3] == ['ip', 'link', 'set']]
