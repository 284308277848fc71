"""stale_pod_process (catalog N-9) on a fake node: a /proc tree, runtime sockets, recorded CLI replies.

Issue #10 hole 2.  No real process is signalled here: the pidfd calls are fakes that
record what would be sent (except the last test, which signals its own ``sleep``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import podproc
from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS
from ansible_collections.netmedic.k8s.plugins.modules import stale_pod_process

from ..conftest import NodeTree

UID = '3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8'
SLICE = '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod%s.slice' % UID.replace('-', '_')
SANDBOX = 'a1' * 32
APP = 'b2' * 32
GONE = 'c3' * 32
CONTAINERD = '/run/containerd/containerd.sock'
DOCKER = '/var/run/docker.sock'
# NodeTree's /var/run is an absolute link to /run: sockets are made at their /run path (inside the tree).
DOCKER_IN_TREE = '/run/docker.sock'


def ctr(timeout=30, address=CONTAINERD):
    return ('ctr', '--address', address, '--timeout', '%ds' % timeout, '--namespace', 'k8s.io', 'containers', 'ls', '-q')


DOCKER_PS = ('docker', '--host', 'unix://' + DOCKER, 'ps', '-a', '-q', '--no-trunc')


class FakeProc(object):
    """A /proc tree: one directory per process, with the files podproc reads."""

    def __init__(self, root):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def add(self, pid, cgroup, comm='app', starttime=5000, state='S'):
        base = self.root / str(pid)
        (base / 'fd').mkdir(parents=True, exist_ok=True)
        (base / 'net').mkdir(exist_ok=True)
        self.set_stat(pid, comm, starttime, state)
        (base / 'cgroup').write_text('0::%s\n' % cgroup)
        (base / 'comm').write_text(comm + '\n')
        (base / 'cmdline').write_text(comm + '\0')

    def set_stat(self, pid, comm='app', starttime=5000, state='S'):
        (self.root / str(pid) / 'stat').write_text(
            '%d (%s) %s 1 %d %d 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 %d 1 1 0\n' % (pid, comm, state, pid, pid, starttime))


class Signals(object):
    """Fake pidfd_open / pidfd_send_signal: fds are real (/dev/null) so they can be closed; sends are recorded."""

    def __init__(self, on_open=None, proc=None):
        self.proc = proc      # a FakeProc: the signalled process exits (its /proc entry goes)
        self.opened = []
        self.sent = []
        self.on_open = on_open
        self._fds = {}

    def pidfd_open(self, pid):
        if self.on_open:
            self.on_open(pid)
        fd = os.open(os.devnull, os.O_RDONLY)
        self._fds[fd] = pid
        self.opened.append(pid)
        return fd

    def send(self, fd, sig):
        self.sent.append((self._fds[fd], sig))
        if self.proc is not None:
            shutil.rmtree(str(self.proc.root / str(self._fds[fd])))


@pytest.fixture
def node(tmp_path):
    tree = NodeTree(tmp_path / 'root')
    tree.proc = FakeProc(tmp_path / 'proc')
    return tree


def params(**kw):
    p = {k: v.get('default') for k, v in stale_pod_process.ARGUMENT_SPEC.items()}
    p.update(pod_uid=UID)
    p.update(kw)
    return p


def run_stale(runner, params, check_mode, fs, root='/proc', pidfd_open=None, send=None, sleep=None, clock=None):
    """podproc.StaleRun's steps in the module lifecycle's order (validate, read, plan, check-mode or nothing-to-do
    stop, apply, verify) without AnsibleModule: the result data, or StaleError."""
    run = podproc.StaleRun(runner, params, check_mode, fs, root, pidfd_open, send, sleep, clock)
    steps = ['validate', 'read', 'plan', 'apply', 'verify']
    for step in steps:
        if step == 'apply' and (check_mode or not run.targets):
            break
        getattr(run, step)()
    return run.data


def run(node, runner, check=False, signals=None, **kw):
    signals = signals or Signals(proc=node.proc)
    if signals.proc is None:
        signals.proc = node.proc
    data = run_stale(runner, params(**kw), check, HostFS(str(node.root)), root=str(node.proc.root),
                     pidfd_open=signals.pidfd_open, send=signals.send, sleep=lambda s: None)
    return data, signals


def test_issue10_h2_crio_conmon_scope_is_a_runtime_monitor_not_a_container():
    conmon = SLICE + '/crio-conmon-%s.scope' % APP
    assert podproc.container_id(conmon, UID) is None
    assert podproc.is_runtime_monitor(conmon, UID)
    assert podproc.container_id(SLICE + '/crio-%s.scope' % APP, UID) == APP
    # cgroupfs driver: conmon's cgroup sits in the pod cgroup too, without .scope
    assert podproc.container_id('/kubepods/besteffort/pod%s/crio-conmon-%s' % (UID, APP), UID) is None


def test_issue10_h2_crio_conmon_is_never_signalled(node, make_runner):
    node.socket('/run/crio/crio.sock')
    node.proc.add(100, SLICE + '/crio-%s.scope' % SANDBOX, 'pause')
    node.proc.add(101, SLICE + '/crio-%s.scope' % APP, 'nginx')
    node.proc.add(102, SLICE + '/crio-conmon-%s.scope' % APP, 'conmon')
    node.proc.add(103, SLICE + '/crio-conmon-%s.scope' % SANDBOX, 'conmon')
    base = ('crictl', '--runtime-endpoint', 'unix:///var/run/crio/crio.sock', '--timeout', '30s')
    runner = make_runner(binaries={'crictl': '/usr/bin/crictl'}, replies={
        base + ('pods', '-q'): (0, SANDBOX + '\n', ''), base + ('ps', '-a', '-q'): (0, APP + '\n', '')})
    data, signals = run(node, runner, state='killed')
    assert data['stale'] == [] and data['signalled'] == [] and signals.sent == []
    assert sorted(p['pid'] for p in data['monitors']) == [102, 103]
    assert sorted(p['pid'] for p in data['owned']) == [100, 101]
    assert data['runtime']['name'] == 'crio' and data['changed'] is False


def test_issue10_h2_docker_node_is_detected_not_assumed_containerd(node, make_runner):
    # A Docker node: the engine's socket only; ctr is installed too (Docker ships containerd).
    node.socket(DOCKER_IN_TREE)
    node.proc.add(200, SLICE + '/docker-%s.scope' % SANDBOX, 'pause')
    node.proc.add(201, SLICE + '/docker-%s.scope' % APP, 'nginx')
    node.proc.add(202, SLICE + '/docker-%s.scope' % GONE, 'python3')
    runner = make_runner(binaries={'ctr': '/usr/bin/ctr', 'docker': '/usr/bin/docker'}, replies={
        DOCKER_PS: (0, '%s\n%s\n' % (SANDBOX, APP), ''),
        ctr(address=None)[:1] + ctr()[3:]: (0, '', ''),   # what the old default asked: an empty k8s.io namespace
    })
    data, signals = run(node, runner, state='killed')
    assert runner.fake.calls == [DOCKER_PS, DOCKER_PS]
    assert data['runtime']['name'] == 'docker' and data['runtime']['cli'] == 'docker'
    assert [p['pid'] for p in data['stale']] == [202]
    assert signals.sent == [(202, signal.SIGTERM)] and data['signalled'] == [202]


def test_issue10_h2_empty_listing_is_refused(node, make_runner):
    node.socket(CONTAINERD)
    node.proc.add(300, SLICE + '/cri-containerd-%s.scope' % SANDBOX, 'pause')
    node.proc.add(301, SLICE + '/cri-containerd-%s.scope' % APP, 'nginx')
    runner = make_runner(binaries={'ctr': '/usr/bin/ctr'}, replies={ctr(): (0, '', '')})
    for check in (True, False):
        signals = Signals()
        with pytest.raises(podproc.StaleError, match=r'runtime listed no container at all.*nothing was changed') as e:
            run(node, runner, check=check, signals=signals, state='killed')
        assert signals.opened == [] and signals.sent == []
        assert e.value.changed is False and e.value.data['signalled'] == []


def test_issue10_h2_pod_without_any_owned_process_is_refused(node, make_runner):
    node.socket(CONTAINERD)
    node.proc.add(400, SLICE + '/cri-containerd-%s.scope' % SANDBOX, 'pause')
    node.proc.add(401, SLICE + '/cri-containerd-%s.scope' % APP, 'nginx')
    # containerd lists containers, but none of this pod's: a wrong namespace or endpoint looks like this
    runner = make_runner(binaries={'ctr': '/usr/bin/ctr'}, replies={ctr(): (0, GONE + '\n', '')})
    signals = Signals()
    with pytest.raises(podproc.StaleError, match=r'no process of the pod belongs to a container the runtime lists'):
        run(node, runner, signals=signals, state='killed')
    assert signals.opened == [] and signals.sent == []


def _containerd_pod(node):
    node.socket(CONTAINERD)
    node.proc.add(500, SLICE + '/cri-containerd-%s.scope' % SANDBOX, 'pause')
    node.proc.add(501, SLICE + '/cri-containerd-%s.scope' % GONE, 'python3', starttime=7777)


def test_issue10_h2_pid_reused_between_plan_and_signal_is_not_signalled(node, make_runner):
    _containerd_pod(node)
    runner = make_runner(binaries={'ctr': '/usr/bin/ctr'}, replies={ctr(): (0, SANDBOX + '\n', '')})
    # While the pidfd is opened, PID 501 now names another process (another start time).
    signals = Signals(on_open=lambda pid: node.proc.set_stat(pid, 'python3', starttime=9999))
    data, _rc = run(node, runner, signals=signals, state='killed')
    assert signals.opened == [501] and signals.sent == []
    assert data['signalled'] == [] and data['changed'] is False
    assert any('PID reused' in w for w in data['warnings'])


def test_issue10_h2_signal_goes_through_the_pidfd_opened_before_the_check(node, make_runner):
    _containerd_pod(node)
    runner = make_runner(binaries={'ctr': '/usr/bin/ctr'}, replies={ctr(): (0, SANDBOX + '\n', '')})
    order = []
    signals = Signals(on_open=lambda pid: order.append('open'))
    real_send = signals.send

    def send(fd, sig):
        order.append('send')
        real_send(fd, sig)
    signals.send = send
    real_process = podproc.process

    def process(pid, root='/proc'):
        order.append('check')
        return real_process(pid, root)
    podproc.process, saved = process, podproc.process
    try:
        data, _rc = run(node, runner, signals=signals, state='killed', signal='KILL')
    finally:
        podproc.process = saved
    # the pidfd is opened, THEN the process is checked, THEN the signal goes through that pidfd
    at = order.index('send')
    assert order[at - 2:at + 1] == ['open', 'check', 'send'] and order.count('send') == 1
    assert signals.sent == [(501, signal.SIGKILL)] and data['signalled'] == [501]


def test_issue10_h2_no_pidfd_refuses_before_anything_is_sent(node, make_runner, monkeypatch):
    _containerd_pod(node)
    runner = make_runner(binaries={'ctr': '/usr/bin/ctr'}, replies={ctr(): (0, SANDBOX + '\n', '')})
    monkeypatch.setattr(podproc, 'pidfd_available', lambda: False)
    with pytest.raises(podproc.StaleError, match=r'pidfd_open/pidfd_send_signal are not available.*nothing was changed') as e:
        run_stale(runner, params(state='killed'), False, HostFS(str(node.root)), root=str(node.proc.root))
    assert e.value.changed is False and e.value.data['signalled'] == []
    # and signal_planned itself refuses without them
    with pytest.raises(podproc.SignalUnavailable, match='nothing is signalled'):
        monkeypatch.delattr(os, 'pidfd_open')
        podproc.signal_planned({'pid': 501}, signal.SIGTERM, str(node.proc.root))


def test_issue10_h2_check_mode_signals_nothing_and_says_what_would_be(node, make_runner):
    _containerd_pod(node)
    runner = make_runner(binaries={'ctr': '/usr/bin/ctr'}, replies={ctr(): (0, SANDBOX + '\n', '')})
    data, signals = run(node, runner, check=True, state='killed')
    assert data['changed'] is True and data['signalled'] == [501]
    assert signals.opened == [] and signals.sent == []
    assert runner.fake.calls == [ctr()]


def test_issue10_h2_real_pidfd_signals_only_the_planned_process():
    """Our own throwaway `sleep`: signalled through a real pidfd; a stale plan (other start time) is not."""
    if not podproc.pidfd_available():
        pytest.fail('this Python/kernel has no pidfd_open: the module refuses to signal here')
    child = subprocess.Popen(['sleep', '60'])
    try:
        planned = podproc.process(child.pid)
        assert planned is not None
        assert podproc.signal_planned(dict(planned, starttime=planned['starttime'] - 1), signal.SIGTERM) == 'changed'
        assert child.poll() is None                      # still running: the mismatching plan was not acted on
        assert podproc.signal_planned(planned, signal.SIGTERM) == 'sent'
        assert child.wait(timeout=5) == -signal.SIGTERM
        assert podproc.signal_planned(planned, signal.SIGTERM) == 'gone'
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert sys.platform.startswith('linux') and time.time() > 0
