"""Run the collection's modules in the test process, as Ansible runs them on a node (issue 12).

One copy for every suite that calls a module's ``main()`` directly: the unit tests
(``tests/unit/plugins/modules``) and the API-double suite (``tests/lab``, fixture ``module_tasks``).

``run_main`` hands ``main()`` the arguments the way ``AnsiballZ`` does (``patch_module_args`` plus
the ``_ansible_*`` keys the controller adds: check mode, diff, module name, a private temporary
directory), captures what ``exit_json``/``fail_json`` print, and returns the exit code and the
decoded result.  Nothing else is faked: a module that talks to the API double does so over HTTP
through the real ``kubernetes`` client, exactly as in an ``ansible-playbook`` run.

``run_tasks`` takes the same task list as the lab's ``playbook`` fixture (name, module, options,
``check_mode``, ``diff``, ``ignore_errors``, ``register``) and returns what that fixture returns:
``(rc, {task name: result}, output)``.  Anything else a playbook could do (loops, ``when``,
templating, other keywords) is refused, so a test that needs Ansible itself keeps ``playbook``.

Global state a real module process starts without is reset for every run: the warning and
deprecation lists of ``ansible.module_utils.common.warnings``, and ``_internal.is_controller``
(once controller code is imported in the process, ansible-core marks it as the controller and
``AnsibleModule.warn`` would print through the controller's Display instead of returning the
warning in the result).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import tempfile
import traceback

import yaml
from ansible.module_utils import _internal
from ansible.module_utils.common import warnings as _warnings
from ansible.module_utils.json_utils import _filter_non_json_lines
from ansible.module_utils.testing import patch_module_args

COLLECTION = 'netmedic.k8s'
MODULE_PACKAGE = 'ansible_collections.netmedic.k8s.plugins.modules'
# Task keywords run_tasks understands; any other key is taken as the module (one per task).
TASK_KEYWORDS = ('name', 'check_mode', 'diff', 'ignore_errors', 'register')


def set_module_side(monkeypatch):
    """Make the process behave as a managed node for the rest of the test (see the module docstring)."""
    monkeypatch.setattr(_internal, 'is_controller', False)


@contextlib.contextmanager
def _module_process(env):
    """What a fresh module process has: no warnings collected yet, node side, ``env`` in the environment."""
    saved_env = {key: os.environ.get(key) for key in env}
    saved = (_warnings._global_warnings.copy(), _warnings._global_deprecations.copy(), _internal.is_controller)
    _warnings._global_warnings.clear()
    _warnings._global_deprecations.clear()
    _internal.is_controller = False
    try:
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = str(value)
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _warnings._global_warnings.clear()
        _warnings._global_deprecations.clear()
        _warnings._global_warnings.update(saved[0])
        _warnings._global_deprecations.update(saved[1])
        _internal.is_controller = saved[2]


def load_module(module):
    """The module object for ``module``: a module already imported, or a name such as ``'node_drain'``."""
    if isinstance(module, str):
        name = module.rsplit('.', 1)[-1]
        if module not in (name, '%s.%s' % (COLLECTION, name)):
            raise ValueError('not a module of %s: %r' % (COLLECTION, module))
        return importlib.import_module('%s.%s' % (MODULE_PACKAGE, name))
    return module


def run_main(module, args, check_mode=False, diff=False, env=None, tmpdir=None):
    """Run ``module.main()`` with ``args``; returns ``(exit code, result dict, raw output)``.

    ``env`` is set in ``os.environ`` for the run only (``None`` removes a variable).  The result
    is the JSON the module printed, as the controller receives it (``no_log`` values already
    masked by the module).  A module that raises or exits without printing a result gives the
    ``MODULE FAILURE`` result Ansible would report (``failed``, ``module_stderr`` = traceback).
    """
    module = load_module(module)
    own_tmp = tmpdir is None
    tmpdir = tempfile.mkdtemp(prefix='nm-mod-') if own_tmp else str(tmpdir)
    full_args = dict(args)
    full_args.update({
        '_ansible_check_mode': bool(check_mode),
        '_ansible_diff': bool(diff),
        '_ansible_no_log': False,
        '_ansible_verbosity': 0,
        '_ansible_module_name': '%s.%s' % (COLLECTION, module.__name__.rsplit('.', 1)[-1]),
        '_ansible_tmpdir': tmpdir,
        '_ansible_remote_tmp': tmpdir,
        '_ansible_keep_remote_files': False,
    })
    out = io.StringIO()
    code, crash = None, None
    try:
        with _module_process(env or {}), patch_module_args(full_args), contextlib.redirect_stdout(out):
            try:
                module.main()
            except SystemExit as exc:
                code = exc.code
            except Exception:  # reported as Ansible reports a module crash
                crash = traceback.format_exc()
    finally:
        if own_tmp:
            import shutil
            shutil.rmtree(tmpdir, ignore_errors=True)
    raw = out.getvalue()
    if crash is not None or code is None:
        result = {'failed': True, 'changed': False, 'rc': 1, 'module_stdout': raw,
                  'module_stderr': crash or 'main() returned without exit_json/fail_json',
                  'msg': 'MODULE FAILURE: See stdout/stderr for the exact error'}
        return 1, result, raw + (crash or '')
    try:
        text, _junk = _filter_non_json_lines(raw, objects_only=True)
        result = json.loads(text)
    except ValueError:
        result = {'failed': True, 'changed': False, 'rc': code, 'module_stdout': raw,
                  'msg': 'MODULE FAILURE: no JSON result in the module output'}
    result = _as_controller_sees_it(result)
    result.setdefault('action', full_args['_ansible_module_name'])
    return int(code or 0), result, raw


def _as_controller_sees_it(result):
    """The module result as a task result: ``changed`` always, ``failed`` only when true (``rc``
    not 0 counts, as in the task executor), warnings/deprecations as the message strings."""
    result.setdefault('changed', False)
    # A task result names `failed` only when the task failed (a module's `failed: false` is dropped).
    if result.get('failed') or ('failed' not in result and 'rc' in result and result['rc'] not in (0, '0')):
        result['failed'] = True
    else:
        result.pop('failed', None)
    for key in ('warnings', 'deprecations'):
        if key in result:
            result[key] = [_message(item) for item in result[key]]
    return result


def _message(item):
    if isinstance(item, dict):
        event = item.get('event', item)
        if isinstance(event, dict) and 'msg' in event:
            return event['msg']
        return item.get('msg', json.dumps(item, sort_keys=True))
    return item


def run_tasks(tasks, env=None, tmpdir=None):
    """Run a task list (YAML text or list) module by module, in order, like a one-host play.

    Returns ``(rc, {task name: result}, output)``: ``rc`` is 2 when a task failed without
    ``ignore_errors`` (the play stops there, as ``ansible-playbook`` does), else 0.
    """
    if isinstance(tasks, str):
        tasks = yaml.safe_load(tasks)
    results, output, rc = {}, [], 0
    for task in tasks:
        unknown = [k for k in task if k not in TASK_KEYWORDS]
        if len(unknown) != 1:
            raise ValueError('run_tasks needs exactly one module per task and only the keywords %s; '
                             'use the playbook fixture for %r' % (', '.join(TASK_KEYWORDS), task))
        module_name = unknown[0]
        args = task[module_name] or {}
        if '{{' in json.dumps(args, default=str) or '{%' in json.dumps(args, default=str):
            raise ValueError('run_tasks does not template; use the playbook fixture for %r' % (task,))
        name = task.get('name', module_name)
        _code, result, raw = run_main(module_name, args, check_mode=task.get('check_mode', False),
                                      diff=task.get('diff', False), env=env, tmpdir=tmpdir)
        results[name] = result
        output.append(raw)
        if result.get('failed') and not task.get('ignore_errors'):
            rc = 2
            break
    return rc, results, '\n'.join(output)
