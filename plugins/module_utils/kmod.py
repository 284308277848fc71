# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel modules (catalog N-4): what is loaded, what exists, what loads at boot.

- loaded modules come from ``/proc/modules`` (parsed by :func:`ipvs.parse_modules`);
- built-in modules from ``/lib/modules/<release>/modules.builtin``;
- whether a module exists at all from ``modprobe -n <name>`` (a dry run: resolves the
  name and its dependencies, loads nothing; rc 1 and
  ``modprobe: FATAL: Module <name> not found in directory /lib/modules/<release>``
  when the kernel has no such module);
- boot-time loading from ``modules-load.d(5)`` files: one module name per line,
  lines starting with ``#`` or ``;`` are comments (a line that is not a module name is
  skipped here, as systemd-modules-load would fail on it).

Everything here is pure except :func:`probe_exists` and :func:`load`, which run
``modprobe`` through the shared runner (argument lists, never a shell).
"""

import os
import re

from ansible_collections.netmedic.k8s.plugins.module_utils import ipvs

PROC_MODULES = '/proc/modules'
# modules-load.d(5) search path (systemd-modules-load); Debian's kmod also reads /etc/modules.
MODULES_LOAD_DIRS = ['/etc/modules-load.d', '/run/modules-load.d', '/usr/local/lib/modules-load.d',
                     '/usr/lib/modules-load.d', '/lib/modules-load.d']
MODULES_FILE = '/etc/modules'
MODULES_DIR = '/lib/modules'
MODULES_LOAD_HEADER = ('# Managed by netmedic.k8s ({module}); catalog {catalog}.\n'
                       '# Loaded at boot by systemd-modules-load; the previous file is kept as a backup.\n')

_NAME_RE = re.compile(r'^[A-Za-z0-9_-]+$')


class KmodError(ValueError):
    pass


def canonical(name):
    """Kernel module names treat ``-`` and ``_`` alike; ``/proc/modules`` prints ``_``."""
    name = str(name or '').strip()
    if not _NAME_RE.match(name):
        raise KmodError('not a kernel module name: %r' % (name,))
    return name.replace('-', '_')


def loaded_names(proc_modules_text):
    """Names of loaded modules from ``/proc/modules`` text; None when the file is absent."""
    if proc_modules_text is None:
        return None
    return sorted({m['name'] for m in ipvs.parse_modules(proc_modules_text)})


def builtin_path(release, root='/'):
    return os.path.join(root, MODULES_DIR.lstrip('/'), release, 'modules.builtin')


def parse_modules_load(text):
    """Module names listed in a modules-load.d file, in order, without duplicates."""
    names = []
    for raw in (text or '').splitlines():
        line = raw.strip()
        if not line or line[0] in '#;':
            continue
        try:
            name = canonical(line)
        except KmodError:
            continue
        if name not in names:
            names.append(name)
    return names


def render_modules_load(names, module_name, catalog):
    lines = [MODULES_LOAD_HEADER.format(module=module_name, catalog=catalog)]
    lines.extend('%s\n' % n for n in names)
    return ''.join(lines)


def merge_names(existing, wanted):
    """``existing`` in their order, then the ``wanted`` ones not listed yet."""
    result = list(existing)
    for name in wanted:
        if name not in result:
            result.append(name)
    return result


def plan_load(wanted, loaded, builtin):
    """Modules of ``wanted`` (in order) that are neither loaded nor built in."""
    present = set(loaded or ()) | set(builtin or ())
    return [name for name in wanted if name not in present]


_NOT_FOUND_RE = re.compile(r'Module (\S+) not found')


def probe_exists(runner, name):
    """``(True, None)`` when ``modprobe -n name`` succeeds, else ``(False, reason)``."""
    result = runner.run(['modprobe', '-n', name], check=False)
    if result.rc == 0:
        return True, None
    detail = (result.stderr or result.stdout or '').strip()
    if _NOT_FOUND_RE.search(detail):
        return False, detail
    return False, detail or 'modprobe -n %s exited with rc=%s' % (name, result.rc)


def load(runner, name):
    """``modprobe name``; raises CommandError on failure."""
    runner.run(['modprobe', name])
