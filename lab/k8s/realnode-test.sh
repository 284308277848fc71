#!/usr/bin/env bash
# realnode-test: tests/realnode - the workflows against a REAL kube-proxy on two lab VMs that are real nodes of the
# lab's real control plane (issue 15 item 3). Run by `make realnode-test` (a stage of `make test`, in the VM chain).
#
#   1. a control plane of its own (state /run/netmedic-k8s-node, ports 16640+, lock /tmp/netmedic-k8s-node.lock), so
#      that it never waits for, or disturbs, realcluster-test's (/run/netmedic-k8s) running beside it;
#   2. under both locks: the VM lab with 2 nodes (labctl up --clean: reset first when someone left it up), the control plane up
#      (a clean etcd), both VMs joined (vmnode.py join: kubelet, Node Ready) and kube-proxy in IPVS mode on them;
#   3. pytest tests/realnode;
#   4. always: both nodes leave, the control plane down, labctl release (the lab down, or reset when it was up before).
# Prints the wall time of each part and in all; exits with pytest's status (5, no tests collected, is a failure).
set -u -o pipefail
here="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
root="$(cd "$here/../.." && pwd)"
export NETMEDIC_K8S_STATE="${NETMEDIC_REALNODE_K8S_STATE:-/run/netmedic-k8s-node}"
export NETMEDIC_K8S_PORT_BASE="${NETMEDIC_REALNODE_K8S_PORT_BASE:-16640}"
export NETMEDIC_K8S_LOCK="${NETMEDIC_REALNODE_K8S_LOCK:-/tmp/netmedic-k8s-node.lock}"
unset NETMEDIC_K8S_KUBECONFIG
k8sctl="$root/lab/k8s/k8sctl"
labctl="$root/lab/vm/labctl"
vmnode=(/usr/bin/python3 "$root/lab/k8s/vmnode.py")
state="${NETMEDIC_LAB_STATE:-/run/netmedic-lab}"

if [[ "${1:-}" != --locked ]]; then
    exec "$k8sctl" locked -- "$labctl" locked -- "$0" --locked "$@"
fi
shift
start=$(date +%s)
part() { echo "realnode-test: $1 ($(( $(date +%s) - $2 )) s)"; }

# shellcheck disable=SC2317  # run by the EXIT trap
finish() {
    local t; t=$(date +%s)
    "${vmnode[@]}" down --nodes 2 || true
    "$k8sctl" down || true
    "$labctl" release || true
    part 'nodes left, control plane and lab down' "$t"
}
trap finish EXIT

rc=0
t=$(date +%s)
"$labctl" deps && "$labctl" up --nodes 2 --clean || rc=$?
[[ $rc = 0 ]] && { "$k8sctl" up || rc=$?; }
part 'lab and control plane up' "$t"
t=$(date +%s)
[[ $rc = 0 ]] && { "${vmnode[@]}" up --nodes 2 || rc=$?; }
part 'two real nodes joined, kube-proxy in IPVS mode' "$t"
if [[ $rc != 0 ]]; then
    echo "realnode-test: the real nodes did not come up (rc=$rc)"
    exit "$rc"
fi
t=$(date +%s)
mkdir -p "$root/tests/output/junit"
cd "$root" && NETMEDIC_TEST_KUBECONFIG="$NETMEDIC_K8S_STATE/admin.kubeconfig" NETMEDIC_LAB_INVENTORY="$state/inventory.yml" \
    pytest tests/realnode --junitxml=tests/output/junit/realnode.xml "$@" || rc=$?
[[ $rc = 5 ]] && echo 'realnode-test: pytest collected no tests (exit 5): failing'
part "pytest tests/realnode (rc=$rc)" "$t"
echo "realnode-test: $(( $(date +%s) - start )) s before the teardown"
exit "$rc"
