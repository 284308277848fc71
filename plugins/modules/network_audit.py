#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: network_audit
short_description: Read-only audit of a cluster for the documented container-network faults (D-1 to D-7, N-1, C-0, C-6)
version_added: 0.1.0
description:
  - Reads the cluster through the API and returns findings, each with its catalog ID, a severity (C(info), C(warning),
    C(critical), or C(unknown) when a check cannot decide), the evidence and the documented remediation. Changes nothing.
  - B(D-1) GKE Dataplane V2 present (kube-system pods C(k8s-app=cilium) named C(anetd-*)).
  - B(D-2) NetworkPolicies using C(endPort), which Dataplane V2 does not enforce (the stored object is the source of truth).
  - B(D-3) Self-connection through a Service VIP dropped by policy on GKE older than C(1.28.3-gke.1090000) with Dataplane V2;
    Services whose C(port) differs from the target port are listed (workaround - make them equal).
  - B(D-4) Hairpin conntrack leak on GKE older than C(1.27.11-gke.1097000) (1.27 line) / C(1.28.3-gke.1090000).
    The version gates use the exact fixed builds of seeds 000/001; a non-GKE version skips D-3/D-4 and an unreadable one
    gives an C(unknown) finding.
  - B(D-5) Dual stack - in a dual-stack cluster, Services that are C(SingleStack) and running pods with one pod IP.
  - B(D-6) Nodes tainted C(node.kubernetes.io/network-unavailable) (or condition C(NetworkUnavailable)), with their events.
  - B(D-7) Nodes NotReady with C(NetworkPluginNotReady) / C(cni plugin not initialized), and CNI agent pods (anetd/Cilium,
    Flannel, Terway, Calico) that are not Running - crash-looping agents come with their log tail, pending ones with
    their events. The anetd/Cilium configuration (O(cni_agent_config_maps)) with C(custom-cni-conf=true) is reported -
    the agent then does not install its CNI binary (critical while a node is NotReady for the CNI, info otherwise).
  - B(N-1) cluster versions the seeds name as leaking host-local IP allocations - GKE builds before C(1.22.17-gke.3100),
    C(1.23.16-gke.200), C(1.24.9-gke.3200), C(1.25.6-gke.200) on those lines, ACK (C(-aliyun)) before 1.20.
  - B(C-0) kube-proxy in IPVS mode on Kubernetes 1.35 or later - IPVS mode is deprecated since 1.35 (kube-proxy logs it at
    start and records a C(IPVSDeprecation) Warning event on its Node; 1.37 says it will be disabled by default in 1.40 and
    removed in 1.43). The mode is read from the C(config.conf) of the kube-system ConfigMaps C(kube-proxy-worker),
    C(kube-proxy-master) and C(kube-proxy) (those that exist); when none exists, C(IPVSDeprecation) events decide. The
    finding names the way off - C(nftables) when every node's kernel (C(status.nodeInfo.kernelVersion)) is 5.13 or newer,
    else C(iptables) (plus C(kube-proxy --cleanup) or a reboot, which iptables mode needs to drop the IPVS rules). An
    unparseable configuration or cluster version gives an C(unknown) finding.
  - B(C-6) (opt-in - reads one Terway pod log per node) Terway logs with C(InvalidVSwitchId.IpNotEnough) (the vSwitch has
    no free address) with the vSwitch IDs, and with O(vswitch_cidrs) running pods whose IP is outside every configured
    vSwitch CIDR of its family (an ENI created on an old vSwitch; the nodes to rotate are listed).
  - Any API error fails the module; a list that could not be read is never treated as empty.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - netmedic.k8s.k8s_auth
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode runs the same reads.
  diff_mode:
    support: none
    details: Nothing is changed, so there is no diff.
  platform:
    platforms: posix
    support: full
    details: Runs where the C(kubernetes) client is installed, usually the controller.
options:
  checks:
    description: The catalog checks to run.
    type: list
    elements: str
    choices: [D-1, D-2, D-3, D-4, D-5, D-6, D-7, N-1, C-0, C-6]
    default: [D-1, D-2, D-3, D-4, D-5, D-6, D-7, N-1, C-0]
  log_lines:
    description: How many log lines to read from each crash-looping CNI agent pod (D-7) and from each Terway pod (C-6).
    type: int
    default: 20
  cni_agent_config_maps:
    description:
      - ConfigMaps (C(namespace/name)) holding the CNI agent's configuration, read for C(custom-cni-conf) (D-7). A
        ConfigMap that does not exist is skipped; those that exist are returned in RV(facts) as C(cni_agent_configs) (only their
        C(custom-cni-conf) key). Any other read error fails the module.
    type: list
    elements: str
    default: [kube-system/cilium-config]
  vswitch_cidrs:
    description:
      - The CIDRs of the vSwitches Terway is configured to use (C-6). Running pods with an IP outside all of them (same
        address family) are reported. Empty skips that check. Each must be a network address in CIDR form.
    type: list
    elements: str
    default: []
  fail_on:
    description: Fail the task when a finding has this severity or a worse one (C(unknown) counts as C(warning)). V(never) only reports.
    type: str
    choices: [never, warning, critical]
    default: never
