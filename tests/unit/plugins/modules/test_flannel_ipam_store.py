"""flannel_ipam_store (catalog N-7, W-2's node half) run in-process on stores under a temporary directory.

These tests pin the module's behaviour as it was before it moved onto the lifecycle (issue 13): they
pass on the old ``main()`` and on the lifecycle subclass. Paths are real absolute paths below
``tmp_path`` (the module's HostFS is the machine's root); the "tmpfs" store needs no tmpfs for
``state=shared``, and ``state=verified`` reads a mount table this file hands in.

The allocation files are what host-local writes (``<container id>\\r\\n<ifname>``, ``last_reserved_ip.0``
holding an address, an empty ``lock``).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import flannel
from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS
from ansible_collections.netmedic.k8s.plugins.modules import flannel_ipam_store

ROOT = Path(__file__).resolve().parents[4]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.harness import run_main  # noqa: E402

A = 'a' * 64
B = 'b' * 64
C = 'c' * 64
OTHER = 'f' * 64
SUFFIX = '.netmedic-disk-store'


def alloc(cid):
    return ('%s\r\neth0' % cid).encode()


class Node(object):
    """Disk stores under ``<tmp>/lib``, the "tmpfs" stores under ``<tmp>/run``."""

    def __init__(self, base):
        self.base = base
        self.old_ipam = base / 'lib' / 'networks'
        self.new_ipam = base / 'run' / 'networks'
        self.old_flannel = base / 'lib' / 'flannel'
        self.new_flannel = base / 'run' / 'flannel'
        (base / 'lib').mkdir(parents=True)
        (base / 'run').mkdir(parents=True)

    def args(self, **kw):
        args = {'old_ipam_dir': str(self.old_ipam), 'new_ipam_dir': str(self.new_ipam),
                'old_flannel_dir': str(self.old_flannel), 'new_flannel_dir': str(self.new_flannel)}
        args.update(kw)
        return args

    def write(self, path, data, mtime=None):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if mtime is not None:
            os.utime(str(path), (mtime, mtime))
        return path

    def disk_store(self):
        """cb0 on disk: two pods, last_reserved_ip.0, lock, and a file host-local never writes."""
        net = self.old_ipam / 'cb0'
        self.write(net / '172.20.1.5', alloc(A), 1700000000)
        self.write(net / '172.20.1.6', alloc(B), 1700000100)
        self.write(net / 'last_reserved_ip.0', b'172.20.1.6', 1700000100)
        self.write(net / 'lock', b'')
        self.write(net / 'notes.txt', b'not host-local\n')
        self.write(self.old_flannel / A, b'{"ipam": {"type": "host-local"}}')
        self.write(self.old_flannel / B, b'{"ipam": {"type": "host-local"}}')

    def tree(self):
        """Every path under the base: bytes and mtime of files, link targets, directories."""
        out = {}
        for dirpath, dirnames, filenames in os.walk(str(self.base)):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, str(self.base))
                if os.path.islink(full):
                    out[rel] = ('link', os.readlink(full))
                elif os.path.isdir(full):
                    out[rel] = ('dir', os.lstat(full).st_mode)
                else:
                    out[rel] = ('file', Path(full).read_bytes(), os.lstat(full).st_mtime)
        return out


@pytest.fixture
def node(tmp_path):
    return Node(tmp_path / 'node')


def share(node, check=False, diff=True, **kw):
    _rc, result, _raw = run_main(flannel_ipam_store, node.args(**kw), check_mode=check, diff=diff)
    return result


def failed_with_every_key(result, diff=True):
    """A failure: changed false unless said otherwise, and the documented keys, as on success."""
    assert result['failed'] is True, result
    keys = {'catalog', 'before', 'after', 'backups', 'ipam_dir', 'flannel_dir', 'msg'} | ({'diff'} if diff else set())
    assert keys <= set(result), sorted(result)
    assert result['catalog'] == ['N-7', 'W-2']
    return True


def diffs(result):
    return [(d['before_header'], json.loads(d['before']), d['after_header'], json.loads(d['after'])) for d in result['diff']]


# --- state=shared -------------------------------------------------------------------------------

def test_shared_joins_the_stores_under_one_link_and_keeps_the_disk_directory(node):
    node.disk_store()
    node.write(node.new_ipam / 'cb0' / '172.20.1.5', alloc(A))           # already there, same bytes
    node.write(node.new_flannel / A, b'{"ipam": {"type": "host-local"}}')
    result = share(node)
    assert not result.get('failed'), result
    assert result['changed'] is True and result['catalog'] == ['N-7', 'W-2']
    ipam_dir = result['ipam_dir']
    waited = ipam_dir.pop('lock_waited')
    assert isinstance(waited, float) and 0 <= waited < 5
    kept = str(node.old_ipam) + SUFFIX
    assert ipam_dir == {'path': str(node.old_ipam), 'shared_with': str(node.new_ipam), 'state_before': 'disk',
                        'state_after': 'shared', 'networks': ['cb0'], 'copied': ['cb0/172.20.1.6', 'cb0/last_reserved_ip.0'],
                        'identical': ['cb0/172.20.1.5'], 'conflicts': [], 'kept': kept}
    fkept = str(node.old_flannel) + SUFFIX
    assert result['flannel_dir'] == {'path': str(node.old_flannel), 'shared_with': str(node.new_flannel), 'state_before': 'disk',
                                     'state_after': 'shared', 'copied': [B], 'identical': [A], 'kept': fkept}
    # the link, the kept disk directory, the copies (bytes and times kept; lock and other files not copied)
    assert os.readlink(str(node.old_ipam)) == str(node.new_ipam) and os.readlink(str(node.old_flannel)) == str(node.new_flannel)
    assert sorted(os.listdir(kept + '/cb0')) == ['172.20.1.5', '172.20.1.6', 'last_reserved_ip.0', 'lock', 'notes.txt']
    new = node.new_ipam / 'cb0'
    assert sorted(os.listdir(str(new))) == ['172.20.1.5', '172.20.1.6', 'last_reserved_ip.0', 'lock']
    assert (new / '172.20.1.6').read_bytes() == alloc(B) and (new / '172.20.1.6').stat().st_mtime == 1700000100
    assert (new / 'last_reserved_ip.0').read_bytes() == b'172.20.1.6' and (new / 'lock').read_bytes() == b''
    assert sorted(os.listdir(str(node.new_flannel))) == [A, B]
    assert result['backups'] == [{'path': kept, 'of': str(node.old_ipam)}, {'path': fkept, 'of': str(node.old_flannel)}]
    assert result['before'] == {} and result['after'] == {}
    assert diffs(result) == [
        ('%s (before)' % node.old_ipam, {'path': str(node.old_ipam), 'is': 'directory on disk'},
         '%s (after)' % node.old_ipam, {'path': str(node.old_ipam), 'is': 'link to %s' % node.new_ipam,
                                        'copied': ['cb0/172.20.1.6', 'cb0/last_reserved_ip.0'], 'disk directory kept as': kept}),
        ('%s (before)' % node.old_flannel, {'path': str(node.old_flannel), 'is': 'directory on disk'},
         '%s (after)' % node.old_flannel, {'path': str(node.old_flannel), 'is': 'link to %s' % node.new_flannel,
                                           'copied': [B], 'disk directory kept as': fkept})]
    assert 'verification' not in result


def test_shared_again_changes_nothing(node):
    node.disk_store()
    assert share(node)['changed'] is True
    before = node.tree()
    again = share(node)
    assert not again.get('failed') and again['changed'] is False and again['diff'] == [] and again['backups'] == []
    assert again['ipam_dir'] == {'path': str(node.old_ipam), 'shared_with': str(node.new_ipam), 'state_before': 'shared',
                                 'state_after': 'shared', 'networks': [], 'copied': [], 'identical': [], 'conflicts': [],
                                 'kept': None}
    assert again['flannel_dir'] == {'path': str(node.old_flannel), 'shared_with': str(node.new_flannel), 'state_before': 'shared',
                                    'state_after': 'shared', 'copied': [], 'identical': [], 'kept': None}
    assert node.tree() == before


def test_check_mode_reports_the_plan_and_changes_nothing(node):
    node.disk_store()
    node.write(node.new_ipam / 'cb0' / '172.20.1.5', alloc(A))
    node.write(node.new_ipam / 'cb0' / '172.20.1.6', alloc(OTHER))       # held by another container on tmpfs
    node.write(node.new_flannel / A, b'{}')
    before = node.tree()
    result = share(node, check=True)
    assert node.tree() == before
    assert not result.get('failed') and result['changed'] is True       # check mode reports a conflict, never fails on it
    ipam_dir = result['ipam_dir']
    assert 'lock_waited' not in ipam_dir
    assert [{'network': c['network'], 'ip': c['ip']} for c in ipam_dir.pop('conflicts')] == [{'network': 'cb0', 'ip': '172.20.1.6'}]
    assert ipam_dir == {'path': str(node.old_ipam), 'shared_with': str(node.new_ipam), 'state_before': 'disk',
                        'state_after': 'shared', 'networks': ['cb0'], 'copied': ['cb0/last_reserved_ip.0'],
                        'identical': ['cb0/172.20.1.5'], 'kept': None}
    assert result['flannel_dir'] == {'path': str(node.old_flannel), 'shared_with': str(node.new_flannel), 'state_before': 'disk',
                                     'state_after': 'shared', 'copied': [B], 'identical': [A], 'kept': None}
    assert result['backups'] == []
    assert [d[3]['disk directory kept as'] for d in diffs(result)] == [str(node.old_ipam) + SUFFIX, str(node.old_flannel) + SUFFIX]
    assert [d[3]['copied'] for d in diffs(result)] == [['cb0/last_reserved_ip.0'], [B]]


def test_check_mode_on_a_store_without_tmpfs_directory_creates_nothing(node):
    node.disk_store()
    before = node.tree()
    result = share(node, check=True)
    assert node.tree() == before and not node.new_ipam.exists() and not node.new_flannel.exists()
    assert result['changed'] is True
    assert result['ipam_dir']['copied'] == ['cb0/172.20.1.5', 'cb0/172.20.1.6', 'cb0/last_reserved_ip.0']
    assert result['ipam_dir']['identical'] == [] and result['ipam_dir']['conflicts'] == []


def test_an_address_held_twice_fails_before_anything_is_linked(node):
    node.disk_store()
    node.write(node.new_ipam / 'cb0' / '172.20.1.6', alloc(OTHER))
    result = share(node)
    assert failed_with_every_key(result) and result['changed'] is False
    assert 'duplicate already exists' in result['msg'] and 'cb0/172.20.1.6' in result['msg']
    (conflict,) = result['ipam_dir']['conflicts']
    assert conflict == {'network': 'cb0', 'ip': '172.20.1.6', 'disk': {'container_id': B, 'ifname': 'eth0'},
                        'tmpfs': {'container_id': OTHER, 'ifname': 'eth0'}}
    assert result['ipam_dir']['kept'] is None
    for path in (node.old_ipam, node.old_flannel):
        assert path.is_dir() and not path.is_symlink()
    assert (node.old_ipam / 'cb0' / '172.20.1.6').read_bytes() == alloc(B)
    assert (node.new_ipam / 'cb0' / '172.20.1.6').read_bytes() == alloc(OTHER)
    assert not node.new_flannel.exists() and not os.path.lexists(str(node.old_ipam) + SUFFIX)


@pytest.mark.parametrize('side', ['disk', 'tmpfs'])
def test_a_lock_held_past_lock_timeout_fails_and_links_nothing(node, side):
    node.disk_store()
    node.write(node.new_ipam / 'cb0' / 'lock', b'')
    lock = (node.old_ipam if side == 'disk' else node.new_ipam) / 'cb0' / 'lock'
    fd = os.open(str(lock), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)      # another host-local (or cleanup) holds it
        result = share(node, lock_timeout=1)
    finally:
        os.close(fd)
    assert failed_with_every_key(result) and result['changed'] is False and result['ipam_dir'] is None
    assert 'nothing was linked' in result['msg'] and 'is held by another process' in result['msg'] and str(lock) in result['msg']
    for path in (node.old_ipam, node.old_flannel):
        assert path.is_dir() and not path.is_symlink()
    assert not os.path.lexists(str(node.old_ipam) + SUFFIX)
    assert sorted(os.listdir(str(node.new_ipam / 'cb0'))) == ['lock']     # nothing copied
    # the locks are released: the same run succeeds now
    assert share(node)['ipam_dir']['state_after'] == 'shared'


def test_absent_store_gets_the_link_alone(node):
    result = share(node)
    assert not result.get('failed') and result['changed'] is True
    assert result['ipam_dir'] == {'path': str(node.old_ipam), 'shared_with': str(node.new_ipam), 'state_before': 'absent',
                                  'state_after': 'shared', 'networks': [], 'copied': [], 'identical': [], 'conflicts': [],
                                  'kept': None}
    assert result['flannel_dir'] is None and result['backups'] == []
    assert os.readlink(str(node.old_ipam)) == str(node.new_ipam) and node.new_ipam.is_dir()
    assert not os.path.lexists(str(node.old_flannel))
    assert diffs(result) == [('%s (before)' % node.old_ipam, {'path': str(node.old_ipam), 'is': 'absent'},
                              '%s (after)' % node.old_ipam, {'path': str(node.old_ipam), 'is': 'link to %s' % node.new_ipam,
                                                             'copied': [], 'disk directory kept as': None})]


def test_absent_store_in_check_mode_or_without_link_absent_stays_absent(node):
    before = node.tree()
    checked = share(node, check=True)
    assert checked['changed'] is True and checked['ipam_dir']['state_after'] == 'shared'
    assert node.tree() == before
    left = share(node, link_absent=False)
    assert not left.get('failed') and left['changed'] is False and left['diff'] == []
    assert left['ipam_dir']['state_before'] == 'absent' and left['ipam_dir']['state_after'] == 'absent'
    assert node.tree() == before


def test_old_dir_that_is_something_else_is_refused(node):
    node.old_ipam.symlink_to(str(node.base / 'elsewhere'))
    result = share(node)
    assert failed_with_every_key(result) and result['changed'] is False
    assert 'is a symbolic link to %s, not to %s; refusing to touch it' % (node.base / 'elsewhere', node.new_ipam) in result['msg']
    node.old_ipam.unlink()
    node.write(node.old_ipam, b'a file')
    result = share(node)
    assert result['failed'] is True and result['changed'] is False and 'is not a directory; refusing to touch it' in result['msg']
    assert not node.new_ipam.exists()


def test_an_unusable_tmpfs_path_fails_and_links_nothing(node):
    node.disk_store()
    node.write(node.base / 'run-file', b'')
    result = share(node, new_ipam_dir=str(node.base / 'run-file' / 'networks'))
    assert failed_with_every_key(result) and result['changed'] is False
    assert result['msg'].startswith('cannot share the store: ')
    assert node.old_ipam.is_dir() and not node.old_ipam.is_symlink() and not node.old_flannel.is_symlink()


@pytest.mark.parametrize('override, words', [
    ({'new_ipam_dir': None}, 'the old and new dataDirs must differ'),
    ({'new_flannel_dir': None}, 'the old and new dataDirs must differ'),
    ({'lock_timeout': 0}, 'lock_timeout must be at least 1 second, got 0'),
    ({'expect_ips': ['172.20.1.5', 'lock']}, "expect_ips must be IP addresses, got 'lock'"),
    ({'old_ipam_dir': 'var/lib/cni/networks'}, 'old_ipam_dir must be a normalised absolute path'),
    ({'new_flannel_dir': '/var/run/../cni'}, 'new_flannel_dir must be a normalised absolute path'),
])
def test_bad_input_fails_before_anything(node, override, words):
    node.disk_store()
    args = node.args()
    for key, value in override.items():
        args[key] = value if value is not None else args[key.replace('new', 'old')]
    before = node.tree()
    for state in ('shared', 'verified'):
        _rc, result, _raw = run_main(flannel_ipam_store, dict(args, state=state))
        assert failed_with_every_key(result, diff=False) and result['changed'] is False and words in result['msg'], result
        assert result['ipam_dir'] is None and result['flannel_dir'] is None
    assert node.tree() == before


def test_flannel_dir_absent_is_left_alone(node):
    node.disk_store()
    import shutil
    shutil.rmtree(str(node.old_flannel))
    result = share(node)
    assert not result.get('failed') and result['flannel_dir'] is None and len(result['diff']) == 1
    assert not os.path.lexists(str(node.old_flannel)) and not node.new_flannel.exists()


# --- the one-call helpers (the API-double tests use share_ipam_dir directly) -----------------------

def _racing_exchange(monkeypatch, make):
    """flannel.exchange_paths that first lets ``make()`` write into the disk store (host-local, meanwhile)."""
    real = flannel.exchange_paths

    def exchange(*args, **kw):
        make()
        return real(*args, **kw)

    monkeypatch.setattr(flannel, 'exchange_paths', exchange)


def test_a_network_created_in_the_disk_store_meanwhile_is_carried_over(node, monkeypatch):
    node.disk_store()
    _racing_exchange(monkeypatch, lambda: node.write(node.old_ipam / 'cb1' / '10.9.0.2', alloc(C)))
    report = flannel.share_ipam_dir(str(node.old_ipam), str(node.new_ipam), 10)
    assert report['networks'] == ['cb0', 'cb1'] and 'cb1/10.9.0.2' in report['copied']
    assert (node.new_ipam / 'cb1' / '10.9.0.2').read_bytes() == alloc(C)
    assert (node.new_ipam / 'cb1' / 'lock').exists() and report['state_after'] == 'shared'


def test_a_flannel_file_written_meanwhile_is_carried_over(node, monkeypatch):
    node.disk_store()
    _racing_exchange(monkeypatch, lambda: node.write(node.old_flannel / C, b'{}'))
    report = flannel.share_dir(str(node.old_flannel), str(node.new_flannel))
    assert report['copied'] == [A, B, C] and report['state_after'] == 'shared'
    assert (node.new_flannel / C).read_bytes() == b'{}'


def test_share_ipam_dir_in_check_mode_changes_nothing_and_a_conflict_raises_with_the_report(node):
    node.disk_store()
    node.write(node.new_ipam / 'cb0' / '172.20.1.5', alloc(OTHER))
    before = node.tree()
    report = flannel.share_ipam_dir(str(node.old_ipam), str(node.new_ipam), 10, check_mode=True)
    assert node.tree() == before and report['conflicts'][0]['ip'] == '172.20.1.5' and report['state_after'] == 'shared'
    with pytest.raises(flannel.FlannelError, match='duplicate already exists') as info:
        flannel.share_ipam_dir(str(node.old_ipam), str(node.new_ipam), 10)
    assert info.value.report['conflicts'][0]['ip'] == '172.20.1.5'
    assert node.old_ipam.is_dir() and not node.old_ipam.is_symlink()
    assert flannel.share_dir(str(node.old_flannel), str(node.new_flannel), check_mode=True)['copied'] == [A, B]
    assert not node.new_flannel.exists()


def test_share_ipam_dir_lock_timeout_raises(node):
    node.disk_store()
    fd = os.open(str(node.old_ipam / 'cb0' / 'lock'), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(flannel.ipam.LockTimeout):
            flannel.share_ipam_dir(str(node.old_ipam), str(node.new_ipam), 1)
    finally:
        os.close(fd)
    assert node.old_ipam.is_dir() and not node.old_ipam.is_symlink()


# --- state=verified ---------------------------------------------------------------------------------

@pytest.fixture
def mounts(monkeypatch, node):
    """The mount table the module reads: ``<tmp>/run`` on tmpfs, the rest on ext4 (``table`` can be changed)."""
    table = [{'device': '/dev/vda', 'mount_point': '/', 'fstype': 'ext4', 'options': ['rw']},
             {'device': 'tmpfs', 'mount_point': str(node.base / 'run'), 'fstype': 'tmpfs', 'options': ['rw']}]
    monkeypatch.setattr(HostFS, 'mounts', lambda self: list(table))
    return table


def verify(node, **kw):
    _rc, result, _raw = run_main(flannel_ipam_store, node.args(state='verified', **kw))
    return result


def test_verified_finds_the_address_on_tmpfs_and_changes_nothing(node, mounts):
    node.write(node.new_ipam / 'cb0' / '172.20.1.9', alloc(C))
    node.write(node.new_ipam / 'cb0' / 'lock', b'')
    before = node.tree()
    result = verify(node, expect_ips=['172.20.1.9'])
    assert node.tree() == before
    assert not result.get('failed') and result['changed'] is False and result['ipam_dir'] is None and result['flannel_dir'] is None
    net = str(node.new_ipam / 'cb0')
    assert result['verification'] == {
        'networks': [{'name': 'cb0', 'path': net, 'fstype': 'tmpfs', 'tmpfs': True}],
        'allocations': {'172.20.1.9': {'network': 'cb0', 'path': net + '/172.20.1.9', 'tmpfs': True,
                                       'allocation': {'container_id': C, 'ifname': 'eth0'}}},
        'old_paths_left': [], 'problems': []}


def test_verified_fails_with_the_evidence(node, mounts):
    node.write(node.new_ipam / 'cb0' / '172.20.1.9', alloc(C))
    node.old_ipam.symlink_to(str(node.new_ipam))            # an old path left (even as a link)
    mounts[1]['fstype'] = 'ext4'
    before = node.tree()
    result = verify(node, expect_ips=['172.20.1.9', '172.20.1.10'])
    assert node.tree() == before
    assert failed_with_every_key(result, diff=False) and result['changed'] is False
    problems = ['%s is not on tmpfs' % (node.new_ipam / 'cb0' / '172.20.1.9'),
                'address 172.20.1.10 is not allocated under %s' % node.new_ipam, '%s still exists' % node.old_ipam]
    assert result['msg'] == 'Flannel IPAM store is not (only) on tmpfs: %s' % '; '.join(problems)
    assert result['verification']['problems'] == problems and result['verification']['old_paths_left'] == [str(node.old_ipam)]


def test_verified_without_any_network_directory_fails(node, mounts):
    result = verify(node, expect_ips=[])
    assert result['failed'] is True and result['changed'] is False
    assert 'no host-local network directory under %s' % node.new_ipam in result['msg']


# --- review of 3aca7cd: a failure part-way reports what is, not the plan ---------------------------------

def _failing_exchange(monkeypatch, nth):
    """HostFS.exchange fails on its ``nth`` call (1: host-local's store, 2: Flannel's dataDir)."""
    import errno as _errno
    real = HostFS.exchange
    calls = {'n': 0}

    def exchange(self, a, b):
        calls['n'] += 1
        if calls['n'] == nth:
            raise OSError(_errno.EPERM, 'injected', a)
        return real(self, a, b)

    monkeypatch.setattr(HostFS, 'exchange', exchange)


def test_issue13_flannel_swap_failing_after_the_ipam_link_reports_what_is(node, monkeypatch):
    node.disk_store()
    _failing_exchange(monkeypatch, 2)
    result = share(node)
    assert failed_with_every_key(result) and result['changed'] is True and 'already linked: %s' % node.old_ipam in result['msg']
    kept = str(node.old_ipam) + SUFFIX
    assert result['ipam_dir']['state_after'] == 'shared' and result['ipam_dir']['kept'] == kept
    # Flannel's dataDir is still a directory on disk: so says the result, and no diff claims a link
    assert node.old_flannel.is_dir() and not node.old_flannel.is_symlink()
    assert result['flannel_dir']['state_after'] == 'disk'
    # the diff: the IPAM link, and Flannel's files copied into tmpfs while its dataDir stayed a directory
    expected = [('%s (before)' % node.old_ipam, 'link to %s' % node.new_ipam), ('%s (before)' % node.old_flannel, 'disk')]
    assert [(d[0], d[3]['is']) for d in diffs(result)] == expected
    assert result['backups'] == [{'path': kept, 'of': str(node.old_ipam)}] and os.path.isdir(kept)


def test_issue13_ipam_swap_failing_reports_nothing_linked_and_flannel_untouched(node, monkeypatch):
    node.disk_store()
    _failing_exchange(monkeypatch, 1)
    result = share(node)
    assert failed_with_every_key(result)
    assert result['changed'] is True                       # the copies into the tmpfs store were made
    assert result['ipam_dir']['state_after'] == 'disk' and result['ipam_dir']['kept'] is None
    assert result['flannel_dir']['state_after'] == 'disk' and result['flannel_dir']['copied'] == []
    assert not node.new_flannel.exists() and node.old_ipam.is_dir() and not node.old_ipam.is_symlink()
    assert result['backups'] == [] and [d[3]['is'] for d in diffs(result)] == ['disk']


def test_issue13_a_conflict_refusal_reports_no_planned_flannel_change(node):
    node.disk_store()
    node.write(node.new_ipam / 'cb0' / '172.20.1.6', alloc(OTHER))
    result = share(node)
    assert result['changed'] is False and result['flannel_dir'] is None and result['ipam_dir']['state_after'] == 'disk'
    assert result['ipam_dir']['copied'] == [] and result.get('diff', []) == [] and result['backups'] == []


def test_issue13_a_flannel_file_removed_by_a_cni_del_after_the_swap_is_not_a_failure(node, monkeypatch):
    # Flannel's delegate files have no lock: a CNI DEL may remove one through the new link right after the swap.
    node.disk_store()
    real = flannel.apply_flannel_share

    def apply_then_del(report, fs=None):
        out = real(report, fs)
        os.unlink(str(node.old_flannel / B))               # through the link: the tmpfs copy goes
        return out

    monkeypatch.setattr(flannel, 'apply_flannel_share', apply_then_del)
    result = share(node)
    assert not result.get('failed'), result
    assert result['changed'] is True and result['flannel_dir']['state_after'] == 'shared'
    assert os.readlink(str(node.old_flannel)) == str(node.new_flannel) and not (node.new_flannel / B).exists()
