#!/usr/bin/env bash
# netmedic.k8s ipam_cleanup_daemonset (catalog C-8): remove leaked host-local IPAM allocations.
#
# The hardened form of the cleanup-ipam-dir DaemonSet from GKE's documentation (catalog N-1):
# - the runtime is listed first; when the listing fails or is empty, the pass deletes nothing
#   (an empty list would make every allocation look leaked);
# - only allocation files older than GRACE_MINUTES are considered (an allocation made a moment
#   ago for a container not listed yet survives);
# - lock and last_reserved_ip.* are never touched, nor anything but regular files at the top of
#   the network directory;
# - a file is leaked only when its first line (the sandbox/container ID) matches no listed
#   container exactly; both IPv4 and IPv6 files of a dual-stack pod carry the ID and go together.
# Settings come from the environment (never interpolated into commands):
#   IPAM_DIR (required), GRACE_MINUTES (10), INTERVAL_SECONDS (120), CTR (ctr),
#   CONTAINERD_ADDRESS (/run/containerd/containerd.sock), CONTAINERD_NAMESPACE (k8s.io),
#   RUN_ONCE (1 = one pass, for tests).
set -u

IPAM_DIR=${IPAM_DIR:?IPAM_DIR must be set}
GRACE_MINUTES=${GRACE_MINUTES:-10}
INTERVAL_SECONDS=${INTERVAL_SECONDS:-120}
CTR=${CTR:-ctr}
CONTAINERD_ADDRESS=${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock}
CONTAINERD_NAMESPACE=${CONTAINERD_NAMESPACE:-k8s.io}

case "$GRACE_MINUTES" in ''|*[!0-9]*) echo "GRACE_MINUTES must be a whole number" >&2; exit 2 ;; esac
case "$INTERVAL_SECONDS" in ''|*[!0-9]*) echo "INTERVAL_SECONDS must be a whole number" >&2; exit 2 ;; esac

one_pass() {
    local ids err file id removed=0 kept=0
    if [ ! -d "$IPAM_DIR" ]; then
        echo "$(date -u +%FT%TZ) $IPAM_DIR does not exist; nothing to do"
        return 0
    fi
    err=$(mktemp)
    if ! ids=$("$CTR" --address "$CONTAINERD_ADDRESS" -n "$CONTAINERD_NAMESPACE" containers list -q 2>"$err"); then
        echo "$(date -u +%FT%TZ) cannot list containers ($(tr '\n' ' ' <"$err")); skipping this pass"
        rm -f -- "$err"
        return 0
    fi
    rm -f -- "$err"
    if [ -z "$ids" ]; then
        echo "$(date -u +%FT%TZ) the runtime listed no containers; skipping this pass"
        return 0
    fi
    while IFS= read -r -d '' file; do
        id=$(head -n 1 -- "$file" | tr -d '[:space:]')
        if [ -z "$id" ]; then
            continue
        fi
        if printf '%s\n' "$ids" | grep -qxF -- "$id"; then
            kept=$((kept + 1))
            continue
        fi
        echo "$(date -u +%FT%TZ) leaked: $(basename -- "$file") held by $id"
        rm -f -- "$file" && removed=$((removed + 1))
    done < <(find "$IPAM_DIR" -mindepth 1 -maxdepth 1 -type f -mmin +"$GRACE_MINUTES" \
                 ! -name lock ! -name 'last_reserved_ip.*' -print0)
    echo "$(date -u +%FT%TZ) pass done in $IPAM_DIR: removed $removed, kept $kept"
}

while true; do
    one_pass
    if [ "${RUN_ONCE:-0}" = 1 ]; then
        exit 0
    fi
    sleep "$INTERVAL_SECONDS"
done
