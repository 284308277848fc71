# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node files: read as on disk, write atomically (temporary file, fsync, rename), backup first.

Every module that writes a file on a node goes through here (sysctl drop-ins, systemd units,
modules-load files, eBPF map backups); the persisted-setting transaction (``settings.py``)
uses it for its file steps.
"""

from __future__ import annotations

import errno
import os
import tempfile


def read_text(path):
    """File content, line endings as on disk (CRLF kept), or None when it does not exist."""
    try:
        with open(path, newline='') as f:
            return f.read()
    except (IOError, OSError) as e:
        if e.errno == errno.ENOENT:
            return None
        raise


def write_file_atomic(module, path, content, mode=0o644):
    """Write ``content`` to ``path`` atomically, keeping a backup of a replaced file.

    Returns the backup path (or None when nothing was replaced).
    """
    backup = None
    if os.path.exists(path):
        backup = module.backup_local(path)
    replace_file(module, path, content, mode)
    return backup


def replace_file(module, path, content, mode=0o644):
    """Write ``content`` to ``path`` atomically (temporary file + rename), no backup."""
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(prefix='.netmedic-', dir=directory)
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
