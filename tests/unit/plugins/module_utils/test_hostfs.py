from __future__ import annotations

import os

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
