"""Run one of the collection's playbooks against the API double with a node inventory (the tests of the per-fix
playbooks, issue 9; conftest's ``playbook_file`` fixture calls it with a 300 s limit). The default limit is long: a
playbook run takes minutes on a loaded 2-core machine. Returns ``(rc, {task name: localhost result}, output)``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Issue 11: an apply run needs a change ticket (role change_guard refuses one without). Every run here carries this
# test ticket; a test that needs a run without one adds '-e netmedic_change_id=' (a later -e wins).
TEST_CHANGE_ID = 'CHG-TEST-0001'


def run_playbook(double, tmp_path, playbook, *extra, check=False, timeout=1200):
    env = dict(os.environ, K8S_AUTH_KUBECONFIG=str(double.kubeconfig_path), ANSIBLE_STDOUT_CALLBACK='ansible.posix.json',
               ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_NOCOLOR='1', ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'), ANSIBLE_DEPRECATION_WARNINGS='0',
               NETMEDIC_REPORT_DIR=str(tmp_path / 'report'))
    env.pop('ANSIBLE_CONFIG', None)
    cmd = [str(Path(sys.executable).with_name('ansible-playbook')), '-i', 'localhost,', '-c', 'local',
           '-e', 'ansible_python_interpreter=%s' % sys.executable, '-e', 'netmedic_targets=no_nodes_here',
           '-e', 'netmedic_change_id=%s' % TEST_CHANGE_ID, str(playbook), *extra]
    if check:
        cmd += ['--check', '--diff']
    proc = subprocess.run(cmd, env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=timeout, check=False)
    try:
        data = json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError('no JSON from ansible-playbook (rc=%s)\n%s\n%s' % (proc.returncode, proc.stdout, proc.stderr)) from exc
    tasks = {t['task']['name']: t['hosts']['localhost'] for play in data['plays'] for t in play['tasks']
             if 'localhost' in t['hosts']}
    return proc.returncode, tasks, proc.stdout + proc.stderr
