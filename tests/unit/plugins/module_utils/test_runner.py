from __future__ import annotations

import shutil
import time

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils.node import runner as runner_mod
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandError, CommandNotFound, Runner


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
    with pytest.raises(CommandNotFound, match="command 'crictl' is not installed \\(searched PATH and /usr/local/sbin") as e:
        runner.run(['crictl', 'pods'])
    assert "'crictl' is not installed" in str(e.value)
    assert isinstance(e.value, CommandError)


def test_failure_carries_command_rc_and_stderr():
    err = 'Can\'t initialize ipvs: Protocol not available\nAre you sure that IP Virtual Server is built in the kernel or as module?\n'
    module = FakeModule({'ipvsadm': '/sbin/ipvsadm'}, {'/sbin/ipvsadm': (2, '', err)})
    runner = Runner(module)
    with pytest.raises(CommandError, match="/sbin/ipvsadm -L --timeout exited with rc=2: Can't initialize ipvs") as e:
        runner.run(['ipvsadm', '-L', '--timeout'])
    assert e.value.rc == 2
    assert e.value.cmd == ['/sbin/ipvsadm', '-L', '--timeout']
    assert 'rc=2' in e.value.msg and 'Protocol not available' in e.value.msg
    assert e.value.to_dict()['stderr'] == err
    # check=False returns the result instead.
    result = runner.run(['ipvsadm', '-L', '--timeout'], check=False)
    assert result.rc == 2 and not result.ok


def test_strings_are_refused():
    with pytest.raises(TypeError, match=r'Runner\.run takes an argument list, not a string'):
        Runner(FakeModule({}, {})).run('ipvsadm -L')


def test_arguments_are_stringified():
    module = FakeModule({'ip': '/usr/sbin/ip'}, {'/usr/sbin/ip': (0, '', '')})
    Runner(module).run(['ip', 'link', 'set', 'cbr0', 'mtu', 1460])
    assert module.calls[0][0][-1] == '1460'


# --- issue #10 hole 3: every command has a wall-clock timeout -------------------------

class HostBinaries(object):
    """Binaries resolved on this machine; the real executor runs them."""

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return shutil.which(name)


def _gone(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] == 'Z'
    except FileNotFoundError:
        return True


def test_issue10_h3_hung_command_is_killed_with_its_process_group(tmp_path):
    pidfile = tmp_path / 'child.pid'
    # A CLI wrapper whose child hangs: killing only the wrapper would leave the child holding stdout.
    script = 'sleep 300 & echo $! > %s; echo partial; wait' % pidfile
    runner = Runner(HostBinaries(), timeout=60, execute=runner_mod.execute)
    start = time.monotonic()
    with pytest.raises(runner_mod.CommandTimeout, match=r'sh -c .* did not finish within 1 s and was killed') as e:
        runner.run(['sh', '-c', script], timeout=1, check=False)
    elapsed = time.monotonic() - start
    assert 1 <= elapsed < 4
    assert e.value.rc is None and e.value.timeout == 1
    assert isinstance(e.value, CommandError)           # callers that handle failures handle this one
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), 'the hung child %d survived the timeout' % child


def test_issue10_h3_runner_default_timeout_and_per_call_override():
    module = FakeModule({'ctr': '/usr/bin/ctr'}, {'/usr/bin/ctr': (0, '', '')})
    runner = Runner(module)
    runner.run(['ctr', 'version'])
    runner.run(['ctr', 'version'], timeout=7)
    Runner(module, timeout=3).run(['ctr', 'version'])
    assert [kw['timeout'] for _cmd, kw in module.calls] == [120, 7, 3]


@pytest.mark.parametrize('bad', [0, -1, True, '5', None])
def test_issue10_h3_timeout_must_be_positive_seconds(bad):
    with pytest.raises(ValueError, match='timeout must be a positive number'):
        Runner(FakeModule({}, {}), timeout=bad)


def test_issue10_h3_real_executor_returns_output_and_rc(tmp_path):
    runner = Runner(HostBinaries(), execute=runner_mod.execute)
    res = runner.run(['sh', '-c', 'cat; echo "$LC_ALL" >&2; exit 3'], check=False, data='in', timeout=5)
    assert (res.rc, res.stdout, res.stderr) == (3, 'in\n', 'C\n')
    # stdin is /dev/null without data: a command reading it ends instead of hanging.
    assert runner.run(['sh', '-c', 'cat; echo done'], timeout=5).stdout == 'done\n'
