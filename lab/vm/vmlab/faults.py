"""Fault injection: the catalog's node faults N-1 .. N-8 as shell scripts run over SSH (`inject`)."""

import hashlib
import json
import shlex
import time

from .common import LabError, log, parallel, step
from .config import CONTAINER_IMAGE
from .nodes import find_node, running_nodes
from .ssh import ssh_run

FAULT_IMAGE = CONTAINER_IMAGE


WRONG_MAC = '52:54:00:77:de:ad'


def _fault_id(text):
    return hashlib.sha256(text.encode()).hexdigest()


def _sh_json(obj):
    return shlex.quote(json.dumps(obj, separators=(',', ':')))


# Shell helpers every fault script may use (POSIX sh on the node).
FAULT_LIB = r"""
say() { printf '%s\n' "$*"; }
# live_container ID: a real running container in containerd's k8s.io namespace
live_container() {
  if ! ctr -n k8s.io c info "$1" >/dev/null 2>&1; then
    ctr -n k8s.io run -d "$IMAGE" "$1" sleep 86400 >/dev/null
  elif ! ctr -n k8s.io t ls | awk -v id="$1" '$1 == id && $3 == "RUNNING" {f = 1} END {exit !f}'; then
    ctr -n k8s.io t rm -f "$1" >/dev/null 2>&1 || true
    ctr -n k8s.io t start -d "$1" >/dev/null
  fi
}
# allocate NETCONF DIR ID: one address for ID from the real host-local plugin (if ID has none
# yet), file mtime set to an hour ago (older than any IPAM GC grace period); prints the IP
allocate() {
  f=$(grep -ls -- "$3" "$2"/* 2>/dev/null | head -n 1) || true
  if [ -z "$f" ]; then
    out=$(printf '%s' "$1" | CNI_COMMAND=ADD CNI_CONTAINERID="$3" CNI_NETNS="/var/run/netns/$3" \
          CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni /usr/lib/cni/host-local) || { say "host-local ADD failed: $out" >&2; return 1; }
    f=$(grep -ls -- "$3" "$2"/* | head -n 1)
    touch -d '1 hour ago' "$f"
  fi
  basename "$f"
}
write_file() {  # PATH CONTENT: replace only when different
  if [ "$(cat "$1" 2>/dev/null)" != "$2" ]; then mkdir -p "$(dirname "$1")"; printf '%s\n' "$2" > "$1.tmp"; mv "$1.tmp" "$1"; fi
}
"""


def fault_n1(node, _nodes):
    i = node['index']
    ipam = {'type': 'host-local', 'ranges': [[{'subnet': f'10.244.{i}.0/24', 'rangeStart': f'10.244.{i}.10',
                                               'rangeEnd': f'10.244.{i}.17', 'gateway': f'10.244.{i}.1'}]]}
    netconf = {'cniVersion': '0.4.0', 'name': 'lab-pod-network', 'type': 'bridge', 'bridge': 'cbr0', 'isGateway': True, 'ipam': ipam}
    conflist = {'cniVersion': '0.4.0', 'name': 'lab-pod-network',
                'plugins': [{'type': 'bridge', 'bridge': 'cbr0', 'isGateway': True, 'ipam': ipam},
                            {'type': 'portmap', 'capabilities': {'portMappings': True}}]}
    live = [_fault_id(f'netmedic-lab live pod {i}-{k}') for k in (1, 2)]
    leaked = [_fault_id(f'netmedic-lab leaked pod {i}-{k}') for k in range(1, 7)]
    return f"""
dir=/var/lib/cni/networks/lab-pod-network
netconf={_sh_json(netconf)}
write_file /etc/cni/net.d/10-lab-pod-network.conflist {_sh_json(conflist)}
mkdir -p "$dir"
for id in {' '.join(live)}; do
  live_container "$id"
  say "N-1: live container ${{id%"${{id#????????????}}"}} holds $(allocate "$netconf" "$dir" "$id")"
done
for id in {' '.join(leaked)}; do
  say "N-1: leaked (no such container) ${{id%"${{id#????????????}}"}} holds $(allocate "$netconf" "$dir" "$id")"
done
probe=$(printf '%s' "$netconf" | CNI_COMMAND=ADD CNI_CONTAINERID=netmedic-lab-probe CNI_NETNS=/var/run/netns/probe \\
        CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni /usr/lib/cni/host-local 2>&1) && {{
  printf '%s' "$netconf" | CNI_COMMAND=DEL CNI_CONTAINERID=netmedic-lab-probe CNI_NETNS=/var/run/netns/probe \\
    CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni /usr/lib/cni/host-local >/dev/null 2>&1
  say "N-1: FAILED: the range still has room"; exit 1; }}
say "N-1: a new pod now gets: $(printf '%s' "$probe" | sed -n 's/.*"msg": *"\\([^"]*\\)".*/\\1/p')"
"""


