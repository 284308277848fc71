# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only cluster network audit (catalog D-1 ... D-7, N-1 versions, C-6 Terway IPs), pure functions over API dicts.

``audit(snapshot, checks)`` turns what the API returned into findings; it never talks to the
cluster.  Each finding names its catalog ID, a severity (``info``, ``warning``, ``critical``),
the evidence (objects and the fields that triggered it) and the documented remediation.
When a check cannot decide (an unreadable version, say) it says so as a finding with
severity ``unknown`` instead of guessing.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.netmedic.k8s.plugins.module_utils import kube_proxy as kp
from ansible_collections.netmedic.k8s.plugins.module_utils.versions import Version, VersionError, fixed_in

CHECKS = ('D-1', 'D-2', 'D-3', 'D-4', 'D-5', 'D-6', 'D-7', 'N-1', 'C-0', 'C-6')
# C-6 reads one Terway pod log per node: opt-in.
DEFAULT_CHECKS = ('D-1', 'D-2', 'D-3', 'D-4', 'D-5', 'D-6', 'D-7', 'N-1', 'C-0')
# N-1: GKE builds that fixed the leaked host-local allocations (seeds 000/001), per affected minor line.
N1_FIXED = ['1.22.17-gke.3100', '1.23.16-gke.200', '1.24.9-gke.3200', '1.25.6-gke.200']
# N-1 on ACK: Kubernetes older than 1.20 (seed 002).
N1_ACK_FIXED_MINOR = (1, 20)
# D-7: the anetd (Cilium) setting that makes the agent skip installing its CNI binary (seed 004).
CUSTOM_CNI_CONF_KEY = 'custom-cni-conf'
DEFAULT_CNI_AGENT_CONFIG_MAPS = ('kube-system/cilium-config',)
# C-6: what Terway logs when the vSwitch has no free address (seed 002).
IP_NOT_ENOUGH_RE = re.compile(r'IpNotEnough')
VSWITCH_RE = re.compile(r'vsw-[0-9A-Za-z]+')
TERWAY_LABELS = (('app', 'terway-eniip'), ('app', 'terway-eni'), ('app', 'terway'))
# First fixed GKE builds, per affected minor line, exactly as seeds 000/001 list them.
D3_FIXED = ['1.28.3-gke.1090000']
D4_FIXED = ['1.27.11-gke.1097000', '1.28.3-gke.1090000']
NETWORK_UNAVAILABLE_TAINT = 'node.kubernetes.io/network-unavailable'
CNI_NOT_READY_MARKERS = ('NetworkPluginNotReady', 'cni plugin not initialized', 'Network plugin not installed',
                         'network plugin is not ready')
# CNI agent pods by label (D-7): GKE Dataplane V2 / Cilium, Flannel, Terway, Calico.
CNI_AGENT_LABELS = (('k8s-app', 'cilium'), ('app', 'flannel'), ('app', 'terway-eniip'), ('app', 'terway-eni'),
                    ('app', 'terway'), ('k8s-app', 'calico-node'))


def finding(check, severity, title, evidence, remediation):
    return {'id': check, 'severity': severity, 'title': title, 'evidence': evidence, 'remediation': remediation}


def _name(obj):
    meta = obj.get('metadata') or {}
    return '%s/%s' % (meta['namespace'], meta['name']) if meta.get('namespace') else meta.get('name')


def _labels(obj):
    return (obj.get('metadata') or {}).get('labels') or {}


def anetd_pods(pods):
    """D-1: pods labelled k8s-app=cilium in kube-system whose name starts with anetd-."""
    return sorted(_name(p) for p in pods if (p.get('metadata') or {}).get('namespace') == 'kube-system'
                  and _labels(p).get('k8s-app') == 'cilium' and p['metadata']['name'].startswith('anetd-'))


def gke_fix_state(version, fixed):
    """``(fixed?, note)``: True/False on GKE builds, None with a note when it does not apply or cannot be told."""
    try:
        parsed = Version(version)
    except VersionError:
        return None, 'cannot parse the cluster version %r' % (version,)
    if parsed.vendor != 'gke' or parsed.build is None:
        return None, 'not a GKE build (%s); the fixed versions are GKE builds' % version
    return fixed_in(parsed, fixed), None


