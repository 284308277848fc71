"""The module fork server of the API-double suite (tests/forkserver/forkserver.py) stands in for a fresh interpreter.

Every ``ansible-playbook`` run of this suite starts its module processes through it (issue 12: CI time), so what
its docstring promises is proved here, each case on a forked child (the script prints a marker only a fork has:
the preloaded ``kubernetes.client``): the script on stdin runs as ``__main__`` with the client's environment,
working directory, umask and pipes; the exit status (code or signal, SIGKILL and SIGINT included) is the client's;
a signal for the job reaches the child; a killed client kills the child; atexit handlers and non-daemon threads
finish; no collection is preloaded; anything the server cannot stand in for runs the real interpreter. A cluster
module run through ``ansible-playbook`` both ways, results compared, is tests/cluster/test_module_forkserver.py (on the
double and the real kube-apiserver; ported from here, issue 15 item 4).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.forkserver import forkserver
from tests.lab.playbook_run import module_python, module_pythonpath

DOUBLE_ONLY = 'no-cluster: the module fork server (tests/forkserver) against a fresh interpreter'

FORKED = "import sys; FORKED = 'kubernetes.client' in sys.modules\n"


@pytest.fixture(scope='module')
def client():
    # The server under test, also where NETMEDIC_TEST_FORKSERVER=0 turns it off for the playbook runs.
    saved = os.environ.pop(forkserver.ENV_VAR, None)
    try:
        python, env = module_python()
    finally:
        if saved is not None:
            os.environ[forkserver.ENV_VAR] = saved
    assert python != sys.executable
    # as playbook_env gives it to ansible-playbook (PYTHONPATH is one of the start-up variables the server pins)
    return python, dict(os.environ, PYTHONPATH=module_pythonpath(), **env)


def _run(client, script, *args, cwd=None, extra_env=None, timeout=60, **kwargs):
    python, env = client
    return subprocess.run([python, *args], input=FORKED + textwrap.dedent(script), env=dict(env, **(extra_env or {})),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def _wait_for(path, timeout=60):
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.read_text()


def _alive(pid):
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii') as handle:
            return handle.read().split(') ')[-1][0] != 'Z'
    except (FileNotFoundError, ProcessLookupError):
        # ProcessLookupError: reaped between the open and the read (the CI run of ea2cfb1 failed on it): gone as well
        return False


def test_alive_takes_a_process_reaped_while_its_stat_is_read_as_gone(monkeypatch):
    class Reaped:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            raise ProcessLookupError(3, 'No such process')
    monkeypatch.setattr(sys.modules[__name__], 'open', lambda *a, **k: Reaped(), raising=False)
    assert _alive(12345) is False


def test_child_runs_the_script_on_stdin_as_main_with_the_clients_environment(client, tmp_path):
    proc = _run(client, """
        import os
        umask = os.umask(0)
        print(FORKED, __name__, repr(sys.argv), os.getcwd(), os.environ['NM_PROBE'], 'NM_SERVER_ONLY' in os.environ,
              oct(umask), os.getpgid(0) == os.getpid())
        sys.stderr.write('to stderr\\n')
        sys.exit(3)
        """, cwd=str(tmp_path), extra_env={'NM_PROBE': 'probe-value'}, preexec_fn=lambda: os.umask(0o027))
    assert proc.returncode == 3, proc
    assert proc.stdout == "True __main__ [''] %s probe-value False 0o27 True\n" % tmp_path
    assert proc.stderr == 'to stderr\n'


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
def test_a_child_ended_by_a_signal_ends_the_client_by_the_same_signal(client, signum):
    proc = _run(client, "assert FORKED\nimport os\nos.kill(os.getpid(), %d)\n" % signum)
    assert proc.returncode == -signum, proc
    if signum == signal.SIGINT:          # an uncaught KeyboardInterrupt, as an interpreter reports it
        assert 'KeyboardInterrupt' in proc.stderr


def test_an_uncaught_exception_exits_1_with_the_traceback(client):
    proc = _run(client, "assert FORKED\nraise ValueError('boom')\n")
    assert proc.returncode == 1
    assert 'ValueError: boom' in proc.stderr and 'AssertionError' not in proc.stderr


def test_atexit_handlers_and_non_daemon_threads_finish_before_the_child_ends(client, tmp_path):
    proc = _run(client, """
        import atexit, pathlib, threading, time
        atexit.register(lambda: pathlib.Path(%r).write_text('atexit ran'))
        def late():
            time.sleep(0.5)
            pathlib.Path(%r).write_text('thread finished')
        threading.Thread(target=late).start()
        print(FORKED)
        """ % (str(tmp_path / 'atexit'), str(tmp_path / 'thread')))
    assert proc.returncode == 0 and proc.stdout == 'True\n', proc
    assert (tmp_path / 'atexit').read_text() == 'atexit ran'
    assert (tmp_path / 'thread').read_text() == 'thread finished'


def test_a_signal_for_the_job_reaches_the_child(client, tmp_path):
    """ansible-core's worker sends the job's SIGTERM to its process group: the client's; the child gets it."""
    python, env = client
    ready = tmp_path / 'ready'
    script = FORKED + textwrap.dedent("""
        import os, pathlib, signal, sys, time
        def term(signum, _frame):
            pathlib.Path(%r).write_text('got %%d' %% signum)
            sys.exit(7)
        signal.signal(signal.SIGTERM, term)
        pathlib.Path(%r).write_text(str(FORKED))
        time.sleep(120)
        """ % (str(tmp_path / 'got'), str(ready)))
    proc = subprocess.Popen([python], stdin=subprocess.PIPE, env=env, text=True)  # pylint: disable=consider-using-with
    proc.stdin.write(script)
    proc.stdin.close()
    assert _wait_for(ready) == 'True'
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 7
    assert (tmp_path / 'got').read_text() == 'got %d' % signal.SIGTERM


