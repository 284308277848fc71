# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One way to run node commands.

Every command is an argument list (never a shell string), runs with a C locale so
that parsers see the tool's documented output, and a failure carries the command,
its exit code and its stderr.  A binary that is not installed is reported as such,
which lets read-only probes say ``available: false`` instead of failing.
"""

from __future__ import annotations

# Binaries of the network tools live in sbin on most distributions, which is not on
# the PATH of a non-login SSH session.
SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin']

C_LOCALE = {'LANG': 'C', 'LC_ALL': 'C', 'LC_MESSAGES': 'C'}


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
    """Runs argument lists through ``AnsibleModule.run_command``.

    ``module`` only needs ``get_bin_path`` and ``run_command``, so unit tests can pass
    a small fake that replays recorded tool output.
    """

    def __init__(self, module):
        self.module = module
        self._paths = {}

    def which(self, name):
        """Absolute path of ``name`` or None."""
        if name not in self._paths:
            self._paths[name] = self.module.get_bin_path(name, required=False, opt_dirs=SBIN_DIRS)
        return self._paths[name]

    def has(self, name):
        return self.which(name) is not None

    def run(self, args, check=True, data=None):
        """Run ``args`` (a list; ``args[0]`` is resolved with :meth:`which`).

        Raises CommandNotFound when the binary is missing and, with ``check``,
        CommandError on a non-zero exit.
        """
        if isinstance(args, (str, bytes)):
            raise TypeError('Runner.run takes an argument list, not a string')
        args = [str(a) for a in args]
        path = self.which(args[0])
        if path is None:
            raise CommandNotFound(args[0])
        cmd = [path] + args[1:]
        rc, out, err = self.module.run_command(cmd, check_rc=False, data=data,
                                               environ_update=dict(C_LOCALE), use_unsafe_shell=False)
        result = CommandResult(cmd, rc, out, err)
        if check and rc != 0:
            raise CommandError(cmd, rc, out, err)
        return result
