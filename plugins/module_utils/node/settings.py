# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One "persisted kernel setting" transaction, and the rules for the files it writes.

Used by ``conntrack_limit`` (N-2), ``port_range`` (N-3), ``ipvs_modules`` (N-4) and
``ipvs_timeouts`` (N-5). Two halves:

Pure planners (no I/O), for the boot-time file of a setting:

- :func:`check_name`: the file name the boot-time reader accepts (``.conf`` for
  ``systemd-sysctl`` and ``systemd-modules-load``, ``.service`` for a unit);
- :func:`owner_of`: a file is *owned* by a module when it starts with that module's
  netmedic header (``# Managed by netmedic.k8s (<module>);``);
- :func:`plan_sysctl_file` / :func:`plan_modules_load_file` / :func:`plan_unit_file`:
  the new text. An owned file (or a new one) is generated whole. A file that is not
  owned (``/etc/sysctl.conf``, a distribution's or another tool's drop-in, another
  netmedic module's file) is **edited in place**: only the lines that set the keys this
  module manages get the new value, a key not set yet is appended, and every other
  byte (comments, other keys, blank lines) is kept; a ``modules-load.d`` file only gets
  the missing names appended. A unit file that is not owned is refused (a unit has no
  "keys" to edit safely).

The transaction, :func:`commit`: set the kernel values (in order), then write the files
(each backed up first, through :class:`Files`), then run follow-up steps (``systemctl
daemon-reload``). When any step fails, what was done is undone in reverse order (files
put back to their previous text or removed, kernel values restored) where it can be,
and the failure says what was restored, what is still changed and where the backups
are. A kernel step without ``undo`` (a loaded module: nothing is ever unloaded) is
reported as left in place.

The module kind, :class:`SettingModule`: the module lifecycle (``module_utils/lifecycle.py``)
with the boot-file name checks, the boot-order warnings and :func:`commit` as its apply step.
"""

from __future__ import annotations

import os

from ansible_collections.netmedic.k8s.plugins.module_utils import kmod, lifecycle
from ansible_collections.netmedic.k8s.plugins.module_utils.node import files as node_files
from ansible_collections.netmedic.k8s.plugins.module_utils.node import sysctl
from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandError

OWNER_PREFIX = '# Managed by netmedic.k8s (%s);'

CREATE = 'create'  # the file does not exist: a new owned file
OWNED = 'owned'  # the file carries this module's header: regenerated whole
EDIT = 'edit_owned_keys'  # anyone else's file: only this module's keys/names edited in place


class PersistError(ValueError):
    pass


# --- pure planners -------------------------------------------------------------------

def check_name(path, suffix, reader, option='persist_file'):
    """Raise PersistError unless ``path`` is an absolute file name ``reader`` applies at boot."""
    name = os.path.basename(path or '')
    if not path or not os.path.isabs(path):
        raise PersistError('%s must be an absolute path: %r' % (option, path))
    if not name.endswith(suffix) or name == suffix or name.startswith('.'):
        raise PersistError('%s must end in %s and not start with a dot (%s ignores other names): %s'
                           % (option, suffix, reader, path))


def boot_warning(path, dirs, files, reader):
    """A warning when ``path`` is not where ``reader`` looks at boot (the setting would not survive a reboot)."""
    if os.path.dirname(os.path.normpath(path)) in dirs or os.path.normpath(path) in files:
        return None
    return ('%s is not in a directory %s reads at boot (%s): it is written, but does not apply after a reboot'
            % (path, reader, ', '.join(list(dirs) + list(files))))


def owner_of(text, owner):
    """True when ``text`` is a file ``owner`` (a module name) generated."""
    return text is not None and text.startswith(OWNER_PREFIX % owner)


def _mode(text, owner):
    if text is None:
        return CREATE
    return OWNED if owner_of(text, owner) else EDIT


def _assignment(line):
    """``(key, value_start)`` of a sysctl.d assignment line, else None (as sysctl.parse_conf reads it)."""
    body = line.rstrip('\r\n')
    stripped = body.strip()
    if not stripped or stripped[0] in '#;' or '=' not in stripped:
        return None
    eq = body.index('=')
    key = body[:eq].strip().lstrip('-').replace('/', '.')
    start = eq + 1
    while start < len(body) and body[start] in ' \t':
        start += 1
    return key, start


def plan_sysctl_file(text, settings, owner, catalog):
    """``(new_text, mode)`` for a sysctl.d file that must set ``settings`` [(key, value)]."""
    mode = _mode(text, owner)
    if mode != EDIT:
        return sysctl.render_dropin(settings, owner, catalog), mode
    wanted = {key: sysctl.normalize(value) for key, value in settings}
    seen = set()
    out = []
    for line in text.splitlines(True):
        found = _assignment(line)
        if found and found[0] in wanted:
            key, start = found
            ending = line[len(line.rstrip('\r\n')):]
            out.append(line[:start] + wanted[key] + ending)
            seen.add(key)
        else:
            out.append(line)
    new = ''.join(out)
    missing = [(key, value) for key, value in settings if key not in seen]
    if missing:
        if new and not new.endswith('\n'):
            new += '\n'
        new += ''.join('%s = %s\n' % (key, sysctl.normalize(value)) for key, value in missing)
    return new, mode


def plan_modules_load_file(text, names, owner, catalog):
    """``(new_text, mode)`` for a modules-load.d file that must list ``names`` (canonical)."""
    mode = _mode(text, owner)
    listed = kmod.parse_modules_load(text)
    if mode != EDIT:
        return kmod.render_modules_load(kmod.merge_names(listed, names), owner, catalog), mode
    missing = [name for name in names if name not in listed]
    new = text
    if missing:
        if new and not new.endswith('\n'):
            new += '\n'
        new += ''.join('%s\n' % name for name in missing)
    return new, mode


def plan_unit_file(text, new_unit, owner, path):
    """``(new_text, mode)`` for a systemd unit ``owner`` generates; a unit it does not own is refused."""
    mode = _mode(text, owner)
    if mode == EDIT:
        raise PersistError('%s exists and was not written by netmedic.k8s (%s) (no "%s" first line); '
                           'refusing to replace it - choose another unit_file or remove it (nothing was changed)'
                           % (path, owner, OWNER_PREFIX % owner))
    return new_unit, mode


# --- reading -------------------------------------------------------------------------

def read_file(path):
    """Content of a boot-time file, None when it does not exist; PersistError when it cannot be read."""
    try:
        return node_files.read_text(path)
    except (IOError, OSError, UnicodeDecodeError) as e:
        raise PersistError('cannot read %s: %s (nothing was changed)' % (path, e))


# --- the transaction -----------------------------------------------------------------

class KernelStep(object):
    """One runtime change: ``apply()`` sets ``after``; ``undo()`` (None: cannot be undone) restores ``before``."""

    def __init__(self, label, before, after, apply, undo=None, doing=None):
        self.label = label
        self.before = before
        self.after = after
        self.apply = apply
        self.undo = undo
        self.doing = doing or 'set %s = %s' % (label, after)


class FileStep(object):
    """Replace ``path`` (previous content ``before``, None when absent) by ``after``."""

    def __init__(self, path, before, after, mode=0o644):
        self.path = path
        self.before = before
        self.after = after
        self.mode = mode


class Files(object):
    """Writes files by node path below ``root`` (``/`` on a node, a tmp tree in tests).

    Symbolic links are followed inside the root (Debian's ``99-sysctl.conf ->
    ../sysctl.conf`` stays a link; its target is written). A replaced file is backed up
    with Ansible's ``backup_local`` next to it first.
    """

    def __init__(self, module, root='/'):
        self.module = module
        self.fs = HostFS(root)

    def real(self, path):
        return self.fs.path(self.fs.realpath(path))

    def write(self, path, text, mode=0o644):
        """Returns the backup path, or None when nothing was replaced."""
        return node_files.write_file_atomic(self.module, self.real(path), text, mode=mode)

    def restore(self, path, text, mode=0o644):
        """Put ``path`` back to ``text`` (None: remove it); no new backup."""
        real = self.real(path)
        if text is None:
            if os.path.lexists(real):
                os.unlink(real)
        else:
            node_files.replace_file(self.module, real, text, mode=mode)


ERRORS = (EnvironmentError, CommandError)


def _err(e):
    return getattr(e, 'msg', None) or str(e)


def commit(result, kernel_steps, file_steps, files, followups=()):
    """Apply ``kernel_steps``, then ``file_steps``, then ``followups`` [(label, callable)].

    Returns normally when all succeeded (backups added to ``result``). On a failure,
    undoes what it can and ends the module through ``result.fail`` with a message naming
    the failed step, what was restored, what is still changed, and the backups.
    """
    applied, written = [], []
    for step in kernel_steps:
        try:
            step.apply()
        except ERRORS as e:
            return _rollback(result, 'could not %s: %s' % (step.doing, _err(e)), applied, written, files)
        applied.append(step)
    for step in file_steps:
        try:
            backup = files.write(step.path, step.after, step.mode)
        except Exception as e:  # AnsibleModule.atomic_move raises a plain Exception too
            return _rollback(result, 'could not write %s: %s' % (step.path, _err(e)), applied, written, files)
        result.add_backup(backup, step.path)
        written.append(step)
    for label, action in followups:
        try:
            action()
        except ERRORS as e:
            return _rollback(result, '%s failed: %s' % (label, _err(e)), applied, written, files)
    return None


def _rollback(result, failed, applied, written, files):
    restored, remaining = [], []
    for step in reversed(written):
        try:
            files.restore(step.path, step.before, step.mode)
            restored.append('%s %s' % (step.path, 'removed' if step.before is None else 'put back'))
        except Exception as e:  # reported, never hidden
            remaining.append('%s (putting it back failed: %s)' % (step.path, _err(e)))
    for step in reversed(applied):
        if step.undo is None:
            remaining.append('%s = %s (cannot be undone)' % (step.label, step.after))
            continue
        try:
            step.undo()
            restored.append('kernel value restored: %s = %s' % (step.label, step.before))
        except ERRORS as e:
            remaining.append('%s is still %s (restoring %s failed: %s)' % (step.label, step.after, step.before, _err(e)))
    parts = [failed]
    if restored:
        parts.append('; '.join(restored))
    parts.append('still changed: %s' % ', '.join(remaining) if remaining else 'nothing was left changed')
    if result.backups:
        parts.append('backups: %s' % ', '.join(b['path'] for b in result.backups))
    result.changed = bool(remaining)
    result.extra['rolled_back'] = restored
    result.extra['left_changed'] = remaining
    result.fail('; '.join(parts))


# --- the module kind -----------------------------------------------------------------

READERS = {
    'systemd-sysctl': (sysctl.SYSCTL_DIRS, [sysctl.SYSCTL_CONF]),
    'systemd-modules-load': (kmod.MODULES_LOAD_DIRS, [kmod.MODULES_FILE]),
}


def persist_options(default, option='persist_file'):
    """``persist`` and the boot-time file option of a persisted setting."""
    return {'persist': dict(type='bool', default=True), option: dict(type='path', default=default)}


class SettingModule(lifecycle.ModuleLifecycle):
    """A persisted kernel setting (``conntrack_limit``, ``port_range``, ``ipvs_modules``, ``ipvs_timeouts``).

    ``boot_files``: ``[(option, suffix, reader)]``, the boot-time files the module may write; with
    ``persist`` their names are checked in :meth:`validate` before anything is read. :meth:`apply`
    is :func:`commit` of what :meth:`transaction` returns.
    """

    boot_files = ()
    kind_refusals = (PersistError,)

    def check_setting(self):
        """Check the module's own options (pure); the boot-file names are checked after it."""

    def validate(self):
        self.check_setting()
        if self.params['persist']:
            for option, suffix, reader in self.boot_files:
                check_name(self.params[option], suffix, reader, option)

    def read_boot_file(self, option):
        """The current text of a boot-time file (None: absent or ``persist=false``)."""
        return read_file(self.params[option]) if self.params['persist'] else None

    def warn_boot_order(self, option):
        """Warn when the boot-time file ``option`` would be read before files that may override it."""
        if not self.params['persist']:
            return
        reader = next(r for o, _s, r in self.boot_files if o == option)
        dirs, files = READERS[reader]
        warning = boot_warning(self.params[option], dirs, files, reader)
        if warning:
            self.result.warn(warning)

    def warn_overridden(self, key, overridden, option='persist_file'):
        """Warn for each later sysctl file (``sysctl.overriders``) that sets ``key`` to another value."""
        for item in overridden:
            self.result.warn('%s sets %s = %s and is applied after %s at boot: the persisted fix would be undone'
                             % (item['path'], key, item['value'], self.params[option]))

    def transaction(self):
        """``(kernel_steps, file_steps, followups)`` to :func:`commit`."""
        return [], [], []

    def apply(self):
        kernel, file_steps, followups = self.transaction()
        commit(self.result, kernel, file_steps, Files(self.module), followups)