def test_killing_the_client_kills_the_child_and_its_process_group(client, tmp_path):
    pidfile = tmp_path / 'pids'
    python, env = client
    script = FORKED + textwrap.dedent("""
        import os, pathlib, subprocess, time
        assert FORKED
        sleeper = subprocess.Popen(['sleep', '300'])
        pathlib.Path(%r).write_text('%%d %%d' %% (os.getpid(), sleeper.pid))
        time.sleep(300)
        """ % str(pidfile))
    proc = subprocess.Popen([python], stdin=subprocess.PIPE, env=env, text=True)  # pylint: disable=consider-using-with
    proc.stdin.write(script)
    proc.stdin.close()
    child, sleeper = (int(p) for p in _wait_for(pidfile).split())
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in (child, sleeper)):
        time.sleep(0.05)
    assert not _alive(child) and not _alive(sleeper), 'the module child (or its command) outlived the killed job'


def test_no_collection_is_preloaded_nor_importable_from_the_checkout(client):
    """A module_utils the AnsiballZ zip would not carry cannot be imported by the child (nothing preloaded it)."""
    proc = _run(client, """
        assert FORKED
        assert not [name for name in sys.modules if name.startswith('ansible_collections')]
        import ansible_collections.netmedic.k8s.plugins.module_utils.neigh
        """)
    assert proc.returncode == 1 and 'ModuleNotFoundError' in proc.stderr, proc


@pytest.mark.parametrize('case', ['arguments', 'no variable', 'no server', 'other PYTHONPATH'])
def test_what_the_server_cannot_stand_in_for_runs_the_real_interpreter(client, tmp_path, case):
    python, env = client
    env = dict(env)
    args = []
    if case == 'arguments':
        args = ['-']
    elif case == 'no variable':
        env.pop(forkserver.ENV_VAR)
    elif case == 'no server':
        env[forkserver.ENV_VAR] = str(tmp_path / 'no-such-socket')
    else:
        env['PYTHONPATH'] = os.pathsep.join([str(tmp_path), env.get('PYTHONPATH', '')])
    proc = subprocess.run([python, *args], input=FORKED + 'print(FORKED, sys.argv, sys.executable)\n', env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "False [%r] %s" % ('-' if args else '', sys.executable)
