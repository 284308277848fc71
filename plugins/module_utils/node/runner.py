# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One way to run node commands.

Every command is an argument list (never a shell string), runs with a C locale so
that parsers see the tool's documented output, and a failure carries the command,
its exit code and its stderr.  A binary that is not installed is reported as such,
which lets read-only probes say ``available: false`` instead of failing.

Every command also has a wall-clock timeout (catalog rule "every command has a
timeout"; issue #10 hole 3): a hung ``docker ps`` must not keep host-local's lock,
or the module, waiting forever.  The command runs in its own session; on expiry the
whole process group is killed (a CLI wrapper's children too) and CommandTimeout is
raised.  Whatever it printed before is never used as its answer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

# Binaries of the network tools live in sbin on most distributions, which is not on
# the PATH of a non-login SSH session.
SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin']

C_LOCALE = {'LANG': 'C', 'LC_ALL': 'C', 'LC_MESSAGES': 'C'}

# Seconds a command may run when neither the Runner nor the call says otherwise.
DEFAULT_TIMEOUT = 120
# After the kill: how long to wait for the killed group's pipes and exit status.
_REAP_TIMEOUT = 5


class CommandError(Exception):
    """A command exited non-zero (or could not be started)."""

    def __init__(self, cmd, rc, stdout='', stderr='', msg=None):
        self.cmd = list(cmd)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        if msg is None:
            detail = (stderr or stdout or '').strip()
            msg = '%s exited with rc=%s%s' % (' '.join(self.cmd), rc, (': ' + detail) if detail else '')
        super(CommandError, self).__init__(msg)
        self.msg = msg

    def to_dict(self):
        return {'cmd': self.cmd, 'rc': self.rc, 'stdout': self.stdout, 'stderr': self.stderr, 'msg': self.msg}


class CommandNotFound(CommandError):
    """The binary is not installed (or not on PATH/sbin)."""

    def __init__(self, name):
        msg = "command '%s' is not installed (searched PATH and %s)" % (name, ', '.join(SBIN_DIRS))
        super(CommandNotFound, self).__init__([name], None, msg=msg)
        self.name = name


class CommandTimeout(CommandError):
    """The command ran longer than its timeout; it and its process group were killed."""

    def __init__(self, cmd, timeout, stdout='', stderr=''):
        msg = ('%s did not finish within %s s and was killed (with every process it started); '
               'its output is not used' % (' '.join(str(a) for a in cmd), _seconds(timeout)))
        super(CommandTimeout, self).__init__(cmd, None, stdout, stderr, msg=msg)
        self.timeout = timeout


def _seconds(value):
    return ('%.1f' % value).rstrip('0').rstrip('.') if isinstance(value, float) else str(value)


def check_timeout(timeout):
    """A timeout is a positive number of seconds (bool is not a number here)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError('a command timeout must be a positive number of seconds, got %r' % (timeout,))
    return timeout


def _kill_group(proc):
    """SIGKILL the command's process group, then reap it without waiting on escaped children."""
    # start_new_session: the command leads its own group, pgid == pid.  The pid cannot
    # have been reused: it is not reaped before this kill.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=_REAP_TIMEOUT)
    except subprocess.TimeoutExpired:
        # A process that left the group (setsid) still holds a pipe: stop reading.
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe:
                pipe.close()
        proc.wait(timeout=_REAP_TIMEOUT)


def execute(cmd, timeout, data=None, env_update=None):
    """Run the argument list ``cmd`` with a wall-clock ``timeout`` (seconds).

    Returns ``(rc, stdout, stderr)`` as text.  The command gets its own session
    (process group); on expiry the group is killed and CommandTimeout raised.  stdin
    is ``data`` (text, followed by a newline as AnsibleModule.run_command does) or
    /dev/null, so a command that waits for input cannot hang.  A command that cannot
    be started raises CommandError (rc None).
    """
    check_timeout(timeout)
    env = dict(os.environ)
    env.update(env_update or {})
    stdin_data = None if data is None else (data + '\n').encode('utf-8')
    try:
        # AnsibleModule.run_command has no wall-clock timeout and cannot kill a process group:
        # this Popen is the one place that does both (issue 10 hole 3).
        proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
            cmd, stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, close_fds=True, start_new_session=True)
    except OSError as e:
        raise CommandError(cmd, None, msg='cannot run %s: %s' % (' '.join(cmd), e))
    try:
        out, err = proc.communicate(input=stdin_data, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise CommandTimeout(cmd, timeout)
    except BaseException:
        _kill_group(proc)
        raise
    return proc.returncode, out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')


class CommandResult(object):
    __slots__ = ('cmd', 'rc', 'stdout', 'stderr')

    def __init__(self, cmd, rc, stdout, stderr):
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    @property
    def ok(self):
        return self.rc == 0


class Runner(object):
    """Runs argument lists with a timeout (:func:`execute`).

    ``timeout`` is the default wall-clock limit of every command (seconds); a call
    may pass its own.  On a node ``module`` is the AnsibleModule (``get_bin_path``
    finds binaries).  Unit tests pass a small fake instead, which replays recorded
    tool output through its ``run_command`` (it receives the timeout as a keyword);
    ``execute`` replaces the real executor (tests of the timeout itself).
    """

    def __init__(self, module, timeout=DEFAULT_TIMEOUT, execute=None):
        self.module = module
        self.timeout = check_timeout(timeout)
        self._execute = execute
        self._paths = {}

    def which(self, name):
        """Absolute path of ``name`` or None."""
        if name not in self._paths:
            self._paths[name] = self.module.get_bin_path(name, required=False, opt_dirs=SBIN_DIRS)
        return self._paths[name]

    def has(self, name):
        return self.which(name) is not None

    def _spawn(self, cmd, data, timeout):
        if self._execute is not None:
            return self._execute(cmd, timeout, data=data, env_update=dict(C_LOCALE))
        if _is_ansible_module(self.module):
            return execute(cmd, timeout, data=data, env_update=dict(C_LOCALE))
        # A test double: it replays recorded output.
        return self.module.run_command(cmd, check_rc=False, data=data, environ_update=dict(C_LOCALE),
                                       use_unsafe_shell=False, timeout=timeout)

    def run(self, args, check=True, data=None, timeout=None):
        """Run ``args`` (a list; ``args[0]`` is resolved with :meth:`which`).

        ``timeout``: seconds for this call (default: the Runner's).  Raises
        CommandNotFound when the binary is missing, CommandTimeout when it runs too
        long (whatever ``check`` says) and, with ``check``, CommandError on a
        non-zero exit.
        """
        if isinstance(args, (str, bytes)):
            raise TypeError('Runner.run takes an argument list, not a string')
        timeout = self.timeout if timeout is None else check_timeout(timeout)
        args = [str(a) for a in args]
        path = self.which(args[0])
        if path is None:
            raise CommandNotFound(args[0])
        cmd = [path] + args[1:]
        rc, out, err = self._spawn(cmd, data, timeout)
        result = CommandResult(cmd, rc, out, err)
        if check and rc != 0:
            raise CommandError(cmd, rc, out, err)
        return result


def _is_ansible_module(module):
    try:
        from ansible.module_utils.basic import AnsibleModule
    except ImportError:  # pragma: no cover - module_utils always ship with ansible's
        return False
    return isinstance(module, AnsibleModule)
