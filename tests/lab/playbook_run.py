"""The one ``ansible-playbook`` runner of the API-double suite (issue 13: no test file keeps its own copy).

``run_playbook(double, tmp_path, playbook, *extra, ...)`` runs a playbook (one of the collection's, or one a test
wrote) against ``double`` and returns ``(rc, results, output)``:

- ``inventory=None`` (default): ``-i localhost, -c local`` with ``netmedic_targets=no_nodes_here`` (the node plays
  match no host); ``inventory=<path>``: that inventory, nothing added (the test's hosts are its "nodes").
- ``results``: ``{task name: localhost result}`` (``by_host=False``, default) or ``{task name: {host: result}}``
  merged over every play and serial batch (``by_host=True``); ``None`` with ``callback=None`` (Ansible's default
  stdout callback, for tests that read the human output).
- ``check=True`` adds ``--check --diff``; ``diff=True`` adds ``--diff`` alone.
- ``env`` is merged last into the environment (``None`` removes a variable); ``extra_vars`` become ``-e`` JSON.
- every run carries the test change ticket ``TEST_CHANGE_ID`` (issue 11); ``change_id=None`` runs without one.
- every run carries ``FAST_VARS`` (the roles' poll intervals, low: issue 12); a test's own ``-e`` wins.
- ``timeout`` (s) is a hang guard, not a speed limit: a playbook run takes minutes on a loaded 2-core machine.

``run_process`` returns the ``CompletedProcess`` instead (stdout and stderr apart); ``playbook_command``/``playbook_env``
build the same command and environment for a test that starts the process
itself (``subprocess.Popen``: two jobs at once).

Speed (issue 12): every run is one ``ansible-playbook`` process; the environment turns off what a test never needs
(fact gathering where a play does not ask for it, retry files, deprecation output) and uses pipelining, so a module
runs as one process per task with no temporary files copied over the local connection.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import yaml

from tests.forkserver import forkserver

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name('ansible-playbook'))
JSON_CALLBACK = 'ansible.posix.json'
# Issue 11: an apply run needs a change ticket (role change_guard refuses one without). Every run here carries this
# test ticket; a test that needs a run without one adds '-e netmedic_change_id=' (a later -e wins).
TEST_CHANGE_ID = 'CHG-TEST-0001'

BYTECODE_CACHE = str(ROOT / 'tests' / 'bytecode_cache')


def module_pythonpath():
    """``PYTHONPATH`` of a module process: the bytecode cache first, then this process's own."""
    return os.pathsep.join(p for p in (BYTECODE_CACHE, os.environ.get('PYTHONPATH')) if p)


# Settings for speed only; none changes what a play does (every playbook of the collection states gather_facts).
SPEED_ENV = {
    'ANSIBLE_GATHERING': 'explicit',
    'ANSIBLE_PIPELINING': '1',
    'ANSIBLE_RETRY_FILES_ENABLED': '0',
    'ANSIBLE_DEPRECATION_WARNINGS': '0',
    'ANSIBLE_NOCOLOR': '1',
}


# Poll intervals of the collection's roles, set low for the double (issue 12): how often a wait reads the state, never
# how long it may take (every timeout keeps its production default). Production defaults: verified_rollout 2 s (the
# DaemonSet restarts of W-2/W-3/W-4/W-5/C-5/C-6), W-2's wait for the rebooted Node to be Ready 5 s.
# Passed before the test's own -e values, so a test that sets one itself wins.
FAST_VARS = {'verified_rollout_poll_interval': 0.2, 'netmedic_ready_poll_interval': 1}

# Module processes as forks of a warm interpreter (tests/forkserver/forkserver.py says how and what it keeps true):
# what it pre-imports, the one server of this test process, NETMEDIC_TEST_FORKSERVER=0 turns it off.
# Only what every cluster module process imports from this venv in a real run too (ansible-core, the kubernetes client
# and what kubernetes.core's client module_utils import with it); never a collection: collections come from the
# AnsiballZ zip, as on a node.
FORKSERVER_PRELOAD = ('ansible.module_utils.basic', 'ansible.module_utils._internal._ansiballz._loader', 'kubernetes',
                      'kubernetes.dynamic', 'kubernetes_validate')
_FORKSERVER = {'dirs': []}
# The environment the server starts with: this process's as it was on import, before any test patched it (a run whose
# start-up variables differ from it gets a real interpreter: forkserver.STARTUP_VARS).
_SERVER_ENV = dict(os.environ)
_SERVER_ENV['PYTHONPATH'] = module_pythonpath()


