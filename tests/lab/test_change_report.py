"""Callback netmedic.k8s.change_report: the report a change ticket needs, from a real run against the double."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _run(double, tmp_path, tasks, check=False):
    play = [{'hosts': 'localhost', 'gather_facts': False, 'vars': {'ansible_python_interpreter': sys.executable},
             'tasks': tasks}]
    path = tmp_path / 'play.yml'
    path.write_text(yaml.safe_dump(play))
    report_dir = tmp_path / ('report-check' if check else 'report')
    env = dict(os.environ, K8S_AUTH_KUBECONFIG=str(double.kubeconfig_path), ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'),
               ANSIBLE_CALLBACKS_ENABLED='netmedic.k8s.change_report', NETMEDIC_REPORT_DIR=str(report_dir),
               ANSIBLE_NOCOLOR='1', ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'))
    env.pop('ANSIBLE_CONFIG', None)
    cmd = [str(Path(sys.executable).with_name('ansible-playbook')), '-i', 'localhost,', '-c', 'local', str(path)]
    if check:
        cmd.append('--check')
    proc = subprocess.run(cmd, env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    (json_file,) = sorted(report_dir.glob('change-report-*.json'))
    (md_file,) = sorted(report_dir.glob('change-report-*.md'))
    return proc, json.loads(json_file.read_text()), md_file.read_text()


TASKS = [
    {'name': 'maxPerCore',
     'netmedic.k8s.kube_proxy_config': {'names': ['kube-proxy-worker'], 'settings': {'conntrack.maxPerCore': 65536}}},
    {'name': 'bad scheduler', 'ignore_errors': True,
     'netmedic.k8s.kube_proxy_config': {'settings': {'ipvs.scheduler': 'fastest'}, 'api_key': 'not-logged-anywhere'}},
]


def test_report_lists_changes_backups_and_failures(double, tmp_path):
    proc, report, md = _run(double, tmp_path, TASKS, check=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = next(e for e in report['entries'] if e['task'] == 'maxPerCore')
    assert entry['changed'] is True and entry['check_mode'] is True and entry['catalog'][:2] == ['C-0', 'C-1']
    assert '**maxPerCore** `netmedic.k8s.kube_proxy_config`: would change (check mode)' in md

    proc, report, md = _run(double, tmp_path, TASKS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = next(e for e in report['entries'] if e['task'] == 'maxPerCore')
    assert entry['changed'] is True and entry['check_mode'] is False
    (backup,) = entry['backups']
    stored = double.store.get('configmaps', 'kube-system', backup['configmap'].split('/')[1])
    assert stored['metadata']['labels']['netmedic.k8s/backup-of'] == 'kube-proxy-worker'
    assert 'backup of kube-system/kube-proxy-worker: %s' % backup['configmap'] in md
    bad = next(e for e in report['entries'] if e['task'] == 'bad scheduler')
    assert bad['status'] == 'failed' and 'scheduler' in bad['msg']
    assert '**bad scheduler** `netmedic.k8s.kube_proxy_config`: FAILED' in md
    assert report['hosts']['localhost']['changed'] == 1
    assert 'not-logged-anywhere' not in md and 'not-logged-anywhere' not in json.dumps(report)
