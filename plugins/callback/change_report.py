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
    at the end of the run writes C(change-report-<UTC time>.md) and C(.json) into O(report_dir).
  - The report says, per host and task, whether it ran in check mode, what changed (or would change), the catalog IDs,
    where backups were kept (files, backup ConfigMaps), warnings, failures and what remains after a failure
    (C(remaining), C(failed_node)). It never contains module arguments, so secrets passed to a module stay out.
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
"""

import datetime
import json
import os

from ansible import context
from ansible.plugins.callback import CallbackBase

KEEP = ('catalog', 'backups', 'warnings', 'msg', 'restart_needed', 'remaining', 'failed_node', 'restarted',
        'removed', 'decision', 'findings')


def _plain(value):
    """JSON-safe copy (results can hold Ansible's own string/number wrappers)."""
    return json.loads(json.dumps(value, default=str))


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
            if status == 'ok' and not entry['changed'] and not ours:
                continue
            self.entries.append(entry)

    def v2_runner_on_ok(self, result):
        self._record(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, 'failed')

    def v2_runner_on_unreachable(self, result):
        self.entries.append({'host': result._host.get_name(), 'task': result._task.get_name(),
                             'action': result._task.action, 'status': 'unreachable', 'changed': False,
                             'msg': _plain((result._result or {}).get('msg'))})

    def v2_playbook_on_stats(self, stats):
        directory = self.get_option('report_dir') or './report'
        os.makedirs(directory, exist_ok=True)
        finished = datetime.datetime.now(datetime.timezone.utc)
        stamp = finished.strftime('%Y%m%dT%H%M%SZ')
        report = {
            'playbook': self.playbook,
            'started': self.started.isoformat(),
            'finished': finished.isoformat(),
            'hosts': {h: stats.summarize(h) for h in sorted(stats.processed)},
            'entries': self.entries,
        }
        base = os.path.join(directory, 'change-report-%s' % stamp)
        with open(base + '.json', 'w') as handle:
            json.dump(report, handle, indent=2, sort_keys=True)
        with open(base + '.md', 'w') as handle:
            handle.write(self._markdown(report))
        # stderr: stdout may be a machine-readable stream (the json callback).
        self._display.display('netmedic change report: %s.md (and .json)' % base, stderr=True)

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
                    where = backup.get('path') or backup.get('configmap') or 'returned in the task result'
                    lines.append('  - backup of %s: %s' % (backup.get('of', '?'), where))
                for warning in e.get('warnings') or []:
                    lines.append('  - warning: %s' % warning)
                if e['status'] != 'ok' and e.get('msg'):
                    lines.append('  - error: %s' % e['msg'])
                if e.get('remaining'):
                    lines.append('  - not done: %s' % ', '.join(str(r) for r in e['remaining']))
            lines.append('')
        return '\n'.join(lines)