def _stop_forkserver():
    proc = _FORKSERVER.pop('proc', None)
    if proc is not None:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    while _FORKSERVER['dirs']:
        shutil.rmtree(_FORKSERVER['dirs'].pop(), ignore_errors=True)


def module_python():
    """``(interpreter, environment)`` for module processes: the fork server's client and its socket (started on
    first use, one per test process; its log: ``server.log`` beside the client), or this interpreter and nothing
    when NETMEDIC_TEST_FORKSERVER=0."""
    if os.environ.get(forkserver.ENV_VAR) == '0':
        return sys.executable, {}
    proc = _FORKSERVER.get('proc')
    if proc is None or proc.poll() is not None:
        # A server that died is replaced; its directory stays until the end (inventories may name its client,
        # which then runs the real interpreter: its socket is gone).
        directory = tempfile.mkdtemp(prefix='nm-forkserver-')
        _FORKSERVER['dirs'].append(directory)
        socket_path = os.path.join(directory, 'socket')
        with open(os.path.join(directory, 'server.log'), 'w', encoding='utf-8') as log:
            proc = subprocess.Popen([sys.executable, forkserver.__file__, socket_path, *FORKSERVER_PRELOAD], env=_SERVER_ENV,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                    start_new_session=True)
        if proc.stdout.readline().strip() != 'ready':
            proc.kill()
            raise RuntimeError('the module fork server did not start (tests/forkserver/forkserver.py): see %s/server.log' % directory)
        _FORKSERVER.update(proc=proc, socket=socket_path, client=forkserver.client_script(directory, environ=_SERVER_ENV))
        if not _FORKSERVER.get('atexit'):
            atexit.register(_stop_forkserver)
            _FORKSERVER['atexit'] = True
    return _FORKSERVER['client'], {forkserver.ENV_VAR: _FORKSERVER['socket']}


def playbook_env(double, tmp_path, env=None, callback=JSON_CALLBACK):
    """The environment of a run: ``double``'s kubeconfig, this checkout as netmedic.k8s, the change report (if the
    test enables its callback) under ``tmp_path/report``, no ansible.cfg (the test states what it needs)."""
    python, python_env = module_python()
    environ = dict(os.environ, K8S_AUTH_KUBECONFIG=str(double.kubeconfig_path),
                   ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'), ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'),
                   ANSIBLE_PYTHON_INTERPRETER=python, NETMEDIC_REPORT_DIR=str(tmp_path / 'report'), **SPEED_ENV, **python_env)
    if getattr(double, 'context', None):
        environ['K8S_AUTH_CONTEXT'] = double.context      # a tests/cluster Cluster on a named context
    if callback:
        environ.update(ANSIBLE_STDOUT_CALLBACK=callback, ANSIBLE_LOAD_CALLBACK_PLUGINS='1')
    environ.pop('ANSIBLE_CONFIG', None)
    # The bytecode of AnsiballZ zips is kept between module runs (tests/bytecode_cache/sitecustomize.py).
    environ['PYTHONPATH'] = module_pythonpath()
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = str(value)
    return environ


def playbook_command(playbook, *extra, inventory=None, check=False, diff=False, extra_vars=None, change_id=TEST_CHANGE_ID):
    """The ``ansible-playbook`` argument list (see the module docstring); ``change_id=None`` passes no ticket."""
    if inventory is None:
        cmd = [ANSIBLE_PLAYBOOK, '-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=%s' % module_python()[0],
               '-e', 'netmedic_targets=no_nodes_here']
    else:
        cmd = [ANSIBLE_PLAYBOOK, '-i', str(inventory)]
    cmd += ['-e', json.dumps(FAST_VARS)]
    if change_id is not None:
        cmd += ['-e', 'netmedic_change_id=%s' % change_id]
    if extra_vars:
        cmd += ['-e', json.dumps(extra_vars)]
    cmd += [str(playbook), *[str(a) for a in extra]]
    if check:
        cmd += ['--check', '--diff']
    elif diff:
        cmd.append('--diff')
    return cmd


