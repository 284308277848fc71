from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils.runner import CommandError, CommandNotFound, Runner


class FakeModule(object):
    def __init__(self, binaries, replies):
        self.binaries = binaries
        self.replies = replies
        self.calls = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        assert required is False
        assert '/usr/sbin' in opt_dirs
        return self.binaries.get(name)

    def run_command(self, cmd, **kwargs):
        self.calls.append((cmd, kwargs))
        return self.replies[cmd[0]]


def test_run_uses_argument_list_and_c_locale():
    module = FakeModule({'ipvsadm': '/usr/sbin/ipvsadm'},
                        {'/usr/sbin/ipvsadm': (0, 'Timeout (tcp tcpfin udp): 900 120 300\n', '')})
    result = Runner(module).run(['ipvsadm', '-L', '--timeout'])
    assert result.ok
    assert result.stdout.startswith('Timeout')
    cmd, kwargs = module.calls[0]
    assert cmd == ['/usr/sbin/ipvsadm', '-L', '--timeout']
    assert kwargs['environ_update']['LANG'] == 'C'
    assert kwargs['environ_update']['LC_ALL'] == 'C'
    assert kwargs['use_unsafe_shell'] is False
    assert kwargs['check_rc'] is False


def test_missing_binary_is_reported_as_such():
    runner = Runner(FakeModule({}, {}))
    assert not runner.has('crictl')
    with pytest.raises(CommandNotFound) as e:
        runner.run(['crictl', 'pods'])
    assert "'crictl' is not installed" in str(e.value)
    assert isinstance(e.value, CommandError)


def test_failure_carries_command_rc_and_stderr():
    err = 'Can\'t initialize ipvs: Protocol not available\nAre you sure that IP Virtual Server is built in the kernel or as module?\n'
    module = FakeModule({'ipvsadm': '/sbin/ipvsadm'}, {'/sbin/ipvsadm': (2, '', err)})
    runner = Runner(module)
    with pytest.raises(CommandError) as e:
        runner.run(['ipvsadm', '-L', '--timeout'])
    assert e.value.rc == 2
    assert e.value.cmd == ['/sbin/ipvsadm', '-L', '--timeout']
    assert 'rc=2' in e.value.msg and 'Protocol not available' in e.value.msg
    assert e.value.to_dict()['stderr'] == err
    # check=False returns the result instead.
    result = runner.run(['ipvsadm', '-L', '--timeout'], check=False)
    assert result.rc == 2 and not result.ok


def test_strings_are_refused():
    with pytest.raises(TypeError):
        Runner(FakeModule({}, {})).run('ipvsadm -L')


def test_arguments_are_stringified():
    module = FakeModule({'ip': '/usr/sbin/ip'}, {'/usr/sbin/ip': (0, '', '')})
    Runner(module).run(['ip', 'link', 'set', 'cbr0', 'mtu', 1460])
    assert module.calls[0][0][-1] == '1460'
