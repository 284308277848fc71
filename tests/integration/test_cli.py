"""bin/netmedic (cli/netmedic.py): list, run through ansible-runner, exit codes, run records."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / 'bin' / 'netmedic'


def _cli(tmp_path, *args):
    env = dict(os.environ, NETMEDIC_RUNS_DIR=str(tmp_path / 'runs'))
    env.pop('ANSIBLE_CONFIG', None)
    return subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def _records(tmp_path):
    return [json.loads(p.read_text()) for p in sorted((tmp_path / 'runs').glob('*/netmedic.json'))]


def test_list_names_every_playbook(tmp_path):
    proc = _cli(tmp_path, 'list')
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert names == sorted(p.stem for p in (ROOT / 'playbooks').glob('*.yml'))
    assert 'diagnose' in names and 'udp_timeout' in names


def test_check_run_records_summary_and_report(tmp_path):
    proc = _cli(tmp_path, 'run', 'diagnose', '-i', str(ROOT / 'inventories' / 'localhost.yml'), '--check', '-q',
                '-e', 'netmedic_report_dir=%s' % (tmp_path / 'diag'))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'diagnose (check mode: nothing changed), status successful, rc 0' in proc.stdout
    (record,) = _records(tmp_path)
    assert (record['playbook'], record['check'], record['status'], record['exit']) == ('diagnose', True, 'successful', 0)
    assert record['stats']['ok']['localhost'] > 0 and not record['stats'].get('failures')
    assert Path(record['report']).is_file() and 'netmedic change report' in Path(record['report']).read_text()
    assert (tmp_path / 'diag' / 'diagnose.json').is_file()
    assert 'diagnose' in _cli(tmp_path, 'runs').stdout


def test_failed_host_and_bad_invocations_exit_codes(tmp_path):
    # A failing play (bad input refused by the playbook's own check): exit 2, recorded as failed.
    proc = _cli(tmp_path, 'run', 'udp_timeout', '-i', str(ROOT / 'inventories' / 'localhost.yml'), '-q',
                '-e', 'netmedic_udp_timeout_method=sometimes')
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert _records(tmp_path)[0]['stats']['failures'] == {'localhost': 1}
    assert _cli(tmp_path, 'run', 'no_such_playbook', '-i', str(ROOT / 'inventories' / 'localhost.yml')).returncode == 4
    assert _cli(tmp_path, 'run', 'diagnose', '-i', str(tmp_path / 'missing.yml')).returncode == 4
    bad = _cli(tmp_path, 'run', 'diagnose', '-i', str(ROOT / 'inventories' / 'localhost.yml'), '-e', 'novalue')
    assert bad.returncode == 4 and 'KEY=VALUE' in bad.stderr
    assert len(_records(tmp_path)) == 1          # refused invocations leave no run behind