def fault_n2(node, _nodes):
    i = node['index']
    return f"""
modprobe nf_conntrack
sysctl -qw net.netfilter.nf_conntrack_max=64
k=0
while [ "$(cat /proc/sys/net/netfilter/nf_conntrack_count)" -lt 56 ] && [ $k -lt 300 ]; do
  k=$((k + 1))
  conntrack -I -p udp -s 10.244.{i}.20 -d 10.96.0.10 --sport $((40000 + k)) --dport 53 -t 86400 -u ASSURED >/dev/null 2>&1 || true
done
say "N-2: nf_conntrack_max=$(cat /proc/sys/net/netfilter/nf_conntrack_max) nf_conntrack_count=$(cat /proc/sys/net/netfilter/nf_conntrack_count)"
[ "$(cat /proc/sys/net/netfilter/nf_conntrack_count)" -ge 56 ]
"""


def fault_n3(_node, _nodes):
    return """
sysctl -qw net.ipv4.ip_local_port_range="30000 60999"
printf '\\n' > /proc/sys/net/ipv4/ip_local_reserved_ports
say "N-3: ip_local_port_range=$(sysctl -n net.ipv4.ip_local_port_range | tr '\\t' ' ') reserved='$(sysctl -n net.ipv4.ip_local_reserved_ports)'"
"""


def fault_n4(_node, _nodes):
    return """
modprobe -a ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh
for f in /etc/modules-load.d/*.conf; do
  if grep -qs '^ip_vs_lc' "$f"; then sed -i '/^ip_vs_lc/d' "$f"; fi
done
if grep -q '^ip_vs_lc ' /proc/modules; then rmmod ip_vs_lc; fi
say "N-4: loaded: $(awk '$1 ~ /^ip_vs/ {print $1}' /proc/modules | sort | tr '\\n' ' ')(no ip_vs_lc)"
"""


def fault_n5(node, _nodes):
    i = node['index']
    return f"""
modprobe -a ip_vs ip_vs_rr
ipvsadm -L -n -u 10.96.0.10:53 >/dev/null 2>&1 || ipvsadm -A -u 10.96.0.10:53 -s rr
ipvsadm -L -n -u 10.96.0.10:53 | grep -q '10.244.{i}.53:53' || ipvsadm -a -u 10.96.0.10:53 -r 10.244.{i}.53:53 -m
ipvsadm --set 900 120 300
say "N-5: $(ipvsadm -L --timeout) with UDP service 10.96.0.10:53"
"""


def fault_n6(node, nodes):
    others = [n for n in nodes if n['index'] != node['index']]
    if node is not nodes[0]:
        return ''  # one node holds the stale entry (for the next node's address)
    if not others:
        return 'say "N-6: needs two nodes: nothing planted"; exit 1\n'
    peer = others[0]
    return f"""
ip neigh replace {peer['l2_ip']} lladdr {WRONG_MAC} dev {peer['l2_dev']} nud permanent
say "N-6: $(ip neigh show {peer['l2_ip']} dev {peer['l2_dev']}) ({peer['name']} really has {peer['l2_mac']})"
"""


def fault_n7(node, _nodes):
    i = node['index']
    conflist = {'name': 'cb0', 'cniVersion': '0.3.1',
                'plugins': [{'type': 'flannel', 'delegate': {'hairpinMode': True, 'isDefaultGateway': True}},
                            {'type': 'portmap', 'capabilities': {'portMappings': True}}]}
    netconf = {'cniVersion': '0.3.1', 'name': 'cb0', 'type': 'bridge', 'bridge': 'cni0',
               'ipam': {'type': 'host-local', 'ranges': [[{'subnet': f'172.20.{i}.0/24'}]], 'dataDir': '/var/lib/cni/networks'}}
    subnet_env = f'FLANNEL_NETWORK=172.20.0.0/16\nFLANNEL_SUBNET=172.20.{i}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true'
    pod = _fault_id(f'netmedic-lab flannel pod {i}')
    return f"""
write_file /etc/cni/net.d/20-flannel.conflist {_sh_json(conflist)}
write_file /run/flannel/subnet.env {shlex.quote(subnet_env)}
mkdir -p /var/lib/cni/networks/cb0
live_container {pod}
say "N-7: Flannel network cb0 on disk: /var/lib/cni/networks/cb0/$(allocate {_sh_json(netconf)} /var/lib/cni/networks/cb0 {pod}) \\
($(stat -f -c %T /var/lib/cni/networks/cb0), not tmpfs)"
"""


