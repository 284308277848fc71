#!/usr/bin/env bash
# The edit loop (`make check`): lint what changed, run every unit test, and run the
# integration and API-double tests of what changed. Aimed at < 2 min; `make test` is
# still what CI runs.
#
#   make check                      changes = uncommitted (tracked and untracked files)
#                                   against HEAD; if there are none, the last commit
#   make check CHECK_BASE=<commit>  changes since <commit> (e.g. the branch point)
#   make check CHECK_FILES='a b'    exactly these files (several people editing one tree)
#
# What runs:
#   lint   ruff on changed Python, shellcheck on changed shell scripts, ansible-lint on
#          changed playbooks/roles/extensions YAML, antsibull-changelog lint when a
#          fragment changed, ansible-doc for each changed module
#   units  pytest tests/unit (all of it: seconds)
#   tests  pytest on the tests/integration, tests/lab, tests/cluster and tests/double files that are
#          changed themselves, are named after a changed module/module_utils/role/
#          playbook, or (for module_utils) are named after a module that imports it,
#          or import or name it themselves
# A step that fails does not stop the others; the exit status is non-zero if any failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2

say() { printf 'check: %s\n' "$*"; }
base="${CHECK_BASE:-}"
if [[ -n "${CHECK_FILES:-}" ]]; then
    read -r -a files <<<"$CHECK_FILES"
    what='named in CHECK_FILES'
elif [[ -n "$base" ]]; then
    mapfile -t files < <({ git diff --name-only "$base" --; git ls-files -o --exclude-standard; } | sort -u)
    what="since $base"
else
    mapfile -t files < <({ git diff --name-only HEAD --; git ls-files -o --exclude-standard; } | sort -u)
    what='uncommitted'
    if [[ ${#files[@]} -eq 0 ]]; then
        mapfile -t files < <(git diff --name-only HEAD~1 HEAD -- | sort -u)
        what='in the last commit'
    fi
fi
existing=()
for f in "${files[@]}"; do [[ -f "$f" ]] && existing+=("$f"); done
files=("${existing[@]+"${existing[@]}"}")
say "${#files[@]} changed file(s) $what"

failed=()
step() {  # step NAME CMD...
    local name=$1; shift
    local t0 rc
    t0=$(date +%s)
    echo "--- $name: $*"
    "$@"
    rc=$?
    say "$name: $([[ $rc -eq 0 ]] && echo ok || echo "FAILED rc=$rc") ($(( $(date +%s) - t0 )) s)"
    [[ $rc -eq 0 ]] || failed+=("$name")
}

pick() { printf '%s\n' "${files[@]+"${files[@]}"}" | grep -E "$1" || true; }

# 1. lint -------------------------------------------------------------------------------
mapfile -t py < <(pick '\.py$')
mapfile -t sh < <(pick '\.sh$')
mapfile -t yml < <(pick '^(playbooks|roles|extensions)/.*\.ya?ml$')
mapfile -t frag < <(pick '^changelogs/')
mapfile -t mods < <(pick '^plugins/modules/[^/]+\.py$')
[[ ${#py[@]} -eq 0 ]] || step ruff ruff check --output-format concise "${py[@]}"
[[ ${#py[@]} -eq 0 ]] || step pep8 make -s pep8 NETMEDIC_SETUP_DONE=1
[[ ${#sh[@]} -eq 0 ]] || step shellcheck shellcheck "${sh[@]}"
[[ ${#yml[@]} -eq 0 ]] || step ansible-lint ansible-lint --offline --nocolor "${yml[@]}"
[[ ${#frag[@]} -eq 0 ]] || step changelog-lint antsibull-changelog lint
for m in "${mods[@]+"${mods[@]}"}"; do
    name="$(basename "$m" .py)"
    # shellcheck disable=SC2016  # $1 is expanded by the inner bash
    step "ansible-doc $name" bash -c 'ansible-doc -t module "netmedic.k8s.$1" >/dev/null' _ "$name"
done

# 2. units --------------------------------------------------------------------------------
step units pytest tests/unit -q -p no:cacheprovider

# 3. the tests of what changed -------------------------------------------------------------
test_dirs=(tests/integration tests/lab tests/cluster tests/double)
selected=()
add() { local t; for t in "$@"; do [[ -f "$t" && " ${selected[*]-} " != *" $t "* ]] && selected+=("$t"); done; }
named() {  # test files named after $1
    local d; for d in "${test_dirs[@]}"; do compgen -G "$d/test_*$1*.py" || true; done
}
for f in "${files[@]+"${files[@]}"}"; do
    case "$f" in
        tests/integration/test_*.py|tests/lab/test_*.py|tests/cluster/test_*.py|tests/double/test_*.py) add "$f" ;;
        plugins/modules/*.py|plugins/inventory/*.py|plugins/callback/*.py|playbooks/*.yml)
            stem="$(basename "${f%.*}")"
            mapfile -t hits < <(named "$stem"; grep -rlE "netmedic\.k8s\.$stem\b|playbooks/$stem\.yml|'$stem\.yml'" "${test_dirs[@]}" --include='test_*.py' || true)
            add "${hits[@]+"${hits[@]}"}" ;;
        plugins/module_utils/*.py)
            stem="$(basename "$f" .py)"
            mapfile -t users < <(grep -lE "module_utils(\.$stem import|( import|,) .*\b$stem\b)" plugins/modules/*.py 2>/dev/null | xargs -r -n1 basename | sed 's/\.py$//')
            mapfile -t hits < <(named "$stem"; for u in "${users[@]+"${users[@]}"}"; do named "$u"; done
                                grep -rlE "module_utils(\.$stem import|( import|,) .*\b$stem\b)" "${test_dirs[@]}" --include='test_*.py' || true)
            add "${hits[@]+"${hits[@]}"}" ;;
        roles/*)
            role="$(echo "$f" | cut -d/ -f2)"
            mapfile -t hits < <(named "$role"; grep -rlE "netmedic\.k8s\.$role\b|roles/$role\b" "${test_dirs[@]}" --include='test_*.py' || true)
            add "${hits[@]+"${hits[@]}"}" ;;
        extensions/molecule/*) add tests/integration/test_molecule_scenario.py ;;
    esac
done
if [[ ${#selected[@]} -eq 0 ]]; then
    say 'no integration / API-double test is affected'
else
    say "affected tests: ${selected[*]}"
    step tests pytest -q -p no:cacheprovider "${selected[@]}"
fi

if [[ ${#failed[@]} -gt 0 ]]; then
    say "FAILED: ${failed[*]}"
    exit 1
fi
say 'all passed'
