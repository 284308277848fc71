#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: terway_config
short_description: Edit Terway's eni-config (or eni-config-fixed) ConfigMap, keeping everything else
version_added: 0.1.0
description:
  - Implements catalog B(C-6) (Terway C(eni-config), kube-system).
  - O(disable_network_policy) sets the data key C(disable_network_policy) to C("true")/C("false") (pod network ready
    only after a delay; seed 002).
  - O(in_cluster_loadbalance) sets the data key C(in_cluster_loadbalance), at the same level as C(eni_conf) as the seed
    requires (IPvlan in-cluster load balancing, Terway v1.2.0 or later in IPvlan mode; new clusters have it on). A
    warning is returned when C(10-terway.conf) does not say C(eniip_virtual_type) IPVlan.
  - O(eni_conf) is deep-merged into the C(eni_conf) JSON document (for example C(vswitches) after adding a vSwitch
    in the same zone, or the dedicated vSwitches of C(eni-config-fixed)); keys not named keep their value and order.
    Maps merge key by key at any depth, so a partial C(vswitches) map keeps the zones it does not name (issue 10,
    C-6); any other value, such as one zone's list of vSwitch IDs, replaces the current one as a whole.
    An C(eni_conf) that is not valid JSON fails with nothing written (Terway would crash-loop on it).
  - O(in_cluster_loadbalance=true) is refused, before anything is written, unless every Terway DaemonSet's
    C(terway) container runs Terway v1.2.0 or later, read from its image tag. An image without a readable version
    (a digest, C(latest)) is refused too unless O(terway_version) says which version it is.
  - With O(name=eni-config-fixed) and O(create=true) the ConfigMap is created when missing. The node pool that uses it
    must be labelled C(terway-config=eni-config-fixed) and tainted C(fixed=true:NoSchedule), and pods that should get
    those IPs need the toleration and the node selector C(terway-config=eni-config-fixed); this module does not label
    or taint nodes.
  - The previous data is returned (RV(backups)) and, with O(backup=true), kept in a new ConfigMap
    C(<name>-netmedic-backup-<timestamp>) first. The write carries the resourceVersion of the object that was backed
    up; on HTTP 409 the ConfigMap is read again, the edit re-planned and the backup ConfigMap overwritten with the fresh
    data (so it always holds what the write replaced), up to three times; the stored object is read back and must need
    no further change.
  - Terway reads the ConfigMap at start-up. Recreate its pods afterwards with M(netmedic.k8s.daemonset_restart)
    (C(terway-eniip) for ENI multi-IP, C(terway-eni) for ENI single-IP; RV(restart_needed)), using RV(verify) to check
    the policy container's C(enable-in-cluster-loadbalance=true) line.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - netmedic.k8s.k8s_auth
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The planned ConfigMap is sent as a server-side dry run (validated, not stored); no backup is made.
  diff_mode:
    support: full
    details: Shows each changed data key before and after.
  platform:
    platforms: posix
    support: full
    details: Runs where the C(kubernetes) client is installed, usually the controller.
options:
  disable_network_policy:
    description: Value of the C(disable_network_policy) key.
    type: bool
  in_cluster_loadbalance:
    description: Value of the C(in_cluster_loadbalance) key.
    type: bool
  eni_conf:
    description:
      - 'Keys of the C(eni_conf) JSON to set, deep-merged (V({vswitches: {cn-hangzhou-i: [vsw-1, vsw-2]}}) changes
        that zone only; the list of one zone is replaced as a whole).'
      - C(vswitches) must map zones to non-empty lists of C(vsw-) IDs.
      - The option is C(no_log) (it may hold C(access_key)/C(access_secret)), so its value never reaches the node's
        syslog; in the result and the diff only values under credential-like keys are masked.
    type: dict
  terway_version:
    description:
      - The Terway version (V(v1.2.0)), used only when the image tag of a Terway DaemonSet carries none, for the
        O(in_cluster_loadbalance) gate.
    type: str
  name:
    description: Name of the ConfigMap.
    type: str
    default: eni-config
  namespace:
    description: Namespace of the ConfigMap.
    type: str
    default: kube-system
  create:
    description: Create the ConfigMap when it does not exist (meant for C(eni-config-fixed)); otherwise a missing one fails.
    type: bool
    default: false
  backup:
    description:
      - Before changing the ConfigMap, copy its data into a new ConfigMap C(<name>-netmedic-backup-<UTC timestamp>).
      - The previous data is returned in RV(backups) either way.
    type: bool
    default: true
