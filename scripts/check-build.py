#!/usr/bin/env python
"""Check a built collection tarball (called by `make build`).

Fails when the tarball holds paths that must never ship (the venv, the
collections/ symlink loop, test output, caches, build output, lab/CI tooling)
or lacks the files a collection needs. Prints a short content summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile

FORBIDDEN_PREFIXES = (
    '.venv/', 'collections/', 'tests/output/', 'build/', '.ansible/', '.cache/', '.git/',
    '.pytest_cache/', '.ruff_cache/', '.ci/', 'scripts/', 'bench/', 'molecule/',
)
FORBIDDEN_PARTS = ('__pycache__',)
FORBIDDEN_SUFFIXES = ('.pyc', '.tar.gz')
REQUIRED = ('MANIFEST.json', 'FILES.json', 'meta/runtime.yml', 'README.md')


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print('usage: check-build.py TARBALL', file=sys.stderr)
        return 2
    path = argv[1]
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        names = [m.name[2:] if m.name.startswith('./') else m.name for m in members]
        manifest = json.load(tar.extractfile('MANIFEST.json'))
    bad = [
        n for n in names
        if n.startswith(FORBIDDEN_PREFIXES) or n.rstrip('/') + '/' in FORBIDDEN_PREFIXES
        or any(p in n.split('/') for p in FORBIDDEN_PARTS) or n.endswith(FORBIDDEN_SUFFIXES)
    ]
    links = [m.name for m in members if m.issym() or m.islnk()]
    missing = [r for r in REQUIRED if r not in names]
    info = manifest['collection_info']
    files = [n for n, m in zip(names, members) if m.isfile()]
    print(f'build: {path}: {info["namespace"]}.{info["name"]} {info["version"]}, {len(files)} files')
    ok = True
    for label, items in (('forbidden paths', bad), ('links', links), ('missing files', missing)):
        if items:
            ok = False
            print(f'build: ERROR: {label}: {", ".join(sorted(items)[:20])}', file=sys.stderr)
    print('build: tarball content OK' if ok else 'build: tarball content check FAILED')
    if ok:
        ok = check_introspect(path)
    return 0 if ok else 1


def _requirement_lines(path: str) -> list[str]:
    with open(path, encoding='utf-8') as f:
        return [line.split('#', 1)[0].strip() for line in f if line.split('#', 1)[0].strip()]


def check_introspect(tarball: str) -> bool:
    """What an AWX admin's ansible-builder sees: install the tarball, introspect it.

    Every line of meta/ee-requirements.txt and meta/ee-bindep.txt must come back, i.e. the
    collection declares its controller-side dependencies where ansible-builder looks.
    """
    bindir = os.path.dirname(sys.executable)
    want_py = _requirement_lines('meta/ee-requirements.txt')
    want_sys = _requirement_lines('meta/ee-bindep.txt')
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
    with tempfile.TemporaryDirectory(prefix='netmedic-introspect-') as tmp:
        subprocess.run(
            [os.path.join(bindir, 'ansible-galaxy'), 'collection', 'install', '--no-deps', '--offline',
             '-p', tmp, os.path.abspath(tarball)],
            cwd=tmp, env=env, check=True, capture_output=True, text=True, timeout=120)
        out = subprocess.run(
            [os.path.join(bindir, 'ansible-builder'), 'introspect', '--sanitize', tmp],
            cwd=tmp, env=env, check=True, capture_output=True, text=True, timeout=120).stdout
    missing = [w for w in want_py + want_sys if f"'{w}  # from collection netmedic.k8s'" not in out]
    if missing or not want_py:
        print(f'build: ERROR: ansible-builder introspect does not list: {missing or "any Python requirement"}',
              file=sys.stderr)
        print(out, file=sys.stderr)
        return False
    print(f'build: ansible-builder introspect lists {len(want_py)} Python and {len(want_sys)} system requirements')
    return True


if __name__ == '__main__':
    sys.exit(main(sys.argv))
