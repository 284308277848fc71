#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kube_proxy_config
short_description: Edit kube-proxy's KubeProxyConfiguration in its ConfigMap, keeping everything else
version_added: 0.1.0
description:
  - Implements catalog B(C-0) (kube-proxy configuration in general), B(C-1) (C(conntrack.maxPerCore)),
    B(C-2) (C(ipvs.scheduler)) and B(C-3) (C(ipvs.udpTimeout)).
  - Finds the ConfigMap - ACK C(kube-proxy-worker) and, on dedicated clusters, C(kube-proxy-master);
    upstream/kubeadm C(kube-proxy) - and deep-merges O(settings) into the C(config.conf) key. Comments,
    key order and quoting of the document are kept; nothing else in the ConfigMap changes.
  - Every value is validated against kube-proxy's own types before anything is read or written (issue 10,
    hole 5). Go durations such as C(10s) follow Go's grammar and range (ASCII digits only, at most
    C(2562047h47m16.854775807s), not negative); C(conntrack.maxPerCore) and C(conntrack.min) are C(int32)
    (0 to 2147483647); C(ipvs.excludeCIDRs) entries must parse as Go's C(net.ParseCIDR) reads them
    (C(address/prefix), no zone); IPVS scheduler names and the Linux proxy modes (empty, C(iptables), C(ipvs),
    C(nftables)) are checked. Broken YAML in the ConfigMap or a document that is not a
    C(KubeProxyConfiguration) fails with nothing written. Fields an older kube-proxy rejects are refused
    by cluster version - C(ipvs.udpTimeout) below 1.18 (use C(netmedic.k8s.ipvs_timeouts), catalog N-5),
    C(conntrack.udpTimeout), C(conntrack.udpStreamTimeout) and C(mode=nftables) below 1.29.
  - The previous data is returned (RV(backups)) and, with O(backup=true), also kept in a new ConfigMap
    C(<name>-netmedic-backup-<timestamp>) in the same namespace before the change.
  - Every planned ConfigMap passes a server-side dry run before any is written. Each write carries the
    C(resourceVersion) of the object that was backed up; when another writer got there first (HTTP 409) the
    ConfigMap is read again, the edit re-planned and the backup ConfigMap overwritten with the fresh data (so it
    always holds what the write replaced), up to three times; the stored object is read back and must need no
    further change.
  - kube-proxy reads the file only at start-up. This module does not restart it; the result says which
    DaemonSets need a restart (RV(restart_needed)), which C(netmedic.k8s.daemonset_restart) (catalog C-7)
    does with log verification.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - netmedic.k8s.k8s_auth
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The planned object is sent to the API server as a server-side dry run (validated, not stored).
  diff_mode:
    support: full
    details: Shows C(config.conf) before and after for each ConfigMap.
  platform:
    platforms: posix
    support: full
    details: Runs where the C(kubernetes) client is installed, usually the controller.
options:
  settings:
    description:
      - 'The fields to set, nested (V({ipvs: {scheduler: lc}})) or dotted (V({ipvs.scheduler: lc})).'
      - 'Supported: C(mode), C(conntrack.maxPerCore), C(conntrack.min), C(conntrack.tcpEstablishedTimeout),
        C(conntrack.tcpCloseWaitTimeout), C(conntrack.udpTimeout), C(conntrack.udpStreamTimeout),
        C(ipvs.scheduler), C(ipvs.udpTimeout), C(ipvs.tcpTimeout), C(ipvs.tcpFinTimeout), C(ipvs.syncPeriod),
        C(ipvs.minSyncPeriod), C(ipvs.strictARP), C(ipvs.excludeCIDRs). Anything else is refused.'
    type: dict
    required: true
  names:
    description:
      - ConfigMaps to edit. By default every one of C(kube-proxy-worker), C(kube-proxy-master) and C(kube-proxy)
        that exists (at least one must), so ACK managed, ACK dedicated and kubeadm clusters are all found. Names
        given here override that and must all exist.
      - The DaemonSets that mount these ConfigMaps are found too (RV(daemonsets), RV(restart_needed)).
    type: list
    elements: str
  namespace:
    description: Namespace of the ConfigMaps.
    type: str
    default: kube-system
  key:
    description: The data key holding the KubeProxyConfiguration.
    type: str
    default: config.conf
  backup:
    description:
      - Before changing a ConfigMap, copy its data into a new ConfigMap C(<name>-netmedic-backup-<UTC timestamp>).
      - The previous data is returned in RV(backups) either way.
    type: bool
    default: true
  allow_lower:
    description:
      - C(conntrack.maxPerCore) and C(conntrack.min) are never lowered (catalog N-2/C-1, issue 9 finding 2) unless
        this is V(true). A lower request (V(0) included) is not written; the field is reported in RV(kept) with a
        warning, and that ConfigMap counts as unchanged (no restart needed for it).
      - An unset or C(null) field counts as kube-proxy's default (C(maxPerCore) 32768, C(min) 131072). A current
        value that is not an integer fails the module, nothing written.
    type: bool
    default: false
  require_mode:
    description:
      - Change a ConfigMap only where kube-proxy's configured proxy mode is one of these (an unset or empty
        C(mode) is V(iptables), the Linux default). Any other ConfigMap fails the module before anything is
        written (issue 9 finding 1; catalog W-4 passes V([ipvs]) so that a UDP timeout job never switches an
        iptables cluster to IPVS).
      - Also applied again when a 409 conflict makes the module re-plan on fresh data.
    type: list
    elements: str
    choices: [iptables, ipvs, nftables]