seealso:
  - module: netmedic.k8s.node_network_facts
  - module: netmedic.k8s.ip_masq_agent
"""

EXAMPLES = r"""
- name: Audit the cluster (read-only)
  netmedic.k8s.network_audit:
  register: audit

- name: Show the findings
  ansible.builtin.debug:
    msg: "{{ item.id }} {{ item.severity }}: {{ item.title }} -> {{ item.remediation }}"
  loop: "{{ audit.findings }}"

- name: Gate a change window on a healthy CNI
  netmedic.k8s.network_audit:
    checks: [D-6, D-7]
    fail_on: critical
"""

RETURN = r"""
findings:
  description: What was found, worst first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Catalog ID.
      type: str
      returned: always
    severity:
      description: C(critical), C(warning), C(unknown) or C(info).
      type: str
      returned: always
    title:
      description: One line.
      type: str
      returned: always
    evidence:
      description: The objects and fields that triggered the finding.
      type: dict
      returned: always
    remediation:
      description: The documented fix or workaround.
      type: str
      returned: always
  sample:
    - id: D-3
      severity: warning
      title: Self-connection through this Service VIP may be dropped by NetworkPolicy (GKE < 1.28.3-gke.1090000)
      evidence: {"service": "default/web", "ports": ["port 8080 -> targetPort 80"], "cluster_version": "v1.24.9-gke.3200"}
      remediation: Upgrade to 1.28.3-gke.1090000 or later, or set the Service port equal to the containerPort. ...
facts:
  description: What the checks were based on.
  returned: always
  type: dict
  sample: {"cluster_version": "v1.24.9-gke.3200", "dataplane_v2": true, "dual_stack": false, "fixed": {"D-3": false, "D-4": false},
           "cni_agent_configs": {"kube-system/cilium-config": {"custom-cni-conf": "false"}},
           "kube_proxy_modes": {"kube-system/kube-proxy": "ipvs"}}
