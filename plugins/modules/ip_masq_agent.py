#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: ip_masq_agent
short_description: Set ip-masq-agent's --random-fully argument in its DaemonSet
version_added: 0.1.0
description:
  - Implements catalog B(C-4) (related to B(N-3)). ip-masq-agent 2.10 and later applies C(--random-fully) by default;
    in clusters with NodePort or LoadBalancer Services the masqueraded source ports can then collide with the NodePort
    range (intermittent connectivity on GKE Dataplane V2). The documented fix is C(--random-fully=false) in the agent's
    arguments, honoured from 2.11.
  - Edits the C(args) of the agent container in the DaemonSet (C(kube-system/ip-masq-agent) by default) so that they
    hold exactly one C(--random-fully=false) (or C(=true) with O(random_fully=true)); an existing C(--random-fully)
    in any form is replaced in place, otherwise the argument is appended. Other arguments keep their order. The agent's
    ConfigMap has no such setting and is not touched.
  - The flag is refused for an agent image older than 2.11, or whose tag carries no version, unless O(image) upgrades
    it in the same change or O(allow_old_agent=true).
  - The DaemonSet as it was is returned (RV(backups)) and, with O(backup=true), kept in a new ConfigMap
    C(<name>-netmedic-backup-<timestamp>) (key C(daemonset.json)) first. The write carries the resourceVersion of the
    object that was backed up; on HTTP 409 the DaemonSet is read again, the edit re-planned and the backup ConfigMap
    overwritten with the fresh object (so it always holds what the write replaced), up to three times; it is read back
    and must need no further change.
  - A DaemonSet labelled C(addonmanager.kubernetes.io/mode=Reconcile) is managed by Kubernetes' addon manager, which
    puts its own manifest back within about a minute, reverting the edit. Such a DaemonSet is refused, in check mode
    too and before anything is written, unless O(allow_addon_manager_reconcile=true) (change the addon's manifest on
    the control plane instead, or switch the label to C(EnsureExists) where your platform allows it).
  - Changing the pod template makes the DaemonSet controller replace the agent pods only when its update strategy is
    C(RollingUpdate); RV(rollout) says so. With C(OnDelete) no pod is replaced, so RV(rollout) is false, the DaemonSet is
    named in RV(restart_needed) and a warning says to restart it with M(netmedic.k8s.daemonset_restart) (or role
    C(netmedic.k8s.verified_rollout)), which verifies each new pod.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - netmedic.k8s.k8s_auth
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The planned DaemonSet is sent as a server-side dry run (validated, not stored); no backup is made.
  diff_mode:
    support: full
    details: Shows the container's image and args before and after.
  platform:
    platforms: posix
    support: full
    details: Runs where the C(kubernetes) client is installed, usually the controller.
options:
  random_fully:
    description: The value to give C(--random-fully). The documented fix is V(false).
    type: bool
    default: false
  image:
    description: Also set the agent container's image (to upgrade to 2.11 or later in the same rollout).
    type: str
  allow_old_agent:
    description: Set the flag even when the image is older than 2.11 or its version cannot be read.
    type: bool
    default: false
  allow_addon_manager_reconcile:
    description:
      - Edit the DaemonSet even though the addon manager reconciles it (label C(addonmanager.kubernetes.io/mode=Reconcile)).
        The edit is then expected to be reverted; a warning says so.
    type: bool
    default: false
  name:
    description: Name of the DaemonSet.
    type: str
    default: ip-masq-agent
  namespace:
    description: Namespace of the DaemonSet.
    type: str
    default: kube-system
  container:
    description: The agent container. Defaults to the only container, or the one named C(ip-masq-agent).
    type: str
  backup:
    description:
      - Before changing the DaemonSet, store it in a new ConfigMap C(<name>-netmedic-backup-<UTC timestamp>).
      - The previous image and args are returned in RV(backups) either way.
    type: bool
    default: true
seealso:
  - module: netmedic.k8s.node_network_facts
notes:
  - Check the ephemeral port range against the NodePort range as well (catalog N-3, M(netmedic.k8s.node_network_facts)).
"""

EXAMPLES = r"""
- name: Disable --random-fully in ip-masq-agent (C-4), preview first
  netmedic.k8s.ip_masq_agent:
    random_fully: false
  check_mode: true
  diff: true

- name: Upgrade the agent and set the flag in one rollout
  netmedic.k8s.ip_masq_agent:
    image: registry.k8s.io/networking/ip-masq-agent:v2.11.0
"""

RETURN = r"""
daemonset:
  description: What was examined and changed.
  returned: always
  type: dict
  contains:
    name:
      description: C(namespace/name) of the DaemonSet.
      type: str
      returned: always
    container:
      description: The agent container.
      type: str
      returned: always
    changed:
      description: Whether it was (or, in check mode, would be) changed.
      type: bool
      returned: always
    changes:
      description: C(path) (C(args) or C(image)), C(before), C(after).
      type: list
      elements: dict
      returned: always
    before:
      description: C(image), C(args) and C(version) before.
      type: dict
      returned: always
    after:
      description: C(image), C(args) and C(version) after.
      type: dict
      returned: always
    resource_version:
      description: resourceVersion after the write (or of the unchanged object).
      type: str
      returned: always
  sample:
    name: kube-system/ip-masq-agent
    container: ip-masq-agent
    changed: true
    changes: [{"path": "args", "before": null, "after": "--random-fully=false"}]
    before: {"image": "registry.k8s.io/networking/ip-masq-agent:v2.11.0", "args": ["--masq-chain=IP-MASQ"], "version": "v2.11.0"}
    after: {"image": "registry.k8s.io/networking/ip-masq-agent:v2.11.0", "args": ["--masq-chain=IP-MASQ", "--random-fully=false"],
            "version": "v2.11.0"}
    resource_version: "1234"
