#!/usr/bin/env python
"""The host packages declared in bindep.txt, and the programs they provide.

One reader for the one list (bindep.txt at the repository root): the rules are parsed by
bindep itself (``bindep.depends``, installed with the dev dependencies); this module adds
the ``# provides: PROGRAM ...`` comment that precedes each entry, so a program can be
mapped to its package. Used by ``make setup`` (scripts/setup.sh), tests/integration's
``require()``, tests/unit/test_host_packages.py and ``make fresh-check``.

    scripts/hostdeps.py packages PROFILE...        packages active for the profiles here
    scripts/hostdeps.py missing PROFILE...         those of them not installed (dpkg)
    scripts/hostdeps.py programs PROFILE...        programs the active entries provide
    scripts/hostdeps.py check [--root DIR] PROFILE...
                                                   fail (exit 1) naming each program that
                                                   is absent under DIR (default /)
    scripts/hostdeps.py absent [--root DIR] PROFILE...
                                                   name the absent ones; fail (exit 1) when
                                                   none is absent (a root that proves nothing)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINDEP = ROOT / 'bindep.txt'
# Where a program is looked up besides PATH: the netmedic Runner's sbin directories.
SBIN_DIRS = ('/usr/local/sbin', '/usr/sbin', '/sbin')
DEFAULT_PATH = ('/usr/local/bin', '/usr/bin', '/bin')
PROVIDES = '# provides:'
CACHE = ROOT / '.venv' / '.netmedic-bindep-rules.json'
_PARSED = {}


class Entry(object):
    """One bindep rule: package, profiles (non-platform), platforms, provided programs."""

    def __init__(self, package, selectors, provides):
        self.package = package
        self.profiles = sorted(name for positive, name in selectors if positive and not name.startswith('platform:'))
        self.platforms = sorted(name for positive, name in selectors if positive and name.startswith('platform:'))
        self.selectors = selectors
        self.provides = list(provides)

    def __repr__(self):
        return 'Entry(%s %s %s provides=%s)' % (self.package, self.platforms, self.profiles, self.provides)


def _depends(text):
    """bindep's Depends for ``text``.

    Parsing builds bindep's grammar each time (~1-3 s here), so the parsed rules are kept
    in .venv/.netmedic-bindep-rules.json, keyed by the file's sha256 (a cache of the
    parse only; which packages apply and which are installed is evaluated every time).
    """
    try:
        from bindep.depends import Depends
    except ImportError:
        raise SystemExit('hostdeps: the bindep Python package is missing: run make setup (pyproject.toml declares it)')
    digest = hashlib.sha256(text.encode('utf-8')).hexdigest()
    if digest not in _PARSED:
        try:
            cached = json.loads(CACHE.read_text())
        except (OSError, ValueError):
            cached = {}
        if cached.get('sha256') == digest:
            _PARSED[digest] = [(name, [tuple(sel) for sel in selectors], [tuple(v) for v in versions])
                               for name, selectors, versions in cached['rules']]
        else:
            _PARSED[digest] = Depends(text)._rules
            if CACHE.parent.is_dir():
                with contextlib.suppress(OSError):
                    CACHE.write_text(json.dumps({'sha256': digest, 'rules': _PARSED[digest]}))
    depends = Depends.__new__(Depends)
    depends.filename = None
    depends._rules = _PARSED[digest]
    return depends


def entries(path=BINDEP):
    """Every rule of ``path`` in file order, with its ``# provides:`` programs."""
    text = Path(path).read_text()
    rules = _depends(text)._rules
    provides, pending = [], []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(PROVIDES):
            pending = line[len(PROVIDES):].split()
        elif line and not line.startswith('#'):
            provides.append(pending)
            pending = []
    if len(provides) != len(rules):
        raise ValueError('%s: %d rule lines but bindep parsed %d rules' % (path, len(provides), len(rules)))
    return [Entry(name, selectors, progs) for (name, selectors, _versions), progs in zip(rules, provides)]


def active(profiles, path=BINDEP):
    """Entries bindep selects on this machine's platform for ``profiles``."""
    depends = _depends(Path(path).read_text())
    names = {rule[0] for rule in depends.active_rules(list(profiles) + depends.platform_profiles())}
    return [e for e in entries(path) if e.package in names]


