"""Harness for tests that run netmedic modules on the VM lab's real nodes.

Start the lab, then run the tests::

    make lab-test                      # deps, up, pytest tests/labvm (holds the lab lock)
    # or by hand:
    lab/vm/labctl up
    NETMEDIC_LAB_INVENTORY=/run/netmedic-lab/inventory.yml .venv/bin/pytest tests/labvm

Fixtures:

``lab`` (session)
    ``{'inventory': path, 'nodes': [names], 'hostvars': {name: {...}}}`` read from the
    inventory ``labctl`` writes. Without ``NETMEDIC_LAB_INVENTORY``, or when the file is
    missing, the test fails (never skips): a run that asked for the lab must not pass
    without one.
``run_module(node, module, args, check=False, diff=False) -> ModuleRun``
    ``ansible <node> -m netmedic.k8s.<module> -a <json>`` (a module name containing a dot is
    used as is, e.g. ``ansible.builtin.reboot``); returns that host's result dict with
    ``.rc``, ``.output`` and ``.failed``. Ad hoc ``-a '{}'`` is refused by ansible: pass at
    least one argument.
``ssh(node, script, check=True, timeout=120) -> CompletedProcess``
    runs ``script`` with ``sh -c`` as root on the node (text output). Every call goes over the node's
    one shared OpenSSH connection, the one labctl opens after a restore and Ansible uses too (the
    inventory names its ``ControlPath``; lab/vm/vmlab/ssh.py): a new connection to a TCG guest costs
    2.4-4.3 s (key exchange in the guest), a session over a running master 0.3 s (measured
    2026-12-03). A master dies with its TCP connection (a guest reboot closes it); labctl closes it
    before it stops or replaces a node's QEMU process.
``lab_reset()``
    ``labctl reset``: every node back to its clean saved state (~6-9 s); a node that nothing reached
    since its last restore (no SSH session, no new neighbour on its L2 interface) is left running, as it is
    in that state (``labctl reset --all`` restores every one: after a test that changes a node any
    other way, e.g. over QMP).

Mutual exclusion: several people share one lab on this machine. The session holds an
exclusive ``flock`` on ``/tmp/netmedic-lab.lock`` (``NETMEDIC_LAB_LOCK`` overrides) from
the first test that uses the lab to the end of the session, waiting with a message when
someone else holds it. When an ancestor process already holds it (``make lab-test``,
``labctl locked -- ...``) the session runs under that lock instead of deadlocking.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / 'collections'
LABCTL = REPO / 'lab' / 'vm' / 'labctl'
ENV = 'NETMEDIC_LAB_INVENTORY'
LOCK_PATH = os.environ.get('NETMEDIC_LAB_LOCK') or '/tmp/netmedic-lab.lock'
PREFIX = 'netmedic.k8s.'


def _bin(name):
    """A tool from the venv that runs pytest (ansible, ansible-inventory)."""
    for candidate in (REPO / '.venv' / 'bin' / name, Path(sys.executable).parent / name):
        if candidate.exists():
            return str(candidate)
    pytest.fail(f'{name} not found in {REPO / ".venv" / "bin"} (run `make setup`)', pytrace=False)
    return None  # not reached


# --------------------------------------------------------------------------
# the lab lock


def _load_labctl():
    """lab/vm/labctl.py as a module: the lock helpers are shared with labctl, not copied."""
    spec = importlib.util.spec_from_file_location('netmedic_labctl', str(REPO / 'lab' / 'vm' / 'labctl.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_labctl = _load_labctl()
_ancestors = _labctl._ancestor_pids
_lock_holders = _labctl.lock_holders


class LabLock:
    """Exclusive flock on the shared lab lock file, blocking with a message."""

    def __init__(self, path=LOCK_PATH):
        self.path = path
        self.fh = None
        self.inherited = False

    def acquire(self, report=print):
        fh = open(self.path, 'a+')  # noqa: SIM115 - held for the whole session
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holders = _lock_holders(self.path)
            if holders & _ancestors():
                fh.close()
                self.inherited = True
                return self
            report(f'netmedic lab: waiting for {self.path} (held by pid {", ".join(map(str, sorted(holders))) or "?"}: '
                   'another lab user is running; this session starts when it finishes)')
            start = time.monotonic()
            fcntl.flock(fh, fcntl.LOCK_EX)
            report(f'netmedic lab: got {self.path} after {time.monotonic() - start:.0f}s')
        self.fh = fh
        return self

    def release(self):
        if self.fh is not None:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None


@pytest.fixture(scope='session', autouse=True)
def lab_lock(request):
    """Hold the lab lock for the whole session (autouse: every test here uses the VMs)."""
    capman = request.config.pluginmanager.getplugin('capturemanager')

    def report(msg):
        if capman is not None:
            with capman.global_and_fixture_disabled():
                print('\n' + msg, file=sys.stderr, flush=True)
        else:
            print(msg, file=sys.stderr, flush=True)

    path = os.environ.get(ENV)
    if not path or not Path(path).is_file():
        # No lab to use: the `lab` fixture fails every test at once; do not queue for the lock.
        yield None
        return
    lock = LabLock().acquire(report)
    yield lock
    lock.release()


# --------------------------------------------------------------------------
# the lab


def _read_inventory(path):
    proc = subprocess.run([_bin('ansible-inventory'), '-i', path, '--list'], capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg')))
    if proc.returncode != 0:
        pytest.fail(f'ansible-inventory cannot read {path}:\n{proc.stderr}', pytrace=False)
    hostvars = json.loads(proc.stdout).get('_meta', {}).get('hostvars', {})
    if not hostvars:
        pytest.fail(f'{path} lists no hosts (is the lab up? `lab/vm/labctl status`)', pytrace=False)
    for name, hv in hostvars.items():
        missing = [v for v in ('ansible_host', 'ansible_port', 'ansible_ssh_private_key_file', 'lab_l2_ip', 'lab_l2_dev') if v not in hv]
        if missing:
            pytest.fail(f'{path}: {name} lacks {", ".join(missing)}', pytrace=False)
    return hostvars


@pytest.fixture(scope='session')
def lab(lab_lock):
    """The running lab: inventory path, node names, hostvars. Fails (never skips) without one."""
    path = os.environ.get(ENV)
    if not path:
        pytest.fail(f'{ENV} is not set: start the lab (`lab/vm/labctl up` or `make lab-up`) and set {ENV}='
                    '/run/netmedic-lab/inventory.yml (`make lab-test` does both)', pytrace=False)
    if not Path(path).is_file():
        pytest.fail(f'{ENV}={path}: no such file (is the lab up? `lab/vm/labctl status`)', pytrace=False)
    hostvars = _read_inventory(path)
    nodes = sorted(hostvars, key=lambda n: (len(n), n))
    return {'inventory': path, 'nodes': nodes, 'hostvars': {n: hostvars[n] for n in nodes}, 'lock': lab_lock}


class ModuleRun(dict):
    """One host's module result, plus ``rc`` and the raw ansible output."""

    rc = 0
    output = ''

    @property
    def failed(self):
        return bool(self.get('failed') or self.get('unreachable'))


