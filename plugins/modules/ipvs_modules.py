#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: ipvs_modules
short_description: Load the IPVS kernel modules for kube-proxy's schedulers, now and at boot
version_added: 0.1.0
description:
  - >-
    Fixes catalog entry B(N-4): nodes (for example ACK nodes created before October 2022) lack the
    C(ip_vs_<scheduler>) module kube-proxy needs, and kube-proxy then logs C(Can't use the IPVS
    proxier ... required kernel modules are not loaded) and falls back to iptables (catalog C-2).
  - Ensures C(ip_vs) and C(ip_vs_<s>) for every scheduler in O(schedulers) are loaded
    (C(modprobe), through the shared command runner) and listed in a C(modules-load.d) file (see modules-load.d(5)) so
    systemd loads them at boot.
  - Before loading anything, every missing module is resolved with C(modprobe -n) (a dry run); if
    the kernel has no such module (for example C(ip_vs_twos) before Linux 6.2) the module fails and
    nothing is loaded or written.
  - The boot file is written atomically and a replaced file is backed up first. Names already listed in
    it are kept; nothing is ever unloaded.
  - "Files netmedic does not own (issue #10): an existing O(persist_file) without this module's header
    (a first line C(# Managed by netmedic.k8s) naming this module), like ACK's C(ack-ipvs-modules.conf), is never
    regenerated: only the missing module names are appended, every other line (comments included) is
    kept byte for byte (RV(persist_mode=edit_owned_keys))."
  - If a C(modprobe) or the file write fails, the failure lists what was loaded (modules are not
    unloaded again) and that the boot file was not changed (RV(left_changed)).
  - Run it on every node before switching kube-proxy's scheduler (C(netmedic.k8s.kube_proxy_config), catalog C-2).
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Runs only the read-only C(modprobe -n) checks; loads nothing, writes nothing, reports what it would do.
  diff_mode:
    support: full
    details: Shows the loaded IPVS modules and the boot file before and after.
  platform:
    platforms: posix
    support: full
    details: Linux nodes with loadable kernel modules, C(kmod) (C(modprobe)) and C(/proc/modules).
options:
  schedulers:
    description:
      - IPVS schedulers whose modules must be loaded, a non-empty list.
      - "Valid: V(rr), V(wrr), V(lc), V(wlc), V(lblc), V(lblcr), V(dh), V(sh), V(sed), V(nq) and, on newer
        kernels, V(fo), V(ovf), V(mh), V(twos). Anything else fails before any change."
    type: list
    elements: str
    default: [rr]
  persist:
    description:
      - Also list the modules in O(persist_file) so they are loaded at boot.
    type: bool
    default: true
  persist_file:
    description:
      - The C(modules-load.d) file, an absolute path ending in C(.conf) (systemd ignores other names).
      - A file this module wrote (or a new one) is generated whole; any other file only gets the missing names appended.
      - A file outside the C(modules-load.d) directories (and C(/etc/modules)) is written, with a warning that
        it does not apply after a reboot.
    type: path
    default: /etc/modules-load.d/netmedic-ipvs.conf
requirements:
  - modprobe (Debian package kmod) on the managed node
seealso:
  - module: netmedic.k8s.kube_proxy_config
  - module: netmedic.k8s.node_network_facts
  - name: Catalog N-4 and C-2
    description: docs/catalog.md in the collection.
    link: https://example.invalid/netmedic/k8s/docs/catalog.md
notes:
  - Run as root on each node.
"""

EXAMPLES = r"""
- name: Make sure the least-connection scheduler is available on every node (before kube-proxy uses it)
  netmedic.k8s.ipvs_modules:
    schedulers: [rr, lc]

- name: ACK's file name, preview only
  netmedic.k8s.ipvs_modules:
    schedulers: [wrr]
    persist_file: /etc/modules-load.d/ack-ipvs-modules.conf
  check_mode: true
  diff: true
"""

RETURN = r"""
modules:
  description: The kernel modules this run ensures, in load order (C(ip_vs) first).
  returned: always
  type: list
  elements: str
  sample: [ip_vs, ip_vs_rr, ip_vs_lc]
loaded:
  description: Modules that were (in check mode, would be) loaded by this run.
  returned: always
  type: list
  elements: str
  sample: [ip_vs_lc]
before:
  description: State read before any change.
  returned: always
  type: dict
  contains:
    modules_loaded:
      description: IPVS modules in C(/proc/modules).
      type: list
      elements: str
      returned: always
    modules_builtin:
      description: IPVS modules built into the kernel.
      type: list
      elements: str
      returned: always
    persisted:
      description: Module names listed in O(persist_file).
      type: list
      elements: str
      returned: always
  sample: {"modules_loaded": ["ip_vs", "ip_vs_rr"], "modules_builtin": [], "persisted": []}
after:
  description: The same after the change (in check mode, what would result).
  returned: always
  type: dict
  sample: {"modules_loaded": ["ip_vs", "ip_vs_lc", "ip_vs_rr"], "modules_builtin": [], "persisted": ["ip_vs", "ip_vs_rr", "ip_vs_lc"]}
persist_mode:
  description:
    - How O(persist_file) is (or would be) written - V(create), V(owned) (this module's file, generated
      whole), V(edit_owned_keys) (someone else's file, missing names appended). Null with O(persist=false).
  returned: always
  type: str
  sample: create
left_changed:
  description: After a failed C(modprobe) or file write, the modules that stay loaded.
  returned: failure after a change was started
  type: list
  elements: str
  sample: ["ip_vs = loaded (cannot be undone)"]
rolled_back:
  description: After a failed step, what was undone.
  returned: failure after a change was started
  type: list
  elements: str
  sample: []
persist_file:
  description: The boot file (written or not).
  returned: always
  type: str
  sample: /etc/modules-load.d/netmedic-ipvs.conf
backups:
  description: Files replaced by this run and where their previous content was kept.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/etc/modules-load.d/netmedic-ipvs.conf.1234.2026-11-25@10:00:00~", "of": "/etc/modules-load.d/netmedic-ipvs.conf"}]
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["N-4"]
"""

import os

from ansible_collections.netmedic.k8s.plugins.module_utils import ipvs, kmod
from ansible_collections.netmedic.k8s.plugins.module_utils.node import files as node_files
from ansible_collections.netmedic.k8s.plugins.module_utils.node import settings
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import Runner


def _state(builtin, listed):
    loaded = kmod.loaded_names(node_files.read_text(kmod.PROC_MODULES))
    return {
        'modules_loaded': ipvs.ipvs_module_names(loaded or []),
        'modules_builtin': ipvs.ipvs_module_names(builtin),
        'persisted': listed,
    }, loaded


def _are(names):
    return '%s %s' % (', '.join(names), 'is' if len(names) == 1 else 'are')


class IpvsModules(settings.SettingModule):
    catalog = ['N-4']
    options = dict(
        schedulers=dict(type='list', elements='str', default=['rr']),
        **settings.persist_options('/etc/modules-load.d/netmedic-ipvs.conf')
    )
    boot_files = [('persist_file', '.conf', 'systemd-modules-load')]
    refusals = (ipvs.SchedulerError,)

    def check_setting(self):
        self.wanted = ipvs.validate_schedulers(self.params['schedulers'])

    def read(self):
        wanted = self.wanted
        builtin_text = node_files.read_text(kmod.builtin_path(os.uname()[2]))
        self.builtin = builtin = ipvs.parse_modules_builtin(builtin_text) if builtin_text is not None else []
        self.file_text = self.read_boot_file('persist_file')
        self.listed = kmod.parse_modules_load(self.file_text)
        self.before, loaded = _state(builtin, self.listed)
        before = self.before
        if loaded is None:
            missing = kmod.plan_load(wanted, [], builtin)
            if missing:
                self.refuse('%s does not exist: this kernel has no loadable module support and %s not built in; IPVS cannot '
                            'be enabled on this node' % (kmod.PROC_MODULES, _are(missing)), before=before)
            loaded = []
        self.to_load = to_load = kmod.plan_load(wanted, loaded, builtin)
        # Every module to load must exist before anything is loaded (read-only, also in check mode).
        self.runner = runner = Runner(self.module)
        if to_load:
            if not runner.has('modprobe'):
                self.refuse('modprobe (kmod) is not installed; cannot load %s' % ', '.join(to_load), before=before)
            absent = []
            for name in to_load:
                ok, reason = kmod.probe_exists(runner, name)
                if not ok:
                    absent.append('%s (%s)' % (name, reason))
            if absent:
                self.refuse('the kernel (%s) has no module %s; nothing was loaded or written'
                            % (os.uname()[2], '; '.join(absent)), before=before)

    def plan(self):
        self.new_text, self.file_mode = settings.plan_modules_load_file(self.file_text, self.wanted, 'ipvs_modules', 'N-4')
        self.write_file = self.params['persist'] and self.file_text != self.new_text

    def report(self):
        p, result, before = self.params, self.result, self.before
        result.before = before
        result.after = {
            'modules_loaded': sorted(set(before['modules_loaded']) | set(self.to_load)),
            'modules_builtin': before['modules_builtin'],
            'persisted': kmod.parse_modules_load(self.new_text) if p['persist'] else self.listed,
        }
        result.add_diff('\n'.join(before['modules_loaded']), '\n'.join(result.after['modules_loaded']), 'loaded IPVS modules')
        if self.write_file:
            result.add_diff(self.file_text or '', self.new_text, p['persist_file'])
        self.warn_boot_order('persist_file')
        result.extra.update({'modules': self.wanted, 'loaded': self.to_load, 'persist_file': p['persist_file'],
                             'persist_mode': self.file_mode if p['persist'] else None})

    def transaction(self):
        """Load in order (ip_vs first), then write the boot file (backed up). Nothing is ever
        unloaded: a failure reports the modules loaded so far as still changed."""
        runner = self.runner
        kernel = [settings.KernelStep(name, 'not loaded', 'loaded', (lambda n=name: kmod.load(runner, n)), None,
                                      doing='modprobe %s' % name) for name in self.to_load]
        files = [settings.FileStep(self.params['persist_file'], self.file_text, self.new_text)] if self.write_file else []
        return kernel, files, []

    def verify(self):
        p, result = self.params, self.result
        listed = kmod.parse_modules_load(node_files.read_text(p['persist_file'])) if p['persist'] else self.listed
        result.after, loaded = _state(self.builtin, listed)
        still = kmod.plan_load(self.wanted, loaded or [], self.builtin)
        if still:
            result.fail('modprobe reported success but %s not in %s' % (_are(still), kmod.PROC_MODULES))


def main():
    IpvsModules().run()


if __name__ == '__main__':
    main()
