"""Runtime listing for catalog N-1 (module_utils/runtime), fed real ``ctr`` output (fixtures/ctr)."""

from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import runtime
from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS

from ..conftest import FIXTURES, NodeTree

RUNNING = '4d1f7e2c9b3a58607f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778'
NO_TASK = '9e8d7c6b5a4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9'
STOPPED = 'c0ffee0000000000000000000000000000000000000000000000000000000001'
MODULE_CTR = ('ctr', '--address', '/run/containerd/containerd.sock', '--timeout', '30s', '--namespace', 'k8s.io',
              'containers', 'ls', '-q')


def reply(stem):
    base = FIXTURES / 'ctr'
    rc = int((base / (stem + '.rc')).read_text().strip().split('=')[1])
    return rc, (base / (stem + '.stdout')).read_text(), (base / (stem + '.stderr')).read_text()


def test_ctr_quiet_listing_has_every_container_whatever_its_task_state():
    ids = runtime.parse_id_list(reply('containers-ls-q')[1])
    assert ids == [RUNNING, NO_TASK, STOPPED]
    # The task table shows why: only one task runs, one is stopped, one container has none.
    tasks = (FIXTURES / 'ctr' / 'task-ls.stdout').read_text()
    assert RUNNING in tasks and STOPPED in tasks and NO_TASK not in tasks and 'STOPPED' in tasks


def test_module_arguments_give_the_same_listing():
    assert runtime.parse_id_list(reply('containers-ls-q-module-args')[1]) == [RUNNING, NO_TASK, STOPPED]
    assert list(runtime.list_commands('containerd', 'ctr', 'unix:///run/containerd/containerd.sock')[0]) == list(MODULE_CTR)


def test_empty_namespace_lists_nothing_with_rc_0():
    rc, out, err = reply('containers-ls-q-empty-namespace')
    assert (rc, out, err) == (0, '', '')
    assert runtime.parse_id_list(out) == []


def test_table_output_is_rejected():
    with pytest.raises(runtime.ListingError, match='line 1 is not a container ID'):
        runtime.parse_id_list(reply('containers-ls')[1])


@pytest.mark.parametrize('text', ['abc def\n', 'WARN[0000] something\n', 'a' * 77 + '\n', '-x\n', 'id/with/slash\n'])
def test_anything_but_ids_is_rejected(text):
    with pytest.raises(runtime.ListingError, match='runtime listing: line 1 is not a container ID:'):
        runtime.parse_id_list(text)


def test_blank_lines_and_crlf_are_tolerated():
    assert runtime.parse_id_list('\n%s\r\n\nc1\n' % RUNNING) == [RUNNING, 'c1']


def test_list_commands_per_cli():
    assert runtime.list_commands('containerd', 'ctr', None, 'k8s.io', 5) == [
        ['ctr', '--timeout', '5s', '--namespace', 'k8s.io', 'containers', 'ls', '-q']]
    assert runtime.list_commands('crio', 'crictl', '/var/run/crio/crio.sock', timeout=7) == [
        ['crictl', '--runtime-endpoint', 'unix:///var/run/crio/crio.sock', '--timeout', '7s', 'pods', '-q'],
        ['crictl', '--runtime-endpoint', 'unix:///var/run/crio/crio.sock', '--timeout', '7s', 'ps', '-a', '-q']]
    assert runtime.list_commands('docker', 'docker', None) == [['docker', 'ps', '-a', '-q', '--no-trunc']]
    assert runtime.list_commands('docker', 'docker', '/var/run/docker.sock') == [
        ['docker', '--host', 'unix:///var/run/docker.sock', 'ps', '-a', '-q', '--no-trunc']]
    with pytest.raises(ValueError, match='ctr cannot list docker containers'):
        runtime.list_commands('docker', 'ctr')
    with pytest.raises(ValueError, match="runtime endpoint 'tcp://10\\.0\\.0\\.1:1' is not a unix socket path or"):
        runtime.list_commands('containerd', 'ctr', 'tcp://10.0.0.1:1')


def test_choose_cli():
    which = {'ctr': '/usr/bin/ctr', 'crictl': '/usr/bin/crictl'}.get
    assert runtime.choose_cli('containerd', which) == 'ctr'
    assert runtime.choose_cli('containerd', {'crictl': '/x'}.get) == 'crictl'
    assert runtime.choose_cli('containerd', which, 'crictl') == 'crictl'
    assert runtime.choose_cli('crio', {'ctr': '/x'}.get) is None
    assert runtime.choose_cli('docker', {}.get, 'docker') is None
    with pytest.raises(ValueError, match=r'ctr cannot list crio containers \(use one of: crictl\)'):
        runtime.choose_cli('crio', which, 'ctr')


def test_list_live_ids_through_the_runner(make_runner):
    runner = make_runner(replies={MODULE_CTR: reply('containers-ls-q')})
    listing = runtime.list_live_ids(runner, 'containerd', 'ctr', '/run/containerd/containerd.sock')
    assert listing['ids'] == {RUNNING, NO_TASK, STOPPED}
    assert listing['commands'] == [{'cmd': ['/usr/bin/ctr'] + list(MODULE_CTR[1:]), 'rc': 0, 'count': 3}]
    assert runner.fake.calls == [MODULE_CTR]


def test_containerd_stopped_is_an_error_not_an_empty_list(make_runner):
    runner = make_runner(replies={MODULE_CTR: reply('containers-ls-q-containerd-stopped')})
    with pytest.raises(runtime.ListingError, match='failed to dial'):
        runtime.list_live_ids(runner, 'containerd', 'ctr', '/run/containerd/containerd.sock')


def test_missing_cli_is_an_error(make_runner):
    runner = make_runner(binaries={}, replies={})
    with pytest.raises(runtime.ListingError, match='not installed'):
        runtime.list_live_ids(runner, 'containerd', 'ctr', None)


def test_crictl_one_of_two_failing_is_an_error(make_runner):
    base = ('crictl', '--timeout', '30s')
    runner = make_runner(binaries={'crictl': '/usr/bin/crictl'}, replies={
        base + ('pods', '-q'): (0, RUNNING + '\n', ''),
        base + ('ps', '-a', '-q'): (1, '', 'connect: connection refused'),
    })
    with pytest.raises(runtime.ListingError, match='connection refused'):
        runtime.list_live_ids(runner, 'crio', 'crictl')


def test_kubelet_endpoint_from_config_file(tmp_path):
    tree = NodeTree(tmp_path / 'root')
    assert runtime.kubelet_endpoint(HostFS(str(tree.root))) == (None, None)
    tree.write('/var/lib/kubelet/config.yaml', 'kind: KubeletConfiguration\ncontainerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n')
    assert runtime.kubelet_endpoint(HostFS(str(tree.root))) == ('unix:///run/containerd/containerd.sock', runtime.KUBELET_CONFIG)
    tree.write('/proc/4242/comm', 'kubelet\n')
    tree.write('/proc/4242/cmdline', 'kubelet\0--container-runtime-endpoint=unix:///var/run/crio/crio.sock\0')
    assert runtime.kubelet_endpoint(HostFS(str(tree.root))) == ('unix:///var/run/crio/crio.sock', 'kubelet command line (pid 4242)')
