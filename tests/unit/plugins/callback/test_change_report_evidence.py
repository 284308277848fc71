"""change_report callback, issue 11 without a playbook run: rollouts, a change without any diff, secrets in diffs
and extra vars, the read-only marker. The real runs are in tests/lab/test_change_report.py."""

from __future__ import annotations

import json

import jsonschema
from ansible import context
from ansible.executor.stats import AggregateStats
from ansible.module_utils.common.collections import ImmutableDict

from ansible_collections.netmedic.k8s.plugins.callback import change_report

SCHEMA = __import__('pathlib').Path(__file__).resolve().parents[4] / 'docs' / 'schemas' / 'change_report.schema.json'


class _Host(object):
    def get_name(self):
        return 'localhost'


class _Task(object):
    check_mode = False
    _uuid = 'u1'
    _parent = None

    def __init__(self, action, name):
        self.action, self.name = action, name

    def get_name(self):
        return self.name


class _Result(object):
    def __init__(self, action, name, data):
        self._task, self._host, self._result = _Task(action, name), _Host(), data


class _VarManager(object):
    def __init__(self, extra):
        self.extra_vars = extra


class _Play(object):
    def __init__(self, extra, play_vars=None):
        self._vm, self.vars = _VarManager(extra), play_vars or {}

    def get_variable_manager(self):
        return self._vm


def _run(monkeypatch, tmp_path, results, extra=None, play_vars=None, check=False):
    monkeypatch.setattr(context, 'CLIARGS', ImmutableDict(check=check, subset='lab-node-1,localhost', inventory=('inv.yml',)))
    cb = change_report.CallbackModule()
    monkeypatch.setattr(cb, 'get_option', {'report_dir': str(tmp_path / 'r'), 'keep_count': 0, 'keep_days': 0, 'archive_dir': ''}.get)
    cb.v2_playbook_on_play_start(_Play(extra or {}, play_vars))
    for result, status in results:
        getattr(cb, 'v2_runner_on_%s' % status)(result)
    stats = AggregateStats()
    stats.increment('ok', 'localhost')
    cb.v2_playbook_on_stats(stats)
    (path,) = [p for p in (tmp_path / 'r').glob('change-report-*.json') if not p.is_symlink()]
    report = json.loads(path.read_text())
    jsonschema.validate(report, json.loads(SCHEMA.read_text()))
    return report, path.with_suffix('.md').read_text(), path.with_suffix('.html').read_text()


ROLLOUT = {'changed': True, 'daemonset': 'kube-system/kube-proxy', 'plan': [['n1'], ['n2'], ['n3']],
           'restarted': [{'node': 'n1', 'old_pod': 'a', 'pod': 'b', 'matched': 'Using ipvs Proxier'}],
           'failed_node': {'node': 'n2', 'pod': 'c', 'reason': 'failure line', 'line': "Can't use the IPVS proxier"},
           'remaining': ['n3'], 'unverified': [], 'failed': True, 'msg': 'n2 failed'}


def test_issue11_rollout_restarted_failed_remaining_in_every_format(monkeypatch, tmp_path):
    report, md, page = _run(monkeypatch, tmp_path, [(_Result('netmedic.k8s.daemonset_restart', 'restart', ROLLOUT), 'failed')],
                            extra={'netmedic_change_id': 'CHG-5'})
    (rollout,) = report['rollouts']
    assert rollout['restarted'][0]['node'] == 'n1' and rollout['failed_node']['node'] == 'n2' and rollout['remaining'] == ['n3']
    assert 'Rollout **restart** (`kube-system/kube-proxy`): restarted n1; failed node n2 (failure line); remaining n3' in md
    assert page.count('class="step sev-') == 3


def test_issue11_change_without_diff_says_so_and_secrets_masked(monkeypatch, tmp_path):
    results = [(_Result('ansible.builtin.command', 'cmd', {'changed': True}), 'ok'),
               (_Result('netmedic.k8s.terway_config', 'pool', {'changed': True, 'before': {'access_secret': 'Sup3rSecretValue', 'n': 1},
                                                               'after': {'access_secret': 'Sup3rSecretValue', 'n': 2}}), 'ok')]
    report, md, page = _run(monkeypatch, tmp_path, results, extra={'ansible_become_pass': 'hunter2-hunter2', 'netmedic_change_id': 'C'})
    cmd, pool = report['entries']
    assert cmd['diff_unavailable'] is True and 'diff: not returned by the module (run with --diff' in md
    assert '-    "n": 1\n' in pool['diff'] and '+    "n": 2\n' in pool['diff'] and '"access_secret": "********"' in pool['diff']
    assert report['header']['extra_vars']['ansible_become_pass'] == '********'
    for text in (md, page, json.dumps(report)):
        assert 'Sup3rSecretValue' not in text and 'hunter2-hunter2' not in text
    assert report['header']['limit'] == 'lab-node-1,localhost' and report['header']['inventory'] == ['inv.yml']


def test_issue11_read_only_plays_need_no_ticket(monkeypatch, tmp_path):
    report, md, _page = _run(monkeypatch, tmp_path, [], play_vars={'netmedic_read_only': True})
    assert report['header']['read_only'] is True and report['header']['change_id_missing'] is False
    assert 'NO CHANGE TICKET' not in md
    report, md, _page = _run(monkeypatch, tmp_path / 'other', [])
    assert report['header']['change_id_missing'] is True and 'NO CHANGE TICKET' in md
