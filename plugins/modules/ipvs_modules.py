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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netmedic.k8s.plugins.module_utils import ipvs, kmod
from ansible_collections.netmedic.k8s.plugins.module_utils.node import files as node_files
from ansible_collections.netmedic.k8s.plugins.module_utils.node import settings
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import Runner
from ansible_collections.netmedic.k8s.plugins.module_utils.result import Result


def _state(builtin, listed):
    loaded = kmod.loaded_names(node_files.read_text(kmod.PROC_MODULES))
    return {
        'modules_loaded': ipvs.ipvs_module_names(loaded or []),
        'modules_builtin': ipvs.ipvs_module_names(builtin),
        'persisted': listed,
    }, loaded


def main():
    module = AnsibleModule(
        argument_spec=dict(
            schedulers=dict(type='list', elements='str', default=['rr']),
            persist=dict(type='bool', default=True),
            persist_file=dict(type='path', default='/etc/modules-load.d/netmedic-ipvs.conf'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = Result(module, ['N-4'])

    # 1. Validate input before reading or touching anything.
    try:
        wanted = ipvs.validate_schedulers(p['schedulers'])
        if p['persist']:
            settings.check_name(p['persist_file'], '.conf', 'systemd-modules-load')
    except (ipvs.SchedulerError, settings.PersistError) as e:
        module.fail_json(msg='%s (nothing was changed)' % e, changed=False)

    # 2. Read the current state.
    builtin_text = node_files.read_text(kmod.builtin_path(os.uname()[2]))
    builtin = ipvs.parse_modules_builtin(builtin_text) if builtin_text is not None else []
    try:
        file_text = settings.read_file(p['persist_file']) if p['persist'] else None
    except settings.PersistError as e:
        module.fail_json(msg=str(e), changed=False)
    listed = kmod.parse_modules_load(file_text)
    before, loaded = _state(builtin, listed)
    if loaded is None:
        missing = kmod.plan_load(wanted, [], builtin)
        if missing:
            module.fail_json(msg='%s does not exist: this kernel has no loadable module support and %s %s not built in; '
                                 'IPVS cannot be enabled on this node (nothing was changed)'
                                 % (kmod.PROC_MODULES, ', '.join(missing), 'is' if len(missing) == 1 else 'are'),
                             changed=False, before=before)
        loaded = []
    to_load = kmod.plan_load(wanted, loaded, builtin)

    # Every module to load must exist before anything is loaded (read-only, also in check mode).
    runner = Runner(module)
    if to_load:
        if not runner.has('modprobe'):
            module.fail_json(msg='modprobe (kmod) is not installed; cannot load %s (nothing was changed)' % ', '.join(to_load),
                             changed=False, before=before)
        absent = []
        for name in to_load:
            ok, reason = kmod.probe_exists(runner, name)
            if not ok:
                absent.append('%s (%s)' % (name, reason))
        if absent:
            module.fail_json(msg='the kernel (%s) has no module %s; nothing was loaded or written'
                                 % (os.uname()[2], '; '.join(absent)), changed=False, before=before)

    # 3. Plan (pure).
    new_text, file_mode = settings.plan_modules_load_file(file_text, wanted, 'ipvs_modules', 'N-4')
    names = kmod.parse_modules_load(new_text)
    write_file = p['persist'] and file_text != new_text
    result.before = before
    result.after = {
        'modules_loaded': sorted(set(before['modules_loaded']) | set(to_load)),
        'modules_builtin': before['modules_builtin'],
        'persisted': names if p['persist'] else listed,
    }
    result.add_diff('\n'.join(before['modules_loaded']), '\n'.join(result.after['modules_loaded']), 'loaded IPVS modules')
    if write_file:
        result.add_diff(file_text or '', new_text, p['persist_file'])
    warning = settings.boot_warning(p['persist_file'], kmod.MODULES_LOAD_DIRS, [kmod.MODULES_FILE],
                                    'systemd-modules-load') if p['persist'] else None
    if warning:
        result.warn(warning)
    result.extra.update({'modules': wanted, 'loaded': to_load, 'persist_file': p['persist_file'],
                         'persist_mode': file_mode if p['persist'] else None})

    if module.check_mode or not result.changed:
        result.exit()

    # 4. Apply: load in order (ip_vs first), then write the boot file (backed up). Nothing is
    # ever unloaded: a failure reports the modules loaded so far as still changed.
    kernel = [settings.KernelStep(name, 'not loaded', 'loaded', (lambda n=name: kmod.load(runner, n)), None,
                                  doing='modprobe %s' % name) for name in to_load]
    files = [settings.FileStep(p['persist_file'], file_text, new_text)] if write_file else []
    settings.commit(result, kernel, files, settings.Files(module))

    # 5. Verify by reading back.
    after, loaded = _state(builtin, kmod.parse_modules_load(node_files.read_text(p['persist_file'])) if p['persist'] else listed)
    result.after = after
    still = kmod.plan_load(wanted, loaded or [], builtin)
    if still:
        result.fail('modprobe reported success but %s %s not in %s' % (', '.join(still), 'is' if len(still) == 1 else 'are', kmod.PROC_MODULES))
    result.exit()


if __name__ == '__main__':
    main()
