#!/usr/bin/env bash
# `make fresh-check`: `make setup` and the fast stages pass on a clean Debian 12 root (issue 12).
#
#   1. mmdebstrap (bindep.txt, profile ci; apt-get installed here when missing) builds a bare
#      bookworm root (--variant=apt: Essential packages and apt) plus only what a new machine of
#      this project's kind has before `make setup` can start (see "The machine" below); it is
#      stored as a tarball for the ISO week and each later run extracts a new copy of it;
#   2. in that root the programs of bindep.txt's profiles node and test must be absent (at
#      least one: a root that already has them all would prove nothing);
#   3. a clean clone of this checkout (its tracked and untracked, not ignored files: no .venv,
#      no collections/ link) is copied to /root/netmedic in the root, and there, in a chroot in
#      a private mount namespace, `scripts/stages.sh setup units ruff pep8 changelog-lint build`
#      runs: `make setup` creates the venv from PyPI and apt-get installs bindep.txt's test
#      profile itself;
#   4. apt-get installs the node profile (what managed nodes need), then every program of the
#      node and test profiles must be present (hostdeps check --root).
# A host package that `make setup` or a fast stage needs and bindep.txt forgets fails step 3
# here, whatever the machine running it has installed: the stage's log is scanned for
# "command not found" / "No such file" and the missing programs are named with the Debian
# package that provides them on this machine (dpkg -S) - this is how git was found missing;
# a package that does not provide a program it is declared for fails step 4, naming both.
#
# The machine: Debian 12 has no Python >= 3.12 (ansible-core 2.21 needs it; bookworm has
# 3.11), and no registry this project reaches ships a binary one for it (building CPython 3.13
# from Debian 13's source package works, but took 338 s here at load 8: past this check's
# budget). This project's machines come with pyenv's CPython 3.12/3.13 in /root/.pyenv/versions
# (the machine image, like Debian's Essential packages): the interpreter `scripts/setup.sh
# --python` picks here is bind-mounted READ-ONLY into the root at the same path, and the Debian
# libraries it links (ldd of the interpreter and its lib-dynload modules but tkinter, mapped to
# packages with dpkg -S) plus make (to type `make setup`) are the root's only additions, besides
# this machine's network set-up (resolv.conf, its trusted CA certificates, the pip/SSL/proxy
# environment variables). Nothing else of this machine is visible in the root.
#
# Caches (kept between runs, never inside the root): NETMEDIC_FRESH_CACHE (default
# /var/cache/netmedic-fresh) holds the week's bare root (bookworm-base-KEY.tar), apt's
# downloaded .deb files (apt/) and pip's cache (pip/; it stays empty behind this machine's
# registry proxy, whose answers pip does not cache). They only save downloads and the bare
# root's dpkg runs: `make setup` installs everything into the new root each run.
# NETMEDIC_FRESH_CACHE=none runs without them (cold). Root needed (mmdebstrap --mode=root, chroot).
# NETMEDIC_FRESH_MIRROR: Debian mirror URL (default: mmdebstrap's own, deb.debian.org).
# NETMEDIC_FRESH_STAGES: the stages run in the root (default below).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
HOSTDEPS="$ROOT/scripts/hostdeps.py"
STAGES="${NETMEDIC_FRESH_STAGES:-setup units ruff pep8 changelog-lint build}"
CACHE="${NETMEDIC_FRESH_CACHE:-/var/cache/netmedic-fresh}"
say() { printf 'fresh-check: %s\n' "$*"; }
elapsed() { echo "$(( $(date +%s) - t0 )) s"; }

[[ "$(id -u)" == 0 ]] || { say 'needs root (mmdebstrap --mode=root, chroot)'; exit 2; }
missing_text="$("$PY" "$HOSTDEPS" missing ci)"
if [[ -n "$missing_text" ]]; then
    mapfile -t missing <<<"$missing_text"
    say "installing ${missing[*]} (bindep.txt, profile ci)"
    export DEBIAN_FRONTEND=noninteractive
    "$ROOT/scripts/apt-locked" timeout 600 apt-get update -qq
    "$ROOT/scripts/apt-locked" timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$PY" "$HOSTDEPS" check ci

# The interpreter make setup picks on this machine, and the Debian packages of what it links.
python="$(scripts/setup.sh --python)"
pyhome="$(cd "$(dirname "$python")/.." && pwd -P)"
case "$pyhome" in
    /root/.pyenv/versions/3.*) ;;
    *) say "make setup picks $python here, not a pyenv CPython of the machine image: cannot model a new machine"; exit 2 ;;
esac
mapfile -t pylibs < <({ readlink -f "$python"; find "$pyhome/lib" -maxdepth 3 -type f \( -name 'libpython3*.so*' -o -path '*/lib-dynload/*.so' \) ! -name '_tkinter*'; } \
                      | xargs -r ldd 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u)
