#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: flannel_config
short_description: Edit Flannel's CNI configuration (kube-flannel-cfg cni-conf.json), keeping everything else
version_added: 0.1.0
description:
  - Implements catalog B(C-5) (Flannel CNI config) and step 2 of B(N-7) (IPAM dataDir migration to tmpfs).
  - Edits the C(cni-conf.json) key of ConfigMap C(kube-system/kube-flannel-cfg). The key may hold a single plugin
    object (C("type" = "flannel") at the top) or a conflist with C(plugins) (flannel, portmap); both are handled.
  - O(cni_version) sets the top-level C(cniVersion), inserted right after C(name) when missing (nodes NotReady after
    a manual Flannel upgrade to Kubernetes 1.16 or later).
  - O(hairpin_mode) sets C(hairpinMode) in the flannel plugin's C(delegate) (a pod cannot reach its own Service on
    Flannel older than v0.15.1.4-e02c8f12-aliyun). The seed prefers a headless Service or Terway, and a Flannel
    upgrade may overwrite this edit.
  - O(flannel_data_dir) and O(ipam_data_dir) set the flannel plugin's C(dataDir) and C(ipam) (C(type) host-local,
    C(dataDir)) as in N-7 step 2; an existing C(ipam) of another type is refused.
  - Key order and indentation width are kept; other keys and other plugins are untouched. Content that is not strict
    JSON (the published example carries C(#) comments and a trailing comma) fails with the parser's position and
    nothing is written.
  - The previous data is returned (RV(backups)) and, with O(backup=true), kept in a new ConfigMap
    C(<name>-netmedic-backup-<timestamp>) first. The write carries the resourceVersion of the object that was backed
    up; on HTTP 409 the ConfigMap is read again, the edit re-planned and the backup ConfigMap overwritten with the fresh
    data (so it always holds what the write replaced), up to three times; the stored object is read back and must need
    no further change.
  - Flannel reads the file at start-up; restart its pods afterwards (the seed's C(-l app=flannel); the DaemonSets are
    named in RV(restart_needed)) with M(netmedic.k8s.daemonset_restart). For N-7, the node steps (drain, remove C(/etc/cni/) and C(/var/lib/cni/),
    reboot) follow one node at a time.
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
    details: Shows C(cni-conf.json) before and after.
  platform:
    platforms: posix
    support: full
    details: Runs where the C(kubernetes) client is installed, usually the controller.
options:
  cni_version:
    description: The C(cniVersion) to set, for example V(0.3.1) (the seed shows V(0.3.0) and V(0.3.1)).
    type: str
  hairpin_mode:
    description: Value of C(delegate.hairpinMode) in the flannel plugin.
    type: bool
  ipam_data_dir:
    description:
      - The host-local IPAM C(dataDir), for example V(/var/run/cni/networks) (tmpfs, catalog N-7). Creates
        C(ipam) with C(type) host-local when there is none.
    type: path
  flannel_data_dir:
    description: The flannel plugin's own C(dataDir), for example V(/var/run/cni/flannel) (catalog N-7).
    type: path
  name:
    description: Name of the ConfigMap.
    type: str
    default: kube-flannel-cfg
  namespace:
    description: Namespace of the ConfigMap.
    type: str
    default: kube-system
  key:
    description: The data key holding the CNI configuration.
    type: str
    default: cni-conf.json
  backup:
    description:
      - Before changing the ConfigMap, copy its data into a new ConfigMap C(<name>-netmedic-backup-<UTC timestamp>).
      - The previous data is returned in RV(backups) either way.
    type: bool
    default: true
seealso:
  - module: netmedic.k8s.daemonset_restart
  - module: netmedic.k8s.node_network_facts
notes:
  - Restarting the Flannel pods does not disrupt running workloads (seed 002); pods that need hairpin traffic must be
    recreated after the restart.
"""

EXAMPLES = r"""
- name: Add the missing cniVersion (C-5), preview first
  netmedic.k8s.flannel_config:
    cni_version: 0.3.1
  check_mode: true
  diff: true

- name: Move host-local IPAM to tmpfs (N-7 step 2)
  netmedic.k8s.flannel_config:
    flannel_data_dir: /var/run/cni/flannel
    ipam_data_dir: /var/run/cni/networks
  register: flannel

- name: Restart Flannel node by node (N-7 step 3)
  netmedic.k8s.daemonset_restart:
    name: kube-flannel-ds
  when: flannel is changed
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
    changed:
      description: Whether it was (or, in check mode, would be) changed.
      type: bool
      returned: always
    changes:
      description: Field changes, C(path) (C(plugins[0].delegate.hairpinMode)), C(before), C(after).
      type: list
      elements: dict
      returned: always
    before:
      description: The reported fields before (C(form) is C(conflist) or C(plugin)).
      type: dict
      returned: always
    after:
      description: The reported fields after.
      type: dict
      returned: always
    resource_version:
      description: resourceVersion after the write (or of the unchanged object).
      type: str
      returned: always
  sample:
    name: kube-system/kube-flannel-cfg
    changed: true
    changes: [{"path": "cniVersion", "before": null, "after": "0.3.1"}]
    before: {"form": "conflist", "cniVersion": null, "hairpinMode": null, "dataDir": null, "ipam.type": null, "ipam.dataDir": null}
    after: {"form": "conflist", "cniVersion": "0.3.1", "hairpinMode": null, "dataDir": null, "ipam.type": null, "ipam.dataDir": null}
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
    - of: kube-system/kube-flannel-cfg
      configmap: kube-system/kube-flannel-cfg-netmedic-backup-20261125t201500z
      resource_version: "1233"
      data: {"cni-conf.json": "{\n  \"name\": \"cb0\",\n ...", "net-conf.json": "..."}
restart_needed:
  description:
    - DaemonSets in the namespace whose pods (label C(app=flannel)) must be recreated for the change to take effect
      (empty when unchanged), for O(netmedic.k8s.daemonset_restart#module:name).
  returned: always
  type: list
  elements: str
  sample: ["kube-flannel-ds"]
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["C-5", "N-7"]
"""

from ansible_collections.netmedic.k8s.plugins.module_utils import daemonset as dsu
from ansible_collections.netmedic.k8s.plugins.module_utils import flannel as fl
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import edit
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s.edit_module import EditModule

SETTINGS = ('cni_version', 'hairpin_mode', 'ipam_data_dir', 'flannel_data_dir')


class FlannelConfig(EditModule):
    catalog = ['C-5', 'N-7']
    options = dict(
        cni_version=dict(type='str'),
        hairpin_mode=dict(type='bool'),
        ipam_data_dir=dict(type='path'),
        flannel_data_dir=dict(type='path'),
        name=dict(type='str', default=fl.CONFIGMAP),
        namespace=dict(type='str', default='kube-system'),
        key=dict(type='str', default=fl.KEY, no_log=False),
        backup=dict(type='bool', default=True),
    )
    module_kwargs = dict(required_one_of=[list(SETTINGS)])
    refusals = (fl.FlannelError,)

    def validate(self):
        EditModule.validate(self)
        self.settings = {k: self.params[k] for k in SETTINGS}
        self.result.extra['restart_needed'] = []
        fl.validate(self.settings)

    def planner(self, obj):
        def plan_data(data):
            key = self.params['key']
            text = data.get(key)
            if text is None:
                raise fl.FlannelError('ConfigMap %s has no key %r' % (self.where, key))
            new_text, changes = fl.plan(text, self.settings)
            data[key] = new_text
            return data, changes

        return edit.data_planner(plan_data)(obj)

    def read_more(self):
        daemonsets = k8s_client.list_objects(self.cluster, 'DaemonSet', self.params['namespace'])
        self.daemonsets = dsu.names_by_pod_label(daemonsets, *fl.POD_LABEL)

    def describe_state(self, state):
        key, result = self.params['key'], self.result
        old, new = state['object'].get('data') or {}, state['planned'].get('data') or {}
        result.diffs = []
        edit.data_diff(result, old, new, 'ConfigMap %s' % self.where)
        entry = {'name': self.where, 'changed': bool(state['changes']), 'changes': state['changes'],
                 'before': fl.summary(old[key]), 'after': fl.summary(new[key]),
                 'resource_version': state['object']['metadata'].get('resourceVersion')}
        result.extra['configmap'] = entry
        result.before, result.after = entry['before'], entry['after']
        return entry

    def report(self):
        EditModule.report(self)
        if self.state['changes']:
            self.result.extra['restart_needed'] = self.daemonsets
            if not self.daemonsets:
                self.result.warn('no DaemonSet with pod label app=flannel in %s; restart the Flannel pods by hand'
                                 % self.params['namespace'])

    def summary(self, obj):
        return fl.summary(obj['data'][self.params['key']])


def main():
    FlannelConfig().run()


if __name__ == '__main__':
    main()
