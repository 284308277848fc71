"""ipam_gc_cli: the C-8 DaemonSet's entry point, run as the pod runs it (issue 10 hole 1).

Every run here copies ONLY the files the ConfigMap ships (``SHIPPED``) into a scratch package tree
and starts the system ``python3 -S -E -B -m ...ipam_gc_cli`` in it (the pod's command line): no
site-packages, so no Ansible, and a module_utils import that is not shipped fails here.  The
runtime is a stand-in ``ctr`` on PATH printing fixed IDs (or failing); the cni_ipam_gc fault matrix
against files written by the real host-local plugin runs in tests/integration/test_ipam_gc_cli.py.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from ansible_collections.netmedic.k8s.plugins.module_utils import ipam_gc_cli

ROOT = Path(__file__).resolve().parents[4]
MODULE_UTILS = ROOT / 'plugins' / 'module_utils'
PYTHON = shutil.which('python3', path='/usr/bin:/bin') or 'python3'
LIVE = 'c0ffee' + '0' * 58
DEAD = 'deadbeef' + '1' * 56
OLD = 3600


def test_shipped_files_equal_the_roles_list():
    role_vars = yaml.safe_load((ROOT / 'roles' / 'ipam_cleanup_daemonset' / 'vars' / 'main.yml').read_text())
    assert tuple(role_vars['ipam_cleanup_daemonset__shipped']) == ipam_gc_cli.SHIPPED
    assert role_vars['ipam_cleanup_daemonset__package_path'] == ipam_gc_cli.PACKAGE_PATH


def test_shipped_files_import_only_each_other_and_the_standard_library():
    prefix = 'ansible_collections.netmedic.k8s.plugins.module_utils'
    shipped = {n[:-3].replace('/', '.') for n in ipam_gc_cli.SHIPPED}
    packages = {n.rpartition('.')[0] for n in shipped if '.' in n}
    for name in ipam_gc_cli.SHIPPED:
        tree = ast.parse((MODULE_UTILS / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(prefix):
                rest = node.module[len(prefix):].lstrip('.')
                if not rest or rest in packages:
                    needed = {(rest + '.' if rest else '') + a.name for a in node.names}
                else:
                    needed = {rest}
                assert needed <= shipped, '%s imports %s, which the ConfigMap does not ship' % (name, needed - shipped)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('ansible.'):
                # Only runner's guarded, lazy check for AnsibleModule (ImportError handled).
                assert name == 'node/runner.py', '%s imports %s: the pod has no Ansible' % (name, node.module)


@pytest.fixture
def pod(tmp_path):
    """The ConfigMap's files as the pod sees them, and a runner for the pod's command."""
    code = tmp_path / 'netmedic'
    pkg = code / ipam_gc_cli.PACKAGE_PATH
    pkg.mkdir(parents=True)
    for name in ipam_gc_cli.SHIPPED:
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(str(MODULE_UTILS / name), str(pkg / name))
    bindir = tmp_path / 'bin'
    bindir.mkdir()

    class Pod(object):
        def ctr(self, ids, rc=0, stderr=''):
            script = bindir / 'ctr'
            script.write_text('#!/bin/sh\nprintf "%%s\\n" "$*" >> %s\nprintf "%%s" %s >&2\nprintf "%%s" %s\nexit %d\n'
                              % (tmp_path / 'calls', _sh(stderr), _sh(''.join(i + '\n' for i in ids)), rc))
            script.chmod(0o755)

        def calls(self):
            path = tmp_path / 'calls'
            return path.read_text().splitlines() if path.exists() else []

        def cmd(self, *args):
            return [PYTHON, '-S', '-E', '-B', '-m', ipam_gc_cli.MODULE] + list(args)

        def env(self):
            return dict(PATH='%s:/usr/bin:/bin' % bindir, LANG='C')

        def run(self, *args, timeout=60):
            proc = subprocess.run(self.cmd(*args), cwd=str(code), env=self.env(), capture_output=True, text=True,
                                  timeout=timeout, check=False)
            lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
            return proc.returncode, lines, proc.stderr

        def popen(self, *args):
            return subprocess.Popen(self.cmd(*args), cwd=str(code), env=self.env(), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
    return Pod()


def _sh(text):
    return "'" + text.replace("'", "'\\''") + "'"


def _age(path, seconds=OLD):
    t = time.time() - seconds
    os.utime(str(path), (t, t))


def network(root, name='gke-pod-network'):
    net = root / name
    net.mkdir(parents=True)
    files = {'10.8.3.2': LIVE + '\r\neth0', 'fd00:10:8:3::2': LIVE + '\r\neth0',
             '10.8.3.4': DEAD + '\r\neth0', 'fd00:10:8:3::4': DEAD + '\r\neth0',
             '10.8.3.5': DEAD[:-1] + '2\r\neth0', 'lock': '', 'last_reserved_ip.0': '10.8.3.5'}
    for fname, text in files.items():
        (net / fname).write_text(text)
        _age(net / fname)
    (net / '10.8.3.6').write_text(DEAD + '\r\neth0')   # inside the grace period
    return net


def base_args(data_dir, tmp_path, *extra):
    return ('--data-dir', str(data_dir), '--allow-other-data-dir', '--backup-dir', str(tmp_path / 'backup'),
            '--runtime', 'containerd', '--runtime-endpoint', str(tmp_path / 'containerd.sock')) + extra


def test_one_pass_moves_only_old_allocations_of_dead_containers(pod, tmp_path):
    net = network(tmp_path / 'networks')
    pod.ctr([LIVE, 'a' * 64])
    rc, (result,), err = pod.run(*base_args(tmp_path / 'networks', tmp_path))
    assert rc == 0, (result, err)
    assert result['changed'] is True and not result.get('failed')
    # Every file of one ID shares one decision: DEAD has a young file, so its old pair stays this pass too;
    # the ID that differs from DEAD in its last digit only is not live and goes.
    assert sorted(p.name for p in net.iterdir()) == ['10.8.3.2', '10.8.3.4', '10.8.3.6', 'fd00:10:8:3::2',
                                                     'fd00:10:8:3::4', 'last_reserved_ip.0', 'lock']
    moved = sorted(os.path.basename(m['path']) for m in result['moved'])
    assert moved == ['10.8.3.5']
    for m in result['moved']:
        assert Path(m['backup']).read_bytes() == (DEAD[:-1] + '2\r\neth0').encode()
    assert (Path(result['backup_dir']) / 'manifest.json').is_file()
    assert pod.calls() == ['--address %s --timeout 30s --namespace k8s.io containers ls -q' % (tmp_path / 'containerd.sock')] * 2


def test_dual_stack_pair_goes_together_and_second_pass_changes_nothing(pod, tmp_path):
    net = network(tmp_path / 'networks')
    _age(net / '10.8.3.6')
    pod.ctr([LIVE])
    rc, (first,), err = pod.run(*base_args(tmp_path / 'networks', tmp_path))
    assert rc == 0, (first, err)
    assert sorted(os.path.basename(m['path']) for m in first['moved']) == ['10.8.3.4', '10.8.3.5', '10.8.3.6', 'fd00:10:8:3::4']
    assert sorted(p.name for p in net.iterdir()) == ['10.8.3.2', 'fd00:10:8:3::2', 'last_reserved_ip.0', 'lock']
    rc, (second,), err = pod.run(*base_args(tmp_path / 'networks', tmp_path))
    assert rc == 0 and second['changed'] is False and second['moved'] == []


def test_dry_run_reports_and_changes_nothing(pod, tmp_path):
    net = network(tmp_path / 'networks')
    _age(net / '10.8.3.6')
    before = {p.name: p.read_bytes() for p in net.iterdir()}
    pod.ctr([LIVE])
    rc, (result,), err = pod.run(*base_args(tmp_path / 'networks', tmp_path, '--dry-run', '--diff'))
    assert rc == 0, (result, err)
    assert result['dry_run'] is True and result['changed'] is True and result['moved'] == []
    assert sorted(i['ip'] for i in result['networks'][0]['leaked']) == ['10.8.3.4', '10.8.3.5', '10.8.3.6', 'fd00:10:8:3::4']
    assert result['diff'][0]['before'].count('\n') == 4
    assert {p.name: p.read_bytes() for p in net.iterdir()} == before
    assert not (tmp_path / 'backup').exists()
    assert len(pod.calls()) == 1                       # check mode lists once, never under the lock


def test_issue10_h1_kubelet_dir_is_refused_before_anything_is_read(pod, tmp_path):
    """Hole 1: ipam_dir /var/lib/kubelet lost config.yaml. A data dir outside host-local's is refused (exit 2)."""
    pod.ctr([LIVE])
    rc, (result,), _err = pod.run('--data-dir', '/var/lib/kubelet', '--backup-dir', str(tmp_path / 'b'),
                                  '--runtime', 'containerd')
    assert rc == 2 and result['failed'] is True
    assert 'not a host-local data directory' in result['msg'] and 'nothing was read or changed' in result['msg']
    assert pod.calls() == []