requirements:
  - ruamel.yaml
seealso:
  - module: netmedic.k8s.conntrack_limit
notes:
  - Schedule the change off-peak; restarting kube-proxy does not drop running traffic but new workloads see a short delay (catalog C-0).
"""

EXAMPLES = r"""
- name: Raise kube-proxy's conntrack sizing (C-1), see the change first
  netmedic.k8s.kube_proxy_config:
    settings:
      conntrack:
        maxPerCore: 65536
  check_mode: true
  diff: true

- name: Switch IPVS to least-connection (C-2); run netmedic.k8s.ipvs_modules on every node first
  netmedic.k8s.kube_proxy_config:
    kubeconfig: ~/.kube/config
    settings:
      mode: ipvs
      ipvs.scheduler: lc
  register: kp

- name: Shorten the IPVS UDP timeout (C-3, Kubernetes >= 1.18) where kube-proxy already runs IPVS; fail otherwise
  netmedic.k8s.kube_proxy_config:
    names: [kube-proxy-worker]
    require_mode: [ipvs]
    settings:
      ipvs:
        udpTimeout: 10s

- name: Lower maxPerCore on purpose (without allow_lower a lower value is reported in kept and not written)
  netmedic.k8s.kube_proxy_config:
    settings:
      conntrack.maxPerCore: 32768
    allow_lower: true
"""

RETURN = r"""
configmaps:
  description: One entry per ConfigMap examined.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: ConfigMap name.
      type: str
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
      description: resourceVersion after the write (or of the unchanged object).
      type: str
      returned: always
    kept:
      description: Requests for this ConfigMap not written because they would lower the value (see O(allow_lower)).
      type: list
      elements: dict
      returned: always
  sample:
    - name: kube-proxy-worker
      changed: true
      changes: [{"path": "ipvs.scheduler", "before": "rr", "after": "lc"}]
      before: {"mode": "ipvs", "ipvs.scheduler": "rr"}
      after: {"mode": "ipvs", "ipvs.scheduler": "lc"}
      resource_version: "1234"
backups:
  description:
    - The previous data of every changed ConfigMap, and the backup ConfigMap when O(backup=true).
    - C(resource_version) is the version that was backed up and replaced (also the backup's
      C(netmedic.k8s/resource-version) annotation).
  returned: always
  type: list
  elements: dict
  sample:
    - of: kube-system/kube-proxy-worker
      configmap: kube-system/kube-proxy-worker-netmedic-backup-20261123t101500z
      resource_version: "1233"
      data: {"config.conf": "apiVersion: kubeproxy.config.k8s.io/v1alpha1\n..."}
kept:
  description:
    - Every request not written because it would lower C(conntrack.maxPerCore) or C(conntrack.min) and
      O(allow_lower=false), with C(configmap), C(path), C(current), C(requested) and C(reason).
  returned: always
  type: list
  elements: dict
  sample: [{"configmap": "kube-proxy-worker", "path": "conntrack.maxPerCore", "current": 131072, "requested": 65536,
            "reason": "lower than the current value (allow_lower=true lowers it)"}]
