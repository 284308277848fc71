"""bin/netmedic's pure parts (issue 11 item 6): the ansible-runner arguments, extra vars, engine detection."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_cli():
    loader = importlib.machinery.SourceFileLoader('netmedic_cli', str(ROOT / 'bin' / 'netmedic'))
    spec = importlib.util.spec_from_loader('netmedic_cli', loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


cli = load_cli()


def args(**kw):
    base = dict(playbook='diagnose', check=False, diff=False, extra_vars=None, limit=None, quiet=True, keep_runs=0, ee=None)
    base.update(kw)
    return SimpleNamespace(**base)


def test_extra_vars_are_passed_unchanged_one_argument_each(monkeypatch, tmp_path):
    monkeypatch.setenv('NETMEDIC_RUNS_DIR', str(tmp_path))
    values = ['netmedic_change_id="CHG 0042 window B"', '{"netmedic_report_dir": "/tmp/a b"}', 'a=1 b=2']
    kw = cli.runner_kwargs(args(check=True, diff=True, extra_vars=values), 'ID', '/inv.yml')
    assert shlex.split(kw['cmdline']) == ['--check', '--diff', '-e', values[0], '-e', values[1], '-e', values[2]]
    assert kw['private_data_dir'] == str(tmp_path) and kw['ident'] == 'ID' and kw['suppress_env_files'] is True
    assert kw['playbook'] == str(ROOT / 'playbooks' / 'diagnose.yml') and kw['project_dir'] == str(ROOT)
    assert kw['envvars']['NETMEDIC_REPORT_DIR'] == str(tmp_path / 'artifacts' / 'ID' / 'report')
    assert kw['rotate_artifacts'] == 0
    assert cli.runner_kwargs(args(keep_runs=5), 'ID', '/inv.yml')['rotate_artifacts'] == 5


def test_ee_runs_the_collection_playbook_by_name_in_the_image(monkeypatch, tmp_path):
    monkeypatch.setenv('NETMEDIC_RUNS_DIR', str(tmp_path))
    kw = cli.runner_kwargs(args(ee='quay.example/netmedic-ee@sha256:' + 'a' * 64), 'ID', '/inv.yml', engine='podman')
    assert (kw['playbook'], kw['process_isolation'], kw['process_isolation_executable']) == ('netmedic.k8s.diagnose', True, 'podman')
    assert kw['container_image'].startswith('quay.example/netmedic-ee@sha256:')
    assert 'project_dir' not in kw and 'ANSIBLE_COLLECTIONS_PATH' not in kw['envvars']


@pytest.mark.parametrize('value,parsed', [
    ('a=1 b="two words"', {'a': '1', 'b': 'two words'}),
    ('{"k8s_api_key": "s3cret", "n": 1}', {'k8s_api_key': 's3cret', 'n': 1}),
])
def test_extra_vars_parsed_with_ansibles_own_parser(value, parsed):
    assert dict(cli.parse_extra_vars(value)) == parsed


@pytest.mark.parametrize('value,match', [('novalue', 'KEY=VALUE'), ('[1, 2]', 'not a mapping'), ('@/no/such/file', 'does not exist')])
def test_bad_extra_vars_refused(value, match):
    with pytest.raises(ValueError, match=match):
        cli.parse_extra_vars(value)


def test_secret_values_of_extra_vars():
    assert cli.secret_values([{'vault_password': 'pw1', 'netmedic_change_id': 'CHG 1'}, {}]) == {'pw1'}


def test_container_engine_needs_one_that_answers():
    def which(name):
        return '/usr/bin/' + name if name == 'docker' else None

    def down(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, '', 'Cannot connect to the Docker daemon\n')

    def up(cmd, **kw):
        assert kw['timeout'] == cli.ENGINE_TIMEOUT
        return subprocess.CompletedProcess(cmd, 0, 'ok', '')

    engine, why = cli.container_engine(which=which, run=down)
    assert engine is None and 'podman is not installed' in why and 'Cannot connect to the Docker daemon' in why
    assert cli.container_engine(which=which, run=up) == ('docker', None)

    def hangs(cmd, **kw):
        raise subprocess.TimeoutExpired(cmd, kw['timeout'])

    engine, why = cli.container_engine(which=which, run=hangs)
    assert engine is None and 'did not answer within' in why
