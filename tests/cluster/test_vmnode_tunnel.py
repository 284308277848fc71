"""lab/k8s/vmnode.py (issue 15 item 3): the apiserver tunnel into a VM node restarts itself, and `leave` ends it.

Offline and fast: the supervisor runs as `vmnode.py tunnel-supervise` does (its own session, pid in the state
dir) with `sleep` standing in for the `ssh -N -R` and a fake node; no VM, no apiserver.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# the supervisor as join starts it, with the node lookup and the ssh command replaced; the node is "gone"
# (labctl down) when the file named by GONE exists
SUPERVISOR = r'''
import os, sys
sys.path.insert(0, os.path.join(sys.argv[1], 'lab', 'k8s'))
import vmnode
def find_node(spec):
    if os.path.exists(os.environ['GONE']):
        raise vmnode.LabError('lab-node-1 is not up')
    return {'name': 'lab-node-1', 'index': 1, 'image': '/nonexistent', 'port': 1}
vmnode.find_node = find_node
vmnode.tunnel_argv = lambda node: ['sleep', '300']
sys.exit(vmnode.main(['tunnel-supervise', '1']))
'''


@pytest.fixture
def vmnode(tmp_path, monkeypatch):
    monkeypatch.setenv('NETMEDIC_K8S_STATE', str(tmp_path))
    monkeypatch.setenv('GONE', str(tmp_path / 'gone'))
    monkeypatch.syspath_prepend(str(ROOT / 'lab' / 'k8s'))
    for mod in ('vmnode', 'k8sctl'):
        sys.modules.pop(mod, None)
    import vmnode as mod  # imported with the state dir above

    log = tmp_path / 'vmnode-tunnel-lab-node-1.log'
    with log.open('a') as out:
        proc = subprocess.Popen([sys.executable, '-c', SUPERVISOR, str(ROOT), 'tunnel-supervise'],
                                stdout=out, stderr=out, start_new_session=True)
    node = {'name': 'lab-node-1', 'index': 1}
    deadline = time.monotonic() + 30
    while mod.tunnel_pid(node) != proc.pid or not _ssh_pids(log):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    yield mod, node, proc, log
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    for name in ('vmnode', 'k8sctl'):
        sys.modules.pop(name, None)


def _ssh_pids(log):
    return [int(p) for p in re.findall(r'ssh pid (\d+) started', log.read_text())]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with open(f'/proc/{pid}/stat') as fh:
        return fh.read().split()[2] != 'Z'


def _wait(cond, timeout=30):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_tunnel_restarts_when_its_ssh_exits_and_leave_ends_both(vmnode):
    mod, node, proc, log = vmnode
    first = _ssh_pids(log)[0]
    os.kill(first, signal.SIGKILL)  # the tunnel dies (as the ssh -R did on 2026-12-02)
    _wait(lambda: len(_ssh_pids(log)) >= 2)
    second = _ssh_pids(log)[1]
    assert second != first and _alive(second)
    assert mod.tunnel(node) == proc.pid  # join again: the running supervisor is kept

    assert mod.stop_tunnel(node) == proc.pid  # what leave does
    assert proc.wait(timeout=10) == 0
    _wait(lambda: not _alive(second))
    assert mod.group_members(proc.pid) == []  # nothing of the group is left
    assert mod.tunnel_pid(node) is None
    assert not Path(mod.tunnel_paths(node)[0]).exists()
    assert 'signal 15, stopped' in log.read_text()


def test_supervisor_ends_when_the_node_is_gone(vmnode):
    mod, node, proc, log = vmnode
    Path(os.environ['GONE']).touch()  # labctl down: the node is no longer up, its ssh exits
    os.kill(_ssh_pids(log)[0], signal.SIGKILL)
    assert proc.wait(timeout=30) == 0
    assert 'ends (LabError: lab-node-1 is not up)' in log.read_text()
    assert len(_ssh_pids(log)) == 1
    assert mod.stop_tunnel(node) is None
