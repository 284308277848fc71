"""The module fork server of the API-double suite (tests/forkserver/forkserver.py) stands in for a fresh interpreter.

Every playbook run of this suite starts its module processes through it (issue 12: CI time), so what it promises is
proved here: the child sees the script on stdin as ``__main__`` with the client's environment, working directory,
arguments and pipes; its exit status (code or signal) is the client's; a killed client (a job killed midway) kills
the child; a module cannot import what the AnsiballZ zip would not carry; anything but a pipelined script runs the
real interpreter.
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
from tests.lab.playbook_run import module_python


@pytest.fixture(scope='module')
def client():
    python, env = module_python()
    assert python != sys.executable, 'NETMEDIC_TEST_FORKSERVER=0: these tests need the server'
    return python, dict(os.environ, **env)


def _run(client, script, *args, cwd=None, extra_env=None, timeout=60):
    python, env = client
    return subprocess.run([python, *args], input=textwrap.dedent(script), env=dict(env, **(extra_env or {})), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_child_runs_the_script_on_stdin_as_main_with_the_clients_environment(client, tmp_path):
    proc = _run(client, """
        import os, sys
        print(__name__, repr(sys.argv), os.getcwd(), os.environ['NM_PROBE'], os.getpgid(0) == os.getpid())
        sys.stderr.write('to stderr\\n')
        sys.exit(3)
        """, cwd=str(tmp_path), extra_env={'NM_PROBE': 'probe-value'})
    assert proc.returncode == 3, proc
    assert proc.stdout == "__main__ [''] %s probe-value True\n" % tmp_path
    assert proc.stderr == 'to stderr\n'


def test_a_child_ended_by_a_signal_ends_the_client_by_the_same_signal(client):
    proc = _run(client, "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    assert proc.returncode == -signal.SIGTERM, proc


def test_an_uncaught_exception_exits_1_with_the_traceback(client):
    proc = _run(client, "raise ValueError('boom')\n")
    assert proc.returncode == 1
    assert 'ValueError: boom' in proc.stderr


def test_killing_the_client_kills_the_child_and_its_process_group(client, tmp_path):
    pidfile = tmp_path / 'pids'
    python, env = client
    script = textwrap.dedent("""
        import os, subprocess, sys, time
        sleeper = subprocess.Popen(['sleep', '300'])
        open(sys.argv[0] or %r, 'w').write('%%d %%d' %% (os.getpid(), sleeper.pid))
        time.sleep(300)
        """ % str(pidfile))
    proc = subprocess.Popen([python], stdin=subprocess.PIPE, env=env, text=True)  # pylint: disable=consider-using-with
    proc.stdin.write(script)
    proc.stdin.close()
    deadline = time.monotonic() + 60
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child, sleeper = (int(p) for p in pidfile.read_text().split())
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in (child, sleeper)):
        time.sleep(0.05)
    assert not _alive(child) and not _alive(sleeper), 'the module child (or its command) outlived the killed job'


def _alive(pid):
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii') as handle:
            return handle.read().split(') ')[-1][0] != 'Z'
    except FileNotFoundError:
        return False


def test_no_collection_is_preloaded_nor_importable_from_the_checkout(client):
    """A module_utils the AnsiballZ zip would not carry cannot be imported by the child (nothing preloaded it)."""
    proc = _run(client, """
        import sys
        assert 'kubernetes.client' in sys.modules   # preloaded
        assert not [name for name in sys.modules if name.startswith('ansible_collections')]
        import ansible_collections.netmedic.k8s.plugins.module_utils.neigh
        """)
    assert proc.returncode == 1 and 'ModuleNotFoundError' in proc.stderr, proc


def test_arguments_or_no_server_run_the_real_interpreter(client):
    python, env = client
    with_args = subprocess.run([python, '-c', 'import sys; print(sys.executable)'], env=env, capture_output=True,
                               text=True, timeout=60, check=True)
    assert with_args.stdout.strip() == sys.executable
    env_off = dict(env)
    env_off.pop(forkserver.ENV_VAR)
    probe = "import sys; print('ansible.module_utils.basic' in sys.modules, sys.argv, sys.executable)\n"
    no_server = subprocess.run([python], input=probe, env=env_off, capture_output=True, text=True, timeout=60, check=True)
    assert no_server.stdout.strip() == "False [''] %s" % sys.executable
