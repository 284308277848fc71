#!/usr/bin/env bash
# Run `ansible-test sanity` offline on a copy of the collection.
#
#   scripts/sanity.sh [extra ansible-test sanity args, e.g. --test pep8]
#
# Env: SANITY_MODE=local (default) | venv
#      SANITY_PYTHON=X.Y  only that Python for compile/import (default: every
#                         real interpreter 3.9+ found, see below)
#      KEEP_SANITY_COPY=1 keep the temporary copy
#
# Offline quirks handled here (measured with ansible-core 2.21.5, Python 3.13):
# * Sanity tests with requirements (pylint, pep8, yamllint, validate-modules,
#   ansible-doc, changelog, import, runtime-metadata) run in per-test venvs
#   under ~/.ansible/test/venv, bootstrapped with get-pip.py, downloaded from
#   ci-files.testing.ansible.com unless ~/.ansible/test/cache/get_pip_<v>.py
#   exists, <v> = ansible-test's pinned pip with '.' -> '_' (2.21: get_pip_25_2.py,
#   see ansible_test/_util/target/setup/requirements.py). We install
#   scripts/get-pip-offline.py under that name (bundled ensurepip wheel, then
#   pip==<v> from PyPI). The other packages come from PyPI.
# * ansible-test refuses a collection path that goes through a symlink, so we
#   copy `git ls-files -co --exclude-standard` (tracked + untracked-unignored)
#   into $TMP/ansible_collections/netmedic/k8s (~0.02 s) and run there; its
#   tests/output/ is copied back to ./tests/output/ for inspection.
# * Without --python ansible-test runs compile/import on every supported
#   Python it finds as pythonX.Y on PATH; the pyenv shims exit 127 and break
#   that. So PATH here = .venv/bin, each real /root/.pyenv/versions/3.*/bin
#   (newest first), then the old PATH minus the shims: compile+import run on
#   3.9, 3.10, 3.11, 3.12, 3.13 (modules run on managed nodes' old Pythons);
#   3.14 is "skipped because it could not be found": allowed only because no package source
#   reachable here has it (SANITY_UNAVAILABLE_PYTHONS); any other skipped version fails.
# * --local vs --venv: both run all 24 tests (none skipped; pslint passes
#   with no .ps1 files). --venv also builds a delegation venv inside the copy on
#   every run. Measured: cold (empty ~/.ansible/test and pip cache) venv 72 s,
#   local 79 s (noise); warm venv 22-25 s, local 14-18 s -> default local.
# * The shellcheck test needs the shellcheck binary (make setup installs it).
# * No entries in tests/sanity/ignore-*.txt, by policy: fix the code instead.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# VENV: the venv whose ansible-test runs (scripts/compat.sh points it at .venv-compat, the
# lowest ansible-core that meta/runtime.yml claims).
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
MODE="${SANITY_MODE:-local}"

# Real interpreters first; drop pyenv shims (they exit 127 for non-global versions).
path="$VENV/bin"
for d in $(printf '%s\n' "${PYENV_ROOT:-/root/.pyenv}"/versions/3.*/bin | sort -rV); do
    if [[ -x "$d/python3" ]]; then path="$path:$d"; fi
done
IFS=: read -r -a old_path <<< "$PATH"
for d in "${old_path[@]}"; do
    if [[ "$d" != */shims && "$d" != */shims/ ]]; then path="$path:$d"; fi
done
export PATH="$path"
py_opt=()
if [[ -n "${SANITY_PYTHON:-}" ]]; then py_opt=(--python "$SANITY_PYTHON"); fi

# 0. policy: no sanity ignore entries -------------------------------------
shopt -s nullglob
for f in tests/sanity/ignore-*.txt tests/sanity/skip-*.txt; do
    if grep -qvE '^[[:space:]]*(#.*)?$' "$f"; then
        echo "sanity: $f has entries; fix the code instead (policy: no sanity ignores)" >&2
        grep -nvE '^[[:space:]]*(#.*)?$' "$f" >&2
        exit 1
    fi
done
shopt -u nullglob

