"""Callback netmedic.k8s.change_report under ansible-runner (what AWX runs): the one case that talks to no API server.

The report of real runs against an API server (changes, backups, failures, masked secrets, the issue 11 evidence,
schema, HTML and copies) is tests/cluster/test_change_report.py, on the double and on the real kube-apiserver
(ported from here, issue 15).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.lab.playbook_run import module_python

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.double_only('no-cluster: an ansible-runner play of a copy task; no API server')
def test_issue11_runner_artifacts_and_set_stats_summary(tmp_path):
    """Issue 11, AWX: under ansible-runner (what AWX runs) the callback writes its report into the job's artifact
    directory, and playbooks/tasks/report_stats.yml puts the summary into the stats AWX keeps as job artifacts
    (the playbook_on_stats event's artifact_data)."""
    import ansible_runner

    private = tmp_path / 'runner'
    (private / 'project').mkdir(parents=True)
    (private / 'project' / 'play.yml').write_text(yaml.safe_dump([{
        'hosts': 'localhost', 'gather_facts': False, 'vars': {'ansible_python_interpreter': module_python()[0]},
        'tasks': [{'name': 'a change', 'ansible.builtin.copy': {'content': 'x\n', 'dest': str(tmp_path / 'f.txt'), 'mode': '0600'}},
                  {'ansible.builtin.include_tasks': str(ROOT / 'playbooks' / 'tasks' / 'report_stats.yml')}]}]))
    env = {'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections'), 'ANSIBLE_CALLBACKS_ENABLED': 'netmedic.k8s.change_report',
           'NETMEDIC_REPORT_DIR': str(tmp_path / 'report'), 'NETMEDIC_REPORT_ARCHIVE_DIR': str(tmp_path / 'archive'),
           'ANSIBLE_LOCAL_TEMP': str(tmp_path / 'ansible-tmp')}
    run = ansible_runner.run(private_data_dir=str(private), playbook='play.yml', inventory='localhost ansible_connection=local',
                             ident='job-1', envvars=env, extravars={'netmedic_change_id': 'CHG-7', 'awx_job_id': 99},
                             cmdline='--diff', quiet=True, timeout=300)
    assert (run.status, run.rc) == ('successful', 0)
    stats = next(e for e in run.events if e['event'] == 'playbook_on_stats')
    summary = stats['event_data']['artifact_data']['netmedic_change_report']
    assert summary['mode'] == 'apply' and summary['change_id'] == 'CHG-7' and summary['job_id'] == 99
    assert summary['hosts_failed'] == [] and summary['archive_dir'] == str(tmp_path / 'archive')
    copies = sorted((private / 'artifacts' / 'job-1' / 'netmedic').iterdir())
    assert [p.suffix for p in copies] == ['.html', '.json', '.md']
    report = json.loads(copies[1].read_text())
    assert report['header']['change_id'] == 'CHG-7' and report['header']['awx'] == {'job_id': 99}
    assert next(e for e in report['entries'] if e['task'] == 'a change')['diff'].startswith('--- before')
    assert sorted(p.name for p in (tmp_path / 'archive').iterdir()) == [p.name for p in copies]
    jsonschema.validate(report, json.loads((ROOT / 'docs' / 'schemas' / 'change_report.schema.json').read_text()))