def test_issue10_h1_kubelet_files_survive_even_with_the_override(pod, tmp_path):
    """Hole 1, with the documented override: a kubelet-like tree is not a host-local network, so nothing in it
    is locked, read further or moved (the old script removed every old regular file)."""
    var_lib = tmp_path / 'var' / 'lib'
    kubelet = var_lib / 'kubelet'
    (kubelet / 'pki').mkdir(parents=True)
    for fname in ('config.yaml', 'kubeadm-flags.env', 'pki/kubelet.crt'):
        (kubelet / fname).write_text(DEAD + '\n')
        _age(kubelet / fname)
    before = sorted(str(p.relative_to(var_lib)) for p in var_lib.rglob('*'))
    pod.ctr([LIVE])
    for data_dir in (var_lib, kubelet):
        rc, (result,), err = pod.run(*base_args(data_dir, tmp_path))
        assert rc == 0, (result, err)
        assert result['moved'] == [] and result['changed'] is False
    assert sorted(str(p.relative_to(var_lib)) for p in var_lib.rglob('*')) == before
    assert (kubelet / 'config.yaml').read_text() == DEAD + '\n'


def test_issue10_h1_empty_listing_is_refused(pod, tmp_path):
    net = network(tmp_path / 'networks')
    before = sorted(p.name for p in net.iterdir())
    pod.ctr([])
    rc, (result,), _err = pod.run(*base_args(tmp_path / 'networks', tmp_path))
    assert rc == 1 and 'refusing to collect' in result['msg']
    assert sorted(p.name for p in net.iterdir()) == before