seealso:
  - module: netmedic.k8s.daemonset_restart
notes:
  - The network plugin type of a cluster cannot be changed after creation, nor its pod and Service CIDRs (catalog D-14).
"""

EXAMPLES = r"""
- name: Turn on IPvlan in-cluster load balancing (C-6)
  netmedic.k8s.terway_config:
    in_cluster_loadbalance: true
  register: terway

- name: Recreate Terway pods node by node and check the policy container's log line
  netmedic.k8s.daemonset_restart:
    name: "{{ item }}"
    container: "{{ terway.verify.container }}"
    success_patterns: "{{ terway.verify.success_patterns }}"
  loop: "{{ terway.restart_needed }}"

- name: Pod network ready only after a delay - disable NetworkPolicy (C-6)
  netmedic.k8s.terway_config:
    disable_network_policy: true

- name: A fixed vSwitch for allow-listing (eni-config-fixed)
  netmedic.k8s.terway_config:
    name: eni-config-fixed
    create: true
    eni_conf:
      vswitches:
        cn-beijing-h: [vsw-2zem796p76viir02cxxxx]
      security_group: sg-bp19k3sj8dk3dcd7xxxx
"""

RETURN = r"""
configmap:
  description: What was examined and changed.
  returned: always
  type: dict
  contains:
    name:
      description: C(namespace/name) of the ConfigMap.
      type: str
      returned: always
    created:
      description: Whether the ConfigMap was (or would be) created.
      type: bool
      returned: always
    changed:
      description: Whether it was (or, in check mode, would be) changed.
      type: bool
      returned: always
    changes:
      description: Field changes, C(path), C(before), C(after).
      type: list
      elements: dict
      returned: always
    before:
      description: The reported fields before.
      type: dict
      returned: always
    after:
      description: The reported fields after.
      type: dict
      returned: always
    resource_version:
      description: resourceVersion after the write (or of the unchanged object; null in check mode for a new one).
      type: str
      returned: always
  sample:
    name: kube-system/eni-config
    created: false
    changed: true
    changes: [{"path": "in_cluster_loadbalance", "before": null, "after": "true"}]
    before: {"disable_network_policy": "false", "in_cluster_loadbalance": null, "eniip_virtual_type": "IPVlan", "vswitches": {}}
    after: {"disable_network_policy": "false", "in_cluster_loadbalance": "true", "eniip_virtual_type": "IPVlan", "vswitches": {}}
    resource_version: "1234"
backups:
  description:
    - The previous data of the ConfigMap when it changed, and the backup ConfigMap when O(backup=true).
    - C(resource_version) is the version that was backed up and replaced (also the backup's
      C(netmedic.k8s/resource-version) annotation).
  returned: always
  type: list
  elements: dict
  sample:
    - of: kube-system/eni-config
      configmap: kube-system/eni-config-netmedic-backup-20261125t201500z
      resource_version: "1233"
      data: {"eni_conf": "{...}", "disable_network_policy": "false"}
