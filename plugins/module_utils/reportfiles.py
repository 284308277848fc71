# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side report files: unique names, private atomic writes, retention (issue #10 holes 4, 11, 12).

Shared by the ``change_report`` callback and ``bin/netmedic`` (its run directories).

- ``stamp()``: UTC time with microseconds, the process id and a random suffix, so two runs
  started in the same second (or microsecond) never pick the same name.
- ``private_dir()`` creates a directory 0700; ``write_new()`` writes a temporary file 0600 in
  the same directory and links it to its final name, which fails rather than replaces when
  the name exists (exclusive, and a reader never sees half a file); ``point()`` moves a
  ``latest`` symlink atomically.
- ``plan_retention()`` is the pure planner: given the runs found (name, time) it returns those
  to remove by count (``keep_count`` newest kept) and age (``keep_days``); 0 disables either.
"""

from __future__ import annotations

import datetime
import errno
import os
import re
import secrets
import stat
import tempfile

STAMP_FORMAT = '%Y%m%dT%H%M%S.%fZ'
# 20261201T222238.123456Z (current) or 20261201T222238Z (reports written before 0.2).
_STAMP = re.compile(r'(?P<date>\d{8}T\d{6})(?:\.(?P<micro>\d{6}))?Z')


def stamp(now=None):
    """``<UTC time with microseconds>-<pid>-<random>``: unique per run, sorts by time."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return '%s-%d-%s' % (now.strftime(STAMP_FORMAT), os.getpid(), secrets.token_hex(3))


def parse_time(name):
    """The UTC time in a name made with ``stamp()`` (or the older second-resolution one), else None."""
    match = _STAMP.search(name)
    if not match:
        return None
    when = datetime.datetime.strptime(match.group('date'), '%Y%m%dT%H%M%S')
    when = when.replace(microsecond=int(match.group('micro') or 0), tzinfo=datetime.timezone.utc)
    return when


def private_dir(path):
    """Create ``path`` (and parents) 0700 when missing. Returns True when the directory was created.

    An existing directory keeps its mode: it may be shared (``/tmp``); the files written into it
    are 0600 anyway.
    """
    if os.path.isdir(path):
        return False
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)             # makedirs' mode is subject to the umask
    return True


def dir_is_shared(path):
    """Whether group or others can list or enter ``path``."""
    return bool(os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def write_new(path, text):
    """Write ``text`` to ``path`` (0600) atomically; fails with FileExistsError if ``path`` exists."""
    directory = os.path.dirname(path) or '.'
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    try:
        _write_fd(fd, text)
        try:
            os.link(tmp, path)        # exclusive: never replaces another run's report
        except OSError as exc:
            if exc.errno in (errno.EEXIST,):
                raise
            # A filesystem without hard links (some network shares): exclusive create, written in place.
            _write_fd(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0), 0o600), text)
    finally:
        os.unlink(tmp)
    return path


def _write_fd(fd, text):
    with os.fdopen(fd, 'w', encoding='utf-8') as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def point(link, target):
    """Make ``link`` a symlink to ``target`` (a name in the same directory), replacing it atomically."""
    directory = os.path.dirname(link) or '.'
    tmp = os.path.join(directory, '.%s.%s.tmp' % (os.path.basename(link), secrets.token_hex(4)))
    os.symlink(os.path.basename(target), tmp)
    try:
        os.replace(tmp, link)
    except OSError:
        os.unlink(tmp)
        raise
    return link


def plan_retention(runs, now, keep_count=0, keep_days=0, protect=()):
    """Names to remove, oldest first.

    ``runs``: iterable of ``(name, time)`` (time: aware datetime, or None when unknown: never
    removed, uncertainty keeps it). ``keep_count`` > 0 keeps that many newest; ``keep_days`` > 0
    removes what is older. ``protect``: names never removed (the run being written).
    """
    if keep_count < 0 or keep_days < 0:
        raise ValueError('keep_count and keep_days must be 0 (keep all) or positive, got %r and %r' % (keep_count, keep_days))
    known = sorted(((t, n) for n, t in runs if t is not None), reverse=True)
    remove = set()
    if keep_count:
        remove.update(n for _t, n in known[keep_count:])
    if keep_days:
        limit = now - datetime.timedelta(days=keep_days)
        remove.update(n for t, n in known if t < limit)
    remove -= set(protect)
    return [n for _t, n in sorted((t, n) for t, n in known if n in remove)]


def remove_quietly_missing(path):
    """Remove a file or a symlink; a file already gone is fine, anything else raises."""
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