summary:
  description: Number of findings per severity.
  returned: always
  type: dict
  sample: {"critical": 0, "warning": 3, "unknown": 0, "info": 1}
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["C-0", "D-1", "D-2", "D-3", "D-4", "D-5", "D-6", "D-7", "N-1"]
"""

from ansible_collections.netmedic.k8s.plugins.module_utils import audit as au
from ansible_collections.netmedic.k8s.plugins.module_utils import kube_proxy as kp
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s.edit_module import ClusterModule

ORDER = {'critical': 0, 'warning': 1, 'unknown': 2, 'info': 3}


class AuditError(ValueError):
    """Bad input."""


class NetworkAudit(ClusterModule):
    """The cluster audit on the lifecycle: validate, read one snapshot (every list it needs, or a refusal:
    nothing is assumed), plan (``audit.audit``: pure rules, snapshot in, findings out), report; it changes
    nothing. The result's ``catalog`` is the checks that ran."""

    catalog = sorted(au.CHECKS)  # the result names the checks that ran (validate)
    options = dict(
        checks=dict(type='list', elements='str', choices=list(au.CHECKS), default=list(au.DEFAULT_CHECKS)),
        log_lines=dict(type='int', default=20),
        cni_agent_config_maps=dict(type='list', elements='str', default=list(au.DEFAULT_CNI_AGENT_CONFIG_MAPS)),
        vswitch_cidrs=dict(type='list', elements='str', default=[]),
        fail_on=dict(type='str', choices=['never', 'warning', 'critical'], default='never'),
    )
    refusals = (AuditError,)

    def requirements(self):
        needs = ClusterModule.requirements(self)
        if 'C-0' in self.params['checks']:
            needs = list(needs) + [(kp.HAS_RUAMEL, 'ruamel.yaml', kp.RUAMEL_IMPORT_ERROR)]
        return needs

    def refusal(self, error):
        if isinstance(error, k8s_client.K8sError):
            return '%s (the audit needs every list; nothing was assumed)' % error.msg
        return str(error)

    def validate(self):
        p = self.params
        self.checks = checks = set(p['checks'])
        self.result.catalog = sorted(checks)
        if p['log_lines'] < 1:
            raise AuditError('log_lines must be >= 1')
        self.config_maps = []
        for ref in p['cni_agent_config_maps']:
            ns, _sep, name = ref.partition('/')
            if not ns or not name or '/' in name:
                raise AuditError('cni_agent_config_maps: %r is not namespace/name' % ref)
            self.config_maps.append((ns, name))
        try:
            self.vswitch_networks = au.parse_cidrs(p['vswitch_cidrs'])
        except ValueError as e:
            raise AuditError(str(e))

    def read(self):
        p, checks = self.params, self.checks
        cluster = k8s_client.Cluster(p)
        snapshot = {'version': cluster.version(),
                    'nodes': k8s_client.list_objects(cluster, 'Node'),
                    'pods': k8s_client.list_objects(cluster, 'Pod'),
                    'services': k8s_client.list_objects(cluster, 'Service') if checks & {'D-3', 'D-5'} else [],
                    'networkpolicies': k8s_client.list_objects(cluster, 'NetworkPolicy') if 'D-2' in checks else [],
                    'events': k8s_client.list_objects(cluster, 'Event') if checks & {'D-6', 'D-7', 'C-0'} else [],
                    'logs': {}}
        if 'D-7' in checks:
            for pod in au.crashlooping_agents(snapshot['pods']):
                meta = pod['metadata']
                container = (pod['spec'].get('containers') or [{}])[0].get('name')
                try:
                    text = k8s_client.read_pod_log(cluster, meta['namespace'], meta['name'], container, tail_lines=p['log_lines'])
                except k8s_client.K8sError as e:
                    text = '(log not readable: %s)' % e.msg
                snapshot['logs']['%s/%s' % (meta['namespace'], meta['name'])] = text
            configs = {}
            for ns, name in self.config_maps:
                cm = k8s_client.get_object(cluster, 'ConfigMap', ns, name)
                configs['%s/%s' % (ns, name)] = None if cm is None else {
                    k: v for k, v in (cm.get('data') or {}).items() if k == au.CUSTOM_CNI_CONF_KEY}
            snapshot['cni_agent_configs'] = configs
        if 'C-0' in checks:
            snapshot['kube_proxy_configs'] = {}
            for name in kp.CONFIGMAP_NAMES:
                cm = k8s_client.get_object(cluster, 'ConfigMap', 'kube-system', name)
                if cm is not None:
                    snapshot['kube_proxy_configs']['kube-system/%s' % name] = (cm.get('data') or {}).get(kp.CONFIG_KEY)
        if 'C-6' in checks:
            snapshot['terway_logs'] = {}
            snapshot['vswitch_cidrs'] = self.vswitch_networks
            for pod in au.terway_agents(snapshot['pods']):
                meta = pod['metadata']
                names = [c.get('name') for c in pod['spec'].get('containers') or []]
                container = 'terway' if 'terway' in names else (names or [None])[0]
                # An unreadable log fails the audit (a K8sError is a refusal): "not read" is never "no IpNotEnough".
                snapshot['terway_logs']['%s/%s' % (meta['namespace'], meta['name'])] = k8s_client.read_pod_log(
                    cluster, meta['namespace'], meta['name'], container, tail_lines=p['log_lines'])
        self.snapshot = snapshot

    def plan(self):
        self.findings, self.facts = au.audit(self.snapshot, self.checks)

    def report(self):
        findings, facts, result, p = self.findings, self.facts, self.result, self.params
        found_configs = {k: v for k, v in (self.snapshot.get('cni_agent_configs') or {}).items() if v is not None}
        if found_configs:
            facts['cni_agent_configs'] = found_configs
        findings.sort(key=lambda f: (ORDER.get(f['severity'], 9), f['id']))
        summary = {s: sum(1 for f in findings if f['severity'] == s) for s in ORDER}
        result.extra.update({'findings': findings, 'facts': facts, 'summary': summary})
        limit = {'never': -1, 'warning': ORDER['unknown'], 'critical': ORDER['critical']}[p['fail_on']]
        worst = [f for f in findings if ORDER.get(f['severity'], 9) <= limit]
        if worst:
            result.fail('%d finding(s) at or above %s: %s' % (len(worst), p['fail_on'],
                                                              '; '.join('%s %s' % (f['id'], f['title']) for f in worst)))


def main():
    NetworkAudit().run()


if __name__ == '__main__':
    main()