restart_needed:
  description:
    - Terway DaemonSets in the namespace (pod label C(app=terway-eniip) or C(app=terway-eni)) whose pods must be
      recreated (empty when unchanged), for O(netmedic.k8s.daemonset_restart#module:name).
  returned: always
  type: list
  elements: str
  sample: ["terway-eniip"]
verify:
  description:
    - Options for M(netmedic.k8s.daemonset_restart) to check the change in the recreated pods (catalog C-6's log line),
      or null when the catalog gives no line for what was set.
  returned: always
  type: dict
  sample: {"container": "policy", "success_patterns": ["enable-in-cluster-loadbalance=true"]}
terway_version:
  description: The Terway version the O(in_cluster_loadbalance) gate used (when it turned the flag on).
  returned: when O(in_cluster_loadbalance=true) changes the ConfigMap
  type: str
  sample: v1.2.0
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["C-6"]
"""

from ansible_collections.netmedic.k8s.plugins.module_utils import daemonset as dsu
from ansible_collections.netmedic.k8s.plugins.module_utils import redact
from ansible_collections.netmedic.k8s.plugins.module_utils import terway as tw
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import edit
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s.edit_module import EditModule

SETTINGS = ('disable_network_policy', 'in_cluster_loadbalance', 'eni_conf')


class TerwayConfig(EditModule):
    catalog = ['C-6']
    options = dict(
        disable_network_policy=dict(type='bool'),
        in_cluster_loadbalance=dict(type='bool'),
        eni_conf=dict(type='dict', no_log=True),
        terway_version=dict(type='str'),
        name=dict(type='str', default='eni-config'),
        namespace=dict(type='str', default='kube-system'),
        create=dict(type='bool', default=False),
        backup=dict(type='bool', default=True),
    )
    module_kwargs = dict(required_one_of=[list(SETTINGS)])
    refusals = (tw.TerwayError,)

    def __init__(self):
        EditModule.__init__(self)
        # eni_conf is no_log (the whole option stays out of syslog); mask only its credential-like values in the result.
        redact.narrow_kubeconfig_no_log(self.module, 'eni_conf')

    def validate(self):
        EditModule.validate(self)
        p = self.params
        self.settings = {k: p[k] for k in SETTINGS}
        self.result.extra.update({'restart_needed': [], 'verify': tw.verify_hint(self.settings)})
        tw.validate(self.settings)
        if p['name'] not in tw.CONFIGMAPS:
            self.result.warn('%s is not one of the documented Terway ConfigMaps (%s)' % (p['name'], ', '.join(tw.CONFIGMAPS)))

    def planner(self, obj):
        return edit.data_planner(lambda data: tw.plan(data, self.settings))(obj)

    def create_from(self):
        p = self.params
        if not p['create']:
            return None
        return {'apiVersion': 'v1', 'kind': 'ConfigMap', 'data': {},
                'metadata': {'name': p['name'], 'namespace': p['namespace'],
                             'labels': {'app.kubernetes.io/managed-by': 'netmedic'}}}

    def read_more(self):
        self.ds_all = k8s_client.list_objects(self.cluster, 'DaemonSet', self.params['namespace'])
        self.daemonsets = dsu.names_by_pod_label(self.ds_all, *tw.POD_LABEL)

    def refusal(self, error):
        if isinstance(error, k8s_client.K8sError) and error.status == 404:
            return 'ConfigMap %s not found (nothing was changed; create=true creates it)' % self.where
        return EditModule.refusal(self, error)

    def describe_state(self, state):
        result = self.result
        old = (state['object'] or {}).get('data') or {}
        new = state['planned'].get('data') or {}
        result.diffs = []
        edit.data_diff(result, old, new, 'ConfigMap %s' % self.where)
        entry = {'name': self.where, 'created': state['object'] is None, 'changed': bool(state['changes']),
                 'changes': state['changes'],
                 'before': tw.summary(old), 'after': tw.summary(new),
                 'resource_version': (state['object'] or {}).get('metadata', {}).get('resourceVersion')}
        result.extra['configmap'] = entry
        result.before, result.after = entry['before'], entry['after']
        return entry

    def report(self):
        EditModule.report(self)
        p, result, state = self.params, self.result, self.state
        if any(c['path'] == 'in_cluster_loadbalance' for c in state['changes']) and p['in_cluster_loadbalance']:
            # Catalog C-6: Terway v1.2.0 or later (issue 10, C-6 partial); an unreadable version is refused, never guessed.
            try:
                version = tw.Version(p['terway_version']) if p['terway_version'] else None
            except ValueError as e:
                self.refuse('terway_version: %s' % e)
            ds_objects = [ds for ds in self.ds_all if ds['metadata']['name'] in self.daemonsets]
            found = tw.terway_version(ds_objects) if ds_objects else None
            problem = tw.lb_version_problem(found or version)
            if problem:
                self.refuse('ConfigMap %s: %s' % (self.where, problem))
            result.extra['terway_version'] = str(found or version)
        for msg in tw.warnings(state['planned'].get('data') or {}, self.settings):
            result.warn(msg)
        if state['changes']:
            if p['name'] != 'eni-config':
                result.warn('restart the Terway pods on the nodes labelled terway-config=%s for the change to take effect'
                            % p['name'])
            result.extra['restart_needed'] = self.daemonsets

    def summary(self, obj):
        return tw.summary(dict(obj.get('data') or {}))


def main():
    TerwayConfig().run()


if __name__ == '__main__':
    main()
