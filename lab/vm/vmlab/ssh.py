"""SSH to the nodes: the ssh command, commands with a timeout, waiting for boot, the guest clock, `ssh`."""

import contextlib
import os
import subprocess
import sys
import threading
import time

from .common import LabError, log
from .nodes import find_node, node_paths, pid_alive


def ssh_base(node, key):
    return [
        'ssh',
        '-i',
        key,
        '-p',
        str(node['port']),
        '-o',
        'BatchMode=yes',
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        'StrictHostKeyChecking=no',
        '-o',
        'UserKnownHostsFile=/dev/null',
        '-o',
        'LogLevel=ERROR',
        '-o',
        'ConnectTimeout=10',
        '-o',
        'ServerAliveInterval=5',
        '-o',
        'ServerAliveCountMax=3',
        'root@127.0.0.1',
    ]


def ssh_run(node, command, timeout=60, check=True):
    key = os.path.join(node['image'], 'id_ed25519')
    try:
        proc = subprocess.run([*ssh_base(node, key), command], check=False, text=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f'{node["name"]}: ssh timed out after {timeout}s: {command}') from exc
    if check and proc.returncode != 0:
        raise LabError(f'{node["name"]}: ssh {command!r} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}')
    return proc


def wait_ssh(node, timeout=420):
    start = next_note = time.monotonic()
    while True:
        if time.monotonic() >= next_note + 20:
            next_note = time.monotonic()
            log(f'{node["name"]}: booting, no SSH yet ({next_note - start:.0f}s)')
        if not pid_alive(node['pid']):
            raise LabError(f'{node["name"]}: qemu exited; see {node_paths(node["index"])["console"]}')
        with contextlib.suppress(LabError):
            proc = ssh_run(node, 'echo ok', timeout=30, check=False)
            if proc.stdout.strip() == 'ok':
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise LabError(f'{node["name"]}: no SSH after {timeout}s; see {node_paths(node["index"])["console"]}')
        time.sleep(2)


def _set_clock_once(node, timeout=30):
    """One SSH session: the guest says it is ready, then we send the host's time,
    so the SSH connection set-up (seconds under TCG) does not count."""
    key = os.path.join(node['image'], 'id_ed25519')
    cmd = [*ssh_base(node, key), 'echo ready; read t && date -u -s "@$t" >/dev/null && echo set']
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        if proc.stdout.readline().strip() == 'ready':
            proc.stdin.write(f'{time.time():.3f}\n')
            proc.stdin.flush()
        stdout, stderr = proc.communicate()
    finally:
        timer.cancel()
    if proc.returncode != 0 or 'set' not in stdout:
        raise LabError(f'{node["name"]}: setting the clock failed ({proc.returncode}): {stderr.strip()}')


def set_guest_clock(node, timeout=120):
    """The saved state carries the guest clock of the moment it was saved: set it
    to the host's time (this is also the first SSH round trip after a restore)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _set_clock_once(node)
            return
        except LabError:
            if time.monotonic() > deadline or not pid_alive(node['pid']):
                raise
            time.sleep(0.5)


def cmd_ssh(args):
    node = find_node(args.node)
    argv = ssh_base(node, os.path.join(node['image'], 'id_ed25519'))
    if args.command:
        argv += ['--', *args.command]
    elif sys.stdin.isatty():
        argv.insert(1, '-t')
    os.execvp('ssh', argv)
