"""Catalog N-1 garbage collection in module_utils/ipam: reading, planning, locking, moving.

The directories are the real host-local ones of fixtures/host-local/networks.tar.gz
(CRLF after the ID, ``lock``, ``last_reserved_ip.N``, a dual-stack network).
"""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import ipam

GKE_A = '3f4e1c9a0b7d2e6f8a1c4b5d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f'
GKE_B = 'c0ffee00' * 8
CB0 = ['aaaa%060d' % i for i in range(1, 6)]
# The tarball's files were written on 2026-11-23 19:52 UTC; "now" is two days later.
NOW = 1795463551.0 + 2 * 86400  # mtime of the files + 2 days


def _scan(path):
    return {'path': str(path), 'allocations': ipam.read_allocations(str(path))['allocations']}


def _ips(items):
    return [i['ip'] for i in items]


def test_read_allocations_on_real_host_local_files(host_local_networks):
    gke = ipam.read_allocations(str(host_local_networks / 'gke-pod-network'))
    assert _ips(gke['allocations']) == ['10.8.3.2', '10.8.3.4', 'fd00:10:8:3::2', 'fd00:10:8:3::4']
    assert [(a['container_id'], a['ifname']) for a in gke['allocations']] == [(GKE_A, 'eth0'), (GKE_B, 'eth0')] * 2
    assert gke['lock'] is True
    assert gke['last_reserved'] == ['last_reserved_ip.0', 'last_reserved_ip.1']
    assert gke['other_files'] == []
    assert gke['allocations'][0]['path'] == str(host_local_networks / 'gke-pod-network' / '10.8.3.2')
    assert gke['allocations'][0]['mtime'] == os.stat(gke['allocations'][0]['path']).st_mtime
    cb0 = ipam.read_allocations(str(host_local_networks / 'cb0'))
    assert [a['container_id'] for a in cb0['allocations']] == CB0


def test_symlinks_and_odd_names_are_not_allocations(host_local_networks):
    net = host_local_networks / 'cb0'
    (net / '172.20.5.9').symlink_to(net / '172.20.5.2')
    (net / '172.20.5.7').mkdir()
    (net / '172.20.5.2.bak').write_text('x')
    scan = ipam.read_allocations(str(net))
    assert _ips(scan['allocations']) == ['172.20.5.2', '172.20.5.3', '172.20.5.4', '172.20.5.5', '172.20.5.6']
    assert scan['other_files'] == ['172.20.5.2.bak', '172.20.5.7', '172.20.5.9']


def test_plan_live_and_leaked_by_full_id(host_local_networks):
    gke = _scan(host_local_networks / 'gke-pod-network')
    (plan,) = ipam.plan_gc([gke], {GKE_A}, NOW, 600)
    assert plan['allocated'] == 4 and plan['live'] == 2
    # The dual-stack pod's v4 and v6 files go together.
    assert [(i['ip'], i['container_id'], i['ifname']) for i in plan['leaked']] == [
        ('10.8.3.4', GKE_B, 'eth0'), ('fd00:10:8:3::4', GKE_B, 'eth0')]
    assert all(i['age'] > 86400 for i in plan['leaked'])
    assert plan['leaked'][0]['path'] == str(host_local_networks / 'gke-pod-network' / '10.8.3.4')
    assert plan['young'] == [] and plan['unknown'] == [] and plan['refused'] is False


@pytest.mark.parametrize('listed', [
    {GKE_B[:12], GKE_A},          # docker ps -q style short ID: not the same container
    {GKE_B + '0', GKE_A},         # longer ID containing it
    {GKE_B.upper(), GKE_A},       # different string
])
def test_no_prefix_or_substring_match(host_local_networks, listed):
    gke = _scan(host_local_networks / 'gke-pod-network')
    (plan,) = ipam.plan_gc([gke], listed, NOW, 600)
    assert _ips(plan['leaked']) == ['10.8.3.4', 'fd00:10:8:3::4']


def test_a_sandbox_id_or_a_container_id_both_count(host_local_networks):
    gke = _scan(host_local_networks / 'gke-pod-network')
    (plan,) = ipam.plan_gc([gke], {GKE_A, GKE_B, 'unrelated'}, NOW, 600)
    assert plan['live'] == 4 and plan['leaked'] == []


