"""N-7's shared host-local store (flannel.py, node side) through HostFS, and flannel_ipam_store on the lifecycle (issue 13).

- HostFS's methods for it (readlink, symlink, exchange) act below the root like the others;
- the steps run on a tree under a temporary root with ``os`` and ``open`` taken away from flannel.py and
  ipam.py: every file operation of ``share_ipam_dir``/``share_dir``/``verify_tmpfs`` goes through the
  HostFS, and nothing outside the root is touched;
- the plan is pure (literal input, no file system);
- the module holds host-local's locks from the plan through the read-back (none in check mode, none for
  ``state=verified``, which writes nothing), refuses a conflict before copying anything, and reports
  ``changed`` when a failure comes after a link was made.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import uuid
from pathlib import Path

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import flannel, ipam
from ansible_collections.netmedic.k8s.plugins.module_utils.node import hostfs
from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS
from ansible_collections.netmedic.k8s.plugins.modules import flannel_ipam_store

ROOT = Path(__file__).resolve().parents[4]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.harness import run_main  # noqa: E402

A, B, OTHER = 'a' * 64, 'b' * 64, 'f' * 64


def alloc(cid):
    return ('%s\r\neth0' % cid).encode()


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- HostFS: readlink, symlink, exchange --------------------------------------------------------

def test_issue13_link_methods_act_below_the_root(tmp_path):
    fs = HostFS(str(tmp_path))
    fs.makedirs('/run/cni/networks')
    fs.makedirs('/var/lib/cni/networks/cb0')
    fs.symlink('/run/cni/networks', '/var/lib/cni/.networks.netmedic-link')
    assert os.readlink(str(tmp_path / 'var/lib/cni/.networks.netmedic-link')) == '/run/cni/networks'   # stored as given
    assert fs.readlink('/var/lib/cni/.networks.netmedic-link') == '/run/cni/networks'
    assert fs.realpath('/var/lib/cni/.networks.netmedic-link') == '/run/cni/networks'                   # resolved inside the root
    with pytest.raises(FileExistsError):
        fs.symlink('/elsewhere', '/var/lib/cni/networks')
    assert fs.can_exchange()
    fs.exchange('/var/lib/cni/.networks.netmedic-link', '/var/lib/cni/networks')
    assert fs.islink('/var/lib/cni/networks') and (tmp_path / 'var/lib/cni/.networks.netmedic-link/cb0').is_dir()
    with pytest.raises(OSError) as info:
        fs.exchange('/var/lib/cni/networks', '/var/lib/cni/missing')
    assert info.value.errno == errno.ENOENT and 'renameat2(RENAME_EXCHANGE) /var/lib/cni/networks <-> /var/lib/cni/missing' in str(info.value)


def test_issue13_without_renameat2_the_share_is_refused_before_any_change(tmp_path, monkeypatch):
    monkeypatch.setattr(hostfs, '_renameat2', lambda: None)
    fs = HostFS(str(tmp_path))
    write(tmp_path / 'var/lib/cni/networks/cb0/10.9.0.2', alloc(A))
    assert not fs.can_exchange()
    with pytest.raises(OSError) as info:
        fs.exchange('/a', '/b')
    assert info.value.errno == errno.ENOSYS
    with pytest.raises(flannel.FlannelError, match=r'renameat2 is not available.*nothing was changed'):
        flannel.read_ipam_dir('/var/lib/cni/networks', '/run/cni/networks', fs)
    assert not (tmp_path / 'run').exists()
    (tmp_path / 'var/lib/cni/shared').symlink_to('/run/cni/networks')
    assert flannel.read_ipam_dir('/var/lib/cni/shared', '/run/cni/networks', fs)['state'] == 'shared'    # nothing to swap


# --- every file operation through HostFS ----------------------------------------------------------

class _PathArithmetic(object):
    """``os.path`` with only what never touches a file system."""

    ALLOWED = ('join', 'split', 'basename', 'dirname', 'normpath', 'sep')

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        if name in self.ALLOWED:
            return getattr(self._real, name)
        raise AssertionError('os.path.%s bypasses HostFS' % name)


class _NoFileOs(object):
    """``os`` for flannel.py and ipam.py in these tests: flags, messages and path arithmetic only."""

    def __init__(self, real):
        self._real = real
        self.path = _PathArithmetic(real.path)

    def __getattr__(self, name):
        if name.startswith('O_') or name in ('strerror', 'sep', 'fsencode', 'fsdecode'):
            return getattr(self._real, name)
        raise AssertionError('os.%s bypasses HostFS' % name)


def _no_open(*args, **kwargs):
    raise AssertionError('open(%r) bypasses HostFS' % (args[:1],))


@pytest.fixture
def no_direct_io(monkeypatch):
    for module in (flannel, ipam):
        monkeypatch.setattr(module, 'os', _NoFileOs(os), raising=False)
        monkeypatch.setattr(module, 'open', _no_open, raising=False)


class Rooted(object):
    """A node under ``<tmp>/root``: the disk stores in /var/lib/cni, the tmpfs ones in /run/cni; one network
    with a name no real node has, so a call that escaped the root would leave a trace that can be looked for."""

    OLD, NEW = '/var/lib/cni/networks', '/run/cni/networks'
    OLD_F, NEW_F = '/var/lib/cni/flannel', '/run/cni/flannel'

    def __init__(self, tmp_path):
        self.root = tmp_path / 'root'
        self.fs = HostFS(str(self.root))
        self.net = 'nmtest-%s' % uuid.uuid4().hex[:12]
        write(self.at(self.OLD, self.net, '10.9.0.2'), alloc(A))
        write(self.at(self.OLD, self.net, '10.9.0.3'), alloc(B))
        write(self.at(self.OLD, self.net, 'last_reserved_ip.0'), b'10.9.0.3')
        write(self.at(self.OLD, self.net, 'lock'), b'')
        write(self.at(self.OLD_F, A), b'{}')
        write(self.at(self.NEW, self.net, '10.9.0.2'), alloc(A))

    def at(self, *node_path):
        return self.root.joinpath(*[p.lstrip('/') for p in node_path])

    def escaped(self):
        """Traces of this network outside the root (the node paths taken as this machine's)."""
        return [p for p in (os.path.join(self.OLD, self.net), os.path.join(self.NEW, self.net),
                            self.OLD + flannel.STORE_SUFFIX, os.path.join(self.NEW_F, A)) if os.path.lexists(p)]


def test_issue13_share_runs_below_the_root_and_only_through_hostfs(tmp_path, no_direct_io):
    node = Rooted(tmp_path)
    fs = node.fs
    checked = flannel.share_ipam_dir(node.OLD, node.NEW, 5, check_mode=True, fs=fs)
    assert checked['copied'] == ['%s/10.9.0.3' % node.net, '%s/last_reserved_ip.0' % node.net]
    assert not node.at(node.NEW, node.net, 'lock').exists()
    report = flannel.share_ipam_dir(node.OLD, node.NEW, 5, fs=fs)
    assert report['state_after'] == 'shared' and report['kept'] == node.OLD + flannel.STORE_SUFFIX
    assert report['copied'] == checked['copied'] and report['identical'] == ['%s/10.9.0.2' % node.net]
    assert os.readlink(str(node.at(node.OLD))) == node.NEW                     # the node's path, for the node
    assert node.at(node.NEW, node.net, '10.9.0.3').read_bytes() == alloc(B)
    assert node.at(node.OLD + flannel.STORE_SUFFIX, node.net, '10.9.0.3').read_bytes() == alloc(B)
    assert flannel.link_state(node.OLD, node.NEW, fs) == 'shared'
    assert flannel.share_ipam_dir(node.OLD, node.NEW, 5, fs=fs)['state_before'] == 'shared'
    fdir = flannel.share_dir(node.OLD_F, node.NEW_F, fs=fs)
    assert fdir['copied'] == [A] and fdir['state_after'] == 'shared' and node.at(node.NEW_F, A).read_bytes() == b'{}'
    # verified, read through the same HostFS: the mount table is the root's /proc/mounts
    write(node.at('/proc/mounts'), b'/dev/vda / ext4 rw 0 0\ntmpfs /run tmpfs rw,nosuid 0 0\n')
    ok, evidence = flannel.verify_tmpfs(fs, node.NEW, [node.OLD, node.OLD_F], ['10.9.0.3'])
    assert not ok and evidence['allocations']['10.9.0.3']['tmpfs'] is True
    assert evidence['problems'] == ['%s still exists' % node.OLD, '%s still exists' % node.OLD_F]
    assert node.escaped() == []


def test_issue13_absent_store_and_a_lock_timeout_below_the_root(tmp_path, no_direct_io):
    node = Rooted(tmp_path)
    fs = node.fs
    fd = os.open(str(node.at(node.OLD, node.net, 'lock')), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ipam.LockTimeout):
            flannel.share_ipam_dir(node.OLD, node.NEW, 1, fs=fs)
    finally:
        os.close(fd)
    assert flannel.link_state(node.OLD, node.NEW, fs) == 'disk'
    fs.makedirs('/var/lib/other')
    other = flannel.share_ipam_dir('/var/lib/other/networks', '/run/other/networks', 1, fs=fs)
    assert other['state_before'] == 'absent' and other['state_after'] == 'shared'
    assert os.readlink(str(node.at('/var/lib/other/networks'))) == '/run/other/networks' and node.at('/run/other/networks').is_dir()
    assert node.escaped() == []


# --- the plan is pure -------------------------------------------------------------------------------

def test_issue13_plan_from_literal_input():
    store = {'path': '/var/lib/cni/networks', 'shared_with': '/run/cni/networks', 'state': 'disk', 'networks': ['cb0']}
    contents = {'cb0': {'disk': {'10.9.0.2': alloc(A), '10.9.0.3': alloc(B), '10.9.0.4': alloc(A), 'last_reserved_ip.0': b'10.9.0.4'},
                        'tmpfs': {'10.9.0.2': alloc(A), '10.9.0.3': alloc(OTHER), 'last_reserved_ip.0': b'10.9.0.9'}}}
    report = flannel.plan_ipam_share(store, contents)
    assert report == {'path': '/var/lib/cni/networks', 'shared_with': '/run/cni/networks', 'state_before': 'disk',
                      'state_after': 'shared', 'networks': ['cb0'], 'copied': ['cb0/10.9.0.4'],
                      'identical': ['cb0/10.9.0.2', 'cb0/last_reserved_ip.0'], 'kept': None,
                      'conflicts': [{'network': 'cb0', 'ip': '10.9.0.3', 'disk': {'container_id': B, 'ifname': 'eth0'},
                                     'tmpfs': {'container_id': OTHER, 'ifname': 'eth0'}}]}
    error = flannel.conflict_error(report)
    assert 'cb0/10.9.0.3' in str(error) and error.report['copied'] == [] and error.report['state_after'] == 'disk'
    assert flannel.conflict_error(dict(report, conflicts=[])) is None
    absent = dict(store, state='absent', networks=[])
    assert flannel.plan_ipam_share(absent, {})['state_after'] == 'shared'
    assert flannel.plan_ipam_share(absent, {}, link_absent=False)['state_after'] == 'absent'
    fstore = {'path': '/var/lib/cni/flannel', 'shared_with': '/run/cni/flannel', 'state': 'disk', 'files': [A, B], 'present': [A, 'x']}
    assert flannel.plan_flannel_share(fstore) == {'path': '/var/lib/cni/flannel', 'shared_with': '/run/cni/flannel', 'state_before': 'disk',
                                                  'state_after': 'shared', 'copied': [B], 'identical': [A], 'kept': None}


# --- the module on the lifecycle ---------------------------------------------------------------------

class Stores(object):
    def __init__(self, base):
        self.old, self.new = base / 'lib' / 'networks', base / 'run' / 'networks'
        self.old_f, self.new_f = base / 'lib' / 'flannel', base / 'run' / 'flannel'
        write(self.old / 'cb0' / '10.9.0.2', alloc(A))
        write(self.old / 'cb0' / '10.9.0.3', alloc(B))
        write(self.old / 'cb0' / 'last_reserved_ip.0', b'10.9.0.3')
        write(self.old_f / A, b'{}')

    def args(self, **kw):
        return dict({'old_ipam_dir': str(self.old), 'new_ipam_dir': str(self.new), 'old_flannel_dir': str(self.old_f),
                     'new_flannel_dir': str(self.new_f)}, **kw)

    def locks(self):
        return [self.old / 'cb0' / 'lock', self.new / 'cb0' / 'lock']


def _held(path):
    """True when another open file description holds ``path``'s flock (what a second host-local would see)."""
    if not path.exists():
        return False
    fd = os.open(str(path), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _watch(monkeypatch, stores, names):
    """Wrap flannel.<name> for each name: record which of host-local's locks are held when it is called."""
    seen = []
    for name in names:
        real = getattr(flannel, name)

        def watched(*args, _real=real, _name=name, **kw):
            seen.append((_name, [_held(p) for p in stores.locks()]))
            return _real(*args, **kw)

        monkeypatch.setattr(flannel, name, watched)
    return seen


def test_issue13_locks_are_held_from_the_plan_through_the_read_back(tmp_path, monkeypatch):
    stores = Stores(tmp_path)
    seen = _watch(monkeypatch, stores, ['read_ipam_dir', 'read_ipam_networks', 'plan_ipam_share', 'apply_ipam_share', 'verify_share'])
    _rc, result, _raw = run_main(flannel_ipam_store, stores.args())
    assert not result.get('failed') and result['changed'] is True, result
    assert seen == [('read_ipam_dir', [False, False]), ('read_ipam_networks', [True, True]), ('plan_ipam_share', [True, True]),
                    ('apply_ipam_share', [True, True]), ('verify_share', [True, True]), ('verify_share', [True, True])]
    assert [_held(p) for p in stores.locks()] == [False, False]          # released at the end
    assert os.readlink(str(stores.old)) == str(stores.new) and os.readlink(str(stores.old_f)) == str(stores.new_f)


def test_issue13_check_mode_takes_no_lock_and_creates_nothing(tmp_path, monkeypatch):
    stores = Stores(tmp_path)
    seen = _watch(monkeypatch, stores, ['plan_ipam_share', 'apply_ipam_share', 'apply_flannel_share'])
    opened = []
    real_open_fd = HostFS.open_fd
    monkeypatch.setattr(HostFS, 'open_fd', lambda self, *a, **kw: opened.append(a) or real_open_fd(self, *a, **kw))
    _rc, result, _raw = run_main(flannel_ipam_store, stores.args(), check_mode=True)
    assert result['changed'] is True and seen == [('plan_ipam_share', [False, False])]
    assert opened == [] and not stores.new.exists() and not (stores.old / 'cb0' / 'lock').exists()


WRITES = ('open_fd', 'makedirs', 'mkdir', 'symlink', 'rename', 'exchange', 'unlink', 'utime', 'write_text', 'rmtree', 'write_fd')


@pytest.fixture
def read_only(monkeypatch):
    def refused(name):
        def write_call(self, *args, **kw):
            raise AssertionError('HostFS.%s in a read-only run' % name)
        return write_call

    for name in WRITES:
        monkeypatch.setattr(HostFS, name, refused(name))


def test_issue13_verified_and_an_already_shared_store_write_nothing(tmp_path, read_only, monkeypatch):
    stores = Stores(tmp_path)
    write(stores.new / 'cb0' / '10.9.0.7', alloc(A))
    table = [{'device': 'tmpfs', 'mount_point': str(tmp_path / 'run'), 'fstype': 'tmpfs', 'options': []}]
    monkeypatch.setattr(HostFS, 'mounts', lambda self: table)
    _rc, result, _raw = run_main(flannel_ipam_store, stores.args(state='verified', expect_ips=['10.9.0.7']))
    assert result['failed'] is True and result['changed'] is False          # the old paths are still there
    assert result['verification']['allocations']['10.9.0.7']['tmpfs'] is True
    assert result['verification']['old_paths_left'] == [str(stores.old), str(stores.old_f)]
    for old, new in ((stores.old, stores.new), (stores.old_f, stores.new_f)):
        os.rename(str(old), str(old) + '.moved')
        old.symlink_to(str(new))
    _rc, result, _raw = run_main(flannel_ipam_store, stores.args())
    assert not result.get('failed') and result['changed'] is False and result['ipam_dir']['state_before'] == 'shared'


def test_issue13_a_conflict_is_refused_before_anything_is_copied(tmp_path):
    stores = Stores(tmp_path)
    write(stores.new / 'cb0' / '10.9.0.3', alloc(OTHER))
    _rc, result, _raw = run_main(flannel_ipam_store, stores.args())
    assert result['failed'] is True and result['changed'] is False and 'nothing was linked or copied' in result['msg']
    assert result['ipam_dir']['copied'] == [] and result['ipam_dir']['state_after'] == 'disk'
    assert sorted(os.listdir(str(stores.new / 'cb0'))) == ['10.9.0.3', 'lock']      # 10.9.0.2 was not copied
    assert not stores.old.is_symlink() and not stores.old_f.is_symlink()


def test_issue13_a_failure_after_a_link_was_made_reports_changed(tmp_path, monkeypatch):
    stores = Stores(tmp_path)

    def broken(report, fs=None):
        raise OSError(errno.EIO, 'Input/output error', report['path'])

    monkeypatch.setattr(flannel, 'apply_flannel_share', broken)
    _rc, result, _raw = run_main(flannel_ipam_store, stores.args())
    assert result['failed'] is True and result['changed'] is True
    assert result['msg'].startswith('cannot share the store: ') and 'already linked: %s' % stores.old in result['msg']
    assert result['ipam_dir']['state_before'] == 'disk' and os.readlink(str(stores.old)) == str(stores.new)
    assert [_held(p) for p in stores.locks()] == [False, False]
