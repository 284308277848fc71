"""cni_ipam_gc on the lifecycle (issue 13): host-local's lock, seen through a recording HostFS.

Every file operation of run_gc goes through a HostFS (``store``); this one records each
``flock`` and ``close``, so the tests prove on every exit path that each lock taken is released,
that check mode holds no lock while it lists the runtime and creates no lock file, and that the
apply run holds the lock for its second listing only.
"""

from __future__ import annotations

import fcntl
import os

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import ipam, ipam_gc
from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandTimeout

from .test_cni_ipam_gc import CB0, GKE_A, NOW, ctr_args, files, listing, params
from .test_cni_ipam_gc import gcnode as _gcnode_fixture

gcnode = _gcnode_fixture     # the same node tree fixture (cb0 and gke-pod-network, a containerd socket)


class RecordingFS(HostFS):
    """The machine's files (root ``/``), with every lock operation written down."""

    def __init__(self):
        super(RecordingFS, self).__init__('/')
        self.opened = {}        # fd -> (path, flags)
        self.locked = set()     # fds holding LOCK_EX
        self.closed = set()
        self.events = []

    def open_fd(self, node_path, flags, mode=0o777):
        fd = super(RecordingFS, self).open_fd(node_path, flags, mode)
        self.opened[fd] = (node_path, flags)
        return fd

    def flock(self, fd, operation):
        super(RecordingFS, self).flock(fd, operation)
        if operation & fcntl.LOCK_UN:
            self.locked.discard(fd)
            self.events.append(('unlock', self.opened[fd][0]))
        else:
            self.locked.add(fd)
            self.events.append(('lock', self.opened[fd][0]))

    def close(self, fd):
        self.closed.add(fd)
        self.locked.discard(fd)
        super(RecordingFS, self).close(fd)

    def lock_fds(self):
        return [fd for fd, (path, _f) in self.opened.items() if os.path.basename(path) == ipam.LOCK]


def run(node, runner, store, check=False, **kw):
    return ipam_gc.run_gc(runner, params(node, **kw), check, fs=HostFS(str(node.root)), now=NOW, store=store)


def listing_watch(runner, store):
    """Note, at every runtime command, how many locks the store holds."""
    seen = []
    replay = runner.fake.run_command

    def run_command(cmd, **kw):
        seen.append(len(store.locked))
        return replay(cmd, **kw)
    runner.fake.run_command = run_command
    return seen


def assert_all_released(store):
    fds = store.lock_fds()
    assert fds, 'no lock was taken at all'
    assert store.locked == set() and set(fds) <= store.closed


def test_issue13_check_mode_lists_without_a_lock_and_creates_none(gcnode, make_runner):
    os.unlink(os.path.join(gcnode.data_dir, 'cb0', 'lock'))
    runner = make_runner(replies={ctr_args(): listing(GKE_A, CB0[0], CB0[2])})
    store = RecordingFS()
    seen = listing_watch(runner, store)
    data = run(gcnode, runner, store, check=True)
    assert seen == [0]                                          # one listing, no lock held for it
    assert not any(flags & os.O_CREAT for _p, flags in store.opened.values())
    assert 'lock' not in files(gcnode, 'cb0')
    assert data['changed'] is True and data['moved'] == []
    assert_all_released(store)


def test_issue13_apply_holds_the_lock_for_the_second_listing_and_the_moves_only(gcnode, make_runner):
    runner = make_runner(replies={ctr_args(): listing(GKE_A, CB0[0], CB0[2])})
    store = RecordingFS()
    seen = listing_watch(runner, store)
    moves = []
    real_rename = store.rename

    def rename(src, dst):
        moves.append(len(store.locked))
        return real_rename(src, dst)
    store.rename = rename
    data = run(gcnode, runner, store)
    assert seen == [0, 2]                                       # first listing free, second under both locks
    assert moves and all(n == 2 for n in moves)                  # every move (and the manifest) under the locks
    assert len(data['moved']) == 5
    assert_all_released(store)


def _second_listing_hangs(runner):
    replay = runner.fake.run_command
    calls = []

    def run_command(cmd, **kw):
        calls.append(cmd)
        if len(calls) == 2:
            raise CommandTimeout(cmd, kw['timeout'])
        return replay(cmd, **kw)
    runner.fake.run_command = run_command


def _read_fails(monkeypatch):
    def denied(path, fs=None):
        raise PermissionError(13, 'Permission denied', path)
    monkeypatch.setattr(ipam, 'read_allocations', denied)


def _move_fails(monkeypatch):
    def full(src, dst, sync_dirs=True, fs=None):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(ipam, 'move_to_backup', full)


def _verify_fails(monkeypatch, store):
    store.isfile = lambda node_path: False                    # the backup is not there when read back


@pytest.mark.parametrize('case, match', [
    ('refused', 'refusing to collect'),
    ('second_listing', 'did not finish within'),
    ('read', 'Permission denied'),
    ('move', 'No space left'),
    ('verify', 'after moving'),
])
def test_issue13_the_lock_is_released_on_every_failure(gcnode, make_runner, monkeypatch, case, match):
    ids = () if case == 'refused' else (GKE_A, CB0[0], CB0[2])
    runner = make_runner(replies={ctr_args(): listing(*ids)} if ids else {ctr_args(): (0, '', '')})
    store = RecordingFS()
    if case == 'second_listing':
        _second_listing_hangs(runner)
    elif case == 'read':
        _read_fails(monkeypatch)
    elif case == 'move':
        _move_fails(monkeypatch)
    elif case == 'verify':
        _verify_fails(monkeypatch, store)
    with pytest.raises(ipam_gc.GCError, match=match):
        run(gcnode, runner, store, allow_all=False)
    assert_all_released(store)


def test_issue13_a_lock_timeout_releases_the_locks_already_taken(gcnode, make_runner):
    # cb0 is locked first (sorted by path); gke-pod-network's lock is held by someone else.
    other = os.open(os.path.join(gcnode.data_dir, 'gke-pod-network', 'lock'), os.O_RDONLY)
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        runner = make_runner(replies={ctr_args(): listing(GKE_A, CB0[0], CB0[2])})
        store = RecordingFS()
        with pytest.raises(ipam_gc.GCError, match='held by another process'):
            run(gcnode, runner, store, lock_timeout=0)
        cb0_lock = os.path.join(gcnode.data_dir, 'cb0', 'lock')
        assert store.events == [('lock', cb0_lock), ('unlock', cb0_lock)]
        assert store.locked == set() and set(store.lock_fds()) <= store.closed
    finally:
        os.close(other)


def test_issue13_backup_dir_through_a_link_loop_fails_before_anything(gcnode, make_runner, tmp_path):
    # validate resolves backup_dir through HostFS.realpath, which raises ELOOP (os.path.realpath did not).
    os.symlink(str(tmp_path / 'loop-b'), str(tmp_path / 'loop-a'))
    os.symlink(str(tmp_path / 'loop-a'), str(tmp_path / 'loop-b'))
    runner = make_runner(replies={})
    store = RecordingFS()
    with pytest.raises(ipam_gc.GCError, match='cannot resolve backup_dir'):
        run(gcnode, runner, store, backup_dir=str(tmp_path / 'loop-a' / 'backup'))
    assert runner.fake.calls == [] and store.opened == {}