def test_runtime_down_fails_and_the_loop_exits_after_max_failures(pod, tmp_path):
    net = network(tmp_path / 'networks')
    before = sorted(p.name for p in net.iterdir())
    pod.ctr([], rc=1, stderr='ctr: failed to dial "/run/containerd/containerd.sock": connection refused')
    start = time.monotonic()
    rc, results, err = pod.run(*base_args(tmp_path / 'networks', tmp_path, '--interval', '1', '--max-failures', '2'))
    assert rc == 1, err
    assert len(results) == 2 and all('cannot list containerd containers' in r['msg'] for r in results)
    assert 'failed to dial' in results[0]['msg']
    assert time.monotonic() - start < 30
    assert sorted(p.name for p in net.iterdir()) == before


def test_sigterm_ends_the_loop_between_passes(pod, tmp_path):
    network(tmp_path / 'networks')
    pod.ctr([LIVE])
    proc = pod.popen(*base_args(tmp_path / 'networks', tmp_path, '--interval', '3600'))
    try:
        first = json.loads(proc.stdout.readline())
        assert first['changed'] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize('args, message', [
    (('--data-dir', 'relative/dir'), 'absolute path'),
    (('--data-dir', '/var/lib/cni/networks/../../kubelet'), 'absolute path without ..'),
    (('--data-dir', '/var/lib'), 'not a host-local data directory'),
    (('--data-dir', '/var/lib/cni/networks', '--grace-period', '-1'), 'grace_period'),
    (('--data-dir', '/var/lib/cni/networks', '--runtime-timeout', '0'), 'runtime_timeout'),
    (('--data-dir', '/var/lib/cni/networks', '--keep-count', '-1'), 'keep-count'),
    (('--data-dir', '/var/lib/cni/networks', '--network', '../x'), 'invalid network name'),
    (('--data-dir', '/var/lib/cni/networks', '--runtime', 'docker', '--runtime-cli', 'ctr'), 'cannot list docker'),
])
def test_bad_input_exits_2_before_reading(pod, tmp_path, args, message):
    pod.ctr([LIVE])
    rc, (result,), _err = pod.run(*(args + ('--backup-dir', str(tmp_path / 'b'))))
    assert rc == 2 and message in result['msg'], result
    assert pod.calls() == [] and not (tmp_path / 'b').exists()


def _run_dir(backup, name, catalog='N-1'):
    path = backup / name
    path.mkdir(parents=True)
    (path / 'manifest.json').write_text(json.dumps({'catalog': catalog}))
    return path


def test_retention_prunes_only_owned_pass_directories(tmp_path):
    backup = tmp_path / 'backup'
    import datetime
    now = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.timezone.utc)
    old = [_run_dir(backup, '202611%02dT120000Z-%d' % (d, d)) for d in (1, 2, 3)]
    new = [_run_dir(backup, '202612%02dT110000Z-%d' % (d, d)) for d in (1, 2)]
    foreign = [_run_dir(backup, '20261101T000000Z-9', catalog='X'), backup / 'notes']
    foreign[1].mkdir()
    (backup / '20261001T000000Z-7').mkdir()            # no manifest: not a run directory made by run_gc
    dry = ipam_gc_cli.prune(str(backup), 0, 7, True, now=now)
    assert dry['removed'] == [str(p) for p in old] and all(p.exists() for p in old)
    done = ipam_gc_cli.prune(str(backup), 1, 7, False, now=now, protect=[new[1].name])
    assert sorted(done['removed']) == sorted(str(p) for p in old + [new[0]])
    assert not any(p.exists() for p in old + [new[0]])
    assert new[1].exists() and all(p.exists() for p in foreign) and (backup / '20261001T000000Z-7').exists()
    assert ipam_gc_cli.prune(str(backup), 0, 0, False, now=now) == {'removed': [], 'errors': []}


def test_shipped_files_parse_as_python_3_7():
    """The documented minimum of the image's python3 (``from __future__ import annotations`` needs 3.7)."""
    for name in ipam_gc_cli.SHIPPED:
        ast.parse((MODULE_UTILS / name).read_text(), filename=name, feature_version=(3, 7))


def test_shipped_code_fits_the_last_applied_annotation():
    """kubernetes.core.k8s apply keeps the whole ConfigMap in its last-applied-configuration annotation,
    and a resource's annotations may hold 256 KiB in total: keep headroom (the JSON is what is stored)."""
    data = {name: (MODULE_UTILS / name).read_text() for name in ipam_gc_cli.SHIPPED}
    assert len(json.dumps({'data': data})) < 200 * 1024
