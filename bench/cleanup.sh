#!/usr/bin/env bash
# Benchmark fixture, NOT part of the collection: the GKE "cleanup.sh" of catalog N-1 as the
# source document prints it (seeds/000_*.txt and 001_*.txt, "Pod shows failed to allocate for
# range 0", workaround for Standard clusters), reproduced so bench_cni_ipam_gc.py can time it.
#
# Two deliberate deviations, both explained in bench/README.md and both in the original's favour:
#   * the directory is ${IPAM_DIR} (default: the document's path) so the bench can point it at a
#     prepared copy;
#   * `sudo` runs the command directly unless CLEANUP_SUDO=1 (the bench runs as root; real sudo
#     would add a process and PAM work to every call).
# Everything else - the find/head loop, one `ctr -n k8s.io c ls | grep | awk` per file, the
# `grep -ilr` over the whole directory per leaked hash, `xargs -r rm` - is the original, including
# its hazards (substring match, no grace period, no lock, an empty `ctr` listing removes
# everything, deletion without backup). Never run it on a real node.

IPAM_DIR="${IPAM_DIR:-/var/lib/cni/networks/gke-pod-network}"
if [ "${CLEANUP_SUDO:-0}" != 1 ]; then
    sudo() { "$@"; }
fi

# --- the document's script (only the directory replaced by ${IPAM_DIR}) ---
# Unquoted on purpose, as in the source: quoting would change its behaviour.
# shellcheck disable=SC2046,SC2086
for hash in $(sudo find ${IPAM_DIR} -iregex "${IPAM_DIR}/[0-9].*" -exec head -n1 {} \;); do hash="${hash%%[[:space:]]}"; if [ -z $(sudo ctr -n k8s.io c ls | grep $hash | awk '{print $1}') ]; then sudo grep -ilr $hash ${IPAM_DIR}; fi; done | sudo xargs -r rm
