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
    """Read-only access to the node's files below ``root``."""

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
