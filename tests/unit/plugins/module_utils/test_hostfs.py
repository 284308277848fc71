from __future__ import annotations

import fcntl
import os

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils.node import hostfs


def test_parse_mounts_real_table(fixture_text):
    mounts = hostfs.parse_mounts(fixture_text('proc/mounts-host.txt'))
    root = next(m for m in mounts if m['mount_point'] == '/')
    assert root['fstype'] == 'ext4'
    assert 'relatime' in root['options']
    assert hostfs.mount_for('/var/lib/cni/networks', mounts)['mount_point'] == '/'
    assert hostfs.mount_for('/dev/shm/x', mounts)['fstype'] == 'tmpfs'


def test_later_mount_hides_earlier_submounts(fixture_text):
    # tmpfs mounted on /run after /run/netns: /run/netns is hidden, /run/x is tmpfs.
    mounts = hostfs.parse_mounts(fixture_text('proc/mounts-host-run-tmpfs.txt'))
    assert hostfs.mount_for('/run/cni/networks/cb0', mounts)['fstype'] == 'tmpfs'
    assert hostfs.mount_for('/run/netns/x', mounts)['fstype'] == 'tmpfs'
    assert hostfs.mount_for('/runner', mounts)['mount_point'] == '/'


def test_octal_escapes():
    mounts = hostfs.parse_mounts('tmpfs /mnt/with\\040space tmpfs rw 0 0\n')
    assert mounts[0]['mount_point'] == '/mnt/with space'


def test_hostfs_resolves_links_inside_the_root(tmp_path, fixture_text):
    root = tmp_path / 'root'
    (root / 'run' / 'cni' / 'networks').mkdir(parents=True)
    (root / 'var').mkdir()
    (root / 'var' / 'run').symlink_to('/run')
    (root / 'proc').mkdir()
    (root / 'proc' / 'mounts').write_text(fixture_text('proc/mounts-vm-run-tmpfs.txt'))
    fs = hostfs.HostFS(str(root))
    assert fs.realpath('/var/run/cni/networks') == '/run/cni/networks'
    assert fs.realpath('/var/run/../lib') == '/lib'
    assert fs.isdir('/var/run/cni/networks')
    assert fs.path('/var/run') == os.path.join(str(root), 'var/run')
    info = fs.filesystem_of('/var/run/cni/networks')
    assert info == {'path': '/run/cni/networks', 'mount_point': '/run', 'fstype': 'tmpfs', 'tmpfs': True}
    assert fs.filesystem_of('/var/lib/cni/networks')['fstype'] == 'rootfs'
    assert fs.read_text('/nope', missing='gone') == 'gone'
    assert not fs.is_socket('/run')


def test_hostfs_on_the_real_root():
    fs = hostfs.HostFS('/')
    with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
        assert fs.read_text('/proc/sys/net/ipv4/ip_local_port_range') == f.read()
    assert fs.realpath('/var/run') == os.path.realpath('/var/run')


# --- the low-level and writing methods (issue 13: every file operation of cni_ipam_gc through HostFS) ---

def test_issue13_local_is_the_path_as_given_on_root_and_below_root_otherwise(tmp_path):
    assert hostfs.HostFS('/').local('/var/lib/cni/networks/') == '/var/lib/cni/networks/'      # exactly what os.* got
    assert hostfs.HostFS(str(tmp_path)).local('/var/lib/cni') == os.path.join(str(tmp_path), 'var/lib/cni')


def test_issue13_writing_methods_act_below_the_root(tmp_path):
    fs = hostfs.HostFS(str(tmp_path))
    fs.makedirs('/a/b', 0o700)
    fs.makedirs('/a/b', 0o700, exist_ok=True)
    fs.mkdir('/a/run', 0o700)
    with pytest.raises(FileExistsError):
        fs.mkdir('/a/run')
    assert (tmp_path / 'a' / 'b').is_dir() and (tmp_path / 'a' / 'run').stat().st_mode & 0o777 == 0o700
    fs.write_text('/a/b/.m.tmp', '{"x": 1}')
    fs.rename('/a/b/.m.tmp', '/a/b/m.json')
    assert (tmp_path / 'a' / 'b' / 'm.json').read_text() == '{"x": 1}' and fs.isfile('/a/b/m.json')
    assert fs.read_head('/a/b/m.json', 4) == b'{"x"' and fs.read_head('/a/b/m.json', -1) == b'{"x": 1}'
    assert [e.name for e in fs.scandir('/a/b')] == ['m.json']
    os.symlink('/nowhere', str(tmp_path / 'a' / 'dangling'))
    assert fs.lexists('/a/dangling') and fs.islink('/a/dangling') and not fs.isfile('/a/dangling')
    fd = fs.open_fd('/a/lock', os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        fs.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fs.write_fd(fd, b'abc' * 1000)
        fs.fsync(fd)
        fs.flock(fd, fcntl.LOCK_UN)
    finally:
        fs.close(fd)
    assert (tmp_path / 'a' / 'lock').read_bytes() == b'abc' * 1000
    fs.utime('/a/lock', (1000, 2000))
    assert fs.lstat('/a/lock').st_mtime == 2000
    fs.fsync_dir('/a')
    fs.unlink('/a/lock')
    assert not fs.lexists('/a/lock')
    fs.rmtree('/a/b')
    assert not (tmp_path / 'a' / 'b').exists() and (tmp_path / 'a' / 'run').is_dir()
