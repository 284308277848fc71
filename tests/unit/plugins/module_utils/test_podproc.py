"""podproc (catalog N-9) on /proc content recorded on a lab VM (cgroup v2, containerd 1.6, runc)."""

import os

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import podproc

from ..conftest import fixture_text

UID = '3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8'


def test_cgroupfs_paths_from_the_vm():
    stale = podproc.parse_cgroup(fixture_text('podproc/cgroup-stale-cgroupfs.txt'))
    owned = podproc.parse_cgroup(fixture_text('podproc/cgroup-owned-cgroupfs.txt'))
    assert podproc.pod_cgroup(stale, UID) == '/kubepods/besteffort/pod%s/deadbeefcafe' % UID
    assert podproc.container_id(podproc.pod_cgroup(stale, UID), UID) == 'deadbeefcafe'
    assert podproc.container_id(podproc.pod_cgroup(owned, UID), UID) == 'owned1'
    assert podproc.pod_cgroup(stale, UID.replace('3f', '4f', 1)) is None


def test_systemd_driver_spelling():
    paths = podproc.parse_cgroup(fixture_text('podproc/cgroup-systemd-constructed.txt'))
    path = podproc.pod_cgroup(paths, UID)
    assert path is not None
    assert podproc.container_id(path, UID) == '5c1d0e3b8f2a47c9a1d6e4b2f0c8a7d3e9b1f6a2c4d8e0b3a7f5c9e1d2b4a6c8'


def test_process_in_the_pod_cgroup_itself_is_uncertain():
    assert podproc.container_id('/kubepods/besteffort/pod%s' % UID, UID) is None
    procs = [{'pid': 1, 'container_id': None}, {'pid': 2, 'container_id': 'owned1'}, {'pid': 3, 'container_id': 'gone'}]
    groups = podproc.classify(procs, ['owned1', 'sandbox'])
    assert [[p['pid'] for p in groups[k]] for k in ('stale', 'owned', 'uncertain')] == [[3], [2], [1]]


def test_listening_socket_from_the_vm():
    sockets = podproc.parse_net(fixture_text('podproc/net-tcp-listen-8080.txt'), 'tcp')
    assert sockets == {13965: {'proto': 'tcp', 'port': 8080, 'state': 'LISTEN'}}


def test_scan_reads_a_proc_tree(tmp_path):
    # A /proc-shaped tree built from the recorded files (real file names and formats).
    for pid, cgroup in ((377, 'cgroup-stale-cgroupfs.txt'), (362, 'cgroup-owned-cgroupfs.txt')):
        base = tmp_path / str(pid)
        (base / 'net').mkdir(parents=True)
        (base / 'fd').mkdir()
        (base / 'cgroup').write_text(fixture_text('podproc/' + cgroup))
        (base / 'comm').write_text('python3\n')
        (base / 'cmdline').write_text('python3\0-c\0pass\0')
        (base / 'stat').write_text('%d (python3) S 1 %d %d 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 5042 1 1 18446744073709551615\n' % (pid, pid, pid))
        (base / 'net' / 'tcp').write_text(fixture_text('podproc/net-tcp-listen-8080.txt'))
    os.symlink('socket:[13965]', str(tmp_path / '377' / 'fd' / '3'))
    (tmp_path / 'self').mkdir()
    found = podproc.scan(UID, root=str(tmp_path))
    assert [(p['pid'], p['container_id'], p['starttime']) for p in found] == [(362, 'owned1', 5042), (377, 'deadbeefcafe', 5042)]
    assert podproc.sockets_of(377, root=str(tmp_path)) == [{'proto': 'tcp', 'port': 8080, 'state': 'LISTEN'}]
    assert podproc.sockets_of(362, root=str(tmp_path)) == []
    again = podproc.process(377, root=str(tmp_path))
    assert podproc.same_process(found[1], again)
    assert not podproc.same_process(found[1], dict(again, starttime=1))
    assert not podproc.same_process(found[1], None)


@pytest.mark.parametrize('bad', ['', 'pod-1', '3F1A2B3C-4D5E-6F70-8192-A3B4C5D6E7F8', '3f1a2b3c4d5e6f708192a3b4c5d6e7f8', None, '../x'])
def test_validate_uid_rejects(bad):
    with pytest.raises(podproc.PodProcError, match='pod_uid must be a pod UID like 3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8'):
        podproc.validate_uid(bad)
