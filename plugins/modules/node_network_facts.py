#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_network_facts
short_description: Gather a Kubernetes node's container-network state and findings (read-only)
version_added: 0.1.0
description:
  - Reads, in one call, everything the netmedic catalog checks on a node and returns it as the
    C(netmedic) fact, plus a list of findings that name the catalog entry and the netmedic module
    that fixes it. Changes nothing on the node.
  - B(N-2) conntrack - C(nf_conntrack_count), C(nf_conntrack_max), usage in percent (from
    C(/proc/sys/net/netfilter)), and C(table full, dropping packet) events in the kernel log
    (C(dmesg), else C(journalctl -k)); the source used is reported.
  - B(N-3) C(net.ipv4.ip_local_port_range) and C(net.ipv4.ip_local_reserved_ports) against
    O(nodeport_range); an overlap fully covered by reserved ports is not a finding.
  - B(N-4)/B(N-5) IPVS - kernel support (C(/proc/net/ip_vs) - version and connection table size,
    virtual services and the schedulers they use), loaded and built-in C(ip_vs*) modules, and the
    C(ipvsadm -L --timeout) values. C(ipvsadm) is only run when IPVS is in the kernel, because it
    would otherwise try to load C(ip_vs).
  - B(N-1)/B(N-7)/B(C-5)/B(D-7) CNI configuration files in O(cni_conf_dir) (name, plugin types,
    C(cniVersion), IPAM ranges, invalid JSON reported per file) and host-local IPAM directories
    (O(ipam_data_dirs) plus every C(dataDir) a config names) - allocations per network (files named
    as an IP; never C(lock) or C(last_reserved_ip.*)), range size and free addresses (from the
    config, or for Flannel from O(flannel_subnet_env)), whether the directory is on tmpfs, and the
    catalog N-7 check that Flannel's network lives under C(/var/run/cni/networks) on tmpfs with
    nothing left in C(/var/lib/cni/networks).
  - B(N-8) pod bridges (O(bridges)) - existence, admin and operational state, MTU and the MTUs of
    the interfaces attached to it (one C(ip -j -d link show)).
  - B(N-6) neighbor entries in C(FAILED), C(INCOMPLETE) or C(STALE) state and counts per state
    (C(ip -j neigh show)); with O(expected_neighbors), entries whose MAC differs from the owner's.
  - B(D-11) nameservers and search domains of O(resolv_conf_files) and whether they agree; with
    O(dns_servers), one real DNS query per server and name (the kube-dns Service IP and each CoreDNS
    pod, as the seed does with dig), classified NOERROR, NXDOMAIN, SERVFAIL, REFUSED, timeout or
    unreachable. The query is sent by the module itself over UDP (no C(dig) needed) with
    O(dns_timeout) per query.
  - B(D-5) listening TCP sockets of the node's network namespace (C(/proc/net/tcp) and C(/proc/net/tcp6),
    what C(netstat -anp) shows) - ports reachable over IPv4 only, over IPv6, or loopback only. A port in
    O(ipv6_ports) that listens on IPv4 only is a finding (a dual-stack Service sends it IPv6 clients).
    Pods with their own network namespace are not seen; host-network pods and node daemons are.
  - B(D-9) with O(conntrack_breakdown=true), source-NATed conntrack entries per destination (protocol,
    NAT address, destination address and port) - at most O(nat_port_capacity) can be open at once, so a
    destination above O(nat_warn_percent) of it is a finding.
  - The container runtime (containerd, CRI-O, Docker) from the kubelet's
    C(--container-runtime-endpoint), else from the runtime sockets present.
  - A probe whose tool or kernel feature is missing reports C(available=false) and a C(reason); a
    probe that breaks records its error in itself and in RV(netmedic.errors) and never fails the
    module.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode returns the same facts.
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: posix
    support: full
    details: Linux nodes. Run as root to see every file (IPAM directories, kernel log).