restart_needed:
  description:
    - DaemonSets whose pods must be recreated for the change to take effect - those in the namespace whose pods mount
      a changed ConfigMap (a C(configMap) or projected volume). A changed ConfigMap no DaemonSet mounts is a warning.
  returned: always
  type: list
  elements: str
  sample: [kube-proxy-worker]
daemonsets:
  description:
    - Every DaemonSet that mounts one of the ConfigMaps examined, changed or not (what a resumed rollout restarts).
    - Each RV(configmaps) entry also lists its own in C(daemonsets).
  returned: always
  type: list
  elements: str
  sample: [kube-proxy-master, kube-proxy-worker]
cluster_version:
  description: The API server's version.
  returned: always
  type: str
  sample: v1.24.9-gke.3200
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["C-0", "C-1", "C-2", "C-3"]
"""

from ansible_collections.netmedic.k8s.plugins.module_utils import daemonset as dsu
from ansible_collections.netmedic.k8s.plugins.module_utils import kube_proxy as kp
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import edit
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s.edit_module import ClusterModule
from ansible_collections.netmedic.k8s.plugins.module_utils.versions import Version, VersionError


def _planner(settings, key, namespace, name, rules):
    """The edit service's planner for one ConfigMap (module_utils/k8s/edit.py).

    ``rules`` are plan_edit's keyword arguments (allow_lower, require_mode): a re-plan on fresh data after a
    409 applies them again, so a concurrent edit can neither be lowered nor have its mode overridden.
    """

    def plan_data(data):
        fresh = data.get(key)
        if fresh is None:
            raise kp.ConfigError('key %r disappeared from ConfigMap %s/%s' % (key, namespace, name))
        planned = kp.plan_edit(fresh, settings, **rules)
        data[key] = planned['text']
        return data, planned['changes']

    return edit.data_planner(plan_data)


class KubeProxyConfig(ClusterModule):
    catalog = ['C-0', 'C-1', 'C-2', 'C-3']
    options = dict(
        settings=dict(type='dict', required=True),
        names=dict(type='list', elements='str'),
        namespace=dict(type='str', default='kube-system'),
        key=dict(type='str', default=kp.CONFIG_KEY, no_log=False),
        backup=dict(type='bool', default=True),
        allow_lower=dict(type='bool', default=False),
        require_mode=dict(type='list', elements='str', choices=['iptables', 'ipvs', 'nftables']),
    )
    apply_in_check_mode = True  # every planned ConfigMap goes through the API server's dry run first

    def requirements(self):
        return [(kp.HAS_RUAMEL, 'ruamel.yaml', kp.RUAMEL_IMPORT_ERROR)] + ClusterModule.requirements(self)

    def validate(self):
        p = self.params
        self.rules = {'allow_lower': p['allow_lower'], 'require_mode': p['require_mode']}
        if p['require_mode'] is not None and not p['require_mode']:
            self.refuse('require_mode is an empty list; omit it or name the modes allowed')
        try:
            self.wanted = kp.validate_settings(p['settings'])
        except kp.ConfigError as e:
            self.refuse('invalid settings: %s' % e)

    def read(self):
        """The cluster version (refuse settings it does not accept), then every target ConfigMap."""
        p = self.params
        self.cluster = cluster = k8s_client.Cluster(p)
        self.version = version = cluster.version()
        try:
            gaps = kp.unsupported(self.wanted, version)
        except VersionError:
            gaps = []
            self.result.warn('cannot parse the cluster version %r; kube-proxy needs >= 1.18 for ipvs.udpTimeout and >= 1.29 '
                             'for conntrack.udpTimeout, conntrack.udpStreamTimeout and mode nftables' % version)
        if gaps:
            hint = ('; set the node IPVS timeouts with netmedic.k8s.ipvs_timeouts instead (catalog N-5)'
                    if any(g['path'] == 'ipvs.udpTimeout' for g in gaps) else '')
            self.refuse('cluster %s is older than %s: kube-proxy there does not accept %s%s'
                        % (version, max((g['needs'] for g in gaps), key=Version),
                           ', '.join('%s=%s' % (g['path'], g['value']) if g['path'] == 'mode' else g['path'] for g in gaps),
                           hint))
        names = p['names'] or kp.CONFIGMAP_NAMES
        self.found = []
        for name in names:
            cm = cluster.get('ConfigMap', p['namespace'], name)
            if cm is None:
                if p['names']:
                    self.refuse('ConfigMap %s/%s not found' % (p['namespace'], name))
                continue
            self.found.append(cm)
        if not self.found:
            self.refuse('no kube-proxy ConfigMap in %s (looked for %s); nothing was changed' % (p['namespace'], ', '.join(names)))

    def plan(self):
        """Plan all edits before writing any; then the DaemonSets that run kube-proxy with them (issue 9 finding 6)."""
        p = self.params
        self.plans = []
        self.kept = []
        for cm in self.found:
            where = '%s/%s' % (p['namespace'], cm['metadata']['name'])
            text = (cm.get('data') or {}).get(p['key'])
            if text is None:
                self.refuse('ConfigMap %s has no key %r' % (where, p['key']))
            try:
                planned = kp.plan_edit(text, p['settings'], **self.rules)
                before = kp.summary(text)
            except kp.ConfigError as e:
                self.refuse('ConfigMap %s: %s' % (where, e))
            self.plans.append((cm, text, planned['text'], planned['changes'], before))
            self.kept.extend(dict(k, configmap=cm['metadata']['name']) for k in planned['kept'])
        self.mounted = dsu.mounting(k8s_client.list_objects(self.cluster, 'DaemonSet', p['namespace']),
                                    [cm['metadata']['name'] for cm in self.found])

    def report(self):
        p, result, kept, mounted = self.params, self.result, self.kept, self.mounted
        entries = []
        for cm, text, new_text, changes, before in self.plans:
            name = cm['metadata']['name']
            result.add_diff(text, new_text, 'ConfigMap %s/%s %s' % (p['namespace'], name, p['key']))
            entries.append({'name': name, 'changed': bool(changes), 'changes': changes, 'before': before,
                            'after': kp.summary(new_text), 'resource_version': cm['metadata'].get('resourceVersion')})
        for k in kept:
            result.warn('ConfigMap %s/%s: %s kept at %s, not lowered to %s (allow_lower=true lowers it)'
                        % (p['namespace'], k['configmap'], k['path'], k['current'], k['requested']))
        for name, users in sorted(mounted.items()):
            if not users:
                result.warn('no DaemonSet in %s mounts ConfigMap %s; whatever runs kube-proxy from it (static pods?) must be '
                            'restarted by hand' % (p['namespace'], name))
        for entry in entries:
            entry['daemonsets'] = mounted[entry['name']]
            entry['kept'] = [{kk: vv for kk, vv in k.items() if kk != 'configmap'} for k in kept if k['configmap'] == entry['name']]
        result.extra.update({'configmaps': entries, 'cluster_version': self.version, 'kept': kept,
                             'daemonsets': sorted({d for e in entries for d in e['daemonsets']}),
                             'restart_needed': sorted({d for e in entries if e['changed'] for d in e['daemonsets']})})
        result.before = {e['name']: e['before'] for e in entries}
        result.after = {e['name']: e['after'] for e in entries}
        self.entries = {e['name']: e for e in entries}

    def apply(self):
        """Every planned ConfigMap goes through the API server's dry run before any is written (check mode stops
        there). Then, one at a time, the edit service backs it up, writes it with the resourceVersion of what it
        backed up (a 409 re-reads, re-plans and re-backs-up) and reads it back."""
        p, result = self.params, self.result
        states = []
        try:
            for cm, _text, _new_text, changes, _before in self.plans:
                if changes:
                    name = cm['metadata']['name']
                    planner = _planner(p['settings'], p['key'], p['namespace'], name, self.rules)
                    state = edit.plan_object(cm, planner, 'ConfigMap', p['namespace'], name)
                    states.append((planner, edit.run(self.cluster, state, planner, check_mode=True)))
        except edit.EditFailed as e:
            self.refuse(e.msg)
        if self.check_mode:
            return
        done = []
        for planner, planned in states:
            try:
                state = edit.run(self.cluster, planned, planner, backup=p['backup'], backups=result.backups,
                                 describe=lambda obj: {'data': dict(obj.get('data') or {})})
            except edit.EditFailed as e:
                result.changed = bool(done) or e.changed
                result.fail('%s. Already changed: %s' % (e.msg, ', '.join(done) or 'none'))
            if state['changed']:
                entry = self.entries[state['name']]
                entry['after'] = result.after[state['name']] = kp.summary(state['stored']['data'][p['key']])
                entry['resource_version'] = state['stored']['metadata'].get('resourceVersion')
                done.append(state['name'])
        result.changed = bool(done)


def main():
    KubeProxyConfig().run()


if __name__ == '__main__':
    main()
