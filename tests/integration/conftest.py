"""Run netmedic modules for real, through Ansible, on this machine.

``run_module`` executes one module with ``ansible`` (ad hoc, local connection) and
returns the module's own result, parsed from the ``ansible.posix.json`` callback.

``Sandbox`` runs it inside a private mount namespace (``unshare -m``) where chosen
kernel and configuration paths (``/proc/sys/...``, ``/proc/meminfo``,
``/etc/sysctl.d``) are bind mounts of files in a temporary directory.  The module
code is unchanged and does real file I/O on the real paths; only what those paths
lead to is the test's.  This lets the suite prove write, check mode, idempotence
and backups here, on the CI host, without changing the host kernel.  The same
scenarios against a real kernel value run on the lab's VMs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / 'collections'
PYTHON = sys.executable
ANSIBLE = str(Path(sys.executable).with_name('ansible'))


def _load_hostdeps():
    # scripts/ is not a package: load the one reader of bindep.txt by path.
    spec = importlib.util.spec_from_file_location('netmedic_hostdeps', str(ROOT / 'scripts' / 'hostdeps.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hostdeps = _load_hostdeps()


def require_program(program):
    """Path of the host ``program`` a test needs; otherwise the test FAILS naming the package.

    Never a skip: a test that cannot run proves nothing, and a skipped one looks green.
    The package comes from bindep.txt (``# provides:``), whose ``test`` profile
    ``make setup`` installs.
    """
    entry = hostdeps.package_for(program)
    if entry is None:
        pytest.fail('%s is not declared in bindep.txt: add the Debian package that provides it, with '
                    '"# provides: %s" above it and the test profile, so that make setup installs it' % (program, program))
    if 'test' not in entry.profiles:
        pytest.fail('%s comes from Debian package %s, which bindep.txt does not list in the test profile '
                    '(only %s): add test to its profiles so that make setup installs it'
                    % (program, entry.package, ', '.join(entry.profiles) or 'no profile'))
    path = hostdeps.find_program(program)
    if path is None:
        pytest.fail('%s is missing on this machine: install Debian package %s (bindep.txt, profile test): '
                    'run make setup, or apt-get install %s' % (program, entry.package, entry.package))
    return path


class ModuleRun(dict):
    """The module's result dict, plus ``rc`` and the raw output of the ansible run."""

    rc = 0
    output = ''

    @property
    def failed(self):
        return bool(self.get('failed'))


def _ansible_env(tmp):
    env = dict(os.environ)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': str(COLLECTIONS),
        'ANSIBLE_LOAD_CALLBACK_PLUGINS': '1',
        'ANSIBLE_STDOUT_CALLBACK': 'ansible.posix.json',
        'ANSIBLE_LOCAL_TEMP': str(tmp / 'ansible-local'),
        'NETMEDIC_REPORT_DIR': str(tmp / 'report'),  # change_report callback (ansible.cfg)
        'ANSIBLE_REMOTE_TEMP': str(tmp / 'ansible-remote'),
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_DEPRECATION_WARNINGS': '0',
        'ANSIBLE_CONFIG': str(ROOT / 'ansible.cfg'),
    })
    return env


def run_module(tmp, module, args, check=False, diff=False, wrapper=()):
    cmd = list(wrapper) + [
        ANSIBLE, 'localhost', '-c', 'local', '-i', 'localhost,',
        '-e', 'ansible_python_interpreter=%s' % PYTHON,
        '-m', 'netmedic.k8s.%s' % module, '-a', json.dumps(args),
    ]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    proc = subprocess.run(cmd, env=_ansible_env(tmp), capture_output=True, text=True, timeout=300, cwd=str(tmp), check=False)
    try:
        data = json.loads(proc.stdout)
        host = data['plays'][0]['tasks'][0]['hosts']['localhost']
    except (ValueError, KeyError, IndexError):
        raise AssertionError('no module result from ansible (rc=%s)\nstdout:\n%s\nstderr:\n%s'
                             % (proc.returncode, proc.stdout, proc.stderr))
    result = ModuleRun(host)
    result.rc = proc.returncode
    result.output = proc.stdout + proc.stderr
    return result


class Sandbox(object):
    """Bind-mount temporary files over real paths for the duration of one ansible run."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.root = tmp / 'sandbox'
        self.root.mkdir()
        self.binds = []
        self.readonly_targets = []

    def readonly(self, target):
        """Make the (already bound) ``target`` read-only: writes below it fail with EROFS."""
        self.readonly_targets.append(target)

    def file(self, target, content):
        """Make ``target`` (an existing file on the host) show ``content``."""
        src = self.root / target.strip('/').replace('/', '__')
        src.write_text(content)
        self.binds.append((str(src), target))
        return src

    def directory(self, target):
        """Make ``target`` (an existing directory on the host) an empty directory of ours."""
        src = self.root / target.strip('/').replace('/', '__')
        src.mkdir()
        self.binds.append((str(src), target))
        return src

    def wrapper(self):
        script = ['set -e']
        for i in range(len(self.binds)):
            script.append('mount --bind "${%d}" "${%d}"' % (2 * i + 1, 2 * i + 2))
        for target in self.readonly_targets:
            script.append("mount -o remount,bind,ro '%s'" % target.replace("'", ''))
        script.append('shift %d' % (2 * len(self.binds)))
        script.append('exec "$@"')
        args = ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', '\n'.join(script), 'sandbox']
        for src, target in self.binds:
            args += [src, target]
        return args

    def run(self, module, args, check=False, diff=False):
        return run_module(self.tmp, module, args, check=check, diff=diff, wrapper=self.wrapper())


def _can_sandbox():
    require_program('unshare')
    require_program('mount')
    if os.geteuid() != 0:
        return False
    probe = subprocess.run(['unshare', '--mount', '--propagation', 'private', 'true'], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.fixture
def require():
    """``require('arping')``: the program's path, or the test fails naming its Debian package."""
    return require_program


@pytest.fixture
def sandbox(tmp_path):
    if not _can_sandbox():
        # Never a silent pass: without the sandbox these tests prove nothing.
        pytest.fail('integration tests need root and unshare --mount (a private mount namespace)')
    return Sandbox(tmp_path)


@pytest.fixture
def run(tmp_path):
    def _run(module, args, **kwargs):
        return run_module(tmp_path, module, args, **kwargs)
    return _run