@pytest.fixture(scope='session')
def ansible_env(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('ansible')
    env = dict(os.environ)
    env.update({
        'ANSIBLE_CONFIG': str(REPO / 'ansible.cfg'),
        'ANSIBLE_COLLECTIONS_PATH': str(COLLECTIONS),
        'ANSIBLE_LOAD_CALLBACK_PLUGINS': '1',
        'ANSIBLE_STDOUT_CALLBACK': 'ansible.posix.json',
        'ANSIBLE_LOCAL_TEMP': str(tmp / 'local'),
        'NETMEDIC_REPORT_DIR': str(tmp / 'report'),  # change_report callback (ansible.cfg)
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_DEPRECATION_WARNINGS': '0',
        'ANSIBLE_HOST_KEY_CHECKING': 'False',
        'ANSIBLE_RETRY_FILES_ENABLED': 'False',
    })
    return env


@pytest.fixture(scope='session')
def run_module(lab, ansible_env):
    """run_module(node, module, args, check=False, diff=False, timeout=600) -> ModuleRun."""
    ansible = _bin('ansible')

    def _run(node, module, args, check=False, diff=False, timeout=600):
        if node not in lab['hostvars']:
            raise AssertionError(f'unknown lab node {node!r} (have {lab["nodes"]})')
        if not args:
            raise AssertionError('ad hoc ansible refuses -a "{}": pass at least one module argument')
        fqcn = module if '.' in module else PREFIX + module
        cmd = [ansible, node, '-i', lab['inventory'], '-m', fqcn, '-a', json.dumps(args)]
        if check:
            cmd.append('--check')
        if diff:
            cmd.append('--diff')
        proc = subprocess.run(cmd, env=ansible_env, capture_output=True, text=True, timeout=timeout, cwd=str(REPO), check=False)
        try:
            # The JSON document first; other enabled callbacks may print lines after it.
            data = json.JSONDecoder().raw_decode(proc.stdout, proc.stdout.index('{'))[0]
            host = data['plays'][0]['tasks'][0]['hosts'][node]
        except (ValueError, KeyError, IndexError) as exc:
            raise AssertionError(f'no module result from ansible for {node} (rc={proc.returncode})\n'
                                 f'command: {shlex.join(cmd)}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}') from exc
        result = ModuleRun(host)
        result.rc = proc.returncode
        result.output = proc.stdout + proc.stderr
        return result

    return _run


def ssh_argv(hv):
    """ssh command line (without the remote command) for one node's hostvars, over the node's shared connection: the
    inventory's ``ansible_ssh_common_args`` carry the options labctl and Ansible use too (lab/vm/vmlab/ssh.py)."""
    argv = ['ssh', '-p', str(hv['ansible_port']), '-i', hv['ansible_ssh_private_key_file'],
            '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15']
    common = shlex.split(hv.get('ansible_ssh_common_args', ''))
    assert any(arg.startswith('ControlPath=') for arg in common), \
        'the lab inventory names no ControlPath: it was written by an older labctl (run `labctl up --clean`)'
    argv += common
    argv.append(f'{hv.get("ansible_user", "root")}@{hv["ansible_host"]}')
    return argv


def close_ssh_masters(lab):
    """Stop the shared connection of every node (``ssh -O exit``); one that is not running is fine. labctl closes a
    node's connection itself before it stops or replaces its qemu process."""
    for node in lab['nodes']:
        argv = ssh_argv(lab['hostvars'][node])
        subprocess.run(argv[:-1] + ['-O', 'exit', argv[-1]], capture_output=True, timeout=30, check=False)


@pytest.fixture(scope='session')
def ssh(lab):
    """ssh(node, script, check=True, timeout=120) -> CompletedProcess (script runs under sh -c as root)."""
    yield _ssh_runner(lab)
    close_ssh_masters(lab)


def _ssh_runner(lab):
    def _ssh(node, script, check=True, timeout=120):
        hv = lab['hostvars'][node]
        # ssh hands the remote command to the login shell as one string: quote the script
        # once so the node runs exactly `sh -c <script>`.
        cmd = ssh_argv(hv) + ['sh -c ' + shlex.quote(script)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f'{node}: script failed (rc={proc.returncode})\n--- script\n{script}\n'
                                 f'--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}')
        return proc

    return _ssh


@pytest.fixture(scope='session')
def lab_reset(lab):
    """lab_reset(): every node back to the clean saved state (labctl reset: a node nothing reached since its last
    restore is left running)."""

    def _reset():
        # labctl closes each node's shared connection before it replaces the qemu process, and its clock reset opens
        # the new one that the test's ssh calls and Ansible then use
        proc = subprocess.run([str(LABCTL), 'reset'], capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            raise AssertionError(f'labctl reset failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}')
        return proc

    return _reset