def _policy_end_ports(policy):
    found = []
    spec = policy.get('spec') or {}
    for direction in ('ingress', 'egress'):
        for i, rule in enumerate(spec.get(direction) or []):
            for port in rule.get('ports') or []:
                if port.get('endPort') is not None:
                    found.append('%s[%d]: %s %s-%s' % (direction, i, port.get('protocol', 'TCP'), port.get('port'), port['endPort']))
    return found


def _service_port_mismatches(svc):
    spec = svc.get('spec') or {}
    if spec.get('type') == 'ExternalName' or spec.get('clusterIP') == 'None':
        return []
    out = []
    for port in spec.get('ports') or []:
        target = port.get('targetPort', port.get('port'))
        if isinstance(target, int) and target != port.get('port'):
            out.append('port %s -> targetPort %s' % (port.get('port'), target))
        elif isinstance(target, str) and not target.isdigit():
            out.append('port %s -> named targetPort %s (compare with the containerPort)' % (port.get('port'), target))
        elif isinstance(target, str) and int(target) != port.get('port'):
            out.append('port %s -> targetPort %s' % (port.get('port'), target))
    return out


def _condition(obj, ctype):
    for cond in (obj.get('status') or {}).get('conditions') or []:
        if cond.get('type') == ctype:
            return cond
    return None


def _node_events(events, node):
    return ['%s: %s' % (e.get('reason'), e.get('message')) for e in events
            if (e.get('involvedObject') or {}).get('kind') == 'Node' and (e.get('involvedObject') or {}).get('name') == node]


def _pod_events(events, pod):
    meta = pod['metadata']
    return ['%s: %s' % (e.get('reason'), e.get('message')) for e in events
            if (e.get('involvedObject') or {}).get('kind') == 'Pod' and (e.get('involvedObject') or {}).get('name') == meta['name']
            and (e.get('involvedObject') or {}).get('namespace', meta.get('namespace')) == meta.get('namespace')]


def _cni_not_ready(node):
    ready = _condition(node, 'Ready')
    message = '%s %s' % ((ready or {}).get('reason') or '', (ready or {}).get('message') or '')
    return bool(ready and ready.get('status') != 'True' and any(m.lower() in message.lower() for m in CNI_NOT_READY_MARKERS))


def is_cni_agent(pod):
    labels = _labels(pod)
    return any(labels.get(k) == v for k, v in CNI_AGENT_LABELS)


def agent_state(pod):
    """``Running``, ``Pending``, ``CrashLoopBackOff`` (or another waiting reason), ``NotReady``."""
    status = pod.get('status') or {}
    for cs in status.get('containerStatuses') or []:
        waiting = (cs.get('state') or {}).get('waiting') or {}
        if waiting.get('reason') == 'CrashLoopBackOff':
            return 'CrashLoopBackOff'
    if status.get('phase') == 'Pending':
        return 'Pending'
    ready = _condition(pod, 'Ready')
    if status.get('phase') == 'Running' and ready and ready.get('status') == 'True':
        return 'Running'
    return 'NotReady'


def crashlooping_agents(pods):
    """CNI agent pods whose logs the module should fetch for D-7."""
    return [p for p in pods if is_cni_agent(p) and agent_state(p) == 'CrashLoopBackOff']


def terway_agents(pods):
    """Terway agent pods (C-6 reads their logs)."""
    return [p for p in pods if any(_labels(p).get(k) == v for k, v in TERWAY_LABELS)]


def parse_cidrs(cidrs):
    """The vSwitch CIDRs of C-6 as networks; raises ValueError naming the bad one."""
    out = []
    for c in cidrs or ():
        try:
            out.append(ipaddress.ip_network(str(c), strict=True))
        except ValueError as e:
            raise ValueError('vswitch_cidrs: %r is not a network in CIDR form (%s)' % (c, e)) from None
    return out