options:
  probes:
    description:
      - Which probes to run. V(ipam) also runs V(cni), whose configs give the IPAM ranges.
    type: list
    elements: str
    choices: [conntrack, ports, ipvs, cni, ipam, bridges, neighbors, dns, runtime, listeners]
    default: [conntrack, ports, ipvs, cni, ipam, bridges, neighbors, dns, runtime, listeners]
  nodeport_range:
    description:
      - The cluster's Service NodePort range (kube-apiserver C(--service-node-port-range)) for the
        catalog N-3 overlap check, as C(start-end).
    type: str
    default: 30000-32767
  cni_conf_dir:
    description:
      - Directory of the CNI network configuration files.
    type: path
    default: /etc/cni/net.d
  ipam_data_dirs:
    description:
      - host-local IPAM data directories to scan (each subdirectory is a network). Directories named
        by an C(ipam.dataDir) in a CNI config are scanned as well.
    type: list
    elements: path
    default: [/var/lib/cni/networks, /var/run/cni/networks]
  flannel_subnet_env:
    description:
      - Flannel's subnet file; its C(FLANNEL_SUBNET) (and C(FLANNEL_IPV6_SUBNET)) is the range of a
        Flannel network unless the Flannel config sets C(subnetFile).
    type: path
    default: /run/flannel/subnet.env
  bridges:
    description:
      - Pod bridge names to inspect (catalog N-8). Names that do not exist are reported with
        C(exists=false) and are not a finding.
    type: list
    elements: str
    default: [cbr0, cni0]
  pod_mtu:
    description:
      - The MTU pod interfaces should have (for example the VPC MTU minus overlay overhead). When set,
        a bridge or port with another MTU is a finding; otherwise only MTUs that differ from each
        other are.
    type: int
  resolv_conf_files:
    description:
      - Resolver files to compare (catalog D-11). The first one is the node's; when it only names
        the systemd-resolved stub, the second one is what pods using the node's DNS get.
    type: list
    elements: path
    default: [/etc/resolv.conf, /run/systemd/resolve/resolv.conf]
  expected_neighbors:
    description:
      - IP address to MAC address of hosts whose neighbor entries must be right, for example a
        user cluster's control-plane VIP and the MAC of the interface holding it (catalog N-6). An
        entry with another MAC is a critical finding.
    type: dict
    default: {}
  ipvs_schedulers:
    description:
      - IPVS schedulers the node must support (catalog N-4), for example V(lc) before switching
        kube-proxy to it. A scheduler whose C(ip_vs_<name>) module is neither loaded nor built in
        is a finding. Unknown names fail the module before anything is read.
    type: list
    elements: str
    default: []
  conntrack_warn_percent:
    description:
      - Conntrack usage (count / max, percent) from which a warning finding (N-2) is raised.
    type: float
    default: 80
  conntrack_critical_percent:
    description:
      - Conntrack usage from which the N-2 finding is critical.
    type: float
    default: 95
  ipam_warn_percent:
    description:
      - Usage of a host-local range (allocated / size, percent) from which an N-1 warning is raised.
        A range with no free address is always critical.
    type: float
    default: 90
  kernel_log:
    description:
      - Read the kernel log (C(dmesg), else C(journalctl -k)) for conntrack C(table full) events.
    type: bool
    default: true
  conntrack_breakdown:
    description:
      - Also list the conntrack table (C(conntrack -L)) and count entries by protocol, TCP state and destination
        port, the diagnosis step of catalog N-2; the N-2 finding then carries the source's advice (keep-alive for
        mostly TCP, NodeLocal DNSCache for mostly UDP/DNS).
      - Off by default because a full table can hold hundreds of thousands of entries. Needs C(conntrack-tools).
    type: bool
    default: false
  nat_port_capacity:
    description:
      - NAT source ports available per destination, node and protocol (catalog D-9; the GKE guide's
        32768-65535 gives 32767). Used with O(conntrack_breakdown=true).
    type: int
    default: 32767
  nat_warn_percent:
    description:
      - Share of O(nat_port_capacity) used by one destination from which a D-9 warning is raised; a
        destination at the capacity is critical.
    type: float
    default: 80
  ipv6_ports:
    description:
      - TCP ports that must accept IPv6 clients (catalog D-5), for example the ports of host-network pods
        behind dual-stack Services. A port listening on IPv4 only is a warning finding.
    type: list
    elements: int
    default: []
  dns_servers:
    description:
      - DNS servers to query from the node (catalog D-11), as IP addresses, for example the kube-dns
        Service IP and the CoreDNS pod IPs. Empty (the default) sends no query. At most 32.
    type: list
    elements: str
    default: []
  dns_names:
    description:
      - Names to ask each server in O(dns_servers) (1 to 8). A name that must exist answering NXDOMAIN
        is a warning; SERVFAIL, REFUSED, a timeout or no answer at all is critical.
    type: list
    elements: str
    default: [kubernetes.default.svc.cluster.local]
  dns_query_type:
    description:
      - Record type asked.
    type: str
    choices: [A, AAAA]
    default: A
  dns_timeout:
    description:
      - Seconds to wait for each answer (above 0, at most 30). The probe takes at most
        servers x names x this.
    type: float
    default: 2
