# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel parameters: read ``/proc/sys``, write now, persist atomically.

Like ``ansible.posix.sysctl`` the caller first computes whether anything would
change and only then writes.  Unlike it, values are written straight to
``/proc/sys`` (no ``sysctl`` binary, no shell), persisted to a drop-in file
under ``/etc/sysctl.d/`` (the rules for files netmedic does not own, such as
``/etc/sysctl.conf``, are in ``settings.py``; file I/O in ``files.py``), and the files that would override the
drop-in at boot are reported.
"""

from __future__ import annotations

import errno
import os

from ansible_collections.netmedic.k8s.plugins.module_utils.node import files as node_files

PROC_SYS = '/proc/sys'

# systemd-sysctl(8) search path, highest precedence first: a file in an earlier
# directory masks a file of the same name in a later one.
SYSCTL_DIRS = ['/etc/sysctl.d', '/run/sysctl.d', '/usr/local/lib/sysctl.d', '/usr/lib/sysctl.d', '/lib/sysctl.d']
# procps `sysctl --system` reads this one last (Debian links 99-sysctl.conf to it).
SYSCTL_CONF = '/etc/sysctl.conf'

DROPIN_HEADER = '# Managed by netmedic.k8s ({module}); catalog {catalog}.\n# Manual edits are overwritten; the previous file is kept as a backup.\n'


def normalize(value):
    """Kernel vectors print tab separated (``32768\\t60999``); compare word by word."""
    return ' '.join(str(value).split())


def key_to_path(key, root=PROC_SYS):
    if not key or key.startswith(('.', '/')) or '..' in key:
        raise ValueError('invalid sysctl key: %r' % (key,))
    return os.path.join(root, key.replace('.', '/'))


def read_value(key, root=PROC_SYS):
    """Current value (normalized) or None when the key does not exist."""
    try:
        with open(key_to_path(key, root)) as f:
            return normalize(f.read())
    except (IOError, OSError) as e:
        if e.errno == errno.ENOENT:
            return None
        raise


def writable(key, root=PROC_SYS):
    """False when ``key`` exists but this process may not write it; True otherwise (a missing key is the caller's).

    A network namespace other than the host's initial one (a container, a node that is a namespace) sees some net
    keys read-only, ``net.netfilter.nf_conntrack_max`` among them: the kernel then gives the file mode 0444 and
    refuses root too, which ``access(2)`` reports before anything is written.
    """
    path = key_to_path(key, root)
    return not os.path.exists(path) or os.access(path, os.W_OK)


def write_value(key, value, root=PROC_SYS):
    with open(key_to_path(key, root), 'w') as f:
        f.write(normalize(value) + '\n')


def parse_conf(text):
    """``key = value`` pairs of a sysctl.d file, in order (later wins)."""
    result = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in '#;':
            continue
        if '=' not in line:
            continue
        key, value = line.split('=', 1)
        key = key.strip().lstrip('-').replace('/', '.')
        result[key] = normalize(value)
    return result


def render_dropin(settings, module_name, catalog):
    """File text for ``settings`` (a list of (key, value) pairs)."""
    lines = [DROPIN_HEADER.format(module=module_name, catalog=catalog)]
    for key, value in settings:
        lines.append('%s = %s\n' % (key, normalize(value)))
    return ''.join(lines)


def boot_order(dirs=None, conf=SYSCTL_CONF):
    """Files applied at boot, in the order they are applied (later wins)."""
    dirs = SYSCTL_DIRS if dirs is None else dirs
    chosen = {}
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            if name.endswith('.conf') and name not in chosen:
                chosen[name] = os.path.join(d, name)
    order = [chosen[n] for n in sorted(chosen)]
    seen = {os.path.realpath(p) for p in order}
    if conf and os.path.exists(conf) and os.path.realpath(conf) not in seen:
        order.append(conf)
    return order


def persisted_values(key, dirs=None, conf=SYSCTL_CONF):
    """[(path, value)] for every boot-time file that sets ``key``, in boot order."""
    found = []
    for path in boot_order(dirs, conf):
        try:
            text = node_files.read_text(path)
        except (IOError, OSError):
            continue
        if text is None:
            continue
        values = parse_conf(text)
        if key in values:
            found.append((path, values[key]))
    return found


def overriders(key, own_path, value, dirs=None, conf=SYSCTL_CONF):
    """Boot-time files applied after ``own_path`` that set ``key`` to another value.

    They would silently undo netmedic's drop-in at the next boot. ``own_path`` itself
    (also through a symbolic link, like Debian's ``99-sysctl.conf``) never counts.
    """
    own = os.path.basename(own_path)
    own_real = os.path.realpath(own_path)
    ordered = boot_order(dirs, conf)
    reals = [os.path.realpath(p) for p in ordered]
    if own_real in reals:
        later_files = ordered[reals.index(own_real) + 1:]
    else:
        later_files = [p for p in ordered if p == conf or os.path.basename(p) > own]
    result = []
    for path in later_files:
        if os.path.realpath(path) == own_real:
            continue
        try:
            text = node_files.read_text(path)
        except (IOError, OSError):
            continue
        values = parse_conf(text or '')
        if key in values and values[key] != normalize(value):
            result.append({'path': path, 'value': values[key]})
    return result
