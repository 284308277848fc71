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
  - Evidence for a change board (issue 11). A C(header) says whether the run was a check (C(--check)) or an apply,
    who ran it (the AWX user from C(awx_user_name) / C(tower_user_name), else the local login), the AWX job
    (C(awx_job_id), C(awx_job_template_name), C(awx_inventory_name), C(awx_workflow_job_id), C(awx_project_revision)),
    the inventory and C(--limit), the extra vars with every credential-like value masked, the collection version (its
    C(MANIFEST.json) or C(galaxy.yml)), the git revision (AWX's project revision, else the checkout's C(.git)), the
    change window (C(netmedic_window) and every C(netmedic.k8s.change_window) decision) and the change ticket
    C(netmedic_change_id). An apply run without C(netmedic_change_id) is marked C(change_id_missing) in every
    format and warned about at the end of the run (a callback cannot fail a run; a playbook that must refuse such
    a run does so in a task, see C(docs/change_report.md)). A run whose every play sets the play variable
    C(netmedic_read_only=true) (C(playbooks/diagnose.yml)) needs no ticket (C(read_only) in the header).
  - Every entry has C(started) / C(finished) (UTC) and, for a change, its C(diff) rendered as the default callback
    renders C(--diff) (unified, C(before:)/C(after:) headers), built from the module's C(diff) or, without C(--diff),
    from its C(before)/C(after); credential-like values are masked first. A failure under C(ignore_errors) is
    C(ignored) and one handled by a C(rescue) is C(rescued), as in the per-host counts (C(ok), C(changed),
    C(failures), C(ignored), C(rescued), C(skipped), C(unreachable)). Every rollout (a result with C(plan),
    C(restarted), C(failed_node), C(remaining)) is listed under C(rollouts) and drawn as a timeline in the HTML page.
  - Three files per run, Markdown, JSON (schema C(docs/schemas/change_report.schema.json)) and a self-contained HTML
    page (inline CSS and SVG, nothing loaded from the network), each with a C(change-report-latest) symlink.
  - Copies that outlive the run. With O(archive_dir) the three files are also written there (in AWX, a volume
    mounted into the execution environment). Under ansible-runner (AWX, C(bin/netmedic)) they are also written into
    the job's artifact directory (E(AWX_ISOLATED_DATA_DIR)), under C(netmedic/).
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
  archive_dir:
    description:
      - A second directory that receives a copy of the three report files (created 0700 if missing), for a report
        that must outlive the job's container (AWX). Retention does not touch it. Unset (the default) writes no copy.
    type: path
    version_added: 0.2.0
    env:
      - name: NETMEDIC_REPORT_ARCHIVE_DIR
    ini:
      - section: netmedic_change_report
        key: archive_dir
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
import difflib
import getpass
import json
import os
import re

import yaml
from ansible import context
from ansible.plugins.callback import CallbackBase

from ansible_collections.netmedic.k8s.plugins.module_utils import redact, report_html, reportfiles

SCHEMA_VERSION = 1
KEEP = ('catalog', 'backups', 'warnings', 'msg', 'restart_needed', 'remaining', 'failed_node', 'restarted',
        'removed', 'decision', 'findings', 'plan', 'unverified', 'daemonset', 'window', 'closes', 'proceed',
        'override_used')
ROLLOUT_KEYS = ('plan', 'restarted', 'failed_node', 'remaining', 'unverified')
HOST_COUNTERS = ('ok', 'changed', 'failures', 'ignored', 'rescued', 'skipped', 'unreachable')
# AWX (and Tower, older names) job facts passed as extra vars; the first one set wins.
AWX_VARS = (
    ('job_id', ('awx_job_id', 'tower_job_id')),
    ('job_template', ('awx_job_template_name', 'tower_job_template_name')),
    ('workflow_job_id', ('awx_workflow_job_id', 'tower_workflow_job_id')),
    ('user', ('awx_user_name', 'tower_user_name')),
    ('inventory', ('awx_inventory_name', 'tower_inventory_name')),
)
# Connection passwords whose names redact.py's word rule does not catch (ansible_become_pass, ansible_ssh_pass).
PASS_KEY = re.compile(r'(^|_)pass$|vault', re.I)
MAX_DIFF = 200000
EXTS = ('.md', '.json', '.html')