def _n1_state(version):
    """``(affected?, note)`` for the N-1 version check: GKE fixed builds, ACK < 1.20, else not applicable."""
    try:
        parsed = Version(version)
    except VersionError:
        return None, 'cannot parse the cluster version %r' % (version,)
    if parsed.vendor == 'gke' and parsed.build is not None:
        return not fixed_in(parsed, N1_FIXED), None
    if parsed.vendor == 'aliyun':
        return parsed.minor < N1_ACK_FIXED_MINOR, None
    return None, 'no affected versions are documented for %s' % version


def dual_stack(nodes, pods):
    if any(len((n.get('spec') or {}).get('podCIDRs') or []) > 1 for n in nodes):
        return True
    return any(len((p.get('status') or {}).get('podIPs') or []) > 1 for p in pods)


def kube_proxy_modes(configs):
    """``({'ns/name': mode}, {'ns/name': error})`` for the kube-proxy ConfigMaps read (``{'ns/name': config.conf text or None}``)."""
    modes, errors = {}, {}
    for name, text in sorted((configs or {}).items()):
        if text is None:
            continue
        try:
            modes[name] = kp.effective_mode(text)
        except kp.ConfigError as e:
            errors[name] = str(e)
    return modes, errors


def _c0_findings(version, nodes, events, configs):
    """C-0 (issue 15 item 5): kube-proxy in IPVS mode on Kubernetes >= 1.35 is deprecated; the way off it."""
    modes, errors = kube_proxy_modes(configs)
    out = []
    for name, error in sorted(errors.items()):
        out.append(finding('C-0', 'unknown', 'Cannot tell the kube-proxy mode: its configuration does not parse',
                           {'configmap': name, 'error': error},
                           'Fix %s in the ConfigMap by hand (kube-proxy parses it strictly).' % kp.CONFIG_KEY))
    ipvs = sorted(n for n, m in modes.items() if m == 'ipvs')
    warned = sorted({((e.get('involvedObject') or e.get('regarding') or {}).get('name'))
                     for e in events if e.get('reason') == kp.IPVS_DEPRECATION_EVENT_REASON} - {None})
    # A kube-proxy ConfigMap that was read decides; the events (kept an hour) only when none was found.
    if not ipvs and (modes or errors or not warned):
        return out
    deprecated = kp.ipvs_deprecated(version)
    if deprecated is None and not warned:
        out.append(finding('C-0', 'unknown', 'kube-proxy runs in IPVS mode; cannot tell whether this version deprecates it',
                           {'configmaps': ipvs, 'cluster_version': version},
                           'IPVS mode is deprecated since Kubernetes %s: check the version by hand.' % kp.IPVS_DEPRECATED_SINCE))
        return out
    if not deprecated and not warned:
        return out
    kernels = {n['metadata']['name']: ((n.get('status') or {}).get('nodeInfo') or {}).get('kernelVersion') for n in nodes}
    way = kp.ipvs_way_off(kernels)
    if way['mode'] == 'nftables':
        how = ("set mode: nftables in the kube-proxy ConfigMap (every node's kernel is 5.13 or newer, which nftables mode "
               "needs), then restart kube-proxy with verification (C-7, preset kube-proxy-nftables); kube-proxy removes the "
               "IPVS and iptables rules itself when it starts in nftables mode.")
    elif way['mode'] == 'iptables':
        how = ('set mode: iptables in the kube-proxy ConfigMap (nftables mode needs kernel 5.13, older on %s), then restart '
               'kube-proxy with verification (C-7, preset kube-proxy-iptables); iptables mode does not remove the IPVS virtual '
               'servers and kube-ipvs0: run kube-proxy --cleanup or reboot each node afterwards.'
               % ', '.join(way['kernels_older_than_5_13']))
    else:
        how = ('choose nftables (every node on kernel 5.13 or newer) or iptables: the kernel of %s is not readable from the '
               'Node status, read it on the node (uname -r).' % ', '.join(way['kernel_unknown']))
    out.append(finding(
        'C-0', 'warning', 'kube-proxy runs in IPVS mode, deprecated since Kubernetes %s' % kp.IPVS_DEPRECATED_SINCE,
        {'configmaps': ipvs, 'cluster_version': version, 'nodes_with_deprecation_event': warned, 'way_off': way},
        'IPVS mode is deprecated (kube-proxy 1.37 says it will be disabled by default in 1.40 and removed in 1.43). To '
        'leave it, ' + how + ' IPVS-only settings (C-2 scheduler, C-3 udpTimeout) no longer apply after the switch.'))
    return out


