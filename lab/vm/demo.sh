#!/usr/bin/env bash
# The netmedic demo on the VM lab (`make demo`): real nodes, real faults, real fixes.
#
#   1 lab up            3 qemu nodes (lab/vm/labctl up)
#   2 inject            every node fault of the catalog (labctl inject all)
#   3 diagnose          playbooks/diagnose.yml -> report/lab-before/diagnose.{md,json}
#   4 remediate --check playbooks/remediate_node.yml --check --diff (changes nothing)
#   5 remediate         the same, for real
#   6 diagnose again    -> report/lab-after/; a before/after table per catalog ID
#   7 cluster (W-3)     the lab's REAL control plane (lab/k8s/k8sctl: etcd, kube-apiserver, controller-manager,
#                       scheduler v1.37.2 built from Go modules once per machine, cached; a cold build takes ~18 min)
#                       with the VMs as real nodes (lab/k8s/vmnode.py up: kubelet, containerd, bridge + host-local,
#                       the real kube-proxy in IPVS mode on rr). The last node's kernel cannot load ip_vs_lc (blocked
#                       in modprobe.d), N-4 runs on the others only: playbooks/ipvs_scheduler_change.yml switches to
#                       lc, restarts kube-proxy node by node, reads "can't use the IPVS proxier" in the last node's
#                       new pod's own log and rolls the ConfigMap back. DEMO_CLUSTER=double runs this step on the
#                       API double instead (its kube-proxy asks each VM's kernel; no binaries needed)
#   8 cluster (C-5)     playbooks/flannel_config.yml on the API double (no Flannel on the real nodes): --check
#                       --diff (the diff, nothing written), then applied (backup ConfigMap, verified Flannel restart)
#   9 lab down          unless DEMO_KEEP=1
#   At the end: where the HTML diagnosis and the change reports (with their diffs) are.
#
# Run it through `make demo` (holds the shared lab lock for the whole run). Environment:
# DEMO_KEEP=1 leaves the lab up; DEMO_CLUSTER=real (default) or double (step 7); LAB_NODES (default 3); NETMEDIC_FIXES: the remediation
# modules to run, comma-separated (default: all seven node fixes).
set -euo pipefail

here="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
root="$(cd "$here/../.." && pwd)"
cd "$root"
labctl="$here/labctl"
bin="$root/.venv/bin"
inventory="${NETMEDIC_LAB_STATE:-/run/netmedic-lab}/inventory.yml"
report="$root/report"
nodes="${LAB_NODES:-3}"
keep="${DEMO_KEEP:-0}"
demo_cluster="${DEMO_CLUSTER:-real}"
[[ "$demo_cluster" == real || "$demo_cluster" == double ]] || { echo "DEMO_CLUSTER must be real or double, not $demo_cluster"; exit 2; }
# The real control plane of the demo: an instance of its own (state, ports, lock), beside anyone else's.
k8sctl="$root/lab/k8s/k8sctl"
vmnode=(/usr/bin/python3 "$root/lab/k8s/vmnode.py")
real_env=(NETMEDIC_K8S_STATE=/run/netmedic-k8s-demo NETMEDIC_K8S_PORT_BASE=16840 NETMEDIC_K8S_LOCK=/tmp/netmedic-k8s-demo.lock)
real_up=0

export ANSIBLE_CONFIG="$root/ansible.cfg"
export ANSIBLE_COLLECTIONS_PATH="$root/collections"
export ANSIBLE_DISPLAY_SKIPPED_HOSTS=false
export ANSIBLE_DEPRECATION_WARNINGS=false
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-$([ -t 1 ] && echo 1 || echo 0)}"
export PATH="$bin:$PATH"

extra=()
# The demo fixes every node fault it plants (the playbook's own default is the conservative [conntrack_limit]).
NETMEDIC_FIXES="${NETMEDIC_FIXES:-cni_ipam_gc,conntrack_limit,port_range,ipvs_modules,ipvs_timeouts,neighbor_flush,pod_bridge}"
if [[ -n "${NETMEDIC_FIXES:-}" ]]; then
    extra+=(-e "{\"netmedic_fixes\": $(printf '%s' "$NETMEDIC_FIXES" | "$bin/python" -c 'import json, sys; print(json.dumps(sys.stdin.read().split(",")))')}")
