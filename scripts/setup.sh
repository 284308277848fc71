#!/usr/bin/env bash
# Create/refresh the development virtualenv and the collection symlink, and install
# the host packages the tests need (bindep.txt, profile `test`; apt-get, as root).
#
#   scripts/setup.sh                  (called by `make setup`)
#   scripts/setup.sh --python         print the interpreter it would create .venv with
#   scripts/setup.sh --print-deps     print the pip requirements it installs (fresh-check's wheelhouse)
#                                     (scripts/fresh-check.sh models a new machine with it)
#
# Re-runnable and fast when nothing changed (~0.1 s): pip runs only when the
# stamp .venv/.netmedic-deps.stamp does not match the sha256 of pyproject.toml.
# Cold full install (ansible-core, ansible 14, ansible-lint, molecule, ...):
# ~90-110 s and ~700 MB from PyPI.
#
# Interpreter choice: ansible-core 2.21 needs Python >= 3.12 on the controller.
# Debian 12 has only 3.11, so prefer pyenv's 3.13.x, then 3.12.x (this project's machines
# come with both in /root/.pyenv/versions), else python3 if it is >= 3.12; anything older
# fails here, naming the cause (pip would only say "no matching distribution").
# Never use /root/.pyenv/shims/*: the shims exit 127 outside a pyenv context.
set -euo pipefail
PYTHON_FLOOR=3.12

# make test runs setup once as its first stage, then exports this so the
# per-target `setup` prerequisites stay silent.
if [[ -n "${NETMEDIC_SETUP_DONE:-}" && "${1:-}" != --python && "${1:-}" != --print-deps ]]; then exit 0; fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${VENV:-.venv}"
STAMP="$VENV/.netmedic-deps.stamp"
say() { printf 'setup: %s\n' "$*"; }

pick_python() {
    local minor cand
    if [[ -n "${NETMEDIC_PYTHON:-}" ]]; then
        echo "$NETMEDIC_PYTHON"; return
    fi
    # Newest 3.x first (3.19 .. 3.12), newest patch release first.
    for minor in 19 18 17 16 15 14 13 12; do
        cand="$(printf '%s\n' "${PYENV_ROOT:-/root/.pyenv}"/versions/3."$minor".*/bin/python3 | sort -rV | head -n1)"
        if [[ -x "$cand" ]]; then
            echo "$cand"; return
        fi
    done
    # Last resort: python3 on PATH, skipping pyenv shims (they can exit 127).
    for cand in $(type -ap python3); do
        [[ "$cand" == */shims/* ]] || { echo "$cand"; return; }
    done
    command -v python3
}

pyver() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }

# Reuse .venv when its Python works and is not older than the best available.
venv_ok() {
    local have want
    have="$(pyver "$VENV/bin/python")" || return 1
    want="$(pyver "$PY")" || return 0
    [[ "$(printf '%s\n%s\n' "$have" "$want" | sort -V | head -n1)" == "$want" ]]
}

# The dev dependency list, one per line: pyproject.toml [dependency-groups].dev (tomllib, Python >= 3.11).
print_deps() {
    "$1" - <<'EOF'
import tomllib
with open('pyproject.toml', 'rb') as f:
    data = tomllib.load(f)
for dep in data['dependency-groups']['dev']:
    print(dep)
EOF
}

# 1. virtualenv -------------------------------------------------------------
PY="$(pick_python || true)"
if [[ "${1:-}" == --python ]]; then
    [[ -n "$PY" ]] && echo "$PY"; [[ -n "$PY" ]]; exit
fi
if [[ "${1:-}" == --print-deps ]]; then
    print_deps "${PY:-python3}"; exit
fi
have_py=""
if [[ -n "$PY" ]]; then have_py="$(pyver "$PY" || true)"; fi
if [[ -z "$have_py" || "$(printf '%s\n%s\n' "$have_py" "$PYTHON_FLOOR" | sort -V | head -n1)" != "$PYTHON_FLOOR" ]]; then
    say "ERROR: no Python >= $PYTHON_FLOOR found (ansible-core 2.21 needs it; found: ${PY:-no python3}${have_py:+ $have_py})."
    say "       Debian 12 ships 3.11 only. Looked in ${PYENV_ROOT:-/root/.pyenv}/versions/3.1[2-9].* and python3 on PATH;"
    say "       point NETMEDIC_PYTHON at a CPython >= $PYTHON_FLOOR (with its venv/ensurepip module)."
    exit 1
fi
if venv_ok; then
    say "reusing $VENV ($("$VENV/bin/python" -V 2>&1))"
else
    [[ -d "$VENV" ]] && { say "existing $VENV is unusable or too old: recreating"; rm -rf "$VENV"; }
    say "creating $VENV with $PY ($("$PY" -V 2>&1))"
    "$PY" -m venv "$VENV"
    rm -f "$STAMP"
fi

# 2. dependencies (stamp = sha256 of pyproject.toml) -------------------------
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" == "$have" ]]; then
    say "dependencies up to date (pyproject.toml unchanged)"
else
    mapfile -t deps < <(print_deps "$VENV/bin/python")
    say "pip install ${#deps[@]} pinned dev dependencies from pyproject.toml [dependency-groups].dev"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${deps[@]}"
    echo "$want" > "$STAMP"
    say "dependencies installed"
fi

# 3. collection symlink (untracked; /collections/ is gitignored) -------------
# A tracked directory symlink would fail the `symlinks` sanity test.
link="collections/ansible_collections/netmedic/k8s"
if [[ "$(readlink "$link" 2>/dev/null || true)" != "../../.." ]]; then
    say "linking $link -> ../../.."
    mkdir -p "$(dirname "$link")"
    rm -rf "$link"
    ln -s ../../.. "$link"
else
    say "$link -> ../../.. present"
fi

# 4. host packages the tests need: the `test` profile of bindep.txt -------------
# bindep.txt is the one declared list of host packages (Debian names; profile `node`: what
# the node modules run on a managed node, `test`: what the tests and sanity run here).
# scripts/hostdeps.py reads it with bindep's own parser; every missing `test` package is
# apt-get installed, then every program the profile provides must be present. Failing here
# is deliberate: a test that needs a missing program would fail later anyway, less clearly.
# (the VM lab's own host packages are installed by `lab/vm/labctl deps`)
hostdeps() { "$VENV/bin/python" scripts/hostdeps.py "$@"; }
missing_text="$(hostdeps missing test)"   # (a failure here stops setup: set -e)
mapfile -t missing < <(printf '%s' "$missing_text" | sed '/^$/d')
if [[ ${#missing[@]} -eq 0 ]]; then
    :
elif [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing host packages (bindep.txt, profile test): ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    scripts/apt-locked timeout 600 apt-get update -qq
    scripts/apt-locked timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    say "ERROR: host packages missing (bindep.txt, profile test): ${missing[*]}"
    say "       and this user cannot apt-get install them: as root run"
    say "       apt-get install --no-install-recommends ${missing[*]}"
    exit 1
fi
hostdeps check test