def audit(snapshot, checks=DEFAULT_CHECKS):
    """Findings and facts for ``snapshot`` = {version, nodes, pods, services, networkpolicies, events, logs,
    cni_agent_configs ({'ns/name': data or None}), terway_logs ({'ns/pod': text}), vswitch_cidrs (networks),
    kube_proxy_configs ({'ns/name': config.conf text or None})}."""
    version = snapshot.get('version')
    nodes = snapshot.get('nodes') or []
    pods = snapshot.get('pods') or []
    services = snapshot.get('services') or []
    events = snapshot.get('events') or []
    logs = snapshot.get('logs') or {}
    anetd = anetd_pods(pods)
    dpv2 = bool(anetd)
    d3_fixed, d3_note = gke_fix_state(version, D3_FIXED)
    d4_fixed, d4_note = gke_fix_state(version, D4_FIXED)
    stack = dual_stack(nodes, pods)
    facts = {'cluster_version': version, 'dataplane_v2': dpv2, 'dual_stack': stack,
             'fixed': {'D-3': d3_fixed, 'D-4': d4_fixed}}
    findings = []

    if 'D-1' in checks and dpv2:
        findings.append(finding('D-1', 'info', 'GKE Dataplane V2 is in use (anetd pods, k8s-app=cilium)',
                                {'pods': anetd},
                                'Dataplane V2 known issues apply: D-2 (endPort), D-3/D-4 (fixed GKE versions), C-4 (ip-masq-agent).'))

    if 'D-2' in checks and dpv2:
        for policy in snapshot.get('networkpolicies') or []:
            ports = _policy_end_ports(policy)
            if ports:
                findings.append(finding(
                    'D-2', 'warning', 'NetworkPolicy uses endPort, which Dataplane V2 does not enforce',
                    {'networkpolicy': _name(policy), 'ports': ports},
                    'List the ports individually (or enforce with Calico). Re-read the stored policy: the object in the API '
                    'server is the source of truth; if endPort is gone there, it was dropped on write.'))

    if 'D-3' in checks and dpv2:
        if d3_fixed is None and d3_note and 'cannot parse' in d3_note:
            findings.append(finding('D-3', 'unknown', 'Cannot tell whether the self-connection drop is fixed',
                                    {'cluster_version': version, 'note': d3_note}, 'Check the GKE version by hand (fixed in 1.28.3-gke.1090000).'))
        elif d3_fixed is False:
            for svc in services:
                mismatches = _service_port_mismatches(svc)
                if mismatches:
                    findings.append(finding(
                        'D-3', 'warning',
                        'Self-connection through this Service VIP may be dropped by NetworkPolicy (GKE < 1.28.3-gke.1090000)',
                        {'service': _name(svc), 'ports': mismatches, 'cluster_version': version},
                        'Upgrade to 1.28.3-gke.1090000 or later, or set the Service port equal to the containerPort. With one '
                        'backend every self-connection fails, with two about half.'))

    if 'D-4' in checks and dpv2:
        if d4_fixed is None and d4_note and 'cannot parse' in d4_note:
            findings.append(finding('D-4', 'unknown', 'Cannot tell whether the hairpin conntrack leak is fixed',
                                    {'cluster_version': version, 'note': d4_note},
                                    'Check the GKE version by hand (fixed in 1.27.11-gke.1097000 and 1.28.3-gke.1090000).'))
        elif d4_fixed is False:
            findings.append(finding(
                'D-4', 'warning', 'Hairpin connections through a Service leak conntrack entries (Dataplane V2)',
                {'cluster_version': version, 'fixed_in': list(D4_FIXED)},
                'Upgrade to 1.27.11-gke.1097000 / 1.28.3-gke.1090000 or later. Meanwhile enable TCP keep-alive in apps that '
                'call their own Service, or expose them through a proxy load balancer (e.g. Gateway).'))

    if 'D-5' in checks and stack:
        single = sorted(_name(s) for s in services
                        if (s.get('spec') or {}).get('type') != 'ExternalName' and (s.get('spec') or {}).get('clusterIP') != 'None'
                        and (s.get('spec') or {}).get('ipFamilyPolicy', 'SingleStack') == 'SingleStack')
        if single:
            findings.append(finding(
                'D-5', 'info', 'Dual-stack cluster: these Services are SingleStack (no IPv6 ClusterIP)',
                {'services': single},
                'Set spec.ipFamilyPolicy to PreferDualStack or RequireDualStack where IPv6 is needed; check spec.clusterIPs, '
                'and that the application listens on tcp6 (netstat -anp).'))
        v4_only = sorted(_name(p) for p in pods if not (p.get('spec') or {}).get('hostNetwork')
                         and (p.get('status') or {}).get('phase') == 'Running' and len((p.get('status') or {}).get('podIPs') or []) < 2)
        if v4_only:
            findings.append(finding('D-5', 'warning', 'Dual-stack cluster: running pods with a single pod IP',
                                    {'pods': v4_only[:50], 'count': len(v4_only)},
                                    'Expect an IPv6 address in status.podIPs; check the node podCIDRs and the CNI dual-stack setup.'))

    if 'D-6' in checks:
        for node in nodes:
            taints = [t for t in (node.get('spec') or {}).get('taints') or [] if t.get('key') == NETWORK_UNAVAILABLE_TAINT]
            cond = _condition(node, 'NetworkUnavailable')
            if taints or (cond and cond.get('status') == 'True'):
                findings.append(finding(
                    'D-6', 'warning', 'Node is tainted/marked NetworkUnavailable; pods cannot be scheduled on it',
                    {'node': _name(node), 'taints': ['%s:%s' % (t['key'], t.get('effect')) for t in taints],
                     'condition': {k: cond.get(k) for k in ('status', 'reason', 'message')} if cond else None,
                     'events': _node_events(events, node['metadata']['name'])},
                    'Read the node events (kubectl describe node). On Flannel the cloud controller manager removes the taint once '
                    'the route exists: a full route table or several VPC route tables keep it (configure CCM for multiple route tables).'))

    if 'D-7' in checks:
        for node in nodes:
            ready = _condition(node, 'Ready')
            message = '%s %s' % ((ready or {}).get('reason') or '', (ready or {}).get('message') or '')
            if _cni_not_ready(node):
                agents = [p for p in pods if is_cni_agent(p) and (p.get('spec') or {}).get('nodeName') == node['metadata']['name']]
                findings.append(finding(
                    'D-7', 'critical', 'Node NotReady: the CNI plugin is not initialised',
                    {'node': _name(node), 'condition': message.strip(),
                     'agents': [{'pod': _name(p), 'state': agent_state(p)} for p in agents]},
                    'Find out why the CNI agent pod on the node does not run: CrashLoopBackOff -> its logs; Pending -> its events; '
                    'Running -> its configuration (anetd custom-cni-conf: true means it does not install the CNI binary).'))
        for pod in pods:
            if not is_cni_agent(pod):
                continue
            state = agent_state(pod)
            if state == 'Running':
                continue
            evidence = {'pod': _name(pod), 'node': (pod.get('spec') or {}).get('nodeName'), 'state': state}
            if state == 'CrashLoopBackOff':
                evidence['log_tail'] = (logs.get(_name(pod)) or '').splitlines()[-20:]
                remediation = 'Read the logs (kubectl logs --previous) for why the agent exits; fix its configuration.'
            elif state == 'Pending':
                evidence['events'] = _pod_events(events, pod)
                remediation = 'Describe the pod and read its events (a missing volume or resource keeps it Pending).'
            else:
                remediation = 'Check the agent logs and configuration (anetd custom-cni-conf: true skips the CNI install).'
            findings.append(finding('D-7', 'critical' if state == 'CrashLoopBackOff' else 'warning',
                                    'CNI agent pod is %s' % state, evidence, remediation))
        not_ready = sorted(_name(n) for n in nodes if _cni_not_ready(n))
        for name, data in sorted((snapshot.get('cni_agent_configs') or {}).items()):
            if data is None:
                continue
            value = str(data.get(CUSTOM_CNI_CONF_KEY, '')).strip().lower()
            if value == 'true':
                findings.append(finding(
                    'D-7', 'critical' if not_ready else 'info',
                    'The CNI agent is configured not to install its CNI binary (%s: true)' % CUSTOM_CNI_CONF_KEY,
                    {'configmap': name, 'key': CUSTOM_CNI_CONF_KEY, 'value': data.get(CUSTOM_CNI_CONF_KEY),
                     'nodes_cni_not_ready': not_ready},
                    'With %s: true anetd leaves the CNI binary and configuration to something else; if nothing installs '
                    'them the node stays NotReady ("cni plugin not initialized"). Set it to false unless a custom CNI '
                    'installer is intended.' % CUSTOM_CNI_CONF_KEY))

    if 'N-1' in checks:
        affected, note = _n1_state(version)
        if affected is None and note and 'cannot parse' in note:
            findings.append(finding('N-1', 'unknown', 'Cannot tell whether this version leaks host-local IP allocations',
                                    {'cluster_version': version, 'note': note},
                                    'Check the version by hand against the fixed GKE builds %s (ACK: 1.20).' % ', '.join(N1_FIXED)))
        elif affected:
            findings.append(finding(
                'N-1', 'warning', 'This cluster version leaks host-local IP allocations (failed to allocate for range 0)',
                {'cluster_version': version, 'fixed_in': list(N1_FIXED) if 'gke' in (version or '') else ['1.20']},
                'Upgrade (GKE %s or later; ACK 1.20 or later); meanwhile run netmedic.k8s.cni_ipam_gc on nodes whose '
                'range fills up (W-7, or the C-8 cleanup DaemonSet), and N-7 on ACK Flannel.' % ', '.join(N1_FIXED)))

    if 'C-0' in checks:
        modes = kube_proxy_modes(snapshot.get('kube_proxy_configs'))[0]
        if modes:
            facts['kube_proxy_modes'] = modes
        findings.extend(_c0_findings(version, nodes, events, snapshot.get('kube_proxy_configs')))

    if 'C-6' in checks:
        for pod_name, text in sorted((snapshot.get('terway_logs') or {}).items()):
            lines = [line for line in (text or '').splitlines() if IP_NOT_ENOUGH_RE.search(line)]
            if lines:
                findings.append(finding(
                    'C-6', 'critical', 'Terway cannot get pod IPs: the vSwitch has no free address (IpNotEnough)',
                    {'pod': pod_name, 'vswitches': sorted({v for line in lines for v in VSWITCH_RE.findall(line)}),
                     'lines': lines[-5:], 'count': len(lines)},
                    'Add vSwitches with free addresses to eni-config (netmedic.k8s.terway_config vswitches), restart Terway '
                    'and check that new pods get IPs; nodes whose ENIs were made on the old vSwitch keep using it until '
                    'rotated (W-1).'))
        networks = snapshot.get('vswitch_cidrs') or []
        if networks:
            outside = []
            for pod in pods:
                spec, status = pod.get('spec') or {}, pod.get('status') or {}
                if spec.get('hostNetwork') or status.get('phase') not in ('Running', 'Pending'):
                    continue
                ips = [x.get('ip') for x in status.get('podIPs') or []] or ([status['podIP']] if status.get('podIP') else [])
                for ip in ips:
                    try:
                        addr = ipaddress.ip_address(ip)
                    except ValueError:
                        continue
                    same_family = [n for n in networks if n.version == addr.version]
                    if same_family and not any(addr in n for n in same_family):
                        outside.append({'pod': _name(pod), 'node': spec.get('nodeName'), 'ip': ip})
            if outside:
                findings.append(finding(
                    'C-6', 'warning', 'Pods have IPs outside the configured vSwitch CIDRs',
                    {'pods': outside[:50], 'count': len(outside), 'vswitch_cidrs': [str(n) for n in networks],
                     'nodes': sorted({o['node'] for o in outside if o['node']})},
                    'An ENI keeps allocating from the vSwitch it was created on: rotate those nodes (drain, remove, detach '
                    'the ENIs, add back; W-1) so new ENIs use the configured vSwitches.'))

    return findings, facts
