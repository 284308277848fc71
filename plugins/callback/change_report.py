# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: change_report
type: aggregate
short_description: Write a change report of every netmedic task (for change tickets and maintenance windows)
version_added: 0.1.0
description:
  - Collects the result of every C(netmedic.k8s.*) task, and every other task that changed something, per host, and
    at the end of the run writes C(change-report-<UTC time with microseconds>-<pid>-<random>.md) and C(.json) into
    O(report_dir), so runs started at the same time never share or overwrite a report. Each file is written to a
    temporary file and linked to its name (atomic, never replaces another file), and
    C(change-report-latest.md) / C(.json) are symlinks to the newest.
  - The report says, per host and task, whether it ran in check mode, what changed (or would change), the catalog IDs,
    where backups were kept (files, backup ConfigMaps), warnings, failures and what remains after a failure
    (C(remaining), C(failed_node)). It never contains module arguments, so secrets passed to a module stay out.
  - Secrets (catalog issue 10, hole 4). Backups are named (file path, backup ConfigMap), never copied into the
    report; a ConfigMap's data can hold credentials (Terway's C(access_secret)). Every value under a credential-like key
    (C(secret), C(password), C(token), C(access_key), ...), also inside JSON or YAML text, is masked as C(********),
    with the same rule the modules' results use (C(plugins/module_utils/redact.py)).
  - The files are mode 0600; a missing O(report_dir) is created mode 0700 (an existing one keeps its mode, with a
    warning when others can read it).
  - Retention (hole 11). With O(keep_count) and/or O(keep_days), older reports in O(report_dir) are removed after the
    new one is written (only regular files named like this callback's reports). In check mode (C(--check)) nothing is
    removed and the report lists what would be. Either way the report's C(retention) says what was (or would be)
    removed. Both default to 0, keep everything.
  - Enable it next to the normal output with C(callbacks_enabled = netmedic.k8s.change_report) in C(ansible.cfg) or
    E(ANSIBLE_CALLBACKS_ENABLED).
author:
  - netmedic maintainers (@netmedic)
requirements:
  - enable in configuration (callbacks_enabled)
options:
  report_dir:
    description: Directory for the report files (created if missing).
    type: path
    default: ./report
    env:
      - name: NETMEDIC_REPORT_DIR
    ini:
      - section: netmedic_change_report
        key: report_dir
  keep_count:
    description: Keep this many newest reports in O(report_dir) (the one just written included); 0 keeps all.
    type: int
    default: 0
    env:
      - name: NETMEDIC_REPORT_KEEP_COUNT
    ini:
      - section: netmedic_change_report
        key: keep_count
  keep_days:
    description: Remove reports older than this many days from O(report_dir); 0 keeps all.
    type: float
    default: 0
    env:
      - name: NETMEDIC_REPORT_KEEP_DAYS
    ini:
      - section: netmedic_change_report
        key: keep_days
"""

import datetime
import json
import os
import re

from ansible import context
from ansible.plugins.callback import CallbackBase

from ansible_collections.netmedic.k8s.plugins.module_utils import redact, reportfiles

KEEP = ('catalog', 'backups', 'warnings', 'msg', 'restart_needed', 'remaining', 'failed_node', 'restarted',
        'removed', 'decision', 'findings')


# What a backup entry may say in the report: where it is, never what it holds.
BACKUP_KEYS = ('of', 'path', 'configmap', 'node')
REPORT_NAME = re.compile(r'^change-report-(?P<stamp>\d{8}T\d{6}(?:\.\d{6})?Z(?:-\d+-[0-9a-f]+)?)\.(?:md|json)$')


def _plain(value):
    """JSON-safe copy (results can hold Ansible's own string/number wrappers)."""
    return json.loads(json.dumps(value, default=str))


def _backup_names(backups):
    out = []
    for backup in backups if isinstance(backups, list) else [backups]:
        if isinstance(backup, dict):
            out.append({k: backup[k] for k in BACKUP_KEYS if backup.get(k) not in (None, '')})
        else:
            out.append({'path': str(backup)})
    return out


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'netmedic.k8s.change_report'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.entries = []
        self.playbook = None
        self.started = datetime.datetime.now(datetime.timezone.utc)

    def v2_playbook_on_start(self, playbook):
        self.playbook = os.path.basename(getattr(playbook, '_file_name', '') or '')

    def _record(self, result, status):
        task = result._task
        action = task.action or ''
        data = result._result or {}
        ours = action.startswith('netmedic.k8s.')
        if not ours and not data.get('changed') and status == 'ok':
            return
        if data.get('results') and isinstance(data['results'], list):
            items = data['results']
        else:
            items = [data]
        for item in items:
            if not isinstance(item, dict) or item.get('skipped'):
                continue
            entry = {
                'host': result._host.get_name(),
                'task': task.get_name(),
                'action': action,
                'status': 'failed' if item.get('failed') or (status == 'failed' and item is data) else status,
                'changed': bool(item.get('changed')),
                'check_mode': bool(task.check_mode) if task.check_mode is not None else bool(context.CLIARGS.get('check')),
            }
            if 'item' in item and isinstance(item.get('item'), (str, int)):
                entry['item'] = item['item']
            for key in KEEP:
                if item.get(key) not in (None, [], {}, ''):
                    entry[key] = _plain(item[key])
            if 'backups' in entry:
                entry['backups'] = _backup_names(entry['backups'])
            if status == 'ok' and not entry['changed'] and not ours:
                continue
            self.entries.append(redact.redact(entry))

    def v2_runner_on_ok(self, result):
        self._record(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, 'failed')

    def v2_runner_on_unreachable(self, result):
        self.entries.append({'host': result._host.get_name(), 'task': result._task.get_name(),
                             'action': result._task.action, 'status': 'unreachable', 'changed': False,
                             'msg': redact.redact(_plain((result._result or {}).get('msg')))})

    def v2_playbook_on_stats(self, stats):
        directory = self.get_option('report_dir') or './report'
        if not reportfiles.private_dir(directory) and reportfiles.dir_is_shared(directory):
            self._display.warning('netmedic change report: %s can be listed by other users (the reports are 0600)' % directory)
        finished = datetime.datetime.now(datetime.timezone.utc)
        name = 'change-report-%s' % reportfiles.stamp(finished)
        check = bool(context.CLIARGS.get('check'))
        retention = self._retention(directory, name, finished, check)
        report = {
            'playbook': self.playbook,
            'started': self.started.isoformat(),
            'finished': finished.isoformat(),
            'hosts': {h: stats.summarize(h) for h in sorted(stats.processed)},
            'entries': self.entries,
            'retention': retention,
        }
        base = os.path.join(directory, name)
        reportfiles.write_new(base + '.json', json.dumps(report, indent=2, sort_keys=True) + '\n')
        reportfiles.write_new(base + '.md', self._markdown(report))
        for ext in ('.json', '.md'):
            reportfiles.point(os.path.join(directory, 'change-report-latest' + ext), base + ext)
        if not check:
            for old in retention['runs']:
                for ext in ('.json', '.md'):
                    reportfiles.remove_quietly_missing(os.path.join(directory, old + ext))
        # stderr: stdout may be a machine-readable stream (the json callback).
        self._display.display('netmedic change report: %s.md (and .json)' % base, stderr=True)

    def _retention(self, directory, name, now, check):
        """What retention removes (or, in check mode, would remove): report base names, oldest first."""
        keep_count, keep_days = int(self.get_option('keep_count') or 0), float(self.get_option('keep_days') or 0)
        runs = {}
        for entry in os.listdir(directory):
            match = REPORT_NAME.match(entry)
            path = os.path.join(directory, entry)
            if match and os.path.isfile(path) and not os.path.islink(path):
                base = entry.rsplit('.', 1)[0]
                runs[base] = reportfiles.parse_time(match.group('stamp'))
        runs[name] = now
        try:
            remove = reportfiles.plan_retention(runs.items(), now, keep_count, keep_days, protect=[name])
        except ValueError as exc:
            self._display.warning('netmedic change report: retention not applied, nothing removed: %s' % exc)
            remove = []
        return {'keep_count': keep_count, 'keep_days': keep_days, 'check_mode': check, 'runs': remove,
                'done': bool(remove) and not check}

    @staticmethod
    def _markdown(report):
        lines = ['# netmedic change report', '',
                 '- Playbook: `%s`' % (report['playbook'] or '?'),
                 '- Started: %s, finished: %s' % (report['started'], report['finished']), '',
                 '| Host | ok | changed | failed | unreachable |', '| --- | --- | --- | --- | --- |']
        for host, s in report['hosts'].items():
            lines.append('| %s | %s | %s | %s | %s |' % (host, s.get('ok'), s.get('changed'), s.get('failures'), s.get('unreachable')))
        lines.append('')
        by_host = {}
        for entry in report['entries']:
            by_host.setdefault(entry['host'], []).append(entry)
        for host, entries in sorted(by_host.items()):
            lines += ['## %s' % host, '']
            for e in entries:
                state = 'FAILED' if e['status'] in ('failed', 'unreachable') else ('changed' if e['changed'] else 'no change')
                if e.get('check_mode') and e['status'] == 'ok':
                    state = 'would change (check mode)' if e['changed'] else 'no change (check mode)'
                head = '- **%s** `%s`%s: %s' % (e['task'], e['action'], (' [%s]' % e['item']) if 'item' in e else '', state)
                if e.get('catalog'):
                    head += ' (catalog %s)' % ', '.join(e['catalog'])
                lines.append(head)
                for backup in e.get('backups') or []:
                    where = backup.get('path') or backup.get('configmap') or 'returned in the task result (not copied into this report)'
                    lines.append('  - backup of %s: %s' % (backup.get('of', '?'), where))
                for warning in e.get('warnings') or []:
                    lines.append('  - warning: %s' % warning)
                if e['status'] != 'ok' and e.get('msg'):
                    lines.append('  - error: %s' % e['msg'])
                if e.get('remaining'):
                    lines.append('  - not done: %s' % ', '.join(str(r) for r in e['remaining']))
            lines.append('')
        retention = report.get('retention') or {}
        if retention.get('runs'):
            lines.append('Retention (keep %s newest, %s days): %s %s' % (
                retention['keep_count'] or 'all', retention['keep_days'] or 'any',
                'would remove (check mode)' if retention['check_mode'] else 'removed',
                ', '.join('`%s`' % r for r in retention['runs'])))
            lines.append('')
        return '\n'.join(lines)