backups:
  description:
    - The previous image and args, and the backup ConfigMap holding the whole DaemonSet when O(backup=true).
    - C(resource_version) is the version that was backed up and replaced (also the backup's
      C(netmedic.k8s/resource-version) annotation).
  returned: always
  type: list
  elements: dict
  sample:
    - of: kube-system/ip-masq-agent
      configmap: kube-system/ip-masq-agent-netmedic-backup-20261125t201500z
      resource_version: "1233"
      image: registry.k8s.io/networking/ip-masq-agent:v2.11.0
      args: ["--masq-chain=IP-MASQ"]
rollout:
  description: Whether the pod template changed B(and) the update strategy is C(RollingUpdate), so the DaemonSet controller
    replaces the agent pods.
  returned: always
  type: bool
  sample: true
update_strategy:
  description: The DaemonSet's C(spec.updateStrategy.type) as read (C(RollingUpdate) when unset).
  returned: when the DaemonSet was read
  type: str
  sample: RollingUpdate
restart_needed:
  description: DaemonSets (C(namespace/name)) whose pods still run the old template because the strategy is C(OnDelete).
  returned: always
  type: list
  elements: str
  sample: []
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["C-4"]
"""

from ansible_collections.netmedic.k8s.plugins.module_utils import ip_masq as im
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s.edit_module import EditModule


def _text(facts):
    return 'image: %s\nargs:\n%s' % (facts['image'], ''.join('  - %s\n' % a for a in facts['args']))


class IpMasqAgent(EditModule):
    catalog = ['C-4']
    kind = 'DaemonSet'
    options = dict(
        random_fully=dict(type='bool', default=False),
        image=dict(type='str'),
        allow_old_agent=dict(type='bool', default=False),
        allow_addon_manager_reconcile=dict(type='bool', default=False),
        name=dict(type='str', default='ip-masq-agent'),
        namespace=dict(type='str', default='kube-system'),
        container=dict(type='str'),
        backup=dict(type='bool', default=True),
    )
    refusals = (im.MasqError,)

    def validate(self):
        EditModule.validate(self)
        image = self.params['image']
        self.result.extra.update({'rollout': False, 'restart_needed': []})
        if image is not None and (not image.strip() or any(c.isspace() for c in image)):
            self.refuse('invalid image %r' % image)

    def planner(self, obj):
        p = self.params
        new, changes, facts = im.plan(obj, p['random_fully'], p['container'], p['image'])
        if changes and im.reconciled(obj) and not p['allow_addon_manager_reconcile']:
            raise im.MasqError('the addon manager reconciles it (label %s: Reconcile) and would revert the edit; change '
                               "the addon's manifest instead, or set allow_addon_manager_reconcile=true"
                               % im.ADDON_MODE_LABEL)
        if changes and not p['allow_old_agent']:
            problem = im.version_problem(facts['image'])
            if problem:
                raise im.MasqError('%s; upgrade it (image=...) or set allow_old_agent=true' % problem)
        return new, changes

    def summary(self, obj):
        found = im.container_facts(im.pick_container(obj, self.params['container']))
        return {'image': found['image'], 'args': found['args'], 'version': found['version']}

    def describe_backup(self, obj):
        facts = self.summary(obj)
        return {'image': facts['image'], 'args': facts['args']}

    def describe_state(self, state):
        result = self.result
        before, after = self.summary(state['object']), self.summary(state['planned'])
        container = im.pick_container(state['object'], self.params['container'])['name']
        result.diffs = []
        result.add_diff(_text(before), _text(after), 'DaemonSet %s container %s' % (self.where, container))
        entry = {'name': self.where, 'container': container, 'changed': bool(state['changes']), 'changes': state['changes'],
                 'before': before, 'after': after, 'resource_version': state['object']['metadata'].get('resourceVersion')}
        result.extra['daemonset'] = entry
        result.extra['rollout'] = bool(state['changes'])
        result.before, result.after = before, after
        return entry

    def report(self):
        EditModule.report(self)
        if self.state['changes'] and im.reconciled(self.state['object']):
            self.result.warn('DaemonSet %s is reconciled by the addon manager (label %s: Reconcile): expect it to revert '
                             'this edit' % (self.where, im.ADDON_MODE_LABEL))

    def applied(self, state):
        result = self.result
        strategy = ((state['object'].get('spec') or {}).get('updateStrategy') or {}).get('type') or 'RollingUpdate'
        result.extra['update_strategy'] = strategy
        # Only RollingUpdate makes the controller replace the pods (issue 10 hole 10); OnDelete waits for someone to.
        result.extra['rollout'] = state['changed'] and strategy == 'RollingUpdate'
        if state['changed'] and strategy != 'RollingUpdate':
            result.extra['restart_needed'] = [self.where]
            self.module.warn('DaemonSet %s has updateStrategy %s: %s no agent pod; restart them with '
                             'netmedic.k8s.daemonset_restart (or role netmedic.k8s.verified_rollout), which verifies each '
                             'new pod' % (self.where, strategy,
                                          'the change would replace' if self.check_mode else 'the change replaced'))


def main():
    IpMasqAgent().run()


if __name__ == '__main__':
    main()