def test_young_file_keeps_its_whole_container(host_local_networks):
    net = host_local_networks / 'gke-pod-network'
    # Only the v6 file of the leaked pod is young: its v4 file must stay too.
    os.utime(str(net / 'fd00:10:8:3::4'), (NOW - 30, NOW - 30))
    (plan,) = ipam.plan_gc([_scan(net)], {GKE_A}, NOW, 600)
    assert plan['leaked'] == []
    assert [(i['ip'], i['age']) for i in plan['young']] == [('10.8.3.4', plan['young'][0]['age']), ('fd00:10:8:3::4', 30)]
    # Exactly at the grace period it is old enough.
    (plan,) = ipam.plan_gc([_scan(net)], {GKE_A}, NOW, 30)
    assert _ips(plan['leaked']) == ['10.8.3.4', 'fd00:10:8:3::4']


def test_future_mtime_is_young(host_local_networks):
    net = host_local_networks / 'cb0'
    os.utime(str(net / '172.20.5.3'), (NOW + 3600, NOW + 3600))
    (plan,) = ipam.plan_gc([_scan(net)], {CB0[0]}, NOW, 600)
    assert _ips(plan['young']) == ['172.20.5.3']
    assert _ips(plan['leaked']) == ['172.20.5.4', '172.20.5.5', '172.20.5.6']


def test_same_container_in_two_networks_shares_the_decision(host_local_networks, tmp_path):
    other = tmp_path / 'other'
    other.mkdir()
    (other / '10.9.0.2').write_bytes(CB0[2].encode() + b'\r\nnet1')
    os.utime(str(other / '10.9.0.2'), (NOW - 5, NOW - 5))
    cb0, extra = ipam.plan_gc([_scan(host_local_networks / 'cb0'), _scan(other)], {CB0[0]}, NOW, 600)
    assert _ips(cb0['young']) == ['172.20.5.4']
    assert _ips(cb0['leaked']) == ['172.20.5.3', '172.20.5.5', '172.20.5.6']
    assert [(i['ip'], i['ifname']) for i in extra['young']] == [('10.9.0.2', 'net1')]
    assert extra['refused'] is False  # nothing to collect there


def test_unreadable_content_is_unknown_and_kept(host_local_networks):
    net = host_local_networks / 'cb0'
    (net / '172.20.5.4').write_bytes(b'')
    (net / '172.20.5.5').write_bytes(b'\r\n\r\n')
    for name in ('172.20.5.4', '172.20.5.5'):
        os.utime(str(net / name), (NOW - 7200, NOW - 7200))
    (plan,) = ipam.plan_gc([_scan(net)], {CB0[0]}, NOW, 600)
    assert _ips(plan['unknown']) == ['172.20.5.4', '172.20.5.5']
    assert _ips(plan['leaked']) == ['172.20.5.3', '172.20.5.6']


def test_empty_listing_refuses(host_local_networks):
    gke = _scan(host_local_networks / 'gke-pod-network')
    cb0 = _scan(host_local_networks / 'cb0')
    plan_gke, plan_cb0 = ipam.plan_gc([gke, cb0], set(), NOW, 600)
    assert plan_gke['refused'] is True and plan_cb0['refused'] is True
    assert len(plan_gke['leaked']) == 4 and len(plan_cb0['leaked']) == 5


def test_no_live_but_a_young_one_still_refuses(host_local_networks):
    # An empty listing plus one fresh pod: collecting the rest would be the same wipe.
    net = host_local_networks / 'cb0'
    os.utime(str(net / '172.20.5.2'), (NOW - 1, NOW - 1))
    (plan,) = ipam.plan_gc([_scan(net)], set(), NOW, 600)
    assert plan['refused'] is True and _ips(plan['young']) == ['172.20.5.2']