def parse_results(stdout, by_host=False):
    """``{task name: localhost result}`` or ``{task name: {host: result}}`` from the json callback's output."""
    data = json.loads(stdout)
    results = {}
    for play in data['plays']:
        for task in play['tasks']:
            if by_host:
                results.setdefault(task['task']['name'], {}).update(task['hosts'])
            elif 'localhost' in task['hosts']:
                results[task['task']['name']] = task['hosts']['localhost']
    return results


def run_process(double, tmp_path, playbook, *extra, check=False, diff=False, timeout=1200, inventory=None, env=None,
                extra_vars=None, callback=JSON_CALLBACK, cwd=None, change_id=TEST_CHANGE_ID):
    """One ``ansible-playbook`` run to its end; the ``subprocess.CompletedProcess`` (stdout and stderr apart)."""
    cmd = playbook_command(playbook, *extra, inventory=inventory, check=check, diff=diff, extra_vars=extra_vars,
                           change_id=change_id)
    return subprocess.run(cmd, env=playbook_env(double, tmp_path, env, callback), cwd=str(cwd or tmp_path),
                          capture_output=True, text=True, timeout=timeout, check=False)


def run_playbook(double, tmp_path, playbook, *extra, by_host=False, callback=JSON_CALLBACK, **kwargs):
    """``(rc, results, output)`` of one run (see the module docstring); ``kwargs`` as ``run_process`` takes them."""
    proc = run_process(double, tmp_path, playbook, *extra, callback=callback, **kwargs)
    output = proc.stdout + proc.stderr
    if callback != JSON_CALLBACK:
        return proc.returncode, None, output
    try:
        results = parse_results(proc.stdout, by_host=by_host)
    except ValueError as exc:
        raise AssertionError('no JSON from ansible-playbook (rc=%s)\n%s\n%s' % (proc.returncode, proc.stdout, proc.stderr)) from exc
    return proc.returncode, results, output


# Play-level module_defaults of the ``playbook`` fixtures' plays (issue 12, speed): the waits of the modules that poll
# read every 0.25 s instead of their 2 s default. A task (or a role) that sets poll_interval keeps its own value;
# every timeout is unchanged, so a test's waits end as before, only sooner once the state is reached.
FAST_POLL = {'netmedic.k8s.daemonset_restart': {'poll_interval': 0.25}, 'netmedic.k8s.node_drain': {'poll_interval': 0.25}}


def write_play(path, tasks, fast_poll=True):
    """A one-play playbook on localhost from ``tasks`` (YAML text or a list); returns ``path``."""
    play = {'hosts': 'localhost', 'gather_facts': False, 'vars': {'ansible_python_interpreter': module_python()[0]},
            'tasks': yaml.safe_load(textwrap.dedent(tasks)) if isinstance(tasks, str) else tasks}
    if fast_poll:
        play['module_defaults'] = FAST_POLL
    path.write_text(yaml.safe_dump([play]))
    return path


# ansible-core (2.21) starts a local RPC server in every ansible-playbook process on an AF_UNIX
# socket under $TMPDIR/pymp-XXXXXXXX/listener-XXXXXXXX; a socket path longer than 107 bytes cannot
# be bound, the error stays in the server thread and the run dies 5 s later with "Local RPC server
# did not start." (Python 3.13.0 has no fallback to a shorter directory).  pytest's per-test
# directories carry up to 31 characters of the test name, and under pytest-xdist another
# "popen-gwN/": a TMPDIR below tmp_path then runs over.  Keep tmp_path short instead.
SOCKET_PATH_MAX = 107
RPC_SOCKET_SUFFIX = len('/pymp-XXXXXXXX/listener-XXXXXXXX')


def short_tmp_path(request, tmp_path_factory):
    """A short per-test directory (``<basetemp>/<first 12 chars of the test name>N``), see above: the suites'
    ``tmp_path`` fixture (tests/lab, tests/cluster) returns this."""
    import pytest

    name = ''.join(c if c.isalnum() else '_' for c in request.node.name)[:12]
    path = tmp_path_factory.mktemp(name, numbered=True)
    # Room for the RPC socket under e.g. tmp_path/'tmp-job1' (node_rotation_spine) or tmp_path/'tmp'.
    if len(str(path)) + len('/tmp-something') + RPC_SOCKET_SUFFIX > SOCKET_PATH_MAX:
        pytest.fail('temporary directory %s is too long for ansible-core\'s local RPC socket (AF_UNIX, %d bytes): '
                    'run pytest with a shorter --basetemp' % (path, SOCKET_PATH_MAX))
    return path
