"""cni_ipam_gc's fault matrix, run again through the C-8 DaemonSet's entry point (issue 10 hole 1).

The scenarios are the ones of tests/integration/test_cni_ipam_gc.py, imported, not copied: the
same real host-local plugin writes and releases the allocations, the same ``ctr``/``docker``
stand-in plays the runtime.  Only ``run_module_in`` differs: instead of ``ansible -m
netmedic.k8s.cni_ipam_gc`` it runs what the DaemonSet's pod runs - the system ``python3 -S -E -B -m
...module_utils.ipam_gc_cli`` (one pass, ``--dry-run`` for check mode) from a directory holding only
the files the role's ConfigMap ships, so no Ansible is importable - and maps the module's
arguments to the CLI's options and its JSON line back to a result.  One implementation, one fault
matrix, two entry points.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import ipam_gc_cli

from . import test_cni_ipam_gc as matrix
from .conftest import ModuleRun

# cni_ipam_gc's fixtures and scenarios, collected again in this module with its run_module_in.
netns, runtime, node, docker = matrix.netns, matrix.runtime, matrix.node, matrix.docker
test_real_host_local_check_apply_idempotent = matrix.test_real_host_local_check_apply_idempotent
test_young_pod_whose_sandbox_is_not_listed_yet_is_kept = matrix.test_young_pod_whose_sandbox_is_not_listed_yet_is_kept
test_runtime_down_fails_and_nothing_moves = matrix.test_runtime_down_fails_and_nothing_moves
test_empty_listing_refused_until_allow_all = matrix.test_empty_listing_refused_until_allow_all
test_lock_held_by_another_process = matrix.test_lock_held_by_another_process
test_tmpfs_data_dir_moves_across_file_systems = matrix.test_tmpfs_data_dir_moves_across_file_systems

ROOT = Path(__file__).resolve().parents[2]
MODULE_UTILS = ROOT / 'plugins' / 'module_utils'
PYTHON = shutil.which('python3', path='/usr/bin:/bin') or 'python3'
FLAGS = {'allow_all'}


def cli_args(module_args, check):
    out = ['--allow-other-data-dir']           # the scenarios' data directories are scratch ones
    for key, value in module_args.items():
        opt = '--' + key.replace('_', '-')
        if key == 'data_dir':
            for path in value:
                out += ['--data-dir', path]
        elif key == 'networks':
            for name in value:
                out += ['--network', name]
        elif key in FLAGS:
            if value:
                out.append(opt)
        else:
            out += [opt, str(value)]
    if check:
        out.append('--dry-run')
    return out


@pytest.fixture
def pod_code(tmp_path):
    code = tmp_path / 'pod-code'
    pkg = code / ipam_gc_cli.PACKAGE_PATH
    pkg.mkdir(parents=True)
    for name in ipam_gc_cli.SHIPPED:
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(str(MODULE_UTILS / name), str(pkg / name))
    return code


def run_cli(code, rt, module_args, check=False, diff=False, timeout=60):
    cmd = [PYTHON, '-S', '-E', '-B', '-m', ipam_gc_cli.MODULE] + cli_args(module_args, check)
    if diff:
        cmd.append('--diff')
    proc = subprocess.run(cmd, cwd=str(code), env={'PATH': '%s:/usr/bin:/bin' % rt.bindir, 'LANG': 'C'},
                          capture_output=True, text=True, timeout=timeout, check=False)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, 'one pass prints one JSON line, got rc=%s\n%s\n%s' % (proc.returncode, proc.stdout, proc.stderr)
    result = ModuleRun(json.loads(lines[0]))
    result.rc = proc.returncode
    result.output = proc.stdout + proc.stderr
    assert (proc.returncode != 0) == result.failed, result.output
    return result


@pytest.fixture
def run_module_in(pod_code):
    def _run(rt, module, module_args, check=False, diff=False):
        assert module == 'cni_ipam_gc'
        return run_cli(pod_code, rt, module_args, check=check, diff=diff)
    return _run


def test_issue10_h1_hung_runtime_fails_in_time_and_releases_the_lock(pod_code, node, docker, tmp_path):
    """The pod's entry point has cni_ipam_gc's bound on a hung runtime CLI (runner's wall clock, issue 10
    hole 3): the second listing, under host-local's lock, hangs; the pass fails in time, the lock is free."""
    node.age(node.add(matrix.cid(1)), matrix.OLD)
    node.age(node.add(matrix.cid(2)), matrix.OLD)
    docker.set_live([matrix.cid(1)])
    before = node.files()
    docker.hang_from(2)
    start = time.monotonic()
    result = run_cli(pod_code, docker, matrix.args(node, tmp_path, runtime='docker', runtime_timeout=matrix.HUNG_TIMEOUT))
    assert result.failed and 'did not finish within %d s and was killed' % matrix.HUNG_TIMEOUT in result['msg']
    assert "under host-local's lock, which is released" in result['msg']
    assert time.monotonic() - start < 2 * matrix.HUNG_TIMEOUT + matrix.MARGIN
    assert matrix._lock_is_free(node.net / 'lock')
    assert matrix._wait_dead(docker.hung_pid())
    assert node.files() == before and result['moved'] == []
