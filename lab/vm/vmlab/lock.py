"""Locks: the shared lab lock (flock with ancestor detection), `locked -- COMMAND`, local flocks.

lab/k8s/k8sctl.py takes its own lock with the same code (through labctl.py).
"""

import contextlib
import fcntl
import os
import time

from .common import LabError, log
from .config import LAB_LOCK


@contextlib.contextmanager
def flock(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f'waiting for the lock {path} (another labctl is running)')
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _ancestor_pids():
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open(f'/proc/{pid}/status') as fh:
                pid = next(int(line.split()[1]) for line in fh if line.startswith('PPid:'))
        except (OSError, StopIteration, ValueError):
            break
    return pids


def lock_holders(path):
    """PIDs holding a flock on path (from /proc/locks)."""
    try:
        st = os.stat(path)
        with open('/proc/locks') as fh:
            lines = fh.read().splitlines()
    except OSError:
        return set()
    inode = f'{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}'
    holders = set()
    for line in lines:
        f = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF"; waiters have "->" in field 2
        if len(f) >= 6 and f[1] == 'FLOCK' and f[2] != '->' and f[5] == inode:
            holders.add(int(f[4]))
    return holders


def acquire_lab_lock(path=LAB_LOCK):
    """Take the shared lab lock (blocking, with a message). Returns the open file, or None
    when an ancestor process already holds it (we run under its lock)."""
    fh = open(path, 'a+')  # noqa: SIM115 - kept open while the lock is needed
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fh
    except BlockingIOError:
        holders = lock_holders(path)
        if holders & _ancestor_pids():
            fh.close()
            return None
        who = ', '.join(str(p) for p in sorted(holders)) or '?'
        log(f'waiting for the lab lock {path} (held by pid {who}: someone else is using the lab)')
        start = time.monotonic()
        fcntl.flock(fh, fcntl.LOCK_EX)
        log(f'got the lab lock after {time.monotonic() - start:.0f}s')
        return fh


@contextlib.contextmanager
def lab_lock():
    fh = acquire_lab_lock()
    try:
        yield
    finally:
        if fh is not None:
            fh.close()


def cmd_locked(args):
    exec_locked(args.command, LAB_LOCK, 'labctl')


def exec_locked(command, lock_path, prog):
    """``PROG locked -- COMMAND``: take the lock at ``lock_path`` and exec COMMAND holding it (labctl and k8sctl)."""
    command = command[1:] if command[:1] == ['--'] else command
    if not command:
        raise LabError('usage: %s locked -- COMMAND [ARG...]' % prog)
    fh = acquire_lab_lock(lock_path)
    if fh is not None:
        os.set_inheritable(fh.fileno(), True)  # exec keeps the lock: the command holds it
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        raise LabError(f'{command[0]}: {exc}') from exc
