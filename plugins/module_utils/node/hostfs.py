# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's file system, seen from a root directory, and its mount table.

Probes address files by their absolute node path (``/proc/net/ip_vs``); a
:class:`HostFS` maps them below ``root`` (``/`` on a node, a fixture tree in unit
tests) and resolves symbolic links *inside* that root (an absolute link target such
as ``/var/run -> /run`` stays in the tree), so the same code reads both.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

RENAME_EXCHANGE = 2
"""``renameat2`` flag: swap the two paths (linux/fs.h)."""
_AT_FDCWD = -100


def _renameat2():
    """glibc's ``renameat2`` (2.28 or later) and the ctypes module, or None when the C library lacks it."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn, ctypes


def _unescape(field):
    """/proc/mounts escapes space, tab, newline and backslash as octal (``\\040``)."""
    out = []
    i = 0
    while i < len(field):
        if field[i] == '\\' and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return ''.join(out)


def proc_rows(text, fields):
    """The white-space separated fields of each line of a ``/proc`` table that has at least ``fields`` of them."""
    rows = (line.split() for line in text.splitlines())
    return [parts for parts in rows if len(parts) >= fields]


def parse_mounts(text):
    """``/proc/mounts`` -> ``[{'device', 'mount_point', 'fstype', 'options'}]`` in order."""
    return [{'device': _unescape(parts[0]), 'mount_point': _unescape(parts[1]), 'fstype': parts[2],
             'options': parts[3].split(',')} for parts in proc_rows(text, 4)]


def _under(path, mount_point):
    if mount_point == '/':
        return path.startswith('/')
    return path == mount_point or path.startswith(mount_point.rstrip('/') + '/')


def visible_mounts(mounts):
    """Drop mounts hidden by a later mount on the same point or on a parent of it."""
    visible = []
    for mount in mounts:
        point = mount['mount_point']
        visible = [m for m in visible if not _under(m['mount_point'], point)]
        visible.append(mount)
    return visible


def mount_for(path, mounts):
    """The mount holding ``path`` (an absolute, symlink-free path), or None."""
    best = None
    for mount in visible_mounts(mounts):
        if _under(path, mount['mount_point']) and (best is None or len(mount['mount_point']) >= len(best['mount_point'])):
            best = mount
    return best


class HostFS(object):
    """Access to the node's files below ``root``: reading (links resolved inside the root) and,
    for modules that change files, the low-level methods at the end (paths as given)."""

    MAX_LINKS = 40

    def __init__(self, root='/'):
        self.root = os.path.abspath(root or '/')

    def path(self, node_path):
        """Where the node path ``node_path`` is on this machine (no link resolution)."""
        node_path = posixpath.normpath('/' + str(node_path).lstrip('/'))
        if self.root == '/':
            return node_path
        return os.path.join(self.root, node_path.lstrip('/'))

    def realpath(self, node_path):
        """``node_path`` with every symbolic link resolved inside the root (a node path)."""
        # '..' is applied after resolving the link before it, as the kernel does.
        parts = [p for p in str(node_path).split('/') if p]
        resolved = []
        links = 0
        while parts:
            part = parts.pop(0)
            if part == '..':
                if resolved:
                    resolved.pop()
                continue
            if part == '.':
                continue
            candidate = '/' + '/'.join(resolved + [part])
            target = None
            try:
                if os.path.islink(self.path(candidate)):
                    target = os.readlink(self.path(candidate))
            except OSError:
                target = None
            if target is None:
                resolved.append(part)
                continue
            links += 1
            if links > self.MAX_LINKS:
                raise OSError(errno.ELOOP, 'too many levels of symbolic links', node_path)
            if target.startswith('/'):
                resolved = []
            parts = [p for p in target.split('/') if p] + parts
        return '/' + '/'.join(resolved)

    def exists(self, node_path):
        return os.path.exists(self.path(self.realpath(node_path)))

    def isdir(self, node_path):
        return os.path.isdir(self.path(self.realpath(node_path)))

    def is_socket(self, node_path):
        try:
            return stat.S_ISSOCK(os.stat(self.path(self.realpath(node_path))).st_mode)
        except OSError:
            return False

    def listdir(self, node_path):
        return sorted(os.listdir(self.path(self.realpath(node_path))))

    def read_bytes(self, node_path):
        with open(self.path(self.realpath(node_path)), 'rb') as f:
            return f.read()

    def read_text(self, node_path, missing=None):
        """Content (UTF-8, undecodable bytes replaced), or ``missing`` when absent."""
        try:
            data = self.read_bytes(node_path)
        except (IOError, OSError) as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                return missing
            raise
        return data.decode('utf-8', 'replace')

    def mtime(self, node_path):
        return os.stat(self.path(self.realpath(node_path))).st_mtime

    def mounts(self):
        return parse_mounts(self.read_text('/proc/mounts', '') or '')

    def filesystem_of(self, node_path, mounts=None):
        """``{'path' (resolved), 'mount_point', 'fstype', 'tmpfs'}`` of a node path."""
        real = self.realpath(node_path)
        mount = mount_for(real, self.mounts() if mounts is None else mounts)
        if mount is None:
            return {'path': real, 'mount_point': None, 'fstype': None, 'tmpfs': None}
        return {'path': real, 'mount_point': mount['mount_point'], 'fstype': mount['fstype'],
                'tmpfs': mount['fstype'] == 'tmpfs'}

    # --- low-level and writing access (catalog N-1's GC, ipam.py; N-7's shared store, flannel.py) ------
    #
    # The methods below address a path *as given*: on root ``/`` exactly the string the caller
    # passed (the same call ``os.*`` would get), below ``root`` otherwise; symbolic links are NOT
    # resolved inside the root (callers that must not follow one use ``lstat``/``O_NOFOLLOW``).
    # They exist so that every file operation of a module goes through one object a test can
    # replace with a fake (record the lock, fail a rename).

    def local(self, node_path):
        """Where ``node_path`` is on this machine, for the methods below (no link resolution)."""
        if self.root == '/':
            return str(node_path)
        return self.path(node_path)

    def lexists(self, node_path):
        """True when the path exists, also as a dangling symbolic link (``os.path.lexists``)."""
        return os.path.lexists(self.local(node_path))

    def islink(self, node_path):
        return os.path.islink(self.local(node_path))

    def readlink(self, node_path):
        """The target a symbolic link holds, as stored (``os.readlink``; a node path is not mapped below the root)."""
        return os.readlink(self.local(node_path))

    def isfile(self, node_path):
        """A regular file, following links as the kernel does (``os.path.isfile``)."""
        return os.path.isfile(self.local(node_path))

    def lstat(self, node_path):
        return os.lstat(self.local(node_path))

    def scandir(self, node_path):
        """``os.scandir`` of the directory: entries' ``name``, ``is_file``, ``stat``; use ``name`` with
        the node path given (an entry's ``path`` is this machine's)."""
        return os.scandir(self.local(node_path))

    def read_head(self, node_path, limit):
        """The first ``limit`` bytes of a file (``open(..., 'rb').read(limit)``; links followed as ``open`` does)."""
        with open(self.local(node_path), 'rb') as f:
            return f.read(limit)

    def open_fd(self, node_path, flags, mode=0o777):
        """``os.open``: a file descriptor to pass to :meth:`flock`, :meth:`write_fd`, :meth:`fsync`, :meth:`close`."""
        return os.open(self.local(node_path), flags, mode)

    def flock(self, fd, operation):
        """``fcntl.flock`` on a descriptor from :meth:`open_fd` (imported here: only lockers need fcntl)."""
        import fcntl

        fcntl.flock(fd, operation)

    def write_fd(self, fd, data):
        """Write all of ``data`` to the descriptor."""
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    def fsync(self, fd):
        os.fsync(fd)

    def close(self, fd):
        os.close(fd)

    def fsync_dir(self, node_path):
        """``fsync`` a directory (its entries made durable: after a rename into or out of it)."""
        fd = os.open(self.local(node_path), os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def mkdir(self, node_path, mode=0o777):
        """Create one directory; OSError ``EEXIST`` when it exists (never reused)."""
        os.mkdir(self.local(node_path), mode)

    def makedirs(self, node_path, mode=0o777, exist_ok=False):
        os.makedirs(self.local(node_path), mode, exist_ok=exist_ok)

    def rename(self, src, dst):
        """``os.rename``: atomic on one file system, OSError ``EXDEV`` across two."""
        os.rename(self.local(src), self.local(dst))

    def unlink(self, node_path):
        os.unlink(self.local(node_path))

    def symlink(self, target, node_path):
        """Create the symbolic link ``node_path`` holding ``target`` as given (``os.symlink``; on a node the
        target is a node path, which :meth:`realpath` resolves inside the root); OSError ``EEXIST`` when
        ``node_path`` exists."""
        os.symlink(target, self.local(node_path))

    def can_exchange(self):
        """Whether :meth:`exchange` is available (the C library has ``renameat2``: glibc 2.28 or later)."""
        return _renameat2() is not None

    def exchange(self, a, b):
        """Swap two paths atomically (``renameat2`` with ``RENAME_EXCHANGE``: at no instant is either path
        missing); both must exist, on one file system. OSError ``ENOSYS`` without ``renameat2``."""
        found = _renameat2()
        if found is None:
            raise OSError(errno.ENOSYS, 'renameat2 is not available in this C library', a)
        fn, ctypes = found
        if fn(_AT_FDCWD, os.fsencode(self.local(a)), _AT_FDCWD, os.fsencode(self.local(b)), RENAME_EXCHANGE) != 0:
            err = ctypes.get_errno()
            raise OSError(err, 'renameat2(RENAME_EXCHANGE) %s <-> %s: %s' % (a, b, os.strerror(err)))

    def utime(self, node_path, times):
        os.utime(self.local(node_path), times)

    def write_text(self, node_path, text):
        """Create or truncate a file and write ``text`` (not fsynced; write a temporary file and
        :meth:`rename` it for an atomic replacement)."""
        with open(self.local(node_path), 'w') as f:
            f.write(text)

    def rmtree(self, node_path):
        """Remove a directory tree (``shutil.rmtree``, which never follows a link out of the tree)."""
        import shutil

        shutil.rmtree(self.local(node_path))
