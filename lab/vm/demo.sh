#!/usr/bin/env bash
# The netmedic demo on the VM lab (`make demo`): real nodes, real faults, real fixes.
#
#   1 lab up            3 qemu nodes (lab/vm/labctl up)
#   2 inject            every node fault of the catalog (labctl inject all)
#   3 diagnose          playbooks/diagnose.yml -> report/lab-before/diagnose.{md,json}
#   4 remediate --check playbooks/remediate_node.yml --check --diff (changes nothing)
#   5 remediate         the same, for real
#   6 diagnose again    -> report/lab-after/; a before/after table per catalog ID
#   7 cluster (W-3)     the API double (lab/kubedouble) as the cluster, the VMs as its nodes: its kube-proxy asks
#                       each VM's real kernel for ip_vs_lc (lab.vmstate). ip_vs_lc is unloaded on the last node,
#                       N-4 runs on the others only: playbooks/ipvs_scheduler_change.yml switches to lc, restarts
#                       kube-proxy node by node, detects the failure on the last node and rolls the ConfigMap back
#   8 cluster (C-5)     playbooks/flannel_config.yml: --check --diff (the diff, nothing written), then applied
#                       (backup ConfigMap, verified Flannel restart)
#   9 lab down          unless DEMO_KEEP=1
#   At the end: where the HTML diagnosis and the change reports (with their diffs) are.
#
# Run it through `make demo` (holds the shared lab lock for the whole run). Environment:
# DEMO_KEEP=1 leaves the lab up; LAB_NODES (default 3); NETMEDIC_FIXES: the remediation
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
cleanup() {
    rc=$?
    if [[ -n "$double_pid" ]]; then kill "$double_pid" 2>/dev/null || true; wait "$double_pid" 2>/dev/null || true; fi
    if [[ "$keep" == 1 ]]; then
        printf '\nThe lab is still up (DEMO_KEEP=1): %s\n  lab/vm/labctl ssh 1     look around\n  make lab-down           stop it\n' "$inventory"
    else
        banner "lab down"
        "$labctl" down | tail -n 1
    fi
    if [[ $rc -ne 0 ]]; then
        printf '\ndemo FAILED (rc=%s) at step %s\n' "$rc" "$step_no"
    fi
    exit "$rc"
}
trap cleanup EXIT

banner "lab up ($nodes real Debian 12 nodes under qemu)"
"$labctl" deps | tail -n 1
was_up=0
if "$labctl" inventory >/dev/null 2>&1; then was_up=1; fi
"$labctl" up --nodes "$nodes" | grep -E 'lab-node-|lab up|inventory' || true
if [[ $was_up == 1 ]]; then
    echo "the lab was already up: back to the clean saved state first"
    "$labctl" reset | tail -n 1
fi

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

banner "cluster workflow W-3 on the API double with the VMs as nodes: verified restart, failure, rollback"
# The cluster: the lab's API double, seeded with lab/seed/cluster.yaml (nodes lab-node-1..3 = the VMs). Its
# simulated kube-proxy asks the real VM of the same name (SSH: /proc/modules) whether the scheduler's module is loaded.
cluster="$report/demo-cluster"
mkdir -p "$cluster"
NETMEDIC_LAB_INVENTORY="$inventory" "$bin/python" -m lab.kubedouble serve --seed lab/seed/cluster.yaml \
    --kubeconfig "$cluster/kubeconfig" --node-state lab.vmstate:from_env --tick 0.1 --start-delay 0.1 \
    > "$cluster/double.log" 2>&1 &
double_pid=$!
for _ in $(seq 1 100); do [[ -s "$cluster/kubeconfig" ]] && break; sleep 0.2; done
[[ -s "$cluster/kubeconfig" ]] || { cat "$cluster/double.log"; echo "the API double did not start"; exit 1; }
printf 'all:\n  hosts:\n    localhost: {ansible_connection: local, ansible_python_interpreter: %s}\n' "$bin/python" \
    > "$cluster/localhost.yml"
export K8S_AUTH_KUBECONFIG="$cluster/kubeconfig"
mapfile -t lab_nodes < <("$bin/ansible-inventory" -i "$inventory" --list | "$bin/python" -c '
import json, sys; print("\n".join(sorted(json.load(sys.stdin)["_meta"]["hostvars"])))')
last="${lab_nodes[-1]}"
others="$(IFS=:; echo "${lab_nodes[*]:0:${#lab_nodes[@]}-1}")"
echo "ip_vs_lc unloaded on $last (N-4 runs on $others only): kube-proxy there cannot use lc"
"$labctl" ssh "${#lab_nodes[@]}" 'modprobe -r ip_vs_lc 2>/dev/null; ! grep -q "^ip_vs_lc " /proc/modules'
w3_rc=0
ansible-playbook -i "$inventory" -i "$cluster/localhost.yml" playbooks/ipvs_scheduler_change.yml \
    -e netmedic_change_id=DEMO-W3 -e ipvs_scheduler_name=lc -e ipvs_scheduler_timeout=120 -e "netmedic_targets=$others" \
    || w3_rc=$?
if [[ $w3_rc -eq 0 ]]; then echo "W-3 should have stopped on $last"; exit 1; fi
"$bin/python" - "$cluster/kubeconfig" <<'PYEOF'
import sys
from kubernetes import client, config
config.load_kube_config(sys.argv[1])
data = client.CoreV1Api().read_namespaced_config_map('kube-proxy-worker', 'kube-system').data['config.conf']
line = [ln.strip() for ln in data.splitlines() if ln.strip().startswith('scheduler:')]
print('W-3 stopped as it should: kube-proxy-worker is back at %s (rolled back exactly from the backup)' % line)
PYEOF

banner "cluster fix C-5 on the same cluster: Flannel's cniVersion, --check --diff first, then applied"
ansible-playbook -i "$cluster/localhost.yml" playbooks/flannel_config.yml --check --diff -e netmedic_flannel_cni_version=0.3.1
ansible-playbook -i "$cluster/localhost.yml" playbooks/flannel_config.yml -e netmedic_change_id=DEMO-C5 \
    -e netmedic_flannel_cni_version=0.3.1
kill "$double_pid" 2>/dev/null || true; wait "$double_pid" 2>/dev/null || true; double_pid=""

printf '\nReports:\n  before: %s/lab-before/diagnose.md (.json, .html: open it in a browser, the fleet heatmap)\n' "$report"
printf '  after:  %s/lab-after/diagnose.md (.json, .html)\n' "$report"
printf '  change reports of every run (diff, backups, rollout timeline): %s/change-report-*.html (newest: change-report-latest.html)\n' "$report"
printf 'demo took %ss\n' "$(($(date +%s) - t_start))"
