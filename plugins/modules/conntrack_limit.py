#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: conntrack_limit
short_description: Raise the kernel connection-tracking limit (nf_conntrack_max) safely
version_added: 0.1.0
description:
  - >-
    Fixes catalog entry B(N-2) (conntrack table full, C(nf_conntrack: table full, dropping packet))
    with the node-side B(Fix A) of the source documents - set C(net.netfilter.nf_conntrack_max),
    now and persistently.
  - With O(max=auto) the limit is C(MemTotal) in kB divided by 32, the sizing the GKE connectivity
    troubleshooting guide documents.
  - Never lowers an existing higher limit unless O(allow_decrease=true); a refused decrease leaves
    both the kernel value and the persisted file untouched and says so.
  - Persists to a drop-in file that netmedic owns under C(/etc/sysctl.d/) (written atomically, the
    replaced file backed up), never by appending to C(/etc/sysctl.conf). Files that are applied after
    the drop-in at boot and set another value are reported, because they would undo the fix.
  - kube-proxy sets the limit itself at start-up from C(conntrack.maxPerCore) (catalog B(C-1)), so
    on a node running kube-proxy the module warns that this fix alone can be overwritten; use
    C(netmedic.k8s.kube_proxy_config) (catalog C-1) for the cluster-side fix.
  - Fails before changing anything when the value is not a positive integer or C(auto), or when the
    C(nf_conntrack) module is not loaded.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports the value and file it would write; writes nothing.
  diff_mode:
    support: full
    details: Shows the kernel value and the drop-in file before and after.
  platform:
    platforms: posix
    support: full
    details: Linux nodes with the C(nf_conntrack) kernel module loaded.
