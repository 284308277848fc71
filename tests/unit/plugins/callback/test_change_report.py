"""change_report callback without a playbook run: collisions, backups by name, retention (issue #10 holes 4, 11, 12)."""

from __future__ import annotations

import datetime
import json
import os

import pytest
from ansible import context
from ansible.executor.stats import AggregateStats
from ansible.module_utils.common.collections import ImmutableDict

from ansible_collections.netmedic.k8s.plugins.callback import change_report

FROZEN = datetime.datetime(2026, 12, 1, 22, 0, 0, tzinfo=datetime.timezone.utc)
SECRET = 'lab-Acc3ssSecret-0001'


class _Frozen(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return FROZEN


def _callback(monkeypatch, report_dir, **options):
    options = dict({'report_dir': str(report_dir), 'keep_count': 0, 'keep_days': 0}, **options)
    cb = change_report.CallbackModule()
    monkeypatch.setattr(cb, 'get_option', options.get)
    return cb


class _Host(object):
    def get_name(self):
        return 'localhost'


class _Task(object):
    action = 'netmedic.k8s.terway_config'
    check_mode = False

    def get_name(self):
        return 'pool'


class _Result(object):
    def __init__(self, data):
        self._task, self._host, self._result = _Task(), _Host(), data


def _stats():
    stats = AggregateStats()
    stats.increment('ok', 'localhost')
    return stats


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setattr(change_report.datetime, 'datetime', _Frozen)
    monkeypatch.setattr(context, 'CLIARGS', ImmutableDict(check=False))


def _reports(directory, ext='json'):
    return sorted(p for p in directory.glob('change-report-*.%s' % ext) if not p.is_symlink())


def test_issue10_h12_same_second_reports_do_not_overwrite(monkeypatch, tmp_path, frozen):
    for _run in range(2):
        _callback(monkeypatch, tmp_path / 'r').v2_playbook_on_stats(_stats())
    assert len(_reports(tmp_path / 'r')) == 2 and len(_reports(tmp_path / 'r', 'md')) == 2
    latest = tmp_path / 'r' / 'change-report-latest.json'
    assert latest.is_symlink() and (tmp_path / 'r' / os.readlink(str(latest))) in _reports(tmp_path / 'r')


def test_issue10_h4_backup_data_never_in_report(monkeypatch, tmp_path, frozen):
    cb = _callback(monkeypatch, tmp_path / 'r')
    cb.v2_runner_on_ok(_Result({'changed': True, 'catalog': ['C-6'], 'msg': 'token=%s' % SECRET, 'backups': [
        {'of': 'kube-system/eni-config', 'configmap': 'kube-system/eni-config-netmedic-backup-x',
         'data': {'eni_conf': '{"access_secret": "%s"}' % SECRET}}]}))
    cb.v2_playbook_on_stats(_stats())
    (path,) = _reports(tmp_path / 'r')
    report = json.loads(path.read_text())
    assert report['entries'][0]['backups'] == [{'of': 'kube-system/eni-config',
                                                'configmap': 'kube-system/eni-config-netmedic-backup-x'}]
    assert SECRET not in path.read_text() and SECRET not in _reports(tmp_path / 'r', 'md')[0].read_text()
    assert oct(path.stat().st_mode & 0o777) == '0o600' and oct((tmp_path / 'r').stat().st_mode & 0o777) == '0o700'


def _old_reports(directory, days):
    directory.mkdir(mode=0o700)
    names = []
    for day in days:
        name = 'change-report-%s' % (FROZEN - datetime.timedelta(days=day)).strftime('%Y%m%dT%H%M%SZ')
        for ext in ('.json', '.md'):
            (directory / (name + ext)).write_text('{}')
        names.append(name)
    (directory / 'change-report-notes.md').write_text('not ours')       # not a report name: never touched
    return names


def test_issue10_h11_retention_check_mode_reports_and_keeps(monkeypatch, tmp_path, frozen):
    old = _old_reports(tmp_path / 'r', [40, 20, 1])
    monkeypatch.setattr(context, 'CLIARGS', ImmutableDict(check=True))
    _callback(monkeypatch, tmp_path / 'r', keep_count=3, keep_days=30).v2_playbook_on_stats(_stats())
    new = [p for p in _reports(tmp_path / 'r') if p.stem not in old]
    report = json.loads(new[0].read_text())
    assert report['retention']['runs'] == [old[0]] and report['retention']['done'] is False
    assert len(_reports(tmp_path / 'r')) == 4                          # nothing removed in check mode
    assert 'would remove (check mode)' in new[0].with_suffix('.md').read_text()


def test_issue10_h11_retention_removes_by_count_and_age(monkeypatch, tmp_path, frozen):
    old = _old_reports(tmp_path / 'r', [40, 20, 2, 1])
    _callback(monkeypatch, tmp_path / 'r', keep_count=3, keep_days=30).v2_playbook_on_stats(_stats())
    left = sorted(p.name for p in (tmp_path / 'r').iterdir())
    assert [n for n in left if n.startswith(tuple(old))] == [old[2] + '.json', old[2] + '.md', old[3] + '.json', old[3] + '.md']
    assert 'change-report-notes.md' in left
    new = [p for p in _reports(tmp_path / 'r') if p.stem not in old]
    assert json.loads(new[0].read_text())['retention']['runs'] == [old[0], old[1]]


def test_issue10_h11_negative_retention_removes_nothing(monkeypatch, tmp_path, frozen):
    old = _old_reports(tmp_path / 'r', [40])
    _callback(monkeypatch, tmp_path / 'r', keep_count=-1).v2_playbook_on_stats(_stats())
    assert all((tmp_path / 'r' / (old[0] + ext)).exists() for ext in ('.json', '.md'))
