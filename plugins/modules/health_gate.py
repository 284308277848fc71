#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: health_gate
short_description: Stop a workflow before the next node when too much of the cluster is already unhealthy
version_added: 0.2.0
description:
  - The health gate every multi-node workflow runs before each batch (catalog B(W-1) node rotation, B(W-2) Flannel
    dataDir migration, B(W-7) leaked CNI IPs fleet-wide). Read-only.
  - Counts as unhealthy - Nodes that are not Ready; Nodes cordoned by someone else (unschedulable without netmedic's
    C(netmedic.io/cordoned-by) annotation, see M(netmedic.k8s.node_drain) - a node netmedic cordoned, for example one
    a failed earlier run left behind, is the workflow's own and does not count); Nodes that run a pod of one of
    O(daemonsets) that is not Ready; and each pod a named DaemonSet should have but does not.
  - When the count is more than O(max_unhealthy) - a whole number, or a percentage of the Nodes in scope rounded down,
    like Cluster API MachineHealthCheck's C(maxUnhealthy) - or a Node of O(nodes) is unknown to the API, the module
    B(fails) with the evidence (the stop rule). Otherwise it returns the same evidence and C(changed=false).
  - A Node list or DaemonSet that cannot be read (or a DaemonSet that does not exist) fails the module; it is never
    read as "healthy".
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - netmedic.k8s.k8s_auth
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same in check mode, so a rehearsal stops where the real run would.
  diff_mode:
    support: none
  platform:
    platforms: posix
    support: full
    details: Runs where the C(kubernetes) client is installed, usually the controller (C(delegate_to=localhost)).
options:
  max_unhealthy:
    description:
      - How many unhealthy items are tolerated - a whole number (V(0), V(3), V("3")) or a percentage of the Nodes in
        scope (V("30%"), rounded down). Anything else (V(-1), V("3.0"), V("30 %"), V("150%")) is refused before the API
        is read.
    type: raw
    default: 0
  daemonsets:
    description:
      - DaemonSets whose pods must be Ready, as V(name) (namespace C(kube-system)) or V(namespace/name) - the ones the
        workflow touches (for example C(kube-flannel-ds), C(kube-proxy-worker)).
    type: list
    elements: str
    default: []
  nodes:
    description: Node names that must exist (the node about to be worked on); an unknown one fails the gate.
    type: list
    elements: str
    default: []
  label_selector:
    description: Only Nodes matching this label selector are in scope (and count for percentages).
    type: str
  request_timeout:
    description: Seconds each API request may take before it fails.
    type: int
    default: 30
seealso:
  - module: netmedic.k8s.node_drain
  - module: netmedic.k8s.daemonset_restart
  - name: Cluster API MachineHealthCheck maxUnhealthy
    description: The count-or-percentage semantics this gate follows.
    link: https://cluster-api.sigs.k8s.io/tasks/automated-machine-management/healthchecking
notes:
  - Nothing is changed, so nothing is backed up.
"""

EXAMPLES = r"""
- name: Health gate before lab-node-2 - at most one unhealthy Node, Flannel Ready everywhere else
  netmedic.k8s.health_gate:
    nodes: [lab-node-2]
    daemonsets: [kube-flannel-ds]
    max_unhealthy: 1
  delegate_to: localhost

- name: Tolerate 10 % of the worker Nodes
  netmedic.k8s.health_gate:
    label_selector: node-role.kubernetes.io/worker
    max_unhealthy: "10%"
"""

RETURN = r"""
passed:
  description: Whether the gate let the workflow go on (false only in a failed result).
  returned: always
  type: bool
  sample: true
unhealthy_count:
  description: Distinct unhealthy Nodes plus pods the named DaemonSets are missing.
  returned: always
  type: int
  sample: 1
allowed:
  description: O(max_unhealthy) as a number for this cluster (a percentage of RV(total), rounded down).
  returned: always
  type: int
  sample: 1
total:
  description: Nodes in scope.
  returned: always
  type: int
  sample: 3
unhealthy:
  description: The evidence - C(kind) (Node, Pod, DaemonSet), C(name), C(node) and C(reason).
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "Node", "name": "lab-node-3", "node": "lab-node-3", "reason": "NotReady (False, KubeletNotReady)"},
           {"kind": "Node", "name": "lab-node-2", "node": "lab-node-2", "reason": "cordoned by someone else"}]