def test_nothing_leaked_is_not_refused(host_local_networks, tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    (plan,) = ipam.plan_gc([_scan(empty)], set(), NOW, 600)
    assert (plan['allocated'], plan['live'], plan['leaked'], plan['refused']) == (0, 0, [], False)
    all_live = _scan(host_local_networks / 'cb0')
    (plan,) = ipam.plan_gc([all_live], set(CB0), NOW, 600)
    assert (plan['live'], plan['leaked'], plan['refused']) == (5, [], False)


# --- host-local's lock ------------------------------------------------------------

def _hold_lock(path):
    """Another process holding flock(LOCK_EX) on path, as host-local does during ADD/DEL."""
    code = ('import fcntl, os, sys, time\n'
            'fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n'
            'fcntl.flock(fd, fcntl.LOCK_EX)\n'
            'print("locked", flush=True)\n'
            'time.sleep(60)\n')
    proc = subprocess.Popen([sys.executable, '-c', code, path], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'locked'
    return proc


def test_lock_is_exclusive_and_released(host_local_networks):
    net = str(host_local_networks / 'cb0')
    before = os.stat(os.path.join(net, 'lock'))
    fd, waited = ipam.lock_network(net, timeout=1)
    try:
        assert waited < 1
        other = os.open(os.path.join(net, 'lock'), os.O_RDONLY)
        with pytest.raises(BlockingIOError, match=r'\[Errno 11\] Resource temporarily unavailable'):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        ipam.unlock_network(fd)
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(other)
    after = os.stat(os.path.join(net, 'lock'))
    assert (after.st_size, after.st_mtime, after.st_mode) == (before.st_size, before.st_mtime, before.st_mode)


def test_lock_held_by_another_process_times_out(host_local_networks):
    net = str(host_local_networks / 'cb0')
    holder = _hold_lock(os.path.join(net, 'lock'))
    try:
        with pytest.raises(ipam.LockTimeout, match='held by another process'):
            ipam.lock_network(net, timeout=0.3, interval=0.05)
    finally:
        holder.kill()
        holder.wait()
    fd = ipam.lock_network(net, timeout=1)[0]
    ipam.unlock_network(fd)


def test_missing_lock_file_created_only_when_allowed(tmp_path):
    assert ipam.lock_network(str(tmp_path), timeout=1, create=False) == (None, 0.0)
    assert not (tmp_path / 'lock').exists()
    fd = ipam.lock_network(str(tmp_path), timeout=1, create=True)[0]
    ipam.unlock_network(fd)
    assert (tmp_path / 'lock').read_bytes() == b''


# --- moving ----------------------------------------------------------------------

def test_move_same_filesystem_is_a_rename(tmp_path):
    src = tmp_path / 'net' / '10.0.0.2'
    src.parent.mkdir()
    src.write_bytes(b'abc\r\neth0')
    os.utime(str(src), (1000, 1000))
    ino = os.stat(str(src)).st_ino
    dst = tmp_path / 'backup' / '10.0.0.2'
    dst.parent.mkdir()
    assert ipam.move_to_backup(str(src), str(dst)) == 'rename'
    assert not src.exists()
    assert dst.read_bytes() == b'abc\r\neth0' and os.stat(str(dst)).st_ino == ino and os.stat(str(dst)).st_mtime == 1000


def test_move_never_overwrites(tmp_path):
    src = tmp_path / 'a'
    src.write_text('new')
    dst = tmp_path / 'b'
    dst.write_text('old')
    with pytest.raises(OSError) as info:
        ipam.move_to_backup(str(src), str(dst))
    assert info.value.errno == errno.EEXIST
    assert src.read_text() == 'new' and dst.read_text() == 'old'


def test_move_across_filesystems_copies_then_unlinks(tmp_path, monkeypatch):
    src = tmp_path / 'a'
    src.write_bytes(b'id\r\neth0')
    os.utime(str(src), (2000, 2000))
    dst = tmp_path / 'out' / 'a'
    dst.parent.mkdir()
    real_rename = os.rename
    seen = []

    def rename(a, b):
        if a == str(src):  # the direct rename crosses file systems
            raise OSError(errno.EXDEV, 'Invalid cross-device link')
        seen.append((a, b, os.path.exists(str(src))))
        return real_rename(a, b)

    monkeypatch.setattr(os, 'rename', rename)
    assert ipam.move_to_backup(str(src), str(dst)) == 'copy'
    assert not src.exists() and dst.read_bytes() == b'id\r\neth0' and os.stat(str(dst)).st_mtime == 2000
    # The copy reached its final name while the source still existed.
    assert seen == [(str(dst) + '.partial', str(dst), True)]


def test_move_other_errors_leave_the_source(tmp_path):
    src = tmp_path / 'a'
    src.write_text('x')
    with pytest.raises(FileNotFoundError, match='No such file or directory'):
        ipam.move_to_backup(str(src), str(tmp_path / 'no-such-dir' / 'a'))
    assert src.read_text() == 'x'


def test_invalid_container_id_is_unknown(host_local_networks):
    net = host_local_networks / 'cb0'
    (net / '172.20.5.4').write_bytes(b'not an id\r\neth0')
    (net / '172.20.5.5').write_bytes(b'../../etc\r\neth0')
    for name in ('172.20.5.4', '172.20.5.5'):
        os.utime(str(net / name), (NOW - 7200, NOW - 7200))
    (plan,) = ipam.plan_gc([_scan(net)], {CB0[0]}, NOW, 600)
    assert _ips(plan['unknown']) == ['172.20.5.4', '172.20.5.5']
    assert _ips(plan['leaked']) == ['172.20.5.3', '172.20.5.6']
