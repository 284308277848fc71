#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: ipvs_timeouts
short_description: Set IPVS connection timeouts (ipvsadm --set) now and at every boot
version_added: 0.1.0
description:
  - >-
    Fixes catalog entry B(N-5): IPVS keeps UDP sessions 300 s by default, so after a UDP backend
    (CoreDNS) goes away packets keep going to it for up to five minutes (DNS timeouts during CoreDNS
    upgrades or node restarts). The documented fix for Kubernetes 1.16 and older is
    C(ipvsadm --set 900 120 10) on every node.
  - Reads C(ipvsadm -L --timeout), sets the values with C(ipvsadm --set tcp tcpfin udp) (a 0 keeps that
    value, as C(ipvsadm) does), reads them again and returns both readings.
  - C(ipvsadm --set) does not survive a reboot. With O(persist=true) the module installs and enables a
    systemd oneshot unit (O(unit_file)) that runs C(modprobe ip_vs) and the same C(ipvsadm --set) after
    C(systemd-modules-load.service) at every boot. A unit was chosen over a C(modules-load.d) entry
    because the timeouts are not module parameters - they can only be set once C(ip_vs) is loaded.
    The unit file is written atomically and a replaced file is backed up first. An existing O(unit_file)
    that this module did not write (no first line C(# Managed by netmedic.k8s) naming this module) is
    refused before anything changes (issue #10): a unit has no single setting that could be edited in place.
  - If writing the unit, C(systemctl daemon-reload) or C(systemctl enable) fails after the timeouts were
    set, the unit is put back (or removed) and the previous timeouts are restored; the failure says what
    was restored and what is still changed (RV(rolled_back), RV(left_changed)).
  - Requires C(ip_vs) to be loaded already (C(/proc/net/ip_vs)); it does not load it, because
    C(ipvsadm) would do that implicitly even in check mode. Use C(netmedic.k8s.ipvs_modules) first.
  - With O(cluster_version), warns when that version calls for the cluster-side fix instead
    (kube-proxy C(ipvs.udpTimeout), Kubernetes 1.18 and later, catalog C-3; C(netmedic.k8s.kube_proxy_config)).
  - Not advised when workloads themselves use UDP (long-lived UDP flows lose their IPVS session after O(udp) seconds idle).
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Runs only C(ipvsadm -L --timeout) and C(systemctl is-enabled); reports the values and unit it would write.
  diff_mode:
    support: full
    details: Shows the timeouts and the unit file before and after.
  platform:
    platforms: posix
    support: full
    details: Linux nodes with C(ip_vs) loaded and C(ipvsadm); systemd for O(persist=true).
options:
  tcp:
    description: TCP session timeout in seconds; V(0) leaves it as it is.
    type: int
    default: 0
  tcpfin:
    description: Timeout for TCP sessions after a FIN, in seconds; V(0) leaves it as it is.
    type: int
    default: 0
  udp:
    description:
      - UDP session timeout in seconds; V(0) leaves it as it is. The catalog's fix uses V(10).
      - At least one of O(tcp), O(tcpfin), O(udp) must be above 0.
    type: int
    default: 0
  cluster_version:
    description:
      - The cluster's Kubernetes version (for example V(1.16.9) or V(v1.24.9-gke.3200)). When given and
        it is 1.18 or later, the module warns that kube-proxy's C(ipvs.udpTimeout) (catalog C-3) is the
        fix for that version (kube-proxy in IPVS mode also rewrites these values when it starts).
    type: str
  persist:
    description: Install and enable O(unit_file) so the values are applied again at every boot.
    type: bool
    default: true
  unit_file:
    description:
      - The systemd unit this module owns, an absolute path ending in C(.service).
      - An existing file without this module's header is refused (nothing is changed).
    type: path
    default: /etc/systemd/system/netmedic-ipvs-timeouts.service
requirements:
  - ipvsadm (Debian package ipvsadm) on the managed node
  - modprobe (Debian package kmod) on the managed node, for O(persist=true) (the boot unit runs it)
  - systemctl (Debian package systemd) on the managed node, for O(persist=true)
seealso:
  - module: netmedic.k8s.ipvs_modules
  - module: netmedic.k8s.kube_proxy_config
  - name: Catalog N-5, C-3 and W-4
    description: docs/catalog.md in the collection.
    link: https://example.invalid/netmedic/k8s/docs/catalog.md
notes:
  - Run as root on each node.
"""

EXAMPLES = r"""
- name: The documented fix for Kubernetes <= 1.16 (900 s TCP, 120 s TCP FIN, 10 s UDP), now and at boot
  netmedic.k8s.ipvs_timeouts:
    tcp: 900
    tcpfin: 120
    udp: 10
    cluster_version: "{{ kubernetes_version }}"

- name: Only shorten the UDP timeout, runtime only
  netmedic.k8s.ipvs_timeouts:
    udp: 10
    persist: false
"""

RETURN = r"""
before:
  description: State read before any change.
  returned: always
  type: dict
  contains:
    tcp:
      description: TCP timeout, seconds.
      type: int
      returned: always
    tcpfin:
      description: TCP FIN timeout, seconds.
      type: int
      returned: always
    udp:
      description: UDP timeout, seconds.
      type: int
      returned: always
    unit_enabled:
      description: Whether O(unit_file) is enabled (C(systemctl is-enabled)); null when not checked (O(persist=false)).
      type: bool
      returned: always
  sample: {"tcp": 900, "tcpfin": 120, "udp": 300, "unit_enabled": false}
after:
  description: The same after the change (re-read from the kernel; in check mode, what would result).
  returned: always
  type: dict
  sample: {"tcp": 900, "tcpfin": 120, "udp": 10, "unit_enabled": true}
ipvsadm_before:
  description: The C(ipvsadm -L --timeout) line read before the change.
  returned: always
  type: str
  sample: "Timeout (tcp tcpfin udp): 900 120 300"
ipvsadm_after:
  description: The same line read after the change (in check mode, the line before).
  returned: always
  type: str
  sample: "Timeout (tcp tcpfin udp): 900 120 10"
command:
  description: The C(ipvsadm --set) argument list that was (or would be) run, and that the unit runs at boot.
  returned: always
  type: list
  elements: str
  sample: [ipvsadm, --set, "900", "120", "10"]
recommended_fix:
  description: Catalog ID the given O(cluster_version) calls for (V(N-5) up to 1.16, V(C-3) from 1.18), or null.
  returned: always
  type: str
  sample: N-5
rolled_back:
  description: After a failed step, what was undone (unit put back or removed, timeouts restored).
  returned: failure after a change was started
  type: list
  elements: str
  sample: ["/etc/systemd/system/netmedic-ipvs-timeouts.service removed", "kernel value restored: ipvs timeouts (tcp tcpfin udp) = 900 120 300"]
left_changed:
  description: After a failed step, what could not be undone.
  returned: failure after a change was started
  type: list
  elements: str
  sample: []
unit_file:
  description: The unit file (written or not).
  returned: always
  type: str
  sample: /etc/systemd/system/netmedic-ipvs-timeouts.service
backups:
  description: Files replaced by this run and where their previous content was kept.
  returned: always
  type: list
  elements: dict
  sample: []
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["N-5"]
"""

import os

from ansible_collections.netmedic.k8s.plugins.module_utils import ipvs, versions
from ansible_collections.netmedic.k8s.plugins.module_utils.node import settings
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandError, Runner


def _read_timeouts(runner):
    out = runner.run(['ipvsadm', '-L', '--timeout']).stdout
    values = ipvs.parse_timeout(out)
    if values is None:
        raise CommandError(['ipvsadm', '-L', '--timeout'], 0, out, '', msg='cannot parse `ipvsadm -L --timeout` output: %r' % out)
    line = next(ln for ln in out.splitlines() if ln.startswith('Timeout')).strip()
    return values, line


def _enabled(runner, unit):
    result = runner.run(['systemctl', 'is-enabled', unit], check=False)
    return result.rc == 0 and result.stdout.strip() == 'enabled'


def _triple(values):
    return '%(tcp)d %(tcpfin)d %(udp)d' % values


class IpvsTimeouts(settings.SettingModule):
    catalog = ['N-5']
    options = dict(
        tcp=dict(type='int', default=0),
        tcpfin=dict(type='int', default=0),
        udp=dict(type='int', default=0),
        cluster_version=dict(type='str'),
        **settings.persist_options('/etc/systemd/system/netmedic-ipvs-timeouts.service', 'unit_file')
    )
    boot_files = [('unit_file', '.service', 'systemd')]
    refusals = (ipvs.TimeoutError_,)

    def check_setting(self):
        p = self.params
        self.wanted = ipvs.validate_timeouts(p)
        self.version = None
        if p['cluster_version'] is not None:
            try:
                self.version = versions.parse(p['cluster_version'])
            except versions.VersionError as e:
                self.refuse('cluster_version: %s' % e)
        self.unit = os.path.basename(p['unit_file'])

    def read(self):
        p = self.params
        self.runner = runner = Runner(self.module)
        if not os.path.exists(ipvs.PROC_IP_VS):
            self.refuse('%s does not exist: ip_vs is not loaded on this node; load it first (netmedic.k8s.ipvs_modules) - '
                        'nothing was changed' % ipvs.PROC_IP_VS)
        for tool in ['ipvsadm'] + (['systemctl', 'modprobe'] if p['persist'] else []):
            if not runner.has(tool):
                self.refuse('%s is not installed on this node%s'
                            % (tool, ' (persist=true needs systemd and kmod)' if tool != 'ipvsadm' else ''))
        try:
            self.current, self.line_before = _read_timeouts(runner)
        except CommandError as e:
            self.refuse(str(e), error=e.to_dict())
        self.unit_text = self.read_boot_file('unit_file')
        self.enabled = _enabled(runner, self.unit) if p['persist'] else None

    def plan(self):
        """A unit file netmedic did not write is refused, never replaced."""
        p = self.params
        self.target = ipvs.plan_timeouts(self.current, self.wanted)
        self.command = ipvs.set_args(self.wanted)
        self.new_unit = None
        if p['persist']:
            self.new_unit, _mode = settings.plan_unit_file(
                self.unit_text, ipvs.render_timeout_unit(self.wanted, self.runner.which('ipvsadm'), self.runner.which('modprobe')),
                'ipvs_timeouts', p['unit_file'])
        self.write_unit = p['persist'] and self.unit_text != self.new_unit
        self.enable = p['persist'] and not self.enabled

    def report(self):
        p, result, unit, version = self.params, self.result, self.unit, self.version
        advice = ipvs.udp_timeout_advice(version)
        result.before = dict(self.current, unit_enabled=self.enabled)
        result.after = dict(self.target, unit_enabled=True if p['persist'] else None)
        result.add_diff(self.line_before, 'Timeout (tcp tcpfin udp): %s' % _triple(self.target), 'ipvsadm -L --timeout')
        if self.write_unit:
            result.add_diff(self.unit_text or '', self.new_unit, p['unit_file'])
        if self.enable:
            result.add_diff('%s: %s' % (unit, 'enabled' if self.enabled else 'not enabled'), '%s: enabled' % unit,
                            'systemctl is-enabled')
        result.extra.update({
            'ipvsadm_before': self.line_before,
            'ipvsadm_after': self.line_before,
            'command': self.command,
            'recommended_fix': advice,
            'unit_file': p['unit_file'],
        })
        if advice == 'C-3':
            result.warn('Kubernetes %s: use kube-proxy ipvs.udpTimeout (catalog C-3, netmedic.k8s.kube_proxy_config) instead; '
                        'kube-proxy in IPVS mode sets these timeouts itself when it starts' % version)
        elif version is not None and advice is None:
            result.warn('Kubernetes %s: the catalog documents ipvsadm --set for <= 1.16 and kube-proxy ipvs.udpTimeout for '
                        '>= 1.18' % version)

    def transaction(self):
        """Kernel first, then the unit (backed up), daemon-reload and enable; undone on failure."""
        runner, command, current, unit = self.runner, self.command, self.current, self.unit
        kernel = []
        if self.target != current:
            kernel.append(settings.KernelStep('ipvs timeouts (tcp tcpfin udp)', _triple(current), _triple(self.target),
                                              lambda: runner.run(command), lambda: runner.run(ipvs.set_args(current)),
                                              doing=' '.join(command)))
        files = [settings.FileStep(self.params['unit_file'], self.unit_text, self.new_unit)] if self.write_unit else []
        followups = []
        if self.write_unit:
            followups.append(('systemctl daemon-reload', lambda: runner.run(['systemctl', 'daemon-reload'])))
        if self.enable:
            followups.append(('systemctl enable %s' % unit, lambda: runner.run(['systemctl', 'enable', unit])))
        return kernel, files, followups

    def verify(self):
        result, runner, persist = self.result, self.runner, self.params['persist']
        try:
            now, line_after = _read_timeouts(runner)
        except CommandError as e:
            result.fail('set the timeouts but cannot read them back: %s' % e)
        result.after = dict(now, unit_enabled=_enabled(runner, self.unit) if persist else None)
        result.extra['ipvsadm_after'] = line_after
        if now != self.target:
            result.fail('ran %s but ipvsadm reports %s' % (' '.join(self.command), line_after))
        if persist and not result.after['unit_enabled']:
            result.fail('systemctl enable %s ran but the unit is not enabled' % self.unit)


def main():
    IpvsTimeouts().run()


if __name__ == '__main__':
    main()