# 1. get-pip stand-in under the exact name ansible-test expects -------------
pip_ver="$("$PY" - <<'EOF'
from types import SimpleNamespace
from ansible_test._internal.python_requirements import get_venv_packages
import sys
print(get_venv_packages(SimpleNamespace(version='%d.%d' % sys.version_info[:2]))['pip'])
EOF
)"
cache="$HOME/.ansible/test/cache/get_pip_${pip_ver//./_}.py"
if ! cmp -s scripts/get-pip-offline.py "$cache"; then
    echo "sanity: installing offline get-pip stand-in -> $cache"
    mkdir -p "$(dirname "$cache")"
    cp scripts/get-pip-offline.py "$cache"
fi

# 2. copy the collection (ansible-test rejects the symlinked path) ----------
tmp="$(mktemp -d "${TMPDIR:-/tmp}/netmedic-sanity.XXXXXX")"
if [[ -n "${KEEP_SANITY_COPY:-}" ]]; then
    trap 'echo "sanity: copy kept in $tmp"' EXIT
else
    trap 'rm -rf "$tmp"' EXIT
fi
dest="$tmp/ansible_collections/netmedic/k8s"
mkdir -p "$dest"
# -co: tracked + untracked-but-not-ignored; skip tracked files deleted in the
# tree, and never the venv/symlink loop even if .gitignore misses them (a
# .venv symlink does not match the ignore pattern /.venv/).
git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
    case "$f" in .venv | .venv/* | .venv-* | collections | collections/* | tests/output/* | build/*) continue ;; esac
    if [[ -e "$f" || -L "$f" ]]; then printf '%s\0' "$f"; fi
done | tar --null -T - -cf - | tar -xf - -C "$dest"
# Outside a git work tree ansible-test walks the copy, which holds exactly the
# files git would list (so ignored junk like .venv never reaches the tests).
echo "sanity: $(find "$dest" -type f | wc -l) files copied to $dest"
# Collections this one depends on (galaxy.yml: kubernetes.core, whose auth doc fragment and
# module_utils the cluster modules use) are found by ansible-test next to it, under the same
# ansible_collections root: copy the installed ones there.
deps=(kubernetes.core)
for dep in "${deps[@]}"; do
    src="$("$PY" -c "import ansible_collections.$dep as m; print(m.__path__[0])" 2>/dev/null ||
           "$ROOT/.venv/bin/python" -c "import ansible_collections.$dep as m; print(m.__path__[0])")"
    mkdir -p "$tmp/ansible_collections/${dep%%.*}"
    cp -a "$src" "$tmp/ansible_collections/${dep/.//}"
done

# 3. run ---------------------------------------------------------------------
case "$MODE" in
    venv) env_opt=(--venv) ;;
    local) env_opt=(--local) ;;
    *) echo "sanity: SANITY_MODE must be venv or local" >&2; exit 2 ;;
esac
rc=0
log="$tmp/sanity.log"
(cd "$dest" && ansible-test sanity "${env_opt[@]}" "${py_opt[@]}" --color no "$@") 2>&1 | tee "$log" || rc=$?

# A Python that ansible-test supports but cannot find is skipped with a mere warning, which would
# leave compile/import unchecked there. Only the versions this machine kind cannot install are
# allowed to be missing: Python 3.14 is in no package source reachable here (not in Debian 12,
# pyenv builds need python.org). Any other skipped version fails the stage.
UNAVAILABLE="${SANITY_UNAVAILABLE_PYTHONS-3.14}"
skipped="$(sed -n 's/.*Skipping sanity test "[a-z-]*" on Python \([0-9.]*\) because it could not be found.*/\1/p' "$log" | sort -uV)"
for v in $skipped; do
    if [[ " $UNAVAILABLE " != *" $v "* ]]; then
        echo "sanity: Python $v was skipped (not found); install it (pyenv) or add it to SANITY_UNAVAILABLE_PYTHONS with the reason" >&2
        rc=1
    fi
done

# 4. keep the results ---------------------------------------------------------
# (bot/*.json: one file per failing test; .tmp/ holds venvs and is skipped)
if [[ -d "$dest/tests/output" ]]; then
    mkdir -p "$ROOT/tests/output"
    rm -rf "$ROOT/tests/output/bot"
    (cd "$dest/tests/output" && tar --exclude=./.tmp -cf - .) | tar -xf - -C "$ROOT/tests/output"
fi
exit "$rc"