missing_nodes:
  description: Names of O(nodes) the API does not know.
  returned: always
  type: list
  elements: str
  sample: []
netmedic_cordoned:
  description: Nodes cordoned by netmedic (not counted) with the run id that cordoned them - candidates for a re-run.
  returned: always
  type: list
  elements: dict
  sample: [{"node": "lab-node-1", "by": "awx-4711"}]
catalog:
  description: Catalog IDs this module serves.
  returned: always
  type: list
  elements: str
  sample: ["W-1", "W-2", "W-7"]
"""

from ansible_collections.netmedic.k8s.plugins.module_utils import daemonset as dsu
from ansible_collections.netmedic.k8s.plugins.module_utils import health
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s.edit_module import ClusterModule


class HealthGate(ClusterModule):
    """The health gate of the workflow spine on the lifecycle: validate, read the Nodes and each DaemonSet's
    pods, plan (``health.evaluate``: the verdict), report (fail when it does not pass); it changes nothing.
    Every refusal returns the verdict keys with ``passed: false``."""

    catalog = ['W-1', 'W-2', 'W-7']
    options = dict(
        max_unhealthy=dict(type='raw', default=0),
        daemonsets=dict(type='list', elements='str', default=[]),
        nodes=dict(type='list', elements='str', default=[]),
        label_selector=dict(type='str'),
        request_timeout=dict(type='int', default=30),
    )
    refusals = (health.HealthError, dsu.RestartError)
    refusal_carries_result = True

    def validate(self):
        p = self.params
        self.stage = 'validate'
        self.result.extra.update({'passed': False, 'unhealthy_count': 0, 'allowed': 0, 'total': 0, 'unhealthy': [],
                                  'missing_nodes': [], 'netmedic_cordoned': []})
        health.parse_max_unhealthy(p['max_unhealthy'])
        self.refs = [health.parse_daemonset(d) for d in p['daemonsets']]
        if p['request_timeout'] < 1:
            raise health.HealthError('request_timeout must be >= 1 (got %d)' % p['request_timeout'])
        if any(not n or not n.strip() for n in p['nodes']):
            raise health.HealthError('nodes entries must be Node names')

    def refusal(self, error):
        text = ClusterModule.refusal(self, error)
        if self.stage == 'validate':
            return 'invalid input: %s (nothing was read or changed)' % text
        if self.stage == 'read':
            return 'health gate could not read the cluster, stopping: %s' % text
        return 'health gate: stopping: %s' % text

    def read(self):
        p, rt = self.params, self.params['request_timeout']
        self.stage = 'read'
        cluster = k8s_client.Cluster(p)
        self.nodes = k8s_client.list_objects(cluster, 'Node', label_selector=p['label_selector'], timeout=rt)
        self.daemonsets = []
        for namespace, name in self.refs:
            ds = k8s_client.get_object(cluster, 'DaemonSet', namespace, name, timeout=rt)
            if ds is None:
                raise k8s_client.K8sError('DaemonSet %s/%s not found' % (namespace, name), status=404)
            selector = dsu.selector_string((ds.get('spec') or {}).get('selector'))
            pods = k8s_client.list_objects(cluster, 'Pod', namespace, label_selector=selector, timeout=rt)
            self.daemonsets.append((ds, pods))

    def plan(self):
        self.stage = 'plan'
        self.verdict = health.evaluate(self.nodes, self.daemonsets, self.params['max_unhealthy'], self.params['nodes'])

    def report(self):
        self.result.extra.update(self.verdict)
        if not self.verdict['passed']:
            self.result.fail('health gate: stopping, nothing more is changed. %s'
                             % health.summary(self.verdict, self.params['max_unhealthy']))


def main():
    HealthGate().run()


if __name__ == '__main__':
    main()