# What a backup entry may say in the report: where it is, never what it holds.
BACKUP_KEYS = ('of', 'path', 'configmap', 'node')
REPORT_NAME = re.compile(r'^change-report-(?P<stamp>\d{8}T\d{6}(?:\.\d{6})?Z(?:-\d+-[0-9a-f]+)?)\.(?:md|json|html)$')
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _plain(value):
    """JSON-safe copy (results can hold Ansible's own string/number wrappers)."""
    return json.loads(json.dumps(value, default=str))


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _backup_names(backups):
    out = []
    for backup in backups if isinstance(backups, list) else [backups]:
        if isinstance(backup, dict):
            out.append({k: backup[k] for k in BACKUP_KEYS if backup.get(k) not in (None, '')})
        else:
            out.append({'path': str(backup)})
    return out


def _mask_extra_vars(extra):
    masked = redact.redact(_plain(extra or {}))
    if isinstance(masked, dict):
        for key in list(masked):
            if PASS_KEY.search(str(key)) and masked[key] not in (None, ''):
                masked[key] = redact.MASK
    return masked


def _diff_text(value):
    if isinstance(value, dict):
        return json.dumps(value, indent=4, sort_keys=True) + '\n'
    return '' if value is None else str(value)


def render_diff(difflist):
    """Unified diff text, as the default callback prints ``--diff`` (same headers and context), without colours."""
    out = []
    for diff in difflist if isinstance(difflist, list) else [difflist]:
        if not isinstance(diff, dict):
            continue
        if 'before' in diff and 'after' in diff:
            before, after = _diff_text(diff['before']).splitlines(True), _diff_text(diff['after']).splitlines(True)
            for lines in (before, after):
                if lines and not lines[-1].endswith('\n'):
                    lines[-1] += '\n\\ No newline at end of file\n'
            lines = list(difflib.unified_diff(
                before, after, fromfile='before: %s' % diff['before_header'] if 'before_header' in diff else 'before',
                tofile='after: %s' % diff['after_header'] if 'after_header' in diff else 'after', fromfiledate='', tofiledate='', n=3))
            if lines:
                out.extend(lines)
                out.append('\n')
        if diff.get('prepared'):
            out.append(str(diff['prepared']))
    text = ''.join(out)
    if len(text) > MAX_DIFF:
        text = text[:MAX_DIFF] + '\n... (diff cut at %d characters)\n' % MAX_DIFF
    return text


def _entry_diff(item):
    """The diff of one result: its ``diff`` (with --diff) or one built from ``before``/``after``; secrets masked."""
    if item.get('diff'):
        return render_diff(redact.redact(_plain(item['diff'])))
    if item.get('changed') and 'before' in item and 'after' in item and item['before'] != item['after']:
        return render_diff(redact.redact(_plain({'before': item['before'], 'after': item['after']})))
    return ''


def _rescued(task):
    """Whether a failure of ``task`` is handled by a ``rescue`` of an enclosing block (counted as rescued)."""
    child, parent = task, getattr(task, '_parent', None)
    while parent is not None:
        uuid = getattr(child, '_uuid', None)
        if getattr(parent, 'rescue', None) and any(t is child or (uuid and getattr(t, '_uuid', None) == uuid)
                                                   for t in getattr(parent, 'block', None) or []):
            return True
        child, parent = parent, getattr(parent, '_parent', None)
    return False


def _read_git_revision(start):
    """The commit of the git checkout holding ``start`` (read from .git, no command run), or None."""
    path = os.path.abspath(start)
    while True:
        dot = os.path.join(path, '.git')
        if os.path.exists(dot):
            break
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    try:
        if os.path.isfile(dot):                     # a worktree or submodule: "gitdir: <path>"
            with open(dot, encoding='utf-8') as handle:
                dot = os.path.join(path, handle.read().split(':', 1)[1].strip())
        common = dot
        if os.path.isfile(os.path.join(dot, 'commondir')):
            with open(os.path.join(dot, 'commondir'), encoding='utf-8') as handle:
                common = os.path.join(dot, handle.read().strip())
        with open(os.path.join(dot, 'HEAD'), encoding='utf-8') as handle:
            head = handle.read().strip()
        if not head.startswith('ref:'):
            return head or None
        ref = head.split(':', 1)[1].strip()
        for base in (dot, common):
            if os.path.isfile(os.path.join(base, ref)):
                with open(os.path.join(base, ref), encoding='utf-8') as handle:
                    return handle.read().strip() or None
        packed = os.path.join(common, 'packed-refs')
        if os.path.isfile(packed):
            with open(packed, encoding='utf-8') as handle:
                for line in handle:
                    parts = line.split()
                    if len(parts) == 2 and parts[1] == ref:
                        return parts[0]
    except (OSError, IndexError):
        return None
    return None


