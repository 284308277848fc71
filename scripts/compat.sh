#!/usr/bin/env bash
# The lowest ansible-core the collection claims (meta/runtime.yml requires_ansible) gets the same
# unit tests and ansible-test sanity as the newest (the main .venv): `make compat`.
#
# .venv-compat is created with the same Python as .venv and holds ansible-core <floor>.* plus
# the packages the units import (stamp: the floor + the sha256 of this file and pyproject.toml,
# so it is rebuilt only when one of them changes). Sanity runs with one Python (SANITY_PYTHON, default the venv's): the
# main sanity stage already covers compile/import on every Python.
# Measured here: cold ~60 s (pip) + sanity ~70 s; warm ~35 s.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf 'compat: %s\n' "$*"; }

floor="$(sed -n 's/^requires_ansible: *["'"'"']>=\([0-9]*\.[0-9]*\)\.[0-9]*["'"'"'].*/\1/p' meta/runtime.yml)"
[[ -n "$floor" ]] || { say "cannot read requires_ansible '>=X.Y.Z' from meta/runtime.yml"; exit 2; }
VENV="$ROOT/.venv-compat"
STAMP="$VENV/.netmedic-compat.stamp"
want="$floor $(cat scripts/compat.sh pyproject.toml | sha256sum | cut -d' ' -f1)"
py="$(readlink -f "$ROOT/.venv/bin/python")"
if [[ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]]; then
    say "creating $VENV: ansible-core $floor.* with $("$py" -V 2>&1)"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
    # What the unit tests import, at the pins of pyproject.toml's dev group (the linters, molecule
    # and the newest ansible-core stay out: this venv is about the oldest ansible-core).
    mapfile -t deps < <("$py" - <<'PY'
import re, tomllib
wanted = {'kubernetes', 'ruamel.yaml', 'pytest', 'jsonpatch', 'jsonschema', 'packaging', 'bindep'}
with open('pyproject.toml', 'rb') as f:
    for dep in tomllib.load(f)['dependency-groups']['dev']:
        if re.split(r'[<>=!~ \[]', dep, maxsplit=1)[0].lower() in wanted:
            print(dep)
PY
)
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "ansible-core==$floor.*" 'PyYAML>=6' "${deps[@]}"
    echo "$want" > "$STAMP"
fi
say "$("$VENV/bin/ansible" --version | sed -n 1p)"   # sed reads it all: no broken pipe

# kubernetes.core (a galaxy.yml dependency: the cluster modules' auth options, client configuration
# and doc fragment) comes with the ansible package in .venv; this ansible-core-only venv gets the same copy.
if ! "$VENV/bin/python" -c 'import ansible_collections.kubernetes.core' 2>/dev/null; then
    src="$("$ROOT/.venv/bin/python" -c 'import ansible_collections.kubernetes.core as m; print(m.__path__[0])')"
    site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    mkdir -p "$site/ansible_collections/kubernetes"
    cp -a "$src" "$site/ansible_collections/kubernetes/core"
    say "kubernetes.core copied from .venv into $VENV"
fi

say "unit tests"
"$VENV/bin/python" -m pytest tests/unit -q -p no:cacheprovider || { rc=$?; [[ $rc -eq 5 ]] && say 'no tests collected'; exit "$rc"; }

say "ansible-test sanity"
pyv="$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
VENV="$VENV" SANITY_PYTHON="${SANITY_PYTHON:-$pyv}" scripts/sanity.sh "$@"