fi

t_start=$(date +%s)
step_no=0
banner() {
    step_no=$((step_no + 1))
    printf '\n\033[1m==== [%d/9] %s\033[0m  (%s, +%ss)\n' "$step_no" "$*" "$(date +%H:%M:%S)" "$(($(date +%s) - t_start))"
}

double_pid=""
demo_block=""
# The real nodes leave and the demo's control plane stops; fails (after trying both) when either did not.
real_down() {
    local ok=0
    env "${real_env[@]}" "${vmnode[@]}" down --nodes "${#lab_nodes[@]}" > "$cluster/vmnode-down.log" 2>&1 || ok=1
    tail -n 1 "$cluster/vmnode-down.log"
    env "${real_env[@]}" "$k8sctl" down > "$cluster/k8sctl-down.log" 2>&1 || ok=1
    tail -n 1 "$cluster/k8sctl-down.log"
    if [[ $ok == 0 ]]; then real_up=0; else echo "the real nodes or the control plane did not stop cleanly: $cluster/*-down.log"; fi
    return "$ok"
}
cleanup() {
    rc=$?
    if [[ -n "$double_pid" ]]; then kill "$double_pid" 2>/dev/null || true; wait "$double_pid" 2>/dev/null || true; fi
    if [[ -n "$demo_block" ]]; then "$labctl" ssh "$last" "rm -f $demo_block" || true; fi
    if [[ $real_up == 1 ]] && ! real_down && [[ $rc -eq 0 ]]; then rc=1; fi
    if [[ "$keep" == 1 ]]; then
        printf '\nThe lab is still up (DEMO_KEEP=1): %s\n  lab/vm/labctl ssh 1     look around\n  make lab-down           stop it\n' "$inventory"
    else
        banner "lab down (or back to the clean state, if it was up before the demo)"
        "$labctl" release | tail -n 1
    fi
    if [[ $rc -ne 0 ]]; then
        printf '\ndemo FAILED (rc=%s) at step %s\n' "$rc" "$step_no"
    fi
    exit "$rc"
}
trap cleanup EXIT

banner "lab up ($nodes real Debian 12 nodes under qemu)"
"$labctl" deps | tail -n 1
"$labctl" up --nodes "$nodes" --clean | grep -E 'lab-node-|lab up|inventory|the lab was up' || true

banner "inject every node fault of the catalog"
"$labctl" inject --list | sed 's/^/    /'
"$labctl" inject all | grep -E 'a new pod now gets|N-[2-8]:|faults planted' | sed 's/^\[[ 0-9.]*s\] *//'

# What the lab knows and a fleet inventory would say in group_vars: the MAC each node's L2
# address really has (N-6) and the schedulers kube-proxy will use (N-4).
mkdir -p "$report"
"$bin/ansible-inventory" -i "$inventory" --list | "$bin/python" -c '
import json, sys
hv = json.load(sys.stdin)["_meta"]["hostvars"]
print(json.dumps({"netmedic_expected_neighbors": {h["lab_l2_ip"]: h["lab_l2_mac"] for h in hv.values()},
                  "netmedic_ipvs_schedulers": ["rr", "lc"]}))' > "$report/lab-demo-vars.json"
extra+=(-e "@$report/lab-demo-vars.json")

banner "diagnose (read-only): playbooks/diagnose.yml"
ansible-playbook -i "$inventory" playbooks/diagnose.yml -e "netmedic_report_dir=$report/lab-before" "${extra[@]}"

banner "remediate in check mode with --diff: nothing changes"
ansible-playbook -i "$inventory" playbooks/remediate_node.yml --check --diff "${extra[@]}"

banner "remediate for real"
ansible-playbook -i "$inventory" playbooks/remediate_node.yml "${extra[@]}"