def collection_version(root=COLLECTION_ROOT):
    """``{'name', 'version'}`` from the installed collection's MANIFEST.json or the source tree's galaxy.yml."""
    try:
        with open(os.path.join(root, 'MANIFEST.json'), encoding='utf-8') as handle:
            info = json.load(handle)['collection_info']
        return {'name': '%s.%s' % (info['namespace'], info['name']), 'version': str(info['version'])}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        with open(os.path.join(root, 'galaxy.yml'), encoding='utf-8') as handle:
            info = yaml.safe_load(handle)
        return {'name': '%s.%s' % (info['namespace'], info['name']), 'version': str(info['version'])}
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def _operator():
    try:
        return getpass.getuser()
    except (KeyError, OSError):                      # a container without a passwd entry
        return os.environ.get('USER') or os.environ.get('LOGNAME') or str(os.getuid())


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'netmedic.k8s.change_report'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.entries = []
        self.playbook = None
        self.playbook_dir = None
        self.extra_vars = {}
        self.window_checks = []
        self.read_only_plays = []
        self.starts = {}
        self.started = _now()

    def v2_playbook_on_start(self, playbook):
        name = getattr(playbook, '_file_name', '') or ''
        self.playbook = os.path.basename(name)
        self.playbook_dir = os.path.dirname(os.path.abspath(name)) if name else None

    def v2_playbook_on_play_start(self, play):
        try:
            self.extra_vars = dict(play.get_variable_manager().extra_vars or {})
        except (AttributeError, TypeError):
            self.extra_vars = {}
        play_vars = getattr(play, 'vars', None) or {}
        self.read_only_plays.append(str(play_vars.get('netmedic_read_only', '')).lower() in ('true', 'yes', '1'))

    def v2_runner_on_start(self, host, task):
        self.starts[(host.get_name(), getattr(task, '_uuid', None))] = _now().isoformat()

    def _record(self, result, status):
        task = result._task
        action = task.action or ''
        data = result._result or {}
        ours = action.startswith('netmedic.k8s.')
        if not ours and not data.get('changed') and status == 'ok':
            return
        host = result._host.get_name()
        finished = _now().isoformat()
        started = self.starts.get((host, getattr(task, '_uuid', None)), finished)
        if data.get('results') and isinstance(data['results'], list):
            items = data['results']
        else:
            items = [data]
        for item in items:
            if not isinstance(item, dict) or item.get('skipped'):
                continue
            failed = bool(item.get('failed')) or (status != 'ok' and item is data)
            entry = {
                'host': host,
                'task': task.get_name(),
                'action': action,
                'status': status if failed else 'ok',
                'changed': bool(item.get('changed')),
                'check_mode': bool(task.check_mode) if task.check_mode is not None else bool(context.CLIARGS.get('check')),
                'started': started,
                'finished': finished,
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
            diff = _entry_diff(item)
            if diff:
                entry['diff'] = diff
            elif entry['changed']:
                entry['diff_unavailable'] = True      # the module returned neither diff nor before/after: run with --diff
            entry = redact.redact(entry)
            entry['state'] = self._state(entry)
            self.entries.append(entry)
            if action in ('netmedic.k8s.change_window', 'change_window') and item.get('decision'):
                self.window_checks.append({k: entry.get(k) for k in ('host', 'task', 'finished', 'window', 'decision',
                                                                     'proceed', 'closes', 'override_used') if k in entry})

    @staticmethod
    def _state(e):
        """The entry's outcome in words, the same in every format."""
        if e['status'] == 'ignored':
            return 'failed, ignored (ignore_errors)'
        if e['status'] == 'rescued':
            return 'failed, rescued (rescue block ran)'
        if e['status'] in ('failed', 'unreachable'):
            return 'FAILED' if e['status'] == 'failed' else 'UNREACHABLE'
        if e.get('check_mode'):
            return 'would change (check mode)' if e['changed'] else 'no change (check mode)'
        return 'changed' if e['changed'] else 'no change'

    def v2_runner_on_ok(self, result):
        self._record(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, 'ignored' if ignore_errors else ('rescued' if _rescued(result._task) else 'failed'))

    def v2_runner_on_unreachable(self, result):
        now = _now().isoformat()
        entry = {'host': result._host.get_name(), 'task': result._task.get_name(), 'action': result._task.action,
                 'status': 'unreachable', 'changed': False, 'check_mode': bool(context.CLIARGS.get('check')),
                 'started': self.starts.get((result._host.get_name(), getattr(result._task, '_uuid', None)), now),
                 'finished': now, 'msg': redact.redact(_plain((result._result or {}).get('msg')))}
        entry['state'] = self._state(entry)
        self.entries.append(entry)

    def _header(self, check):
        extra = self.extra_vars or {}

        def first(names):
            for name in names:
                if extra.get(name) not in (None, ''):
                    return _plain(extra[name])
            return None
        awx = {key: first(names) for key, names in AWX_VARS}
        awx = {k: v for k, v in awx.items() if v is not None}
        inventory = awx.get('inventory') or [str(i) for i in context.CLIARGS.get('inventory') or []] or None
        change_id = extra.get('netmedic_change_id')
        change_id = str(change_id).strip() if change_id not in (None, '') else None
        revision = first(('awx_project_revision', 'tower_project_revision'))
        if not revision:
            for start in (COLLECTION_ROOT, self.playbook_dir):
                revision = start and _read_git_revision(start)
                if revision:
                    break
        window = redact.redact(_plain(extra.get('netmedic_window'))) if extra.get('netmedic_window') not in (None, '', {}) else None
        read_only = bool(self.read_only_plays) and all(self.read_only_plays)
        return {
            'mode': 'check' if check else 'apply',
            'read_only': read_only,
            'diff_mode': bool(context.CLIARGS.get('diff')),
            'change_id': change_id,
            'change_id_missing': bool(not check and not read_only and not change_id),
            'operator': awx.get('user') or _operator(),
            'awx': awx,
            'inventory': inventory,
            'limit': context.CLIARGS.get('subset') or None,
            'extra_vars': _mask_extra_vars(extra),
            'collection': collection_version(),
            'git_revision': revision or None,
            'window': {'requested': window, 'checks': self.window_checks},
        }

    @staticmethod
    def _rollouts(entries):
        out = []
        for e in entries:
            if any(k in e for k in ROLLOUT_KEYS[1:]) or ('plan' in e and e.get('action', '').endswith('daemonset_restart')):
                out.append({'host': e['host'], 'task': e['task'], 'action': e['action'], 'status': e['status'],
                            'finished': e['finished'], 'daemonset': e.get('daemonset'), 'plan': e.get('plan') or [],
                            'restarted': e.get('restarted') or [], 'failed_node': e.get('failed_node'),
                            'remaining': e.get('remaining') or [], 'unverified': e.get('unverified') or []})
        return out

    def v2_playbook_on_stats(self, stats):
        directory = self.get_option('report_dir') or './report'
        if not reportfiles.private_dir(directory) and reportfiles.dir_is_shared(directory):
            self._display.warning('netmedic change report: %s can be listed by other users (the reports are 0600)' % directory)
        finished = _now()
        name = 'change-report-%s' % reportfiles.stamp(finished)
        check = bool(context.CLIARGS.get('check'))
        retention = self._retention(directory, name, finished, check)
        report = {
            'schema_version': SCHEMA_VERSION,
            'playbook': self.playbook,
            'started': self.started.isoformat(),
            'finished': finished.isoformat(),
            'header': self._header(check),
            'hosts': {h: self._counts(stats.summarize(h)) for h in sorted(stats.processed)},
            'entries': self.entries,
            'rollouts': self._rollouts(self.entries),
            'retention': retention,
        }
        texts = {'.json': json.dumps(report, indent=2, sort_keys=True) + '\n', '.md': self._markdown(report),
                 '.html': report_html.change_report_html(report)}
        base = os.path.join(directory, name)
        for ext in EXTS:
            reportfiles.write_new(base + ext, texts[ext])
        for ext in EXTS:
            reportfiles.point(os.path.join(directory, 'change-report-latest' + ext), base + ext)
        if not check:
            for old in retention['runs']:
                for ext in EXTS:
                    reportfiles.remove_quietly_missing(os.path.join(directory, old + ext))
        copies = [self.get_option('archive_dir') or None]
        if os.environ.get('AWX_ISOLATED_DATA_DIR'):
            copies.append(os.path.join(os.environ['AWX_ISOLATED_DATA_DIR'], 'netmedic'))
        for copy in [c for c in copies if c]:
            try:
                reportfiles.private_dir(copy)
                for ext in EXTS:
                    reportfiles.write_new(os.path.join(copy, name + ext), texts[ext])
            except OSError as exc:
                self._display.warning('netmedic change report: no copy in %s: %s' % (copy, exc))
        # stderr: stdout may be a machine-readable stream (the json callback).
        self._display.display('netmedic change report: %s.md (and .json, .html)' % base, stderr=True)
        if report['header']['change_id_missing']:
            self._display.warning('netmedic change report: this apply run has no change ticket: pass -e netmedic_change_id=<ticket> '
                                  '(the report marks it missing)')

    @staticmethod
    def _counts(summary):
        return {key: int((summary or {}).get(key) or 0) for key in HOST_COUNTERS}

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
        head = report.get('header') or {}
        awx = head.get('awx') or {}
        window = head.get('window') or {}
        lines = ['# netmedic change report', '']
        if head.get('change_id_missing'):
            lines += ['> **NO CHANGE TICKET**: this apply run was started without `netmedic_change_id`.', '']
        lines += [
            '- Playbook: `%s`' % (report['playbook'] or '?'),
            '- Mode: **%s**%s' % (head.get('mode', '?'), ' (--diff)' if head.get('diff_mode') else ''),
            '- Change ticket: %s' % ('`%s`' % head['change_id'] if head.get('change_id') else '**missing**'),
            '- Operator: `%s`' % head.get('operator'),
            '- AWX job: %s' % (', '.join('%s `%s`' % (k, v) for k, v in sorted(awx.items())) or 'not run by AWX'),
            '- Inventory: %s, limit: %s' % (
                ', '.join('`%s`' % i for i in (head['inventory'] if isinstance(head.get('inventory'), list) else [head.get('inventory')]) if i)
                or '?', '`%s`' % head['limit'] if head.get('limit') else 'none'),
            '- Collection: %s, git revision: %s' % (
                '`%s %s`' % (head['collection']['name'], head['collection']['version']) if head.get('collection') else 'unknown',
                '`%s`' % head['git_revision'] if head.get('git_revision') else 'unknown'),
            '- Change window: %s%s' % ('`%s`' % json.dumps(window['requested']) if window.get('requested') else 'none given',
                                       ''.join('; %s' % c.get('decision') for c in window.get('checks') or [])),
            '- Extra vars (credentials masked): `%s`' % json.dumps(head.get('extra_vars') or {}, sort_keys=True),
            '- Started: %s, finished: %s' % (report['started'], report['finished']), '',
            '| Host | ok | changed | failed | ignored | rescued | skipped | unreachable |',
            '| --- | --- | --- | --- | --- | --- | --- | --- |']
        for host, s in report['hosts'].items():
            lines.append('| %s | %s |' % (host, ' | '.join(str(s.get(k, 0)) for k in HOST_COUNTERS)))
        lines.append('')
        for r in report.get('rollouts') or []:
            failed = r.get('failed_node') or {}
            lines.append('Rollout **%s**%s: restarted %s; failed node %s; remaining %s' % (
                r['task'], ' (`%s`)' % r['daemonset'] if r.get('daemonset') else '',
                ', '.join(str(x.get('node') if isinstance(x, dict) else x) for x in r['restarted']) or 'none',
                '%s (%s)' % (failed.get('node'), failed.get('reason')) if failed else 'none',
                ', '.join(str(x) for x in r['remaining']) or 'none'))
        if report.get('rollouts'):
            lines.append('')
        by_host = {}
        for entry in report['entries']:
            by_host.setdefault(entry['host'], []).append(entry)
        for host, entries in sorted(by_host.items()):
            lines += ['## %s' % host, '']
            for e in entries:
                head_line = '- **%s** `%s`%s: %s' % (e['task'], e['action'], (' [%s]' % e['item']) if 'item' in e else '', e['state'])
                if e.get('catalog'):
                    head_line += ' (catalog %s)' % ', '.join(e['catalog'])
                lines.append(head_line + ' - %s' % e.get('finished'))
                for backup in e.get('backups') or []:
                    where = backup.get('path') or backup.get('configmap') or 'returned in the task result (not copied into this report)'
                    lines.append('  - backup of %s: %s' % (backup.get('of', '?'), where))
                for warning in e.get('warnings') or []:
                    lines.append('  - warning: %s' % warning)
                if e['status'] != 'ok' and e.get('msg'):
                    lines.append('  - error: %s' % e['msg'])
                if e.get('remaining'):
                    lines.append('  - not done: %s' % ', '.join(str(r) for r in e['remaining']))
                if e.get('diff_unavailable'):
                    lines.append('  - diff: not returned by the module (run with --diff to record it)')
                if e.get('diff'):
                    lines += ['', '```diff', e['diff'].rstrip('\n').replace('```', "'''"), '```', '']
            lines.append('')
        retention = report.get('retention') or {}
        if retention.get('runs'):
            lines.append('Retention (keep %s newest, %s days): %s %s' % (
                retention['keep_count'] or 'all', retention['keep_days'] or 'any',
                'would remove (check mode)' if retention['check_mode'] else 'removed',
                ', '.join('`%s`' % r for r in retention['runs'])))
            lines.append('')
        return '\n'.join(lines)
