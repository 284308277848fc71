"""cni_ipam_gc.run_gc (the module minus AnsibleModule) on real host-local directories.

The runtime replies are recorded ``ctr`` output from a lab node (fixtures/ctr/README.md)
or built from it; the directories are the real plugin's (fixtures/host-local).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS
from ansible_collections.netmedic.k8s.plugins.modules import cni_ipam_gc

from ..conftest import FIXTURES, NodeTree

GKE_A = '3f4e1c9a0b7d2e6f8a1c4b5d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f'
GKE_B = 'c0ffee00' * 8
CB0 = ['aaaa%060d' % i for i in range(1, 6)]
NOW = 1795463551.0 + 2 * 86400  # two days after the fixture files were written
SOCK = '/run/containerd/containerd.sock'


def ctr_args(namespace='k8s.io', address=SOCK, timeout=30):
    args = ('ctr',)
    if address:
        args += ('--address', address)
    return args + ('--timeout', '%ds' % timeout, '--namespace', namespace, 'containers', 'ls', '-q')


def _reply(stem):
    base = FIXTURES / 'ctr' / stem
    rc = int((base.parent / (base.name + '.rc')).read_text().strip().split('=')[1])
    return rc, (base.parent / (base.name + '.stdout')).read_text(), (base.parent / (base.name + '.stderr')).read_text()


def listing(*ids):
    """A ctr -q reply: the recorded lab listing plus the given IDs, in ctr's (sorted) order."""
    rc, out, err = _reply('containers-ls-q')
    return rc, ''.join('%s\n' % i for i in sorted(set(out.split()) | set(ids))), err


@pytest.fixture
def gcnode(tmp_path):
    tree = NodeTree(tmp_path / 'root')
    tree.host_local('gke-pod-network', '/var/lib/cni/networks/gke-pod-network')
    tree.host_local('cb0', '/var/lib/cni/networks/cb0')
    tree.socket(SOCK)
    tree.data_dir = str(tree.root / 'var/lib/cni/networks')
    tree.backup = str(tmp_path / 'backup')
    return tree


def params(node, **kw):
    p = {k: v.get('default') for k, v in cni_ipam_gc.ARGUMENT_SPEC.items()}
    p.update(data_dir=[node.data_dir], backup_dir=node.backup, runtime='containerd', runtime_endpoint=SOCK)
    p.update(kw)
    return p


def gc(node, runner, check=False, **kw):
    return cni_ipam_gc.run_gc(runner, params(node, **kw), check, fs=HostFS(str(node.root)), now=NOW)


def files(node, network):
    return sorted(os.listdir(os.path.join(node.data_dir, network)))


def by_name(data):
    return {n['name']: n for n in data['networks']}


def test_check_mode_reports_and_moves_nothing(gcnode, make_runner):
    runner = make_runner(replies={ctr_args(): listing(GKE_A, CB0[0], CB0[2])})
    before = {n: files(gcnode, n) for n in ('cb0', 'gke-pod-network')}
    data = gc(gcnode, runner, check=True)
    assert data['changed'] is True
    assert runner.fake.calls == [ctr_args()]  # one runtime query
    nets = by_name(data)
    gke = nets['gke-pod-network']
    assert (gke['allocated'], gke['live']) == (4, 2)
    assert [(i['ip'], i['container_id'], i['ifname']) for i in gke['leaked']] == [
        ('10.8.3.4', GKE_B, 'eth0'), ('fd00:10:8:3::4', GKE_B, 'eth0')]
    assert gke['removed'] == [i['path'] for i in gke['leaked']]
    assert gke['backup_dir'].startswith(gcnode.backup + '/') and gke['backup_dir'].endswith(gke['path'])
    assert [i['ip'] for i in nets['cb0']['leaked']] == ['172.20.5.3', '172.20.5.5', '172.20.5.6']
    assert data['summary'] == {'allocated': 9, 'live': 4, 'young': 0, 'unknown': 0, 'leaked': 5, 'removed': 5}
    assert data['moved'] == []
    assert {n: files(gcnode, n) for n in ('cb0', 'gke-pod-network')} == before
    assert not os.path.exists(gcnode.backup)