def fault_n8(node, _nodes):
    i = node['index']
    return f"""
ip link show cbr0 >/dev/null 2>&1 || ip link add cbr0 type bridge
ip addr replace 10.244.{i}.1/24 dev cbr0
ip link show nmlab-veth0 >/dev/null 2>&1 || ip link add nmlab-veth0 type veth peer name nmlab-veth1
ip link set nmlab-veth0 master cbr0
ip link set nmlab-veth0 up
ip link set cbr0 down
say "N-8: $(ip -br link show cbr0)"
"""


# (catalog ID, short name, what is planted, function)
FAULTS = [
    ('N-1', 'leaked-ips', 'host-local network lab-pod-network (8 addresses): 2 live containers + 6 allocations of '
     'containers that do not exist, made by the real /usr/lib/cni/host-local, files backdated 1 h: range exhausted', fault_n1),
    ('N-2', 'conntrack-low', 'nf_conntrack_max=64 and 56 ASSURED UDP entries (87 % full)', fault_n2),
    ('N-3', 'port-range', 'ip_local_port_range 30000-60999 (overlaps NodePorts 30000-32767), no reserved ports', fault_n3),
    ('N-4', 'ipvs-module', 'ip_vs, ip_vs_rr/wrr/sh loaded, ip_vs_lc not loaded and not in modules-load.d', fault_n4),
    ('N-5', 'ipvs-udp-timeout', 'IPVS UDP service 10.96.0.10:53 (rr) and timeouts 900 120 300', fault_n5),
    ('N-6', 'stale-neighbor', 'first node only: PERMANENT neighbor entry for the next node\'s L2 IP with MAC ' + WRONG_MAC, fault_n6),
    ('N-7', 'flannel-disk-ipam', 'Flannel conflist cb0 (no dataDir), /run/flannel/subnet.env, an allocation of a live '
     'container in /var/lib/cni/networks/cb0 (on disk, not tmpfs)', fault_n7),
    ('N-8', 'bridge-down', 'bridge cbr0 (10.244.<n>.1/24, one veth port) administratively down', fault_n8),
]


def select_faults(names):
    if not names or 'all' in names:
        return list(FAULTS)
    chosen = []
    for name in names:
        key = name.strip().upper()
        match = [f for f in FAULTS if key in (f[0], f[0].replace('-', ''), f[1].upper())]
        if not match:
            raise LabError(f'unknown fault {name!r}; `labctl inject --list` shows them')
        if match[0] not in chosen:
            chosen.append(match[0])
    return sorted(chosen, key=FAULTS.index)


def fault_script(node, nodes, faults):
    parts = ['IMAGE=' + shlex.quote(FAULT_IMAGE), FAULT_LIB, 'rc=0']
    for fid, _name, _what, fn in faults:
        body = fn(node, nodes)
        if body:
            parts.append(f'( set -eu\n{body}) || {{ say "{fid}: FAILED"; rc=1; }}')
    parts.append('exit $rc')
    return '\n'.join(parts)


def cmd_inject(args):
    if args.list:
        for fid, name, what, _fn in FAULTS:
            print(f'{fid:<4} {name:<18} {what}')
        return
    faults = select_faults(args.faults)
    nodes = running_nodes()
    if not nodes:
        raise LabError('no lab is up (run `labctl up`)')
    if args.nodes:
        wanted = {find_node(spec)['index'] for spec in args.nodes.split(',')}
        nodes = [n for n in nodes if n['index'] in wanted]
    start = time.monotonic()
    ids = ' '.join(f[0] for f in faults)
    failed = []

    def plant(node):
        proc = ssh_run(node, fault_script(node, nodes, faults), timeout=600, check=False, shared=True)
        for line in proc.stdout.splitlines():
            log(f'    {node["name"]}  {line}')
        if proc.returncode != 0:
            failed.append(node['name'])
            for line in proc.stderr.strip().splitlines():
                log(f'    {node["name"]}  stderr: {line}')

    with step(f'inject {ids} on {" ".join(n["name"] for n in nodes)}'):
        parallel(plant, nodes)
    if failed:
        raise LabError(f'fault injection failed on {" ".join(sorted(failed))} (see FAILED lines above)')
    log(f'faults planted in {time.monotonic() - start:.1f}s; `labctl reset` removes them all')
