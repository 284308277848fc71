#!/usr/bin/env python
"""Check a built collection tarball (called by `make build`).

Fails when the tarball holds paths that must never ship (the venv, the
collections/ symlink loop, test output, caches, build output, lab/CI tooling)
or lacks the files a collection needs. Prints a short content summary.
"""

from __future__ import annotations

import json
import sys
import tarfile

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
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