banner "diagnose again"
ansible-playbook -i "$inventory" playbooks/diagnose.yml -e "netmedic_report_dir=$report/lab-after" "${extra[@]}"
"$bin/python" "$here/demo_compare.py" "$report/lab-before/diagnose.json" "$report/lab-after/diagnose.json"

mapfile -t lab_nodes < <("$bin/ansible-inventory" -i "$inventory" --list | "$bin/python" -c '
import json, sys; print("\n".join(json.load(sys.stdin)["_meta"]["hostvars"]))' | sort -V)
if [[ ${#lab_nodes[@]} -lt 2 ]]; then echo "the cluster steps need at least 2 lab nodes (LAB_NODES=${#lab_nodes[@]})"; exit 1; fi
last="${lab_nodes[-1]}"
others="$(IFS=:; echo "${lab_nodes[*]:0:${#lab_nodes[@]}-1}")"
cluster="$report/demo-cluster"
mkdir -p "$cluster"
printf 'all:\n  hosts:\n    localhost: {ansible_connection: local, ansible_python_interpreter: %s}\n' "$bin/python" \
    > "$cluster/localhost.yml"

# The API double, seeded with lab/seed/cluster.yaml (nodes lab-node-1..3 = the VMs): step 8 (C-5) and, with
# DEMO_CLUSTER=double, step 7. Its simulated kube-proxy asks the real VM of the same name (SSH: /proc/modules)
# whether the scheduler's module is loaded.
start_double() {
    NETMEDIC_LAB_INVENTORY="$inventory" "$bin/python" -m lab.kubedouble serve --seed lab/seed/cluster.yaml \
        --kubeconfig "$cluster/kubeconfig" --node-state lab.vmstate:from_env --tick 0.1 --start-delay 0.1 \
        > "$cluster/double.log" 2>&1 &
    double_pid=$!
    for _ in $(seq 1 100); do [[ -s "$cluster/kubeconfig" ]] && break; sleep 0.2; done
    [[ -s "$cluster/kubeconfig" ]] || { cat "$cluster/double.log"; echo "the API double did not start"; exit 1; }
}
rm -f "$cluster/kubeconfig"

if [[ "$demo_cluster" == real ]]; then
    banner "cluster workflow W-3 on the REAL control plane, the VMs as real nodes: verified restart, failure, rollback"
    env "${real_env[@]}" "$k8sctl" build | tail -n 2        # cached: a check; cold: ~18 min, once per machine
    real_up=1
    env "${real_env[@]}" "$k8sctl" up | tail -n 1
    echo "joining the ${#lab_nodes[@]} VMs (kubelet, kube-proxy in IPVS mode): ~1 min a node under TCG; log: $cluster/vmnode.log"
    env "${real_env[@]}" "${vmnode[@]}" up --nodes "${#lab_nodes[@]}" > "$cluster/vmnode.log" 2>&1 || { tail -n 40 "$cluster/vmnode.log"; exit 1; }
    grep -E 'Ready [0-9]+s after|in IPVS mode [0-9]+s|real node' "$cluster/vmnode.log" | sed 's/^\[[ 0-9.]*s\] */    /'
    w3_kubeconfig=/run/netmedic-k8s-demo/admin.kubeconfig
    w3_configmap=kube-proxy
    echo "ip_vs_lc blocked on $last (modprobe.d: install ip_vs_lc /bin/false; N-4 runs on $others only): kube-proxy there cannot use lc"
    demo_block=/etc/modprobe.d/netmedic-demo.conf
    "$labctl" ssh "$last" "echo 'install ip_vs_lc /bin/false' > $demo_block; modprobe -r ip_vs_lc 2>/dev/null; ! modprobe ip_vs_lc"
else
    banner "cluster workflow W-3 on the API double with the VMs as nodes: verified restart, failure, rollback"
    start_double
    w3_kubeconfig="$cluster/kubeconfig"
    w3_configmap=kube-proxy-worker
    echo "ip_vs_lc unloaded on $last (N-4 runs on $others only): kube-proxy there cannot use lc"
    "$labctl" ssh "$last" 'modprobe -r ip_vs_lc 2>/dev/null; ! grep -q "^ip_vs_lc " /proc/modules'
fi
read_configmap() {
    "$bin/python" - "$w3_kubeconfig" "$w3_configmap" <<'PYEOF'
import sys
from kubernetes import client, config
config.load_kube_config(sys.argv[1])
sys.stdout.write(client.CoreV1Api().read_namespaced_config_map(sys.argv[2], 'kube-system', _request_timeout=30).data['config.conf'])
PYEOF
}
read_configmap > "$cluster/w3-before.conf"
w3_rc=0
K8S_AUTH_KUBECONFIG="$w3_kubeconfig" ansible-playbook -i "$inventory" -i "$cluster/localhost.yml" playbooks/ipvs_scheduler_change.yml \
    -e netmedic_change_id=DEMO-W3 -e ipvs_scheduler_name=lc -e ipvs_scheduler_timeout=300 -e "netmedic_targets=$others" \
    -e netmedic_reboot_on_fallback=false 2>&1 | tee "$cluster/w3.log" || w3_rc=$?
read_configmap > "$cluster/w3-after.conf"
# The stop must be the one planted - the rollout stopped at $last on kube-proxy's own failure line, and rolled back -
# not any other failure (a held lock, the health gate, N-4 failing on a node).
if [[ $w3_rc -eq 0 ]]; then echo "W-3 should have stopped on $last"; exit 1; fi
grep -q "stopped at node $last" "$cluster/w3.log" || { echo "W-3 failed, but not at $last (see $cluster/w3.log)"; exit 1; }
grep -Eiq "can.?t use (the )?ipvs proxier" "$cluster/w3.log" || { echo "W-3 stopped without kube-proxy's failure line (see $cluster/w3.log)"; exit 1; }
grep -q "It was rolled back" "$cluster/w3.log" || { echo "W-3 did not roll back (see $cluster/w3.log)"; exit 1; }
cmp -s "$cluster/w3-before.conf" "$cluster/w3-after.conf" || { diff "$cluster/w3-before.conf" "$cluster/w3-after.conf"; echo "$w3_configmap was not restored exactly"; exit 1; }
echo "W-3 stopped as it should: at $last on kube-proxy's own failure line; $w3_configmap restored byte for byte ($(grep -m1 'scheduler:' "$cluster/w3-after.conf" | tr -s ' '))"
if [[ "$demo_cluster" == real ]]; then
    echo "the IPVS virtual servers of $last's kernel after the rollback (ipvsadm -Ln):"
    "$labctl" ssh "$last" "rm -f $demo_block; ipvsadm -Ln" | sed 's/^/    /'
    demo_block=""
    real_down
    start_double
fi
export K8S_AUTH_KUBECONFIG="$cluster/kubeconfig"

banner "cluster fix C-5 on the API double (no Flannel on the real nodes): Flannel's cniVersion, --check --diff first, then applied"
ansible-playbook -i "$cluster/localhost.yml" playbooks/flannel_config.yml --check --diff -e netmedic_flannel_cni_version=0.3.1
ansible-playbook -i "$cluster/localhost.yml" playbooks/flannel_config.yml -e netmedic_change_id=DEMO-C5 \
    -e netmedic_flannel_cni_version=0.3.1
kill "$double_pid" 2>/dev/null || true; wait "$double_pid" 2>/dev/null || true; double_pid=""

printf '\nReports:\n  before: %s/lab-before/diagnose.md (.json, .html: open it in a browser, the fleet heatmap)\n' "$report"
printf '  after:  %s/lab-after/diagnose.md (.json, .html)\n' "$report"
printf '  change reports of every run (diff, backups, rollout timeline): %s/change-report-*.html (newest: change-report-latest.html)\n' "$report"
printf 'demo took %ss\n' "$(($(date +%s) - t_start))"