def package_for(program, path=BINDEP):
    """The entry that provides ``program`` (a name or absolute path), or None."""
    for entry in entries(path):
        if program in entry.provides:
            return entry
    return None


def _in_root(root, path, depth=0):
    """``path`` (absolute, inside ``root``) as a host path, symlinks resolved inside ``root``.

    A root's absolute symlinks (``/usr/sbin/modprobe -> /bin/kmod``) point into the root,
    not into this machine.
    """
    if root == '/':
        return path
    if depth > 40:
        raise OSError('too many levels of symbolic links under %s: %s' % (root, path))
    done = '/'
    parts = [p for p in path.split('/') if p]
    for i, part in enumerate(parts):
        here = os.path.join(root, done.lstrip('/'), part)
        if os.path.islink(here):
            target = os.readlink(here)
            rest = '/'.join(parts[i + 1:])
            joined = target if target.startswith('/') else os.path.normpath(os.path.join(done, target))
            return _in_root(root, os.path.join(joined, rest) if rest else joined, depth + 1)
        done = os.path.join(done, part)
    return os.path.join(root, done.lstrip('/'))


def _executable(root, path):
    try:
        real = _in_root(root, path)
    except OSError:
        return False
    return os.path.isfile(real) and os.access(real, os.X_OK)


def find_program(program, root='/'):
    """Path of ``program`` under ``root`` (absolute paths as given; names on PATH, then sbin; ``*.py``: a module file)."""
    if program.startswith('/'):
        if program.endswith('.py'):
            # A Python module a Debian package provides (python3-yaml for the lab's /usr/bin/python3 scripts):
            # a regular file, not a program.
            try:
                return program if os.path.isfile(_in_root(root, program)) else None
            except OSError:
                return None
        return program if _executable(root, program) else None
    dirs = os.environ.get('PATH', '').split(os.pathsep) if root == '/' else list(DEFAULT_PATH)
    for d in [d for d in dirs if d] + list(SBIN_DIRS):
        candidate = os.path.join(d, program)
        if _executable(root, candidate):
            return candidate
    return None


def installed(package, timeout=30):
    """True when dpkg reports ``package`` installed (an error or timeout raises)."""
    proc = subprocess.run(['dpkg-query', '-W', '-f=${Status}', package], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode not in (0, 1):
        raise RuntimeError('dpkg-query %s failed (rc=%d): %s' % (package, proc.returncode, proc.stderr.strip()))
    return proc.returncode == 0 and proc.stdout.strip().endswith(' installed')


def main(argv):
    if len(argv) < 2 or argv[0] not in ('packages', 'missing', 'programs', 'check', 'absent'):
        print(__doc__.split('\n\n', 2)[2].rstrip(), file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    root = '/'
    if command in ('check', 'absent') and args[:1] == ['--root']:
        root, args = args[1], args[2:]
    selected = active(args)
    if not selected:
        # Never an empty list taken for "nothing needed": on a platform bindep.txt does not
        # describe (every entry is platform:dpkg) nothing would be installed or checked.
        print('hostdeps: no bindep.txt entry applies to profiles %s on this platform; the list describes '
              'Debian (platform:dpkg) only' % ' '.join(args), file=sys.stderr)
        return 1
    if command == 'packages':
        print('\n'.join(e.package for e in selected))
    elif command == 'missing':
        print('\n'.join(e.package for e in selected if not installed(e.package)))
    elif command == 'programs':
        print('\n'.join(p for e in selected for p in e.provides))
    elif command == 'absent':
        absent = ['%s (package %s)' % (p, e.package) for e in selected for p in e.provides if find_program(p, root) is None]
        if not absent:
            print('hostdeps: every program of profiles %s is already under %s: nothing to prove' % (' '.join(args), root),
                  file=sys.stderr)
            return 1
        print('hostdeps: absent under %s before the install: %s' % (root, ', '.join(absent)))
    else:
        absent = ['%s (package %s)' % (p, e.package) for e in selected for p in e.provides if find_program(p, root) is None]
        count = sum(len(e.provides) for e in selected)
        if absent:
            print('hostdeps: missing under %s: %s' % (root, ', '.join(absent)), file=sys.stderr)
            return 1
        print('hostdeps: all %d programs of %d packages (profiles %s) present under %s' % (count, len(selected), ' '.join(args), root))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