requirements:
  - ip (Debian package iproute2) on the managed node, for the bridge and neighbor probes (reported unavailable without it)
  - ipvsadm (Debian package ipvsadm) on the managed node, for the IPVS timeouts (reported unavailable without it)
  - conntrack (Debian package conntrack) on the managed node, for O(conntrack_breakdown=true)
  - dmesg (Debian package util-linux) on the managed node, for conntrack C(table full) events
  - journalctl (Debian package systemd) on the managed node, for C(table full) events when C(dmesg) cannot be read
seealso:
  - module: netmedic.k8s.conntrack_limit
  - name: Catalog N-1 to N-8, C-5, D-7, D-11
    description: docs/catalog.md in the collection maps each catalog ID to its netmedic module.
    link: https://example.invalid/netmedic/k8s/docs/catalog.md
notes:
  - Read-only. Nothing is written, no kernel module is loaded, no container is listed.
  - Network namespaced values (port ranges, links, neighbors, conntrack count) are those of the
    namespace the module runs in; run it on the host network.
"""

EXAMPLES = r"""
- name: Gather the node's network facts and findings
  netmedic.k8s.node_network_facts:

- name: Show what needs fixing
  ansible.builtin.debug:
    msg: "{{ item.severity }} {{ item.id }}: {{ item.summary }} -> {{ item.remediation }}"
  loop: "{{ ansible_facts.netmedic.findings }}"

- name: A cluster with a custom NodePort range, an overlay MTU and the lc scheduler planned
  netmedic.k8s.node_network_facts:
    nodeport_range: 20000-22767
    pod_mtu: 1450
    ipvs_schedulers: [lc]

- name: Check an admin control-plane node's ARP entry for a user cluster's VIP (catalog N-6)
  netmedic.k8s.node_network_facts:
    probes: [neighbors]
    expected_neighbors:
      10.200.0.50: "00:50:56:aa:bb:cc"

- name: Fail the play when a node has a critical finding
  ansible.builtin.assert:
    that: ansible_facts.netmedic.summary.critical == 0
    fail_msg: "{{ ansible_facts.netmedic.findings | selectattr('severity', 'eq', 'critical') | list }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    netmedic:
      description: The same dictionary as RV(netmedic).
      returned: always
      type: dict
