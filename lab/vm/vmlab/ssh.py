"""SSH to the nodes: the ssh command, commands with a timeout, waiting for boot, the guest clock, `ssh`."""

import contextlib
import os
import subprocess
import sys
import threading
import time

from .common import LabError, log
from .config import L2_DEV, STATE
from .nodes import find_node, node_paths, pid_alive

# One OpenSSH connection per node, shared by labctl, Ansible (the inventory's ansible_ssh_common_args name the same
# ControlPath) and the tests' ssh fixture: a new connection to a TCG guest costs ~1.1 s of the guest's CPU (key
# exchange) and 2-4 s of wall time, a session over a running master ~0.15 s (measured 2026-12-04). %C is OpenSSH's hash
# of local host, remote host, port and user, the same for every client of a node. The master dies with its TCP
# connection (a guest reboot, the qemu process replaced): stop_node closes it first.
CONTROL_DIR = os.path.join(STATE, 'ssh')
CONTROL_PATH = os.path.join(CONTROL_DIR, '%C')
SHARED_OPTS = ['-o', 'ControlMaster=auto', '-o', f'ControlPath={CONTROL_PATH}', '-o', 'ControlPersist=60']


def ssh_base(node, key, shared=False):
    """The ssh command of a node up to the remote command. ``shared``: through the node's shared connection (never for
    a long-lived process of its own, e.g. a tunnel, nor before a state is saved: the guest would keep the session)."""
    if shared:
        # a Unix socket path has 107 bytes; ssh adds 41 (the %C hash) and a 17-byte temporary suffix while it binds
        if len(CONTROL_DIR) + 1 + 40 + 17 > 107:
            raise LabError(f'NETMEDIC_LAB_STATE is too long for the shared SSH connections\' sockets: {CONTROL_DIR} '
                           f'(at most {107 - 58} characters)')
        os.makedirs(CONTROL_DIR, mode=0o700, exist_ok=True)
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
        *(SHARED_OPTS if shared else []),
        'root@127.0.0.1',
    ]


def close_shared(node):
    """Stop the node's shared connection (``ssh -O exit``); none running is fine."""
    argv = ssh_base(node, os.path.join(node['image'], 'id_ed25519'), shared=True)
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        subprocess.run([*argv[:-1], '-O', 'exit', argv[-1]], capture_output=True, timeout=15, check=False)


def ssh_run(node, command, timeout=60, check=True, shared=False):
    key = os.path.join(node['image'], 'id_ed25519')
    try:
        proc = subprocess.run([*ssh_base(node, key, shared), command], check=False, text=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
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


# The guest's /etc/ssh/sshrc (lab/vm/recipe/customize.sh) appends a line "session" here for every SSH session; the
# clock reset after a restore leaves the one line "clean <fingerprint of the L2 neighbour table>" (in the guest's /run:
# a reboot empties it). A node is unused while that is all the file holds and its neighbour table on the L2 interface
# holds the same (address, MAC) pairs: another node's ping or arping teaches it the sender without a session. Not its
# eth1 packet count: a restored node's qemu announces itself (RARP broadcasts) to every other node, which learn nothing
# from it (measured 2026-12-04: +30 packets on an idle node while two others were restored, its table still empty).
# The check moves the record away first, so a session that starts meanwhile makes a new file, and writes the clean
# record back only where none appeared (noclobber).
SESSIONS_FILE = '/run/nmlab-sessions'
_FINGERPRINT = f"$(ip neigh show dev {L2_DEV} | awk '{{print $1, $3}}' | sort | md5sum | cut -c1-16)"
CLEAN_RECORD = f'echo "clean {_FINGERPRINT}" >{SESSIONS_FILE}'
_CHECK = (f'f={SESSIONS_FILE}; mv "$f" "$f.chk" 2>/dev/null; fp={_FINGERPRINT}; '
          'if [ "$(cat "$f.chk" 2>/dev/null)" = "$(printf \'clean %s\\nsession\' "$fp")" ] '
          '&& (set -C; echo "clean $fp" >"$f") 2>/dev/null; then echo unused; else echo used; fi')


def unused_since_restore(node):
    """True when nothing reached the node since labctl's clock reset after its last restore: no SSH session (the
    check's own aside) and no new neighbour on its L2 interface. False when it was used, rebooted, or cannot be
    asked."""
    try:
        proc = ssh_run(node, _CHECK, timeout=30, check=False, shared=True)
    except LabError:
        return False
    return proc.returncode == 0 and proc.stdout.strip() == 'unused'


def _set_clock_once(node, timeout=30):
    """One SSH session: the guest says it is ready, then we send the host's time,
    so the SSH connection set-up (seconds under TCG) does not count. It opens the node's shared connection and leaves
    the clean record of ``unused_since_restore``."""
    key = os.path.join(node['image'], 'id_ed25519')
    cmd = [*ssh_base(node, key, shared=True),
           f'echo ready; read t && date -u -s "@$t" >/dev/null && {CLEAN_RECORD} && echo set']
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def give_up():
        # the shared connection's master holds copies of this client's pipes: killing the client alone would leave
        # readline() waiting for the master
        proc.kill()
        close_shared(node)

    timer = threading.Timer(timeout, give_up)
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
    argv = ssh_base(node, os.path.join(node['image'], 'id_ed25519'), shared=True)
    if args.command:
        argv += ['--', *args.command]
    elif sys.stdin.isatty():
        argv.insert(1, '-t')
    os.execvp('ssh', argv)
