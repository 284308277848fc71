# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One shape for every module's result.

Every netmedic module returns ``changed``, ``before`` and ``after`` (the state it
read, and the state it made or, in check mode, would make), ``backups`` (where
anything it removed or replaced was kept), ``catalog`` (the catalog IDs it acts on)
and, with ``--diff``, a ``diff`` list whose items Ansible renders one after another.

Credentials are masked here, for every module at once (``redact``): a key such as
``access_secret`` shows ``********`` in ``before``/``after``/``diff``/``backups`` and in any
extra result key, also inside text values such as a ConfigMap's JSON; the values found are
added to the module's ``no_log_values``, so Ansible masks them in ``invocation`` too. Backups
themselves (files, backup ConfigMaps) keep the real data.
"""

from __future__ import annotations

import json

from ansible_collections.netmedic.k8s.plugins.module_utils import redact as _redact


def _text(value):
    if value is None:
        return ''
    if isinstance(value, str):
        return value if value.endswith('\n') or not value else value + '\n'
    return json.dumps(value, indent=2, sort_keys=True) + '\n'


class Result(object):
    def __init__(self, module, catalog):
        self.module = module
        self.catalog = list(catalog)
        self.changed = False
        self.before = {}
        self.after = {}
        self.diffs = []
        self.backups = []
        self.warnings = []
        self.extra = {}
        _redact.narrow_kubeconfig_no_log(module)

    def add_diff(self, before, after, header):
        """Record one change; ``before``/``after`` are text or JSON-able data."""
        if before == after:
            return
        self.changed = True
        self.diffs.append({
            'before': _text(before),
            'after': _text(after),
            'before_header': '%s (before)' % header,
            'after_header': '%s (after)' % header,
        })

    def add_backup(self, path, what):
        if path:
            self.backups.append({'path': path, 'of': what})

    def warn(self, msg):
        if msg not in self.warnings:
            self.warnings.append(msg)
            self.module.warn(msg)

    def to_dict(self):
        data = {
            'changed': self.changed,
            'catalog': self.catalog,
            'before': self.before,
            'after': self.after,
            'backups': self.backups,
        }
        if self.module._diff:
            data['diff'] = self.diffs
        data.update(self.extra)
        return self.masked(data)

    def masked(self, data):
        """``data`` with credentials masked; their values join the module's ``no_log_values``."""
        no_log = getattr(self.module, 'no_log_values', None)
        values = _redact.secret_values(data)
        if isinstance(no_log, set):
            no_log.update(v for v in values if len(v) >= _redact.MIN_SEARCH_LEN)
        return _redact.redact(data, extra_values=values)

    def exit(self):
        self.module.exit_json(**self.to_dict())

    def fail(self, msg, **kwargs):
        data = self.to_dict()
        data.update(self.masked(dict(kwargs, msg=msg)))
        data.pop('changed', None)
        self.module.fail_json(changed=self.changed, **data)
