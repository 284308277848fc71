#!/usr/bin/env bash
# Run `make <stage>` for each stage in order with a banner, then a summary.
#
#   scripts/stages.sh [--fail-fast] STAGE...      (called by `make test`)
#
# A STAGE written `bg:a,b` is a background chain: `make a` then `make b` start at that point and run
# beside the stages that follow (their output goes to tests/output/stages/<stage>.log and is printed
# once the foreground stages are done); the summary waits for them. `make test` runs the VM lab's
# stages (lab-test, molecule: qemu guests, mostly waiting on SSH and reboots) this way beside the
# controller-side stages, so CI's wall time is not their sum.
#
# Default: every stage runs even after a failure, so one CI run reports all
# problems; exit status is non-zero if any stage failed. The last line is
#   stages: N passed, N failed
# alone on its line (the plain "N passed, N failed" form CI tools read); it
# counts stages, not tests: each stage prints its own test counts above. After the stages, `no-skips`
# fails the run when a pytest stage's JUnit file (tests/output/junit) holds a skipped test.
set -uo pipefail

fail_fast=0
if [[ "${1:-}" == --fail-fast ]]; then fail_fast=1; shift; fi
[[ $# -gt 0 ]] || { echo "usage: $0 [--fail-fast] STAGE..." >&2; exit 2; }

names=() results=() times=()
passed=0 failed=0 total_stages=0
for stage in "$@"; do
    IFS=',' read -r -a parts <<<"${stage#bg:}"
    total_stages=$((total_stages + ${#parts[@]}))
done
t_all=$(date +%s.%N)
logdir="tests/output/stages"
# The pytest stages' JUnit files: this run's only (read by the skip check after the stages).
junitdir="tests/output/junit"
rm -f "$junitdir"/*.xml
bg_pids=() bg_chains=()

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# One stage in the background chain: its log, and a result line "<stage> <rc> <seconds>" in <chain>.results.
run_chain() {
    local chain="$1" stage t0 rc
    IFS=',' read -r -a stages_of <<<"$chain"
    for stage in "${stages_of[@]}"; do
        t0=$(date +%s.%N)
        { printf '\n==================== [%s] %s (background) ====================\n' "$(date +%H:%M:%S)" "$stage"
          make --no-print-directory "$stage"; } > "$logdir/$stage.log" 2>&1 < /dev/null
        rc=$?
        echo "$stage $rc $(elapsed "$t0")" >> "$logdir/${chain//,/+}.results"
    done
}

for stage in "$@"; do
    if [[ "$stage" == bg:* ]]; then
        chain="${stage#bg:}"
        mkdir -p "$logdir"
        rm -f "$logdir/${chain//,/+}.results"
        IFS=',' read -r -a parts <<<"$chain"
        printf '\n==================== [%s] %s: started in the background ====================\n' "$(date +%H:%M:%S)" "${parts[*]}"
        run_chain "$chain" &
        bg_pids+=($!) bg_chains+=("$chain")
        continue
    fi
    printf '\n==================== [%s] %s ====================\n' "$(date +%H:%M:%S)" "$stage"
    t0=$(date +%s.%N)
    make --no-print-directory "$stage"
    rc=$?
    dt=$(elapsed "$t0")
    names+=("$stage") times+=("$dt")
    if [[ $rc -eq 0 ]]; then
        results+=(PASS); passed=$((passed + 1))
        printf '==================== %s: PASS (%ss)\n' "$stage" "$dt"
        # Later stages' `setup` prerequisites become no-ops (scripts/setup.sh); background chains
        # started after setup inherit it.
        if [[ "$stage" == setup ]]; then export NETMEDIC_SETUP_DONE=1; fi
    else
        results+=("FAIL(rc=$rc)"); failed=$((failed + 1))
        printf '==================== %s: FAIL rc=%s (%ss)\n' "$stage" "$rc" "$dt"
        # Nothing can run without the environment: setup failing is always fatal.
        if [[ $fail_fast -eq 1 || "$stage" == setup ]]; then break; fi
    fi
done

for i in "${!bg_pids[@]}"; do
    chain="${bg_chains[$i]}"
    printf '\n==================== [%s] waiting for the background stages %s ====================\n' "$(date +%H:%M:%S)" "${chain//,/ }"
    wait "${bg_pids[$i]}"
    IFS=',' read -r -a parts <<<"$chain"
    for stage in "${parts[@]}"; do
        [[ -f "$logdir/$stage.log" ]] && cat "$logdir/$stage.log"
        line="$(grep -E "^$stage " "$logdir/${chain//,/+}.results" 2>/dev/null | tail -n 1)"
        [[ -n "$line" ]] || continue
        read -r _name rc dt <<<"$line"
        names+=("$stage (bg)") times+=("$dt")
        if [[ "$rc" -eq 0 ]]; then
            results+=(PASS); passed=$((passed + 1))
            printf '==================== %s: PASS (%ss, in the background)\n' "$stage" "$dt"
        else
            results+=("FAIL(rc=$rc)"); failed=$((failed + 1))
            printf '==================== %s: FAIL rc=%s (%ss, in the background)\n' "$stage" "$rc" "$dt"
        fi
    done
done
# A skipped test is not a passed one: the stages' JUnit files must hold no skip (scripts/junit_skips.py).
shopt -s nullglob
junit_files=("$junitdir"/*.xml)
shopt -u nullglob
if [[ ${#junit_files[@]} -gt 0 ]]; then
    printf '\n==================== [%s] no-skips ====================\n' "$(date +%H:%M:%S)"
    t0=$(date +%s.%N)
    total_stages=$((total_stages + 1))
    names+=("no-skips")
    if python3 scripts/junit_skips.py "${junit_files[@]}"; then
        results+=(PASS); passed=$((passed + 1))
    else
        results+=("FAIL"); failed=$((failed + 1))
    fi
    times+=("$(elapsed "$t0")")
fi
total=$(elapsed "$t_all")

printf '\n==================== summary ====================\n'
for i in "${!names[@]}"; do
    printf '  %-14s %-12s %8ss\n' "${names[$i]}" "${results[$i]}" "${times[$i]}"
done
skipped=$((total_stages - passed - failed))
if [[ $skipped -gt 0 ]]; then printf '  (%d stage(s) not run after the failure)\n' "$skipped"; fi
echo "  total ${total}s"
echo "stages: $passed passed, $failed failed"
[[ $failed -eq 0 && $skipped -eq 0 ]]