netmedic:
  description: Everything gathered, one key per probe, plus findings and errors.
  returned: always
  type: dict
  contains:
    conntrack:
      description:
        - Catalog N-2. C(available=false) and C(reason) when C(nf_conntrack) is not loaded.
        - C(table_full_events) - C(available), C(source) (V(dmesg) or V(journalctl)), C(count), C(last)
          (the last matching line), C(lines_scanned), C(fallback_reason) or C(reason).
        - With O(conntrack_breakdown=true), C(breakdown) - C(total), C(by_protocol), C(tcp_states), C(dns)
          (entries to port 53), C(top_dports), C(advice) (the source documents' advice for what dominates) and C(nat)
          (catalog D-9 - C(total) source-NATed entries, C(max_per_destination), C(destinations) largest first with
          C(protocol), C(nat_address), C(dst), C(dport), C(count)).
      returned: when the conntrack probe runs
      type: dict
      sample: {"available": true, "count": 16, "max": 16, "usage_percent": 100.0, "buckets": 4096, "hashsize": 4096,
               "table_full_events": {"available": true, "source": "dmesg", "count": 10, "lines_scanned": 389,
               "last": "[    4.512457] nf_conntrack: nf_conntrack: table full, dropping packet", "fallback_reason": null}}
    ports:
      description:
        - Catalog N-3. Raw kernel values, the parsed ephemeral range, the reserved ranges, the overlap with
          the NodePort range, the part of it not reserved (C(uncovered)), C(covered_by_reserved) (null without
          an overlap) and C(conflict) (an overlap that reserved ports do not cover).
      returned: when the ports probe runs
      type: dict
      sample: {"available": true, "ip_local_port_range": "32768 60999", "ip_local_reserved_ports": "",
               "ephemeral": {"start": 32768, "end": 60999}, "reserved": [], "nodeport_range": "30000-32767",
               "overlap": [], "overlap_ports": 0, "uncovered": [], "uncovered_ports": 0,
               "covered_by_reserved": null, "conflict": false}
    ipvs:
      description:
        - Catalog N-4, N-5. C(available) is kernel support (C(/proc/net/ip_vs) exists); C(version),
          C(table_size), C(services), C(real_servers), C(schedulers_in_use); C(modules_loaded) (C(ip_vs*)
          in C(/proc/modules)), C(modules_available), C(modules_builtin), C(schedulers_available),
          C(schedulers_wanted), C(schedulers_missing); C(timeouts) (C(tcp), C(tcpfin), C(udp) seconds from
          C(ipvsadm -L --timeout), or C(available=false) and C(reason)).
      returned: when the ipvs probe runs
      type: dict
      sample: {"available": true, "version": "1.2.1", "table_size": 4096, "services": 3, "real_servers": 4,
               "schedulers_in_use": ["lc", "rr", "wrr"], "modules_available": true,
               "modules_loaded": ["ip_vs", "ip_vs_lc", "ip_vs_rr", "ip_vs_sh", "ip_vs_wrr"], "modules_builtin": [],
               "schedulers_available": ["lc", "rr", "sh", "wrr"], "schedulers_wanted": [], "schedulers_missing": [],
               "timeouts": {"available": true, "tcp": 900, "tcpfin": 120, "udp": 300}}
    cni:
      description:
        - CNI configuration files (catalog C-5, D-7). C(files) in the order the runtime considers them, each
          with C(file), C(path), C(format) (conf or conflist), C(valid), C(error), C(name), C(cniVersion),
          C(types), C(plugins), C(ipam) (network, plugin, type, data_dir, range_sets, ranges_from), C(flannel)
          and C(default) (the file the runtime uses).
      returned: when the cni or ipam probe runs
      type: dict
      sample: {"available": true, "conf_dir": "/etc/cni/net.d", "default": "10-flannel.conflist", "files": []}
    ipam:
      description:
        - Catalog N-1, N-7. C(data_dirs) (path, exists, configured_by, mount_point, fstype, tmpfs);
          C(networks), each with C(name), C(data_dir), C(path), C(exists), C(allocated) (addresses),
          C(containers), C(allocations) (ip, container_id, ifname, mtime), C(range_sets) (ranges, size,
          allocated, free, used_percent), C(size), C(free), C(used_percent) (of the fullest range set),
          C(exhausted), C(outside_ranges), C(range_source), C(tmpfs); C(flannel) (C(detected), C(network),
          C(run_dir), C(run_dir_exists), C(legacy_dir_exists), C(tmpfs) - true when the catalog N-7
          migration is done).
      returned: when the ipam probe runs
      type: dict
      sample: {"available": true, "data_dirs": [], "networks": [], "flannel": {"detected": false, "tmpfs": null}}
    bridges:
      description:
        - Catalog N-8. C(bridges), one per O(bridges) name - C(exists), C(kind), C(admin_up), C(operstate),
          C(lower_up), C(mtu), C(ports) (name, kind, mtu, operstate), C(port_mtus), C(veth_count),
          C(mtu_mismatch), C(problems).
      returned: when the bridges probe runs
      type: dict
      sample: {"available": true, "bridges": [{"name": "cbr0", "exists": true, "kind": "bridge", "is_bridge": true,
               "admin_up": false, "operstate": "DOWN", "lower_up": false, "mtu": 1460, "expected_mtu": null,
               "ports": [{"name": "veth1a2b3c4d", "kind": "veth", "mtu": 1460, "operstate": "UP"}],
               "port_mtus": [1460], "veth_count": 1, "mtu_mismatch": false, "problems": ["admin_down"]}]}
    neighbors:
      description:
        - Catalog N-6. C(counts) per state, C(total), C(entries) in FAILED, INCOMPLETE or STALE state
          (dst, dev, lladdr, state), C(unresolved) (FAILED + INCOMPLETE), C(expected) and C(mismatches).
      returned: when the neighbors probe runs
      type: dict
      sample: {"available": true, "total": 2, "counts": {"REACHABLE": 1, "FAILED": 1}, "unresolved": 1,
               "entries": [{"dst": "fd00::1", "dev": "eth0", "lladdr": null, "state": "FAILED"}],
               "expected": {}, "mismatches": []}
    dns:
      description:
        - Catalog D-11. C(files) (path, exists, nameservers, search, options), C(agree) (null with fewer than
          two files), C(stub), C(effective_nameservers), C(differences).
        - With O(dns_servers), C(queries) - per server and name C(server), C(name), C(type), C(result) (V(noerror),
          V(nxdomain), V(servfail), V(refused), V(other), V(timeout), V(unreachable), V(error)), C(rcode),
          C(answers), C(truncated), C(ms).
      returned: when the dns probe runs
      type: dict
      sample: {"available": true, "agree": null, "stub": false, "effective_nameservers": ["10.255.255.53"],
               "differences": [], "files": [{"path": "/etc/resolv.conf", "exists": true,
               "nameservers": ["10.255.255.53"], "search": [], "options": []}]}
    runtime:
      description:
        - Detected container runtime. C(name) (containerd, crio, docker or null), C(source) (kubelet or
          socket), C(endpoint), C(endpoint_source), C(ambiguous) (several runtime sockets and no kubelet
          setting), C(runtimes) (name, socket, socket_present, clis).
      returned: when the runtime probe runs
      type: dict
      sample: {"available": true, "name": "containerd", "source": "socket", "endpoint": null, "endpoint_source": null,
               "ambiguous": false, "runtimes": [{"name": "containerd", "socket": "/run/containerd/containerd.sock",
               "socket_present": true, "clis": {"ctr": "/usr/bin/ctr", "crictl": null}}]}
    listeners:
      description:
        - Catalog D-5. C(tcp) and C(tcp6) listening sockets (family, address, port), C(ipv6_enabled), ports by
          reachability - C(ipv4_only), C(ipv6), C(loopback_only) - and for O(ipv6_ports) C(ipv6_ports_wanted),
          C(ipv6_ports_ipv4_only), C(ipv6_ports_not_listening).
      returned: when the listeners probe runs
      type: dict
      sample: {"available": true, "ipv6_enabled": true, "ipv4_only": [7070], "ipv6": [8080, 9090],
               "loopback_only": [5050, 6060], "ipv6_ports_wanted": [7070], "ipv6_ports_ipv4_only": [7070],
               "ipv6_ports_not_listening": [],
               "tcp": [{"family": 4, "address": "0.0.0.0", "port": 7070}], "tcp6": [{"family": 6, "address": "::", "port": 8080}]}
    findings:
      description:
        - Problems found, most severe first. C(id) is the catalog ID, C(severity) is V(critical),
          V(warning) or V(info), C(evidence) the values that triggered it and C(remediation) the netmedic
          module to run (or what to do by hand).
      returned: always
      type: list
      elements: dict
      sample: [{"id": "N-8", "severity": "critical", "summary": "pod bridge cbr0 is down (ip link set cbr0 up)",
                "evidence": {"bridge": "cbr0", "admin_up": false}, "remediation": "netmedic.k8s.pod_bridge"}]
    summary:
      description: Number of findings per severity.
      returned: always
      type: dict
      sample: {"critical": 1, "warning": 0, "info": 0}
    errors:
      description: Probes that broke, with the error (the probe itself also reports it).
      returned: always
      type: list
      elements: dict
      sample: [{"probe": "ipvs", "error": "/usr/sbin/ipvsadm -L --timeout exited with rc=2: ..."}]
    probes:
      description: The probes that ran.
      returned: always
      type: list
      elements: str
      sample: [conntrack, ports, ipvs, cni, ipam, bridges, neighbors, dns, runtime]
    catalog:
      description: Catalog IDs this module detects.
      returned: always
      type: list
      elements: str
      sample: [N-1, N-2, N-3, N-4, N-5, N-6, N-7, N-8, C-5, D-5, D-7, D-9, D-11]
catalog:
  description: Catalog IDs this module detects (the same as RV(netmedic.catalog)).
  returned: always
  type: list
  elements: str
  sample: [N-1, N-2, N-3, N-4, N-5, N-6, N-7, N-8, C-5, D-5, D-7, D-9, D-11]
before:
  description: Always empty; the module only reads (kept for the common result shape).
  returned: always
  type: dict
  sample: {}
after:
  description: Always empty; the module only reads (kept for the common result shape).
  returned: always
  type: dict
  sample: {}
backups:
  description: Always empty; the module only reads (kept for the common result shape).
  returned: always
  type: list
  elements: dict
  sample: []
"""

from ansible_collections.netmedic.k8s.plugins.module_utils import node_facts
from ansible_collections.netmedic.k8s.plugins.module_utils.lifecycle import ModuleLifecycle
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import Runner


class NodeNetworkFacts(ModuleLifecycle):
    """The node's facts on the lifecycle: validate, read (every probe through the runner; a probe that breaks
    records its error and never fails the module), report (``ansible_facts.netmedic`` and a warning per probe
    error); it changes nothing."""

    catalog = list(node_facts.CATALOG)
    options = dict(
        probes=dict(type='list', elements='str', choices=list(node_facts.PROBES), default=list(node_facts.PROBES)),
        nodeport_range=dict(type='str', default=node_facts.DEFAULTS['nodeport_range']),
        cni_conf_dir=dict(type='path', default=node_facts.DEFAULTS['cni_conf_dir']),
        ipam_data_dirs=dict(type='list', elements='path', default=list(node_facts.DEFAULTS['ipam_data_dirs'])),
        flannel_subnet_env=dict(type='path', default=node_facts.DEFAULTS['flannel_subnet_env']),
        bridges=dict(type='list', elements='str', default=list(node_facts.DEFAULTS['bridges'])),
        pod_mtu=dict(type='int'),
        resolv_conf_files=dict(type='list', elements='path', default=list(node_facts.DEFAULTS['resolv_conf_files'])),
        expected_neighbors=dict(type='dict', default={}),
        ipvs_schedulers=dict(type='list', elements='str', default=[]),
        conntrack_warn_percent=dict(type='float', default=80),
        conntrack_critical_percent=dict(type='float', default=95),
        ipam_warn_percent=dict(type='float', default=90),
        kernel_log=dict(type='bool', default=True),
        conntrack_breakdown=dict(type='bool', default=False),
        nat_port_capacity=dict(type='int', default=node_facts.DEFAULTS['nat_port_capacity']),
        nat_warn_percent=dict(type='float', default=node_facts.DEFAULTS['nat_warn_percent']),
        ipv6_ports=dict(type='list', elements='int', default=[]),
        dns_servers=dict(type='list', elements='str', default=[]),
        dns_names=dict(type='list', elements='str', default=list(node_facts.DEFAULTS['dns_names'])),
        dns_query_type=dict(type='str', choices=['A', 'AAAA'], default='A'),
        dns_timeout=dict(type='float', default=node_facts.DEFAULTS['dns_timeout']),
    )
    refusals = (node_facts.ParamError,)

    def validate(self):
        node_facts.validate_params(self.params)

    def read(self):
        self.facts = node_facts.gather(Runner(self.module), self.params)

    def report(self):
        for err in self.facts['errors']:
            self.result.warn('probe %s: %s' % (err['probe'], err['error']))
        self.result.extra.update(ansible_facts={'netmedic': self.facts}, netmedic=self.facts)


def main():
    NodeNetworkFacts().run()


if __name__ == '__main__':
    main()
