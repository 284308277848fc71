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
  - Persists to a drop-in file under C(/etc/sysctl.d/) (written atomically, the replaced file backed
    up first). Files that are applied after the drop-in at boot and set another value are reported,
    because they would undo the fix.
  - "Files netmedic does not own (issue #10): a O(persist_file) that exists without this module's
    header (a first line C(# Managed by netmedic.k8s) naming this module), such as C(/etc/sysctl.conf) or another
    tool's drop-in, is never replaced: only the lines that set C(net.netfilter.nf_conntrack_max) get the
    new value (the key is appended when the file does not set it), every other line is kept byte for
    byte, and the previous file is backed up (RV(persist_mode=edit_owned_keys)). A symbolic link is
    followed and stays a link."
  - >-
    The drop-in only applies at boot if C(nf_conntrack) is loaded before C(systemd-sysctl) runs
    (catalog N-2). When C(nf_conntrack) is a loadable module (listed in C(/proc/modules)), O(persist=true)
    also lists it in O(module_load_file) so C(systemd-modules-load) loads it first; a built-in
    C(nf_conntrack) needs no such file and none is written (RV(module_load.nf_conntrack=built_in)).
  - "Kernel value first, then the files: if a file cannot be written, the files already written are
    put back and the kernel value is restored; the failure says what was restored and what is still
    changed (RV(rolled_back), RV(left_changed))."
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
    details: Shows the kernel value, the drop-in file and the C(modules-load.d) file before and after.
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
      - The sysctl drop-in, an absolute path ending in C(.conf).
      - A file this module wrote (it starts with its header), or a new one, is generated whole; any other
        file is edited in place (only C(net.netfilter.nf_conntrack_max)). A replaced file is backed up next
        to it (Ansible's C(backup_local) naming) and the backup path returned in RV(backups).
      - A file outside the directories C(systemd-sysctl) reads at boot (and C(/etc/sysctl.conf)) is written,
        with a warning that it does not apply after a reboot.
    type: path
    default: /etc/sysctl.d/90-netmedic-conntrack.conf
  module_load_file:
    description:
      - The C(modules-load.d) file (see modules-load.d(5)) that loads C(nf_conntrack) at boot, an absolute path ending in C(.conf).
      - Written only with O(persist=true) and only when C(nf_conntrack) is a loadable module. The same
        ownership rules as O(persist_file) apply (a file without this module's header only gets
        C(nf_conntrack) appended when it does not list it).
    type: path
    default: /etc/modules-load.d/netmedic-nf_conntrack.conf
seealso:
  - module: netmedic.k8s.node_network_facts
  - name: Catalog N-2 and C-1
    description: docs/catalog.md in the collection.
    link: https://example.invalid/netmedic/k8s/docs/catalog.md
notes:
  - Run as root on each node.
  - Inside a network namespace other than the host's (a container, a node that is a namespace) the kernel makes
    C(nf_conntrack_max) read-only; a run that would change it there fails before anything, in check mode too.
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

- name: Keep the setting in /etc/sysctl.conf (only the nf_conntrack_max line is edited, the file is backed up)
  netmedic.k8s.conntrack_limit:
    max: auto
    persist_file: /etc/sysctl.conf

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
persist_mode:
  description:
    - How O(persist_file) is (or would be) written - V(create) (new file), V(owned) (this module's file,
      generated whole), V(edit_owned_keys) (someone else's file, only the conntrack key edited in place).
    - Null with O(persist=false).
  returned: always
  type: str
  sample: create
module_load:
  description: Whether C(nf_conntrack) must be loaded at boot for the drop-in to apply, and the file that does it.
  returned: always
  type: dict
  contains:
    nf_conntrack:
      description: V(module) (loadable, listed in C(/proc/modules)) or V(built_in).
      type: str
      returned: always
    file:
      description: O(module_load_file).
      type: str
      returned: always
    before:
      description: Module names the file listed before; null when no file is needed or O(persist=false).
      type: list
      elements: str
      returned: always
    after:
      description: Module names it lists after the change (in check mode, would list).
      type: list
      elements: str
      returned: always
  sample: {"nf_conntrack": "module", "file": "/etc/modules-load.d/netmedic-nf_conntrack.conf", "before": [], "after": ["nf_conntrack"]}
rolled_back:
  description: After a failed write, what was undone (files put back, kernel values restored).
  returned: failure after a change was started
  type: list
  elements: str
  sample: ["kernel value restored: net.netfilter.nf_conntrack_max = 65536"]
left_changed:
  description: After a failed write, what could not be undone.
  returned: failure after a change was started
  type: list
  elements: str
  sample: []
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

from ansible_collections.netmedic.k8s.plugins.module_utils import conntrack, kmod
from ansible_collections.netmedic.k8s.plugins.module_utils.node import files as node_files
from ansible_collections.netmedic.k8s.plugins.module_utils.node import settings, sysctl

MEMINFO = '/proc/meminfo'
NF_CONNTRACK = 'nf_conntrack'
KEY = conntrack.MAX_KEY


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _usage(maximum):
    count = _int_or_none(sysctl.read_value(conntrack.COUNT_KEY))
    return {'count': count, 'max': maximum, 'percent': conntrack.usage_percent(count, maximum)}


class ConntrackLimit(settings.SettingModule):
    catalog = ['N-2']
    options = dict(
        max=dict(type='raw', required=True),
        allow_decrease=dict(type='bool', default=False),
        module_load_file=dict(type='path', default='/etc/modules-load.d/netmedic-nf_conntrack.conf'),
        **settings.persist_options('/etc/sysctl.d/90-netmedic-conntrack.conf')
    )
    boot_files = [('persist_file', '.conf', 'systemd-sysctl'), ('module_load_file', '.conf', 'systemd-modules-load')]
    refusals = (conntrack.LimitError,)

    def check_setting(self):
        self.requested = conntrack.parse_max(self.params['max'])

    def read(self):
        p = self.params
        self.current = _int_or_none(sysctl.read_value(KEY))
        if self.current is None:
            self.refuse('%s does not exist: the nf_conntrack kernel module is not loaded on this node, so there is no '
                        'table to size' % sysctl.key_to_path(KEY))
        if self.requested == 'auto':
            meminfo = conntrack.parse_meminfo(node_files.read_text(MEMINFO) or '')
            self.desired = conntrack.auto_max(meminfo.get('MemTotal', 0))
        else:
            self.desired = self.requested
        self.file_text = text = settings.read_file(p['persist_file'])
        # nf_conntrack_max exists, so nf_conntrack is in the kernel: listed in /proc/modules
        # when it is a loadable module, otherwise built in (also without module support).
        loaded = kmod.loaded_names(settings.read_file(kmod.PROC_MODULES))
        self.nf_kind = 'module' if loaded and NF_CONNTRACK in loaded else 'built_in'
        self.load_text = self.read_boot_file('module_load_file') if self.nf_kind == 'module' else None
        self.persisted_value = _int_or_none(sysctl.parse_conf(text or '').get(KEY))

    def plan(self):
        p = self.params
        self.action, self.target = conntrack.plan_limit(self.current, self.desired, p['allow_decrease'])
        self.new_text, self.file_mode = settings.plan_sysctl_file(self.file_text, [(KEY, self.target)], 'conntrack_limit', 'N-2')
        refused = self.action == 'refuse_lower'
        if self.target != self.current and not sysctl.writable(KEY):
            self.refuse('%s is read-only on this node: the kernel lets only the host\'s initial network namespace set it '
                        '(this node is a container or a network namespace of its own); set it on the host'
                        % sysctl.key_to_path(KEY))
        self.write_file = p['persist'] and not refused and self.file_text != self.new_text
        # N-2: systemd-sysctl applies the drop-in at boot only to keys that exist then, so a
        # loadable nf_conntrack must be loaded before it (systemd-modules-load runs first).
        self.new_load = None
        if p['persist'] and self.nf_kind == 'module':
            self.new_load, _mode = settings.plan_modules_load_file(self.load_text, [NF_CONNTRACK], 'conntrack_limit', 'N-2')
        self.write_load = self.new_load is not None and not refused and self.load_text != self.new_load

    def report(self):
        p, result, current, target = self.params, self.result, self.current, self.target
        result.before = {'max': current, 'persisted': self.persisted_value}
        result.after = {'max': target, 'persisted': target if self.write_file else self.persisted_value}
        result.add_diff('%s = %s' % (KEY, current), '%s = %s' % (KEY, target), 'kernel %s' % KEY)
        if self.write_file:
            result.add_diff(self.file_text or '', self.new_text, p['persist_file'])
        if self.write_load:
            result.add_diff(self.load_text or '', self.new_load, p['module_load_file'])

        kube_proxy = conntrack.processes_named(('kube-proxy',))
        overridden = sysctl.overriders(KEY, p['persist_file'], target) if p['persist'] else []
        listed_before = kmod.parse_modules_load(self.load_text) if self.new_load is not None else None
        result.extra.update({
            'decision': self.action,
            'desired': self.desired,
            'persist_file': p['persist_file'],
            'persist_mode': self.file_mode if p['persist'] else None,
            'module_load': {'nf_conntrack': self.nf_kind, 'file': p['module_load_file'], 'before': listed_before,
                            'after': kmod.parse_modules_load(self.new_load) if self.write_load else listed_before},
            'overridden_by': overridden,
            'kube_proxy_running': bool(kube_proxy),
            'usage': _usage(current),
        })
        if self.action == 'refuse_lower':
            result.warn('nf_conntrack_max is %d, higher than the requested %d; left unchanged (set allow_decrease=true to '
                        'lower it)' % (current, self.desired))
        if kube_proxy:
            result.warn('kube-proxy runs on this node and resets nf_conntrack_max from conntrack.maxPerCore x cores (or conntrack.min) when it '
                        'starts (catalog C-1); make the cluster-side change too (netmedic.k8s.kube_proxy_config)')
        self.warn_overridden(KEY, overridden)
        self.warn_boot_order('persist_file')
        if self.new_load is not None:
            self.warn_boot_order('module_load_file')
        if not p['persist'] and self.persisted_value is not None and self.persisted_value != target:
            result.warn('%s still sets %s at boot' % (p['persist_file'], self.persisted_value))

    def transaction(self):
        """Kernel first, then the files (backed up); undone on failure."""
        current, target = self.current, self.target
        kernel = []
        if target != current:
            kernel.append(settings.KernelStep(KEY, current, target, lambda: sysctl.write_value(KEY, target),
                                              lambda: sysctl.write_value(KEY, current)))
        files = []
        if self.write_file:
            files.append(settings.FileStep(self.params['persist_file'], self.file_text, self.new_text))
        if self.write_load:
            files.append(settings.FileStep(self.params['module_load_file'], self.load_text, self.new_load))
        return kernel, files, []

    def verify(self):
        result = self.result
        now = _int_or_none(sysctl.read_value(KEY))
        result.after['max'] = now
        result.extra['usage'] = _usage(now)
        if now != self.target:
            result.fail('wrote %s = %d but the kernel reports %s' % (KEY, self.target, now))
        if self.write_load:
            listed = kmod.parse_modules_load(node_files.read_text(self.params['module_load_file']))
            result.extra['module_load']['after'] = listed
            if NF_CONNTRACK not in listed:
                result.fail('wrote %s but it does not list %s' % (self.params['module_load_file'], NF_CONNTRACK))


def main():
    ConntrackLimit().run()


if __name__ == '__main__':
    main()