mapfile -t baseline < <(for lib in "${pylibs[@]}"; do
                            [[ "$lib" == "$pyhome"/* ]] || dpkg -S "$(readlink -f "$lib")" 2>/dev/null \
                                || dpkg -S "$lib" 2>/dev/null || say "no Debian package owns $lib" >&2
                        done | sed 's/:.*//; s/:amd64$//' | sort -u)
baseline+=(make)

mapfile -t node_packages < <("$PY" "$HOSTDEPS" packages node)
work="$(mktemp -d /var/tmp/netmedic-fresh.XXXXXX)"
r="$work/root"
cleanup() {
    # The root's own mounts live in a private mount namespace (unshare below) and end with it;
    # mmdebstrap's (/proc, /sys, /dev/pts, /dev/shm of the root) can survive it being killed:
    # unmount whatever is mounted under the root, deepest first, and never remove a tree that
    # still has something mounted in it (rm --one-file-system too).
    local m
    { findmnt -rn -o TARGET | grep -F "$r/" || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
    if findmnt -rn -o TARGET | grep -qF "$r/"; then
        say "mounts left under $r: not removing $work"
    else
        rm -rf --one-file-system "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'say "FAILED (line $LINENO): $BASH_COMMAND"' ERR

t0=$(date +%s)
cache_hooks=()
# shellcheck disable=SC2016  # $1 is mmdebstrap's, expanded by the hook's shell
if [[ "$CACHE" != none ]]; then
    mkdir -p "$CACHE/apt" "$CACHE/pip"
    cache_hooks=(--skip=download/empty --skip=essential/unlink
                 --setup-hook='mkdir -p "$1"/var/cache/apt/archives/'
                 --setup-hook="sync-in $CACHE/apt /var/cache/apt/archives/"
                 --customize-hook="sync-out /var/cache/apt/archives $CACHE/apt")
fi
# The bare root before anything of this project is in it is kept as a tarball for the ISO week
# (and this baseline and mirror): later runs extract a new copy of it (seconds instead of the
# minutes mmdebstrap's dpkg runs take on a busy machine). Each run still starts from that
# pristine root; `make setup` and everything after it run from nothing every time.
key="$(printf '%s\n' "${baseline[@]}" "${NETMEDIC_FRESH_MIRROR:-}" "$(date +%G-%V)" | sha256sum | cut -c1-16)"
base="$CACHE/bookworm-base-$key.tar"
if [[ "$CACHE" != none && -s "$base" ]]; then
    say "bare bookworm root of this week ($base) extracted to $r"
    mkdir -p "$r"
    tar -xpf "$base" --numeric-owner -C "$r"
else
    say "bare bookworm root in $r; the machine image's additions: ${baseline[*]} + $pyhome (read-only)"
    # force-unsafe-io (also kept in the root's dpkg.cfg.d for later installs): no fsync per file,
    # which on a busy disk made the bare root take minutes instead of seconds.
    timeout 900 mmdebstrap --mode=root --variant=apt --quiet --dpkgopt=force-unsafe-io --include="$(IFS=,; echo "${baseline[*]}")" \
        "${cache_hooks[@]}" bookworm "$r" ${NETMEDIC_FRESH_MIRROR:+"$NETMEDIC_FRESH_MIRROR"}
    if [[ "$CACHE" != none ]]; then
        tar -cpf "$base.tmp" --numeric-owner --exclude="./var/cache/apt/archives/*.deb" -C "$r" . && mv -f "$base.tmp" "$base"
        find "$CACHE" -maxdepth 1 -name 'bookworm-base-*.tar*' ! -name "${base##*/}" -delete
    fi
fi
"$PY" "$HOSTDEPS" absent --root "$r" node test
say "root built in $(elapsed)"

# A clean clone: tracked + untracked-not-ignored files (a .venv symlink too is left out),
# as a new git repository (make pep8 lists files with git). Copied, never bind-mounted: nothing in the root can touch this tree.
src="$r/root/netmedic"
mkdir -p "$src"
git ls-files -z -co --exclude-standard | grep -zv '^\.venv$' | tar -cf - --no-recursion --ignore-failed-read --null -T - | tar -xf - -C "$src"
(cd "$src" && git init -q && git add -A && GIT_AUTHOR_NAME=fresh-check GIT_AUTHOR_EMAIL=fresh-check@localhost \
    GIT_COMMITTER_NAME=fresh-check GIT_COMMITTER_EMAIL=fresh-check@localhost git commit -q -m 'fresh-check snapshot')
# This machine's network set-up, as any new machine of its kind has it: name servers, and the
# CA certificates it trusts (its registries are reached through a TLS proxy whose CA is in
# /usr/local/share/ca-certificates; Debian's bundle alone fails pip with CERTIFICATE_VERIFY_FAILED).
cp -L /etc/resolv.conf "$r/etc/resolv.conf"
mkdir -p "$r/etc/ssl/certs" "$r/usr/local/share/ca-certificates"
cp -L /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp -L {} "$r/usr/local/share/ca-certificates/" \;
netenv=()
for v in PIP_CERT PIP_DEFAULT_TIMEOUT SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE CURL_CA_BUNDLE \
         http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [[ -z "${!v:-}" ]] || netenv+=("$v=${!v}")
done

# Every command in the root runs in a new, private mount namespace: its mounts (/proc, /dev,
# the read-only interpreter, the two cache directories) are invisible to this machine and
# vanish with the namespace, even if this script is killed; none can propagate back.
binds="mount --bind $pyhome $r$pyhome && mount -o remount,bind,ro $r$pyhome"
if [[ "$CACHE" != none ]]; then
    mkdir -p "$r/var/cache/apt/archives" "$r/root/.cache/pip"
    binds+=" && mount --bind $CACHE/apt $r/var/cache/apt/archives && mount --bind $CACHE/pip $r/root/.cache/pip"
fi
# A wheelhouse per (interpreter, dependency list): pip in the root installs from it with no index
# (the registry proxy's answers are not cacheable, so a plain pip cache stays empty and every run
# pulled ~700 MB). Built on this machine with the same interpreter the first time the list changes;
# the list itself is read by setup.sh's own code (one source: pyproject.toml), so nothing is added.
if [[ "$CACHE" != none && "${NETMEDIC_FRESH_WHEELS:-1}" != 0 ]]; then
    mapfile -t pydeps < <(scripts/setup.sh --print-deps)
    wkey="$({ "$python" -V; printf '%s\n' "${pydeps[@]}"; } | sha256sum | cut -c1-16)"
    wheels="$CACHE/wheels/$wkey"
    if [[ ! -f "$wheels/.complete" ]]; then
        say "building the wheelhouse $wheels (once per dependency list; ${#pydeps[@]} requirements)"
        find "$CACHE/wheels" -mindepth 1 -maxdepth 1 -type d -mtime +14 -exec rm -rf {} + 2>/dev/null || true
        rm -rf "$wheels.tmp" && mkdir -p "$wheels.tmp"
        tw=$(date +%s)
        timeout 1800 "$PY" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$wheels.tmp" pip "${pydeps[@]}"
        touch "$wheels.tmp/.complete" && rm -rf "$wheels" && mv "$wheels.tmp" "$wheels"
        say "wheelhouse ready in $(( $(date +%s) - tw )) s: $(find "$wheels" -name '*.whl' | wc -l) wheels"
    fi
    mkdir -p "$r/root/wheels"
    binds+=" && mount --bind $wheels $r/root/wheels && mount -o remount,bind,ro $r/root/wheels"
    netenv+=(PIP_FIND_LINKS=/root/wheels PIP_NO_INDEX=1)
fi
mkdir -p "$r$pyhome"
in_root() {
    timeout 1800 unshare --mount --propagation private -- bash -euc "
        mount -t proc proc $r/proc
        mount --rbind /dev $r/dev && mount --make-rslave $r/dev
        $binds
        exec chroot $r /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb CI=${CI:-} ${netenv[*]@Q} \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \"\$@\"" in_root "$@"
}
log="$work/stages.log"
say "in the root: scripts/stages.sh $STAGES"
rc=0
in_root bash -c "cd /root/netmedic && scripts/stages.sh --fail-fast $STAGES" 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
if [[ $rc -ne 0 ]]; then
    mapfile -t progs < <(grep -oE "([A-Za-z0-9_./+-]+): (command )?not found|No such file or directory: '[^']+'" "$log" \
                         | sed -E "s/: (command )?not found//; s/.*: '([^']+)'/\1/" | sed -E 's#.*/##' | sort -u)
    for p in "${progs[@]}"; do
        [[ -n "$p" ]] || continue
        where="$(command -v "$p" 2>/dev/null || true)"
        pkg="$( [[ -n "$where" ]] && { dpkg -S "$(readlink -f "$where")" 2>/dev/null || dpkg -S "$where" 2>/dev/null; } | head -n1 | sed 's/:.*//')"
        say "the root lacks '$p'${pkg:+ (Debian package $pkg on this machine)}: a package bindep.txt does not declare?"
    done
    say "FAILED in $(elapsed): a stage failed in the clean Debian 12 root (log above)"
    exit 1
fi

say "node profile (what managed nodes need): apt-get install ${node_packages[*]}"
in_root env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "${node_packages[@]}" >/dev/null
"$PY" "$HOSTDEPS" check --root "$r" node test
say "passed in $(elapsed)"