options:
  max:
    description:
      - The limit, a positive integer, or V(auto) for C(MemTotal) kB / 32.
    type: raw
    required: true
  allow_decrease:
    description:
      - Allow setting a value lower than the current kernel value.
      - By default a lower value is refused (no change, a warning, RV(decision=refuse_lower)).
    type: bool
    default: false
  persist:
    description:
      - Also write the value to O(persist_file) so it survives a reboot.
      - V(false) changes the running kernel only.
    type: bool
    default: true
  persist_file:
    description:
      - The drop-in file netmedic owns. Its whole content is generated; a replaced file is backed up
        next to it (Ansible's C(backup_local) naming) and the backup path returned.
    type: path
    default: /etc/sysctl.d/90-netmedic-conntrack.conf
seealso:
  - module: netmedic.k8s.node_network_facts
  - name: Catalog N-2 and C-1
    description: docs/catalog.md in the collection.
    link: https://example.invalid/netmedic/k8s/docs/catalog.md
notes:
  - Run as root on each node.
"""

EXAMPLES = r"""
- name: Size the conntrack table from the node's memory (MemTotal / 32), now and at boot
  netmedic.k8s.conntrack_limit:
    max: auto

- name: Set an explicit limit, runtime only, and see what would change first
  netmedic.k8s.conntrack_limit:
    max: 1048576
    persist: false
  check_mode: true
  diff: true

- name: Lower a limit on purpose
  netmedic.k8s.conntrack_limit:
    max: 262144
    allow_decrease: true
"""

RETURN = r"""
decision:
  description: What was (or, in check mode, would be) done with the kernel value.
  returned: always
  type: str
  sample: raise
  choices: [keep, raise, lower, refuse_lower]
desired:
  description: The requested limit after resolving V(auto).
  returned: always
  type: int
  sample: 771377
before:
  description: State read before any change.
  returned: always
  type: dict
  contains:
    max:
      description: Kernel C(nf_conntrack_max).
      type: int
      returned: always
    persisted:
      description: Value in O(persist_file), or null when the file does not exist or lacks the key.
      type: int
      returned: always
  sample: {"max": 262144, "persisted": null}
after:
  description: State after the change (in check mode, the state that would result).
  returned: always
  type: dict
  sample: {"max": 771377, "persisted": 771377}
usage:
  description: Current table usage.
  returned: always
  type: dict
  sample: {"count": 1200, "max": 771377, "percent": 0.2}
persist_file:
  description: The drop-in file (written or not).
  returned: always
  type: str
  sample: /etc/sysctl.d/90-netmedic-conntrack.conf
backups:
  description: Files replaced by this run and where their previous content was kept.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/etc/sysctl.d/90-netmedic-conntrack.conf.1234.2026-11-23@10:00:00~", "of": "/etc/sysctl.d/90-netmedic-conntrack.conf"}]
overridden_by:
  description: Boot-time sysctl files applied after O(persist_file) that set another value.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/etc/sysctl.conf", "value": "131072"}]
kube_proxy_running:
  description: Whether a kube-proxy process runs on the node (it resets the limit when it starts).
  returned: always
  type: bool
  sample: true
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["N-2"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netmedic.k8s.plugins.module_utils import conntrack, sysctl
from ansible_collections.netmedic.k8s.plugins.module_utils.result import Result

MEMINFO = '/proc/meminfo'


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _usage(maximum):
    count = _int_or_none(sysctl.read_value(conntrack.COUNT_KEY))
    return {'count': count, 'max': maximum, 'percent': conntrack.usage_percent(count, maximum)}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            max=dict(type='raw', required=True),
            allow_decrease=dict(type='bool', default=False),
            persist=dict(type='bool', default=True),
            persist_file=dict(type='path', default='/etc/sysctl.d/90-netmedic-conntrack.conf'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = Result(module, ['N-2'])

    # 1. Validate input before reading or touching anything.
    try:
        requested = conntrack.parse_max(p['max'])
    except conntrack.LimitError as e:
        module.fail_json(msg=str(e), changed=False)
    if p['persist'] and not p['persist_file'].endswith('.conf'):
        module.fail_json(msg='persist_file must end in .conf (systemd-sysctl ignores other names): %s' % p['persist_file'],
                         changed=False)

    # 2. Read the current state.
    current = _int_or_none(sysctl.read_value(conntrack.MAX_KEY))
    if current is None:
        module.fail_json(msg='%s does not exist: the nf_conntrack kernel module is not loaded on this node, '
                             'so there is no table to size (nothing was changed)' % sysctl.key_to_path(conntrack.MAX_KEY),
                         changed=False)
    if requested == 'auto':
        try:
            meminfo = conntrack.parse_meminfo(sysctl.read_text(MEMINFO) or '')
            desired = conntrack.auto_max(meminfo.get('MemTotal', 0))
        except conntrack.LimitError as e:
            module.fail_json(msg=str(e), changed=False)
    else:
        desired = requested
    file_text = sysctl.read_text(p['persist_file'])
    persisted = _int_or_none(sysctl.parse_conf(file_text or '').get(conntrack.MAX_KEY))

    # 3. Plan (pure).
    action, target = conntrack.plan_limit(current, desired, p['allow_decrease'])
    new_text = sysctl.render_dropin([(conntrack.MAX_KEY, target)], 'conntrack_limit', 'N-2')
    write_file = p['persist'] and action != 'refuse_lower' and file_text != new_text

    result.before = {'max': current, 'persisted': persisted}
    result.after = {'max': target, 'persisted': target if write_file else persisted}
    result.add_diff('%s = %s' % (conntrack.MAX_KEY, current), '%s = %s' % (conntrack.MAX_KEY, target),
                    'kernel %s' % conntrack.MAX_KEY)
    if write_file:
        result.add_diff(file_text or '', new_text, p['persist_file'])

    kube_proxy = conntrack.processes_named(('kube-proxy',))
    overridden = sysctl.overriders(conntrack.MAX_KEY, p['persist_file'], target) if p['persist'] else []
    result.extra.update({
        'decision': action,
        'desired': desired,
        'persist_file': p['persist_file'],
        'overridden_by': overridden,
        'kube_proxy_running': bool(kube_proxy),
        'usage': _usage(current),
    })
    if action == 'refuse_lower':
        result.warn('nf_conntrack_max is %d, higher than the requested %d; left unchanged (set allow_decrease=true to lower it)'
                    % (current, desired))
    if kube_proxy:
        result.warn('kube-proxy runs on this node and resets nf_conntrack_max from conntrack.maxPerCore x cores when it '
                    'starts (catalog C-1); make the cluster-side change too (netmedic.k8s.kube_proxy_config)')
    for item in overridden:
        result.warn('%s sets %s = %s and is applied after %s at boot: the persisted fix would be undone'
                    % (item['path'], conntrack.MAX_KEY, item['value'], p['persist_file']))
    if not p['persist'] and persisted is not None and persisted != target:
        result.warn('%s still sets %s at boot' % (p['persist_file'], persisted))

    if module.check_mode or not result.changed:
        result.exit()

    # 4. Apply: kernel first, then the file; undo the kernel value if the file cannot be written.
    try:
        if target != current:
            sysctl.write_value(conntrack.MAX_KEY, target)
    except (IOError, OSError) as e:
        result.changed = False
        result.fail('could not write %s: %s (nothing was changed)' % (sysctl.key_to_path(conntrack.MAX_KEY), e))
    if write_file:
        try:
            result.add_backup(sysctl.write_file_atomic(module, p['persist_file'], new_text), p['persist_file'])
        except (IOError, OSError) as e:
            restored = 'kernel value restored to %d' % current
            result.changed = False
            try:
                if target != current:
                    sysctl.write_value(conntrack.MAX_KEY, current)
            except (IOError, OSError) as e2:
                restored = 'kernel value is still %d (restoring %d failed: %s)' % (target, current, e2)
                result.changed = True
            result.fail('could not write %s: %s; %s' % (p['persist_file'], e, restored))

    # 5. Verify by reading back.
    now = _int_or_none(sysctl.read_value(conntrack.MAX_KEY))
    result.after['max'] = now
    result.extra['usage'] = _usage(now)
    if now != target:
        result.fail('wrote %s = %d but the kernel reports %s' % (conntrack.MAX_KEY, target, now))
    result.exit()


if __name__ == '__main__':
    main()
