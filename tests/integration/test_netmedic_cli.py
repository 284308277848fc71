"""bin/netmedic: list, run through ansible-runner (one private data dir, artifacts per run), exit codes, runs, prune."""

from __future__ import annotations

import datetime
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
    return [json.loads(p.read_text()) for p in sorted((tmp_path / 'runs' / 'artifacts').glob('*/netmedic.json'))]


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
    runs = _cli(tmp_path, 'runs').stdout
    assert 'diagnose' in runs and 'successful' in runs and 'rc=0' in runs and '(check mode)' in runs


def test_issue11_6_extra_vars_with_spaces_reach_ansible_unchanged(tmp_path):
    """-e is handed to ansible-playbook as is: a JSON value and a quoted KEY=VALUE, both with spaces."""
    as_json = tmp_path / 'diag json' / 'with spaces'
    as_kv = tmp_path / 'diag kv'
    for value, where in ((json.dumps({'netmedic_report_dir': str(as_json)}), as_json),
                         ('netmedic_report_dir="%s"' % as_kv, as_kv)):
        proc = _cli(tmp_path, 'run', 'diagnose', '-i', str(ROOT / 'inventories' / 'localhost.yml'), '--check', '-q', '-e', value)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (where / 'diagnose.json').is_file(), value
    command = [json.loads(p.read_text()) for p in sorted((tmp_path / 'runs' / 'artifacts').glob('*/command'))]
    assert [c['command'][c['command'].index('-e') + 1] for c in command] == [
        json.dumps({'netmedic_report_dir': str(as_json)}), 'netmedic_report_dir="%s"' % as_kv]


def test_issue11_6_ee_without_a_container_engine_is_refused_clearly(tmp_path):
    fake = tmp_path / 'bin'
    fake.mkdir()
    for engine in ('docker', 'podman'):
        (fake / engine).write_text('#!/bin/sh\necho "Cannot connect to the %s daemon" >&2\nexit 1\n' % engine)
        (fake / engine).chmod(0o755)
    env = dict(os.environ, NETMEDIC_RUNS_DIR=str(tmp_path / 'runs'), PATH='%s:%s' % (fake, os.environ['PATH']))
    proc = subprocess.run([str(CLI), 'run', 'diagnose', '-i', str(ROOT / 'inventories' / 'localhost.yml'),
                           '--ee', 'registry.example/netmedic-ee:1'], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert 'needs a container engine' in proc.stderr and 'Cannot connect to the docker daemon' in proc.stderr
    assert not (tmp_path / 'runs' / 'artifacts').exists() or not list((tmp_path / 'runs' / 'artifacts').iterdir())


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


def test_issue10_h11_extravars_removed_and_command_env_masked(tmp_path):
    # A fast run (the playbook refuses the bad method first) that carries two secrets.
    env_secret, var_secret = 'tok-env-s3cret-0001', 'pw-extravar-s3cret-0001'
    env = dict(os.environ, NETMEDIC_RUNS_DIR=str(tmp_path / 'runs'), K8S_AUTH_API_KEY=env_secret)
    env.pop('ANSIBLE_CONFIG', None)
    proc = subprocess.run([str(CLI), 'run', 'udp_timeout', '-i', str(ROOT / 'inventories' / 'localhost.yml'), '-q',
                           '-e', 'netmedic_udp_timeout_method=sometimes', '-e', 'vault_password=%s' % var_secret],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    runs = tmp_path / 'runs'
    (run,) = (runs / 'artifacts').iterdir()
    assert not (runs / 'env').exists(), 'no env/ file is written (suppress_env_files)'
    (record,) = _records(tmp_path)
    assert str(run / 'command') in record['scrubbed']
    command = json.loads((run / 'command').read_text())
    assert command['env']['K8S_AUTH_API_KEY'] == '********' and command['env']['NETMEDIC_REPORT_DIR']
    masked = [a for a in command['command'] if a.startswith('vault_password=')]
    assert len(masked) == 1 and '********' in masked[0]
    for path in runs.rglob('*'):
        if path.is_file():
            text = path.read_text(errors='replace')
            assert env_secret not in text and var_secret not in text, path
    assert [oct(p.stat().st_mode & 0o777) for p in (runs, runs / 'artifacts', run / 'netmedic.json')] == ['0o700', '0o700', '0o600']


def _fake_runs(tmp_path, days):
    runs = tmp_path / 'runs' / 'artifacts'
    now = datetime.datetime.now(datetime.timezone.utc)
    names = []
    for day in days:
        name = '%s-diagnose' % (now - datetime.timedelta(days=day)).strftime('%Y%m%dT%H%M%S.%fZ')
        (runs / name).mkdir(parents=True)
        (runs / name / 'status').write_text('successful')
        names.append(name)
    in_progress = (now - datetime.timedelta(days=99)).strftime('%Y%m%dT%H%M%S.%fZ') + '-udp_timeout'
    (runs / in_progress).mkdir()                # no status yet: a run in progress, never pruned
    (runs / 'notes').mkdir()
    return runs, names, in_progress


def test_issue10_h11_prune_runs_check_then_apply(tmp_path):
    runs, names, in_progress = _fake_runs(tmp_path, [50, 20, 3, 1])
    check = _cli(tmp_path, 'prune', '--keep-runs', '3', '--keep-days', '30', '--check')
    assert check.returncode == 0, check.stderr
    assert 'would remove (check mode) run %s' % (runs / names[0]) in check.stdout and '1 run(s) would be removed' in check.stdout
    assert len(list(runs.iterdir())) == 6
    applied = _cli(tmp_path, 'prune', '--keep-runs', '2')
    assert applied.returncode == 0, applied.stderr
    assert sorted(p.name for p in runs.iterdir()) == sorted([names[2], names[3], in_progress, 'notes'])
    bad = _cli(tmp_path, 'prune', '--keep-runs', '-1')
    assert bad.returncode == 4 and 'keep all' in bad.stderr


def test_issue10_h12_diagnose_concurrent_runs_two_reports(tmp_path):
    shared = tmp_path / 'diag'
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), NETMEDIC_REPORT_DIR=str(tmp_path / 'changes'))
    cmd = [str(ROOT / '.venv' / 'bin' / 'ansible-playbook'), '-i', str(ROOT / 'inventories' / 'localhost.yml'), '--check',
           str(ROOT / 'playbooks' / 'diagnose.yml'), '-e', 'netmedic_report_dir=%s' % shared]
    procs = [subprocess.Popen(cmd, env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _i in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    reports = sorted(p for p in shared.glob('diagnose-*.json'))
    assert len(reports) == 2 and len(list(shared.glob('diagnose-*.md'))) == 2
    assert all(json.loads(p.read_text())['localhost']['findings'] is not None for p in reports)
    latest = shared / 'diagnose.json'
    assert latest.is_symlink() and shared / os.readlink(str(latest)) in reports
    assert oct(shared.stat().st_mode & 0o777) == '0o700'
    assert {oct(p.stat().st_mode & 0o777) for p in reports} == {'0o600'}
    changes = sorted(p for p in (tmp_path / 'changes').glob('change-report-*.json') if not p.is_symlink())
    assert len(changes) == 2
