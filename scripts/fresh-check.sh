#!/usr/bin/env bash
# `make fresh-check`: bindep.txt is complete, proven on a clean Debian 12 root (issue 12).
#
#   1. mmdebstrap (bindep.txt, profile ci; apt-get installed here when missing) builds a
#      bare bookworm root (--variant=apt: Essential packages and apt) in a temporary
#      directory, never a cached one: each run starts from nothing;
#   2. in that root the programs of profiles node and test must be absent (at least one:
#      a root that already has them all would prove nothing), and the list is printed;
#   3. apt-get (inside the root) installs exactly the packages bindep.txt declares for
#      node and test, nothing else (--no-install-recommends);
#   4. every program those profiles provide must then be present (hostdeps check --root).
# A program a module or test needs that bindep.txt forgets fails step 4 here, whatever
# the machine running it has installed. Root needed (mmdebstrap --mode=root).
# NETMEDIC_FRESH_MIRROR: Debian mirror URL (default: mmdebstrap's own, deb.debian.org).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
HOSTDEPS="$ROOT/scripts/hostdeps.py"
say() { printf 'fresh-check: %s\n' "$*"; }

[[ "$(id -u)" == 0 ]] || { say 'needs root (mmdebstrap --mode=root, chroot)'; exit 2; }
missing_text="$("$PY" "$HOSTDEPS" missing ci)"
if [[ -n "$missing_text" ]]; then
    mapfile -t missing <<<"$missing_text"
    say "installing ${missing[*]} (bindep.txt, profile ci)"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq
    timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$PY" "$HOSTDEPS" check ci

mapfile -t packages < <("$PY" "$HOSTDEPS" packages node test)
work="$(mktemp -d /var/tmp/netmedic-fresh.XXXXXX)"
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)
say "bare bookworm root in $work/root, then: apt-get install ${packages[*]}"
# Hooks run on this machine with the root as $1 (mmdebstrap mounts /proc, /sys, /dev in it).
# shellcheck disable=SC2016  # $1 is mmdebstrap's, expanded by the hook's shell
timeout 900 mmdebstrap --mode=root --variant=apt --quiet \
    --customize-hook="\"$PY\" \"$HOSTDEPS\" absent --root \"\$1\" node test" \
    --customize-hook="DEBIAN_FRONTEND=noninteractive timeout 600 chroot \"\$1\" apt-get install -y -qq --no-install-recommends ${packages[*]} >/dev/null" \
    --customize-hook="\"$PY\" \"$HOSTDEPS\" check --root \"\$1\" node test" \
    bookworm "$work/root" ${NETMEDIC_FRESH_MIRROR:+"$NETMEDIC_FRESH_MIRROR"}
say "passed in $(( $(date +%s) - t0 )) s"
