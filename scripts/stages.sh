#!/usr/bin/env bash
# Run `make <stage>` for each stage in order with a banner, then a summary.
#
#   scripts/stages.sh [--fail-fast] STAGE...      (called by `make test`)
#
# Default: every stage runs even after a failure, so one CI run reports all
# problems; exit status is non-zero if any stage failed. The last line is
#   stages: N passed, N failed
# alone on its line (the plain "N passed, N failed" form CI tools read); it
# counts stages, not tests: each stage prints its own test counts above.
set -uo pipefail

fail_fast=0
if [[ "${1:-}" == --fail-fast ]]; then fail_fast=1; shift; fi
[[ $# -gt 0 ]] || { echo "usage: $0 [--fail-fast] STAGE..." >&2; exit 2; }

names=() results=() times=()
passed=0 failed=0
t_all=$(date +%s.%N)
for stage in "$@"; do
    printf '\n==================== [%s] %s ====================\n' "$(date +%H:%M:%S)" "$stage"
    t0=$(date +%s.%N)
    make --no-print-directory "$stage"
    rc=$?
    dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    names+=("$stage") times+=("$dt")
    if [[ $rc -eq 0 ]]; then
        results+=(PASS); passed=$((passed + 1))
        printf '==================== %s: PASS (%ss)\n' "$stage" "$dt"
        # Later stages' `setup` prerequisites become no-ops (scripts/setup.sh).
        if [[ "$stage" == setup ]]; then export NETMEDIC_SETUP_DONE=1; fi
    else
        results+=("FAIL(rc=$rc)"); failed=$((failed + 1))
        printf '==================== %s: FAIL rc=%s (%ss)\n' "$stage" "$rc" "$dt"
        # Nothing can run without the environment: setup failing is always fatal.
        if [[ $fail_fast -eq 1 || "$stage" == setup ]]; then break; fi
    fi
done
total=$(awk -v a="$t_all" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

printf '\n==================== summary ====================\n'
for i in "${!names[@]}"; do
    printf '  %-14s %-12s %8ss\n' "${names[$i]}" "${results[$i]}" "${times[$i]}"
done
skipped=$(($# - passed - failed))
if [[ $skipped -gt 0 ]]; then printf '  (%d stage(s) not run after the failure)\n' "$skipped"; fi
echo "  total ${total}s"
echo "stages: $passed passed, $failed failed"
[[ $failed -eq 0 && $skipped -eq 0 ]]
