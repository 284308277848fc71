#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: daemonset_restart
short_description: Restart a DaemonSet's pods node by node, verifying each new pod's readiness and log
version_added: 0.1.0
description:
  - Implements catalog B(C-7) (DaemonSet restart with verification), the restart step of B(C-1), B(C-2),
    B(C-3) (kube-proxy), B(C-5)/B(N-7) (Flannel, C(-l app=flannel)) and B(C-6) (Terway, C(-l app=terway-eniip)).
  - The seeds' recipe is C(kubectl delete pod -l ...), which takes every pod down at once. This module deletes the
    pods one node (or O(batch_size) nodes) at a time, waits for the DaemonSet's new pod on that node to be Ready,
    then reads its log and matches it against O(success_patterns) and O(failure_patterns).
  - It stops at the first failure (a failure line, no success line, or no Ready pod within O(timeout)) and fails
    with RV(restarted), RV(failed_node) and RV(remaining), so a play or role can roll the configuration back and restart
    the nodes already done.
  - Before it deletes anything it refuses to start when more than O(max_unhealthy) pods of the DaemonSet are not Ready
    (or not created), in the spirit of Cluster API's MachineHealthCheck C(maxUnhealthy); the check is repeated before
    every batch.
  - For kube-proxy DaemonSets (C(kube-proxy), C(kube-proxy-worker), C(kube-proxy-master)) the default patterns
    follow the proxy mode set in the C(KubeProxyConfiguration) of the ConfigMap the DaemonSet mounts (issue 9
    finding 6). In IPVS mode they are the three log lines catalog B(C-2) documents - success C(Using ipvs Proxier.),
    failure C(Can't use the IPVS proxier ...) (a scheduler module is missing, redo B(N-4)) and
    C(Using iptables Proxier.) (kube-proxy fell back to iptables, roll the configuration back). In iptables mode
    (also an empty or unset C(mode)) C(Using iptables Proxier.) is success; in nftables mode C(Using nftables Proxier.).
    When the mode cannot be read the module fails before restarting anything.
  - Pods are deleted with a C(uid) precondition, so a pod that was already replaced is never deleted twice.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - netmedic.k8s.k8s_auth
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the DaemonSet and its pods, applies the health gate and returns the plan; each planned deletion is
      sent as a server-side dry run (nothing is deleted).
  diff_mode:
    support: full
    details: The diff lists the pods that are (or would be) replaced, node by node.
  platform:
    platforms: posix
    support: full
    details: Runs where the C(kubernetes) client is installed, usually the controller.
options:
  name:
    description: Name of the DaemonSet.
    type: str
    required: true
  namespace:
    description: Namespace of the DaemonSet.
    type: str
    default: kube-system
  nodes:
    description:
      - Restart only the pods on these nodes. Each must run a pod of the DaemonSet, else the module fails before
        deleting anything.
    type: list
    elements: str
  selector:
    description:
      - A node label selector (C(node-role.kubernetes.io/worker), C(pool=blue,zone!=b)); only pods on matching nodes
        are restarted. Combined with O(nodes), both must match.
    type: str
  node_order:
    description:
      - The order in which nodes are restarted. V(name) (the default behaviour) sorts by node name; a list of node names
        is restarted first, in that order, followed by the other nodes in scope by name. Listing a node outside the
        scope is an error.
    type: raw
  batch_size:
    description: How many nodes are restarted at once.
    type: int
    default: 1
  max_unhealthy:
    description:
      - Refuse to start (and stop between batches) when more than this many pods of the DaemonSet are not Ready or
        not yet created.
    type: int
    default: 0
  timeout:
    description: Seconds to wait, per batch, for the new pods to be Ready and to log a success line.
    type: int
    default: 300
  poll_interval:
    description: Seconds between two reads while waiting.
    type: float
    default: 2.0
  container:
    description:
      - The container whose log is checked. Required by the API for pods with several containers (Terway's is
        C(policy) for the in-cluster load-balancing line). Defaults to the preset's container, if any.
    type: str
  success_patterns:
    description:
      - Regular expressions (Python C(re), searched per line); when given, a new pod succeeds only once one matches.
      - Overrides the preset's success patterns.
    type: list
    elements: str
  failure_patterns:
    description:
      - Regular expressions; a match on any line of the new pod's log is a failure. Checked before the success patterns.
      - Overrides the preset's failure patterns.
    type: list
    elements: str
  patterns_preset:
    description:
      - Default patterns. V(auto) picks, for the kube-proxy DaemonSets, V(kube-proxy-ipvs), V(kube-proxy-iptables) or
        V(kube-proxy-nftables) after the mode in the ConfigMap the DaemonSet mounts (key C(config.conf)), and V(none)
        for every other DaemonSet.
      - V(kube-proxy-ipvs) is catalog C-2's three lines; V(kube-proxy-iptables) wants C(Using iptables Proxier) and
        fails on C(Using ipvs Proxier) or C(Using nftables Proxier); V(kube-proxy-nftables) likewise;
        V(terway-in-cluster-lb) looks for C(enable-in-cluster-loadbalance=true) in the C(policy) container (catalog C-6).
    type: str
    choices: [auto, kube-proxy-ipvs, kube-proxy-iptables, kube-proxy-nftables, terway-in-cluster-lb, none]
    default: auto
  restarted_since:
    description:
      - A UTC time (V(2026-11-25T20:00:00Z)). Pods created at or after it count as already restarted and are skipped,
        so re-running the task after the configuration change (or after a partial failure) restarts only what is left
        and reports C(changed=false) when nothing is.
      - Their logs are checked like a new pod's first (up to O(timeout) for a success line); one that fails - the node
        an earlier, failed or killed run left broken - fails the module as RV(failed_node) before anything is deleted.
    type: str
  restarted_in_run:
    description:
      - Names of pods that this run already created by restarting node by node in earlier calls of this module (the
        C(pod) of their RV(restarted) entries). Used with O(restarted_since) by a caller (role
        C(netmedic.k8s.verified_rollout)) that restarts one node or batch per task, so that each step prints its own
        progress, and then calls the module once more over the whole DaemonSet - this last call verifies every pod
        as usual and reports these pods in RV(restarted) (with C(old_pod) null) instead of RV(already_restarted); the
        result is changed when there are any.
      - It never causes a deletion; a name that is not a current pod of the DaemonSet is ignored.
    type: list
    elements: str
    default: []
requirements:
  - ruamel.yaml (only to read kube-proxy's mode for O(patterns_preset=auto) on a kube-proxy DaemonSet)
seealso:
  - module: netmedic.k8s.kube_proxy_config
  - module: netmedic.k8s.flannel_config
  - module: netmedic.k8s.terway_config
notes:
  - Restart kube-proxy off-peak; running connections are not interrupted but new workloads see a short delay (catalog C-0).
  - Nothing is backed up because nothing is replaced; the DaemonSet recreates each deleted pod from its unchanged template.
    RV(restarted) names every deleted pod.
"""

EXAMPLES = r"""
- name: Restart kube-proxy node by node after switching the IPVS scheduler (C-2), stop on the first bad log
  netmedic.k8s.daemonset_restart:
    name: kube-proxy-worker
    max_unhealthy: 0
    timeout: 120
  register: restart

- name: Roll back when a node could not use IPVS
  when: restart is failed
  ansible.builtin.debug:
    msg: "{{ restart.failed_node }} failed: {{ restart.failed_node.line }}; restarted so far: {{ restart.restarted | map(attribute='node') }}"

- name: Restart Flannel in batches of two, only on the blue pool, first the canary node
  netmedic.k8s.daemonset_restart:
    name: kube-flannel-ds
    selector: pool=blue
    node_order: [node-canary, node-a]
    batch_size: 2

- name: Restart Terway and check the policy container (C-6)
  netmedic.k8s.daemonset_restart:
    name: terway-eniip
    patterns_preset: terway-in-cluster-lb

- name: Resume a rollout, skipping pods already restarted after the change
  netmedic.k8s.daemonset_restart:
    name: kube-proxy-worker
    restarted_since: "2026-11-25T20:00:00Z"
"""

RETURN = r"""
daemonset:
  description: C(namespace/name) of the DaemonSet.
  returned: always
  type: str
  sample: kube-system/kube-proxy-worker
plan:
  description: The batches of node names, in order (what was or, in check mode, would be restarted).
  returned: always
  type: list
  elements: list
  sample: [["lab-node-1"], ["lab-node-2"]]
restarted:
  description: Nodes whose pod was replaced and verified, in order.
  returned: always
  type: list
  elements: dict
  contains:
    node:
      description: Node name.
      type: str
      returned: always
    old_pod:
      description: The deleted pod.
      type: str
      returned: always
    pod:
      description: The new pod.
      type: str
      returned: always
    matched:
      description: The log line that matched a success pattern, or null when none was required.
      type: str
      returned: always
  sample: [{"node": "lab-node-1", "old_pod": "kube-proxy-worker-abcde", "pod": "kube-proxy-worker-fghij",
            "matched": "I1125 20:01:02.000000 1 server_others.go:259] Using ipvs Proxier."}]
failed_node:
  description:
    - The first failure, or null. C(reason) is one of C(failure line), C(no success line), C(not ready), C(unhealthy),
      C(api error).
  returned: always
  type: dict
  sample: {"node": "lab-node-2", "pod": "kube-proxy-worker-klmno", "reason": "failure line",
           "line": "W1125 ... Can't use the IPVS proxier: ... not loaded: [ip_vs_lc]", "log_tail": ["..."]}
remaining:
  description: Nodes of the plan whose pod was not deleted (later batches after a failure; all of them in check mode).
  returned: always
  type: list
  elements: str
  sample: ["lab-node-3"]
unverified:
  description:
    - After a failure, other nodes of the failed batch whose pod was deleted but not verified (their new pods may
      still be starting). Empty with O(batch_size=1).
  returned: always
  type: list
  elements: str
  sample: []
already_restarted:
  description: Nodes left out because their pod was created at or after O(restarted_since).
  returned: always
  type: list
  elements: dict
  sample: [{"node": "lab-node-1", "pod": "kube-proxy-worker-fghij", "created": "2026-11-25T20:01:00Z"}]
unhealthy:
  description: Pods of the DaemonSet that were not Ready when the health gate last ran.
  returned: always
  type: list
  elements: dict
  sample: [{"node": "lab-node-3", "pod": "kube-proxy-worker-pqrst", "state": "Running (CrashLoopBackOff)"}]
patterns:
  description: The patterns and container used to verify the new pods (null when the module stopped before choosing them).
  returned: always
  type: dict
  sample: {"preset": "kube-proxy-ipvs", "container": null, "success": ["Using ipvs Proxier"],
           "failure": ["(?i)can'?t use (the )?ipvs proxier", "Using iptables Proxier"]}
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["C-7"]
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.netmedic.k8s.plugins.module_utils import daemonset as dsu
from ansible_collections.netmedic.k8s.plugins.module_utils import kube_proxy as kp
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import waiter
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s.edit_module import ClusterModule

NOTHING_RESTARTED = 'nothing was restarted'


class Stop(Exception):
    def __init__(self, failure):
        super(Stop, self).__init__(failure.get('reason'))
        self.failure = failure


def _node_pods(cluster, namespace, selector, node):
    return k8s_client.list_objects(cluster, 'Pod', namespace, label_selector=selector,
                                   field_selector='spec.nodeName=%s' % node)


def _wait_batch(cluster, p, ds, selector, batch, old_pods, patterns, deadline):
    """Wait until each node of the batch has a Ready replacement with a good log; returns entries or raises Stop."""
    ns = p['namespace']
    uid = ds['metadata']['uid']
    success, failure, container = patterns
    entries = []
    for node in batch:
        old = old_pods[node]
        try:
            new = waiter.wait_until(
                lambda node=node, old=old: dsu.replacement(_node_pods(cluster, ns, selector, node), uid, node, old['metadata']['uid']),
                lambda pod: pod is not None and dsu.is_ready(pod), deadline, p['poll_interval'])
        except waiter.WaitTimeout as timeout:
            new = timeout.last
            failure_entry = {'node': node, 'pod': new['metadata']['name'] if new else None, 'reason': 'not ready',
                             'line': None, 'log_tail': [],
                             'state': dsu.pod_state(new) if new else 'no replacement pod created'}
            if new is not None:
                try:
                    text = k8s_client.read_pod_log(cluster, ns, new['metadata']['name'], container)
                    verdict, line = dsu.check_log(text, success, failure)
                    failure_entry['log_tail'] = dsu.log_tail(text)
                    if verdict == 'failed':
                        failure_entry['line'] = line
                except k8s_client.K8sError as e:
                    failure_entry['log_tail'] = [e.msg]
            raise Stop(failure_entry)
        name = new['metadata']['name']
        line = _await_log(cluster, p, node, name, patterns, deadline)
        entries.append({'node': node, 'old_pod': old['metadata']['name'], 'pod': name, 'matched': line})
    return entries


def _await_log(cluster, p, node, name, patterns, deadline):
    """Wait until pod ``name``'s log has a success line (or none is required); the matched line, or raises Stop."""
    success, failure, container = patterns
    if not success and not failure:
        return None        # nothing to look for (preset none): the log is not read (a multi-container pod would need a container)

    def read_log():
        text = k8s_client.read_pod_log(cluster, p['namespace'], name, container)
        return (text,) + dsu.check_log(text, success, failure)

    try:
        text, verdict, line = waiter.wait_until(read_log, lambda seen: seen[1] != 'pending', deadline, p['poll_interval'])
    except waiter.WaitTimeout as timeout:
        raise Stop({'node': node, 'pod': name, 'reason': 'no success line', 'line': None, 'log_tail': dsu.log_tail(timeout.last[0])})
    if verdict == 'failed':
        raise Stop({'node': node, 'pod': name, 'reason': 'failure line', 'line': line, 'log_tail': dsu.log_tail(text)})
    return line


def _verify_already_restarted(cluster, p, skipped, patterns, in_run=None):
    """Each pod counted as already restarted logs success (waiting up to ``timeout``) and no failure line; raises Stop.

    Returns ``{pod name: matched line}``. A pod named in ``in_run`` that passed is appended to ``in_run['done']``
    (as a RV(restarted) entry), so the caller can report it even when a later pod fails."""
    matched = {}
    if not skipped or not (patterns[0] or patterns[1]):
        return matched
    deadline = waiter.deadline(p['timeout'])
    for entry in skipped:
        matched[entry['pod']] = _await_log(cluster, p, entry['node'], entry['pod'], patterns, deadline)
        if in_run is not None and entry['pod'] in in_run['names']:
            in_run['done'].append({'node': entry['node'], 'old_pod': None, 'pod': entry['pod'], 'matched': matched[entry['pod']]})
    return matched


def _split_in_run(skipped, names, matched):
    """Split the already-restarted entries into (this run's RV(restarted) entries, earlier ones)."""
    names = set(names or [])
    mine = [{'node': s['node'], 'old_pod': None, 'pod': s['pod'], 'matched': matched.get(s['pod'])}
            for s in skipped if s['pod'] in names]
    return mine, [s for s in skipped if s['pod'] not in names]


def _kube_proxy_mode(cluster, namespace, ds):
    """The proxy mode in the KubeProxyConfiguration of the first ConfigMap the DaemonSet mounts with ``config.conf``
    (None when there is none); a broken document raises ConfigError."""
    for name in dsu.configmap_volumes(ds):
        cm = k8s_client.get_object(cluster, 'ConfigMap', namespace, name)
        text = ((cm or {}).get('data') or {}).get(kp.CONFIG_KEY)
        if text is not None:
            try:
                return kp.effective_mode(text)
            except kp.ConfigError as e:
                raise kp.ConfigError('cannot read kube-proxy\'s proxy mode from ConfigMap %s/%s: %s' % (namespace, name, e))
    return None


def _gate(cluster, p, ds_name, selector, result):
    ds = k8s_client.get_object(cluster, 'DaemonSet', p['namespace'], ds_name)
    if ds is None:
        raise k8s_client.K8sError('DaemonSet %s/%s not found' % (p['namespace'], ds_name), status=404)
    pods = k8s_client.list_objects(cluster, 'Pod', p['namespace'], label_selector=selector)
    count, bad = dsu.unhealthy(ds, dsu.daemonset_pods(ds, pods))
    result.extra['unhealthy'] = bad
    return ds, pods, count


class DaemonSetRestart(ClusterModule):
    catalog = ['C-7']
    options = dict(
        name=dict(type='str', required=True),
        namespace=dict(type='str', default='kube-system'),
        nodes=dict(type='list', elements='str'),
        selector=dict(type='str'),
        node_order=dict(type='raw'),
        batch_size=dict(type='int', default=1),
        max_unhealthy=dict(type='int', default=0),
        timeout=dict(type='int', default=300),
        poll_interval=dict(type='float', default=2.0),
        container=dict(type='str'),
        success_patterns=dict(type='list', elements='str'),
        failure_patterns=dict(type='list', elements='str'),
        patterns_preset=dict(type='str', default='auto', choices=['auto', 'kube-proxy-ipvs', 'kube-proxy-iptables',
                                                                  'kube-proxy-nftables', 'terway-in-cluster-lb', 'none']),
        restarted_since=dict(type='str'),
        restarted_in_run=dict(type='list', elements='str', default=[]),
    )
    refusals = (dsu.RestartError, kp.ConfigError)
    apply_in_check_mode = True  # check mode sends every planned deletion to the API server as a dry run

    nothing_changed = NOTHING_RESTARTED
    refusal_carries_result = True  # before any pod is deleted, a refusal returns the result keys

    def validate(self):
        """Everything before talking to the cluster."""
        p = self.params
        self.result.extra.update({'daemonset': '%s/%s' % (p['namespace'], p['name']), 'plan': [], 'restarted': [],
                                  'failed_node': None, 'remaining': [], 'unverified': [], 'already_restarted': [], 'unhealthy': [],
                                  'patterns': None})
        try:
            if p['batch_size'] < 1:
                raise dsu.RestartError('batch_size must be >= 1, got %d' % p['batch_size'])
            if p['max_unhealthy'] < 0:
                raise dsu.RestartError('max_unhealthy must be >= 0, got %d' % p['max_unhealthy'])
            if p['timeout'] < 1 or p['poll_interval'] <= 0:
                raise dsu.RestartError('timeout must be >= 1 and poll_interval > 0')
            if p['nodes'] is not None and not p['nodes']:
                raise dsu.RestartError('nodes is an empty list; omit it to restart every node')
            self.node_order = dsu.parse_node_order(p['node_order'])
            self.since = dsu.check_since(p['restarted_since'])
            # auto for kube-proxy follows the mode in its ConfigMap, read below; everything else is known now.
            self.follows_mode = p['patterns_preset'] == 'auto' and dsu.is_kube_proxy(p['name'])
            if not self.follows_mode:
                dsu.preset_for(p['patterns_preset'], p['name'])
            dsu.compile_patterns(p['success_patterns'], 'success_patterns')
            dsu.compile_patterns(p['failure_patterns'], 'failure_patterns')
        except dsu.RestartError as e:
            self.refuse('invalid input: %s (nothing was restarted)' % e)
        if self.follows_mode and not kp.HAS_RUAMEL:
            self.module.fail_json(msg=missing_required_lib('ruamel.yaml') + ' (to read kube-proxy\'s proxy mode for patterns_preset=auto)',
                                  exception=kp.RUAMEL_IMPORT_ERROR)

    def read(self):
        """The DaemonSet, its log patterns (kube-proxy's mode from its ConfigMap for preset auto), its pods (refused when
        more than max_unhealthy are not Ready) and the nodes the selector names."""
        p, result = self.params, self.result
        self.cluster = cluster = k8s_client.Cluster(p)
        ds = k8s_client.get_object(cluster, 'DaemonSet', p['namespace'], p['name'])
        if ds is None:
            self.refuse('DaemonSet %s/%s not found (nothing was restarted)' % (p['namespace'], p['name']))
        self.selector = dsu.selector_string((ds.get('spec') or {}).get('selector'))
        preset_name = dsu.preset_for(p['patterns_preset'], p['name'],
                                     proxy_mode=_kube_proxy_mode(cluster, p['namespace'], ds) if self.follows_mode else None)
        preset = dsu.PRESETS[preset_name]
        success_src = preset['success'] if p['success_patterns'] is None else p['success_patterns']
        failure_src = preset['failure'] if p['failure_patterns'] is None else p['failure_patterns']
        container = p['container'] or preset['container']
        self.patterns = (dsu.compile_patterns(success_src, 'success_patterns'), dsu.compile_patterns(failure_src, 'failure_patterns'),
                         container)
        result.extra['patterns'] = {'preset': preset_name, 'container': container, 'success': list(success_src),
                                    'failure': list(failure_src)}
        self.ds, self.pods, count = _gate(cluster, p, p['name'], self.selector, result)
        if count > p['max_unhealthy']:
            self.refuse('DaemonSet %s/%s has %d pod(s) not Ready (max_unhealthy=%d): %s; nothing was restarted'
                        % (p['namespace'], p['name'], count, p['max_unhealthy'],
                           '; '.join('%s on %s: %s' % (b['pod'], b['node'], b['state']) for b in result.extra['unhealthy'])))
        self.labelled = None
        if p['selector']:
            self.labelled = [n['metadata']['name'] for n in k8s_client.list_objects(cluster, 'Node', label_selector=p['selector'])]

    def plan(self):
        """The batches (dsu.plan). A pod counted as already restarted must pass the same log check as a new one: a
        re-run after a failed or killed run finds the node that run left broken (issue 9 finding 5), before anything
        is deleted; only the plan says which pods those are, so their logs are read here."""
        p, result = self.params, self.result
        self.the_plan = the_plan = dsu.plan(self.ds, self.pods, nodes=p['nodes'], node_labels_ok=self.labelled,
                                            node_order=self.node_order, batch_size=p['batch_size'], restarted_since=self.since)
        self.ordered = [n for batch in the_plan['batches'] for n in batch]
        result.extra.update({'plan': the_plan['batches'], 'already_restarted': the_plan['skipped'], 'remaining': list(self.ordered)})
        in_run = {'names': set(p['restarted_in_run'] or []), 'done': []}
        try:
            matched = _verify_already_restarted(self.cluster, p, the_plan['skipped'], self.patterns, in_run)
        except Stop as e:
            result.extra['failed_node'] = e.failure
            if in_run['done']:
                # This run's node-by-node steps restarted these, and they passed: report them as restarted.
                done_pods = {d['pod'] for d in in_run['done']}
                result.extra['restarted'] = in_run['done']
                result.extra['already_restarted'] = [s for s in the_plan['skipped'] if s['pod'] not in done_pods]
            self.refuse('the pod on node %s, already restarted after %s, fails its check (%s)%s; nothing was restarted'
                        % (e.failure['node'], p['restarted_since'], e.failure['reason'],
                           ': %s' % e.failure['line'] if e.failure.get('line') else ''))
        self.mine, earlier = _split_in_run(the_plan['skipped'], p['restarted_in_run'], matched)
        if self.mine:
            result.extra['already_restarted'] = earlier
            result.extra['restarted'] = list(self.mine)
            result.changed = True
        if the_plan['unscheduled']:
            result.warn('pods of the DaemonSet not bound to a node were left alone: %s' % ', '.join(the_plan['unscheduled']))

    def report(self):
        p, result, ordered = self.params, self.result, self.ordered
        if not ordered:
            return
        before = {n: self.the_plan['pods'][n]['metadata']['name'] for n in ordered}
        result.before = before
        result.after = dict.fromkeys(ordered, '(new pod)')
        result.add_diff(''.join('%s: %s\n' % kv for kv in before.items()),
                        ''.join('%s: (replaced by a new pod, verified)\n' % n for n in ordered),
                        'DaemonSet %s/%s pods' % (p['namespace'], p['name']))

    def will_change(self):
        return bool(self.ordered)

    def apply(self):
        """Check mode: the API server validates each deletion, nothing is deleted. Otherwise batch by batch: the
        health gate again, delete the batch's pods (uid precondition), wait for each node's Ready replacement and its
        log verdict (one deadline per batch); a failure stops the rollout there."""
        p, result, the_plan, ordered, cluster = self.params, self.result, self.the_plan, self.ordered, self.cluster
        if self.check_mode:
            try:
                for node in ordered:
                    pod = the_plan['pods'][node]
                    k8s_client.delete_pod(cluster, p['namespace'], pod['metadata']['name'], uid=pod['metadata']['uid'], dry_run=True)
            except k8s_client.K8sError as e:
                self.module.fail_json(msg='the API server rejected a planned deletion (dry run, nothing deleted): %s' % e.msg,
                                      changed=False, **result.extra)
            return
        mine = self.mine
        done = list(mine)
        deleted = []
        result.changed = bool(mine)
        try:
            for index, batch in enumerate(the_plan['batches']):
                if index:
                    _ds, _pods, count = _gate(cluster, p, p['name'], self.selector, result)
                    if count > p['max_unhealthy']:
                        raise Stop({'node': None, 'pod': None, 'reason': 'unhealthy', 'line': None, 'log_tail': [],
                                    'state': '%d pod(s) not Ready before batch %d' % (count, index + 1)})
                deadline = waiter.deadline(p['timeout'])
                for node in batch:
                    pod = the_plan['pods'][node]
                    k8s_client.delete_pod(cluster, p['namespace'], pod['metadata']['name'], uid=pod['metadata']['uid'])
                    deleted.append(node)
                    result.changed = True
                entries = _wait_batch(cluster, p, self.ds, self.selector, batch, the_plan['pods'], self.patterns, deadline)
                done.extend(entries)
                result.extra['restarted'] = list(done)
                result.extra['remaining'] = ordered[len(done) - len(mine):]
        except (Stop, k8s_client.K8sError) as e:
            if isinstance(e, Stop):
                failed = e.failure
            else:
                failed = {'node': None, 'pod': None, 'reason': 'api error', 'line': e.msg, 'log_tail': []}
            finished = {d['node'] for d in done}
            result.extra['restarted'] = list(done)
            result.extra['failed_node'] = failed
            result.extra['remaining'] = [n for n in ordered if n not in deleted]
            result.extra['unverified'] = [n for n in deleted if n not in finished and n != failed.get('node')]
            result.after = {d['node']: d['pod'] for d in done}
            result.fail('restart of DaemonSet %s/%s stopped at node %s (%s)%s; restarted: %s; not touched: %s'
                        % (p['namespace'], p['name'], failed.get('node') or '-', failed['reason'],
                           ': %s' % failed['line'] if failed.get('line') else '',
                           ', '.join(d['node'] for d in done) or 'none', ', '.join(result.extra['remaining']) or 'none'))
        self.done = done

    def verify(self):
        """Each new pod was verified (Ready, log verdict) in apply before the next batch was deleted; the result reports them."""
        self.result.after = {d['node']: d['pod'] for d in self.done}


def main():
    DaemonSetRestart().run()


if __name__ == '__main__':
    main()