def test_apply_moves_exactly_the_leaked_files_then_second_run_is_unchanged(gcnode, make_runner):
    runner = make_runner(replies={ctr_args(): listing(GKE_A, CB0[0], CB0[2])})
    data = gc(gcnode, runner)
    assert data['changed'] is True
    assert files(gcnode, 'gke-pod-network') == ['10.8.3.2', 'fd00:10:8:3::2', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']
    assert files(gcnode, 'cb0') == ['172.20.5.2', '172.20.5.4', 'last_reserved_ip.0', 'lock']
    run_dir = data['backup_dir']
    moved = {m['path']: m for m in data['moved']}
    assert len(moved) == 5 and all(m['method'] == 'rename' for m in moved.values())
    for path, m in moved.items():
        assert m['backup'] == run_dir + path
        assert not os.path.exists(path)
    backup = os.path.join(run_dir + gcnode.data_dir, 'gke-pod-network', 'fd00:10:8:3::4')
    assert Path(backup).read_bytes() == GKE_B.encode() + b'\r\neth0'
    manifest = json.loads(Path(run_dir, 'manifest.json').read_text())
    assert sorted(m['path'] for m in manifest['moved']) == sorted(moved)
    assert manifest['remaining'] == [] and manifest['runtime']['cli'] == 'ctr'
    assert data['remaining'] == []
    nets = by_name(data)
    assert nets['cb0']['removed'] == [os.path.join(gcnode.data_dir, 'cb0', ip) for ip in ('172.20.5.3', '172.20.5.5', '172.20.5.6')]

    again = gc(gcnode, runner)
    assert again['changed'] is False and again['moved'] == [] and again['backup_dir'] is None
    assert again['summary']['leaked'] == 0 and again['summary']['live'] == 4
    assert os.listdir(gcnode.backup) == [os.path.basename(run_dir)]


def test_recorded_listing_alone_owns_nothing_here_and_is_refused(gcnode, make_runner):
    # The real lab listing has IDs, none of which own these files: every network would be emptied.
    runner = make_runner(replies={ctr_args(): _reply('containers-ls-q')})
    with pytest.raises(cni_ipam_gc.GCError, match='refusing to collect') as info:
        gc(gcnode, runner)
    assert [n['refused'] for n in info.value.data['networks']] == [True, True]
    assert len(files(gcnode, 'cb0')) == 7 and len(files(gcnode, 'gke-pod-network')) == 7
    assert not os.path.exists(gcnode.backup)


def test_empty_namespace_is_refused_unless_allow_all(gcnode, make_runner):
    runner = make_runner(replies={ctr_args(): _reply('containers-ls-q-empty-namespace')})
    with pytest.raises(cni_ipam_gc.GCError, match='refusing'):
        gc(gcnode, runner, networks=['cb0'])
    assert len(files(gcnode, 'cb0')) == 7
    data = gc(gcnode, runner, networks=['cb0'], allow_all=True)
    assert files(gcnode, 'cb0') == ['last_reserved_ip.0', 'lock']
    assert [n['name'] for n in data['networks']] == ['cb0'] and len(data['moved']) == 5
    untouched = ['10.8.3.2', '10.8.3.4', 'fd00:10:8:3::2', 'fd00:10:8:3::4', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']
    assert files(gcnode, 'gke-pod-network') == untouched


@pytest.mark.parametrize('stem', ['containers-ls-q-containerd-stopped'])
def test_runtime_down_fails_and_removes_nothing(gcnode, make_runner, stem):
    runner = make_runner(replies={ctr_args(): _reply(stem)})
    with pytest.raises(cni_ipam_gc.GCError, match='cannot list containerd containers') as info:
        gc(gcnode, runner)
    assert 'nothing was changed' in info.value.msg
    assert len(files(gcnode, 'cb0')) == 7 and len(files(gcnode, 'gke-pod-network')) == 7
    # Nothing was read after the failed listing: counts are unknown, not zero.
    assert [(n['name'], n['allocated'], n['live'], n['leaked']) for n in info.value.data['networks']] == [
        ('cb0', None, None, []), ('gke-pod-network', None, None, [])]


def test_ctr_missing_fails(gcnode, make_runner):
    runner = make_runner(binaries={}, replies={})
    with pytest.raises(cni_ipam_gc.GCError, match=r'no CLI for containerd is installed \(ctr, crictl\)'):
        gc(gcnode, runner)
    assert runner.fake.calls == []


def test_table_output_is_not_trusted(gcnode, make_runner):
    runner = make_runner(replies={ctr_args(): _reply('containers-ls')})
    with pytest.raises(cni_ipam_gc.GCError, match='not a container ID'):
        gc(gcnode, runner)
    assert len(files(gcnode, 'cb0')) == 7


def test_auto_detects_containerd_by_socket(gcnode, make_runner):
    runner = make_runner(replies={ctr_args(): listing(*CB0, GKE_A, GKE_B)})
    data = gc(gcnode, runner, runtime='auto', runtime_endpoint=None)
    assert (data['runtime']['name'], data['runtime']['source'], data['runtime']['endpoint']) == ('containerd', 'socket', SOCK)
    assert data['changed'] is False and data['summary']['live'] == 9


def test_auto_without_runtime_fails_before_listing(tmp_path, make_runner):
    tree = NodeTree(tmp_path / 'root')
    tree.host_local('cb0', '/var/lib/cni/networks/cb0')
    tree.data_dir = str(tree.root / 'var/lib/cni/networks')
    tree.backup = str(tmp_path / 'b')
    runner = make_runner(replies={})
    p = params(tree, runtime='auto', runtime_endpoint=None)
    with pytest.raises(cni_ipam_gc.GCError, match='cannot tell which container runtime'):
        cni_ipam_gc.run_gc(runner, p, False, fs=HostFS(str(tree.root)), now=NOW)
    assert runner.fake.calls == []


def test_crictl_lists_pods_and_all_containers(gcnode, make_runner):
    base = ('crictl', '--runtime-endpoint', 'unix:///var/run/crio/crio.sock', '--timeout', '30s')
    runner = make_runner(binaries={'crictl': '/usr/bin/crictl'}, replies={
        base + ('pods', '-q'): (0, GKE_A + '\n' + CB0[0] + '\n', ''),
        base + ('ps', '-a', '-q'): (0, CB0[2] + '\n', ''),
    })
    data = gc(gcnode, runner, runtime='crio', runtime_endpoint='unix:///var/run/crio/crio.sock')
    # listed before host-local's lock is taken, then again under it (issue #10 hole 3)
    assert runner.fake.calls == [base + ('pods', '-q'), base + ('ps', '-a', '-q')] * 2
    assert data['summary']['live'] == 4 and data['summary']['removed'] == 5


def test_young_and_dual_stack_decided_together(gcnode, make_runner):
    young = os.path.join(gcnode.data_dir, 'gke-pod-network', '10.8.3.4')
    os.utime(young, (NOW - 60, NOW - 60))
    runner = make_runner(replies={ctr_args(): listing(GKE_A, CB0[0])})
    data = gc(gcnode, runner)
    gke = by_name(data)['gke-pod-network']
    assert [i['ip'] for i in gke['young']] == ['10.8.3.4', 'fd00:10:8:3::4'] and gke['leaked'] == []
    assert files(gcnode, 'gke-pod-network')[:4] == ['10.8.3.2', '10.8.3.4', 'fd00:10:8:3::2', 'fd00:10:8:3::4']


@pytest.mark.parametrize('bad, match', [
    ({'grace_period': -1}, 'grace_period must be 0 or more'),
    ({'lock_timeout': -5}, 'lock_timeout'),
    ({'runtime_timeout': 0}, 'runtime_timeout'),
    ({'networks': ['../etc']}, 'invalid network name'),
    ({'networks': ['..']}, 'invalid network name'),
    ({'data_dir': ['relative/dir']}, 'not an absolute path'),
    ({'runtime': 'docker', 'runtime_cli': 'ctr'}, 'cannot list docker'),
    ({'runtime_endpoint': 'tcp://1.2.3.4:2375'}, 'not a unix socket'),
])
def test_bad_input_fails_before_anything(gcnode, make_runner, bad, match):
    runner = make_runner(replies={})
    with pytest.raises(cni_ipam_gc.GCError, match=match):
        gc(gcnode, runner, **bad)
    assert runner.fake.calls == []
    assert len(files(gcnode, 'cb0')) == 7


def test_backup_dir_inside_data_dir_is_refused(gcnode, make_runner):
    with pytest.raises(cni_ipam_gc.GCError, match='inside data_dir'):
        gc(gcnode, make_runner(replies={}), backup_dir=os.path.join(gcnode.data_dir, 'backup'))


def test_missing_network_is_reported(gcnode, make_runner):
    runner = make_runner(replies={ctr_args(): listing(*CB0)})
    data = gc(gcnode, runner, networks=['cb0', 'nosuch'])
    assert data['missing_networks'] == ['nosuch'] and [n['name'] for n in data['networks']] == ['cb0']
    assert any('nosuch' in w for w in data['warnings'])


def test_failure_mid_way_reports_moved_and_remaining(gcnode, make_runner, monkeypatch):
    from ansible_collections.netmedic.k8s.plugins.module_utils import ipam

    real = ipam.move_to_backup
    calls = []

    def flaky(src, dst, sync_dirs=True, fs=None):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(28, 'No space left on device')
        return real(src, dst, sync_dirs, fs=fs)

    monkeypatch.setattr(ipam, 'move_to_backup', flaky)
    runner = make_runner(replies={ctr_args(): listing(GKE_A, CB0[0], CB0[2])})
    with pytest.raises(cni_ipam_gc.GCError, match='No space left') as info:
        gc(gcnode, runner)
    data = info.value.data
    assert [m['path'] for m in data['moved']] == [calls[0]]
    assert len(data['remaining']) == 4 and calls[1] in data['remaining']
    assert not os.path.exists(calls[0]) and all(os.path.exists(p) for p in data['remaining'])
    manifest = json.loads(Path(data['backup_dir'], 'manifest.json').read_text())
    assert manifest['remaining'] == data['remaining']


# --- issue #10 hole 3: the lock is never held for a listing that may hang ---------------

def _lock_free(path):
    import fcntl
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _record_lock_state(runner, lock_path, hang_on=None):
    """Wrap the fake's run_command: note whether host-local's lock was free at each call."""
    from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandTimeout
    seen = []
    replay = runner.fake.run_command

    def run_command(cmd, **kw):
        seen.append((_lock_free(lock_path), kw.get('timeout')))
        if hang_on is not None and len(seen) == hang_on:
            raise CommandTimeout(cmd, kw['timeout'])
        return replay(cmd, **kw)
    runner.fake.run_command = run_command
    return seen


@pytest.mark.parametrize('check', [True, False])
def test_issue10_h3_first_listing_is_made_without_the_lock(gcnode, make_runner, check):
    runner = make_runner(replies={ctr_args(timeout=4): listing(GKE_A, CB0[0], CB0[2])})
    lock = os.path.join(gcnode.data_dir, 'cb0', 'lock')
    seen = _record_lock_state(runner, lock)
    data = gc(gcnode, runner, check=check, runtime_timeout=4)
    if check:
        # check mode: one listing, and the lock is not held for it
        assert [free for free, _t in seen] == [True]
    else:
        # apply: once without the lock, then once under it, each bounded by runtime_timeout
        assert [free for free, _t in seen] == [True, False]
    assert all(0 < t <= 4 for _free, t in seen)
    assert data['summary']['leaked'] == 5
    assert _lock_free(lock)


@pytest.mark.parametrize('hang_on', [1, 2])
def test_issue10_h3_listing_timeout_fails_and_changes_nothing(gcnode, make_runner, hang_on):
    runner = make_runner(replies={ctr_args(timeout=2): listing(GKE_A, CB0[0], CB0[2])})
    lock = os.path.join(gcnode.data_dir, 'cb0', 'lock')
    seen = _record_lock_state(runner, lock, hang_on=hang_on)
    before = {n: files(gcnode, n) for n in ('cb0', 'gke-pod-network')}
    with pytest.raises(cni_ipam_gc.GCError, match=r'did not finish within 2 s and was killed.*nothing was changed') as e:
        gc(gcnode, runner, runtime_timeout=2)
    assert len(seen) == hang_on
    assert ("under host-local's lock, which is released" in e.value.msg) == (hang_on == 2)
    assert _lock_free(lock)
    assert {n: files(gcnode, n) for n in ('cb0', 'gke-pod-network')} == before
    assert not os.path.exists(gcnode.backup)


# --- issue #10 hole 7: edge cases -----------------------------------------------------

def _tree(root):
    """Every path below ``root`` with its kind, to compare before/after."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = 'link' if os.path.islink(path) else 'dir' if os.path.isdir(path) else 'file'
    return out


@pytest.mark.parametrize('check', [True, False])
def test_issue10_h7_var_lib_only_touches_host_local_networks(gcnode, make_runner, check):
    # data_dir: /var/lib - dpkg's lock, apt's lists and an empty directory next to one real network.
    varlib = os.path.join(str(gcnode.root), 'var/lib')
    os.makedirs(os.path.join(varlib, 'dpkg'))
    Path(varlib, 'dpkg', 'lock').write_text('')
    Path(varlib, 'dpkg', 'status').write_text('Package: bash\n')
    os.makedirs(os.path.join(varlib, 'apt', 'lists'))
    Path(varlib, 'apt', 'lists', 'lock').write_text('')
    os.makedirs(os.path.join(varlib, 'empty'))
    os.makedirs(os.path.join(varlib, 'notes'))
    Path(varlib, 'notes', '1.2.3').write_text('a version, not an address\n')   # not an IP-named allocation
    shutil.copytree(os.path.join(gcnode.data_dir, 'cb0'), os.path.join(varlib, 'cb0'))
    dpkg_lock = os.path.join(varlib, 'dpkg', 'lock')
    runner = make_runner(replies={ctr_args(): listing(CB0[0], CB0[2])})
    seen = _record_lock_state(runner, dpkg_lock)
    before = _tree(varlib)
    data = cni_ipam_gc.run_gc(runner, params(gcnode, data_dir=[varlib]), check, fs=HostFS(str(gcnode.root)), now=NOW)
    assert [n['name'] for n in data['networks']] == ['cb0']
    assert sorted(data['not_networks']) == sorted(os.path.join(varlib, d) for d in ('apt', 'cni', 'dpkg', 'empty', 'notes'))
    assert all(free for free, _t in seen)                 # dpkg's lock was never taken
    after = _tree(varlib)
    moved = {os.path.relpath(m['path'], varlib) for m in data['moved']}
    assert after == {k: v for k, v in before.items() if k not in moved}   # no file created anywhere
    assert len(data['networks'][0]['leaked']) == 3


def test_issue10_h7_symlinked_lock_is_a_clean_failure(gcnode, make_runner, tmp_path):
    net = os.path.join(gcnode.data_dir, 'cb0')
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.write_text('')
    os.unlink(os.path.join(net, 'lock'))
    os.symlink(str(elsewhere), os.path.join(net, 'lock'))
    before = files(gcnode, 'cb0')
    runner = make_runner(replies={ctr_args(): listing(GKE_A, CB0[0], CB0[2])})
    for check in (True, False):
        with pytest.raises(cni_ipam_gc.GCError, match=r'cannot lock .*cb0/lock: .*symbolic link.*nothing was changed'):
            gc(gcnode, runner, check=check)
    assert files(gcnode, 'cb0') == before and os.path.islink(os.path.join(net, 'lock'))
    assert not os.path.exists(gcnode.backup)


def test_issue10_h7_unreadable_network_is_a_clean_failure(gcnode, make_runner, monkeypatch):
    from ansible_collections.netmedic.k8s.plugins.module_utils import ipam
    runner = make_runner(replies={ctr_args(): listing(GKE_A, CB0[0], CB0[2])})

    def denied(path, fs=None):
        raise PermissionError(13, 'Permission denied', path)
    monkeypatch.setattr(ipam, 'read_allocations', denied)
    with pytest.raises(cni_ipam_gc.GCError, match=r'cannot read .*: .*Permission denied.*nothing was changed'):
        gc(gcnode, runner)


CRI_DOCKERD = '/run/cri-dockerd.sock'


def test_issue10_h7_cri_dockerd_endpoint_is_listed_with_crictl(gcnode, make_runner):
    base = ('crictl', '--runtime-endpoint', 'unix://' + CRI_DOCKERD, '--timeout', '30s')
    runner = make_runner(binaries={'crictl': '/usr/bin/crictl', 'docker': '/usr/bin/docker'}, replies={
        base + ('pods', '-q'): (0, GKE_A + '\n' + CB0[0] + '\n', ''),
        base + ('ps', '-a', '-q'): (0, CB0[2] + '\n', ''),
    })
    data = gc(gcnode, runner, runtime='docker', runtime_endpoint='unix://' + CRI_DOCKERD)
    assert data['runtime']['cli'] == 'crictl'
    assert all(call[0] == 'crictl' for call in runner.fake.calls)      # never docker --host <CRI socket>
    assert data['summary']['live'] == 4


def test_issue10_h7_cri_dockerd_from_the_kubelet_config(gcnode, make_runner):
    gcnode.socket(CRI_DOCKERD)
    gcnode.socket('/run/docker.sock')
    gcnode.write('/var/lib/kubelet/config.yaml', 'kind: KubeletConfiguration\ncontainerRuntimeEndpoint: unix:///run/cri-dockerd.sock\n')
    base = ('crictl', '--runtime-endpoint', 'unix://' + CRI_DOCKERD, '--timeout', '30s')
    runner = make_runner(binaries={'crictl': '/usr/bin/crictl', 'docker': '/usr/bin/docker'}, replies={
        base + ('pods', '-q'): (0, GKE_A + '\n' + CB0[0] + '\n', ''),
        base + ('ps', '-a', '-q'): (0, CB0[2] + '\n', ''),
    })
    data = gc(gcnode, runner, check=True, runtime='auto', runtime_endpoint=None)
    assert (data['runtime']['name'], data['runtime']['cli'], data['runtime']['endpoint']) == ('docker', 'crictl', CRI_DOCKERD)


def test_issue10_h7_docker_cli_against_cri_dockerd_is_refused(gcnode, make_runner):
    runner = make_runner(binaries={'docker': '/usr/bin/docker'}, replies={})
    with pytest.raises(cni_ipam_gc.GCError, match=r'runtime_cli docker cannot list docker containers through cri-dockerd'):
        gc(gcnode, runner, runtime='docker', runtime_cli='docker', runtime_endpoint=CRI_DOCKERD)
    assert runner.fake.calls == []


def test_issue10_h7_a_created_lock_is_reported_as_a_change(gcnode, make_runner):
    for net in ('cb0', 'gke-pod-network'):
        os.unlink(os.path.join(gcnode.data_dir, net, 'lock'))
    # every allocation live: nothing to move, only the lock is missing
    runner = make_runner(replies={ctr_args(): listing(GKE_A, GKE_B, *CB0)})
    checked = gc(gcnode, runner, check=True)
    assert checked['changed'] is True and checked['moved'] == []
    assert all(n['lock']['missing'] and not n['lock']['created'] for n in checked['networks'])
    assert 'lock' not in files(gcnode, 'cb0')                       # check mode creates nothing
    applied = gc(gcnode, runner)
    assert applied['changed'] is True and all(n['lock']['created'] for n in applied['networks'])
    assert os.path.isfile(os.path.join(gcnode.data_dir, 'cb0', 'lock'))
    again = gc(gcnode, runner)
    assert again['changed'] is False and not any(n['lock']['created'] for n in again['networks'])


def test_issue13_run_gc_lives_in_module_utils():
    from ansible_collections.netmedic.k8s.plugins.module_utils import ipam_gc
    assert cni_ipam_gc.run_gc is ipam_gc.run_gc and cni_ipam_gc.GCError is ipam_gc.GCError
    assert not hasattr(cni_ipam_gc, 'find_networks') and not hasattr(cni_ipam_gc, 'validate')
