#!/usr/bin/env bash
# The netmedic demo on the VM lab (`make demo`): real nodes, real faults, real fixes.
#
#   1 lab up            3 qemu nodes (lab/vm/labctl up)
#   2 inject            every node fault of the catalog (labctl inject all)
#   3 diagnose          playbooks/diagnose.yml -> report/lab-before/diagnose.{md,json}
#   4 remediate --check playbooks/remediate_node.yml --check --diff (changes nothing)
#   5 remediate         the same, for real
#   6 diagnose again    -> report/lab-after/; a before/after table per catalog ID
#   7 lab down          unless DEMO_KEEP=1
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
    printf '\n\033[1m==== [%d/7] %s\033[0m  (%s, +%ss)\n' "$step_no" "$*" "$(date +%H:%M:%S)" "$(($(date +%s) - t_start))"
}

cleanup() {
    rc=$?
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

printf '\nReports:\n  before: %s/lab-before/diagnose.md (.json)\n  after:  %s/lab-after/diagnose.md (.json)\n' "$report" "$report"
printf 'demo took %ss\n' "$(($(date +%s) - t_start))"
