#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: cni_ipam_gc
short_description: Collect leaked host-local CNI IP allocations, safely
version_added: 0.1.0
description:
  - >-
    Fixes catalog entry B(N-1) (leaked host-local IPAM allocations: new pods stay
    C(ContainerCreating) with C(failed to allocate for range 0: no IP addresses available in range set)).
    It does what the source documents' C(cleanup.sh) and C(cleanup-ipam-dir) DaemonSet do, without
    their hazards.
  - host-local keeps one file per allocated address in C(<data_dir>/<network>/), named as the address and
    holding the container (pod sandbox) ID and the interface name. An allocation is B(leaked) when
    no sandbox or container the runtime knows has that ID.
  - The runtime is asked for sandboxes and containers together
    (containerd C(ctr -n k8s.io containers ls -q), which lists sandboxes because they are containers
    there; C(crictl pods -q) and C(crictl ps -a -q); C(docker ps -a -q --no-trunc); Docker behind
    cri-dockerd is asked through its CRI socket with C(crictl)). Containers that
    exist but are not running count as live. When the runtime cannot be asked (CLI missing, non-zero
    exit, daemon down, no answer within O(runtime_timeout), output that is not a list of IDs) the module
    fails and removes nothing - "could not list" is never "nothing runs".
  - The runtime is listed first B(without) host-local's lock, so a hung runtime fails the run (its CLI and
    every process it started are killed after O(runtime_timeout)) while pods can still be created.
    Before moving anything it is listed once more under the lock, again bounded by O(runtime_timeout);
    a container in either listing is live. Check mode lists once and never holds the lock for it.
  - IDs are compared in full (never a prefix or substring). All files of one container ID share one
    decision, so the IPv4 and IPv6 files of a dual-stack pod are kept or collected together. A file
    younger than O(grace_period) is kept and reported as young; so is every file of its container.
  - If nothing in a network belongs to a listed container while something would be collected (what an
    empty or wrong runtime listing looks like), the module refuses and changes nothing, unless
    O(allow_all=true).
  - While it reads, decides and moves it holds host-local's own lock (C(flock) on C(<network>/lock)), so the
    plugin cannot allocate or release in that directory meanwhile. C(lock) and C(last_reserved_ip.*)
    are never touched; a C(lock) that is a symbolic link, or any file system error, fails the run with the path
    named and nothing changed.
  - Leaked files are moved, never deleted, into a per-run directory under O(backup_dir) that mirrors
    their original path (C(rename) on one file system, copy + C(fsync) + unlink across file systems), with
    a C(manifest.json). A failure part-way reports what was moved and what remains.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: >-
      Queries the runtime (without host-local's lock), reads the directories under the lock (never created) and
      reports what would be moved and where; moves nothing.
  diff_mode:
    support: full
    details: Lists, per network, the allocation files that are (or would be) moved to the backup directory.
  platform:
    platforms: posix
    support: full
    details: Linux nodes using the CNI host-local IPAM plugin with containerd, CRI-O or Docker; run as root.
options:
  data_dir:
    description:
      - host-local C(dataDir) directories holding one sub-directory per network.
      - Directories that do not exist are skipped; two paths to the same directory are handled once.
      - Only sub-directories that hold what host-local writes (a regular file named as an IP address, or a
        C(last_reserved_ip.*) file) are networks; any other sub-directory (C(dpkg) when O(data_dir) is C(/var/lib)
        by mistake) is listed in RV(not_networks) and never locked, read further or written.
      - ACK Flannel after catalog N-7 keeps its allocations in C(/var/run/cni/networks).
    type: list
    elements: path
    default: [/var/lib/cni/networks, /var/run/cni/networks]
  networks:
    description:
      - Network directory names to clean, for example C(gke-pod-network) or C(cb0).
      - Empty (the default) means every network directory found in O(data_dir).
      - A named network that does not exist on the node is reported in RV(missing_networks) with a warning.
    type: list
    elements: str
    default: []
  runtime:
    description:
      - The container runtime whose sandboxes and containers own the allocations.
      - V(auto) uses the kubelet's C(--container-runtime-endpoint) (command line or C(/var/lib/kubelet/config.yaml)),
        else the runtime socket present; it fails when none, or more than one without a kubelet setting, is found.
    type: str
    choices: [auto, containerd, crio, docker]
    default: auto
  runtime_cli:
    description:
      - The CLI used to list. V(auto) is C(ctr) (then C(crictl)) for containerd, C(crictl) for CRI-O, C(docker) for Docker.
    type: str
    choices: [auto, ctr, crictl, docker]
    default: auto
  runtime_endpoint:
    description:
      - The runtime's socket (a path or C(unix://) URL). Default - the detected one, or the CLI's own default when
        O(runtime) is set explicitly.
    type: str
  namespace:
    description:
      - containerd namespace listed by C(ctr) (the kubelet's is C(k8s.io)). Ignored by the other CLIs.
    type: str
    default: k8s.io
  runtime_timeout:
    description:
      - Seconds one listing of the runtime may take, wall clock, all its commands together (C(crictl) runs two).
        The CLI is killed, with every process it started, when they are up, and the run fails with nothing changed.
      - Also passed as the CLI's own C(--timeout) to C(ctr) and C(crictl).
    type: int
    default: 30
  grace_period:
    description:
      - Seconds an allocation file must be old (by its modification time) before it may be collected.
      - containerd sets a sandbox's network up before the sandbox appears in its container list, so a
        fresh allocation can look leaked for a moment; the source's DaemonSet waits 10 minutes (C(-mmin +10)).
    type: int
    default: 600
  backup_dir:
    description:
      - Where leaked files are moved. Each run that moves something creates C(<backup_dir>/<UTC timestamp>-<pid>/)
        holding the files under their original path and a C(manifest.json).
      - Must not be inside a O(data_dir).
    type: path
    default: /var/lib/netmedic/backups/cni_ipam_gc
  backup_keep_days:
    description:
      - Retention of the backups - after the run, per-run directories in O(backup_dir) older than this many days
        are removed. V(0) keeps them by age.
      - Only directories this module made (named C(<UTC time>-<pid>) and holding its C(manifest.json)) are ever
        removed, never the newest one nor this run's; anything else in O(backup_dir) is left alone. In check mode
        RV(pruned) lists what would be removed and nothing is.
    type: int
    default: 30
  backup_keep_count:
    description:
      - Retention of the backups - keep at most this many newest per-run directories in O(backup_dir). V(0) keeps
        them by count. Applied together with O(backup_keep_days) (a directory goes when either says so).
    type: int
    default: 0
  allow_all:
    description:
      - Collect even in a network where no allocation belongs to a listed container.
      - Needed for a network whose pods are really all gone (for example a directory left over from before a
        migration); otherwise such a run is refused because an empty or wrong runtime listing looks the same.
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait for host-local's C(lock) of each network; the module fails (nothing moved) after that.
    type: int
    default: 30
seealso:
  - module: netmedic.k8s.node_network_facts
  - name: Catalog N-1 and C-8
    description: docs/catalog.md and docs/cni_ipam_gc.md in the collection.
    link: https://example.invalid/netmedic/k8s/docs/cni_ipam_gc.md
notes:
  - Run as root on each affected node. The ACK procedure cordons the node during a manual cleanup; do that with
    M(netmedic.k8s.node_drain) (C(state=cordon), then C(state=uncordon)) around this task if you follow it.
  - Permanent fixes are an upgrade (GKE 1.22.17-gke.3100, 1.23.16-gke.200, 1.24.9-gke.3200, 1.25.6-gke.200 or later;
    ACK 1.20 or later) or, on ACK Flannel, catalog N-7.
  - To restore a moved file, copy it from the run directory back to the same path (the run directory mirrors it).
"""

EXAMPLES = r"""
- name: See what would be collected on a GKE containerd node
  netmedic.k8s.cni_ipam_gc:
    networks: [gke-pod-network]
  check_mode: true
  diff: true

- name: Collect leaked allocations (runtime detected, 10 minutes grace)
  netmedic.k8s.cni_ipam_gc:
  register: gc

- name: ACK Flannel on Docker, tmpfs data dir after N-7
  netmedic.k8s.cni_ipam_gc:
    data_dir: [/var/run/cni/networks]
    networks: [cb0]
    runtime: docker

- name: A network left behind by a migration, with no pods at all
  netmedic.k8s.cni_ipam_gc:
    data_dir: [/var/lib/cni/networks]
    networks: [cb0]
    allow_all: true
"""

RETURN = r"""
networks:
  description: One entry per network directory examined.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Network (directory) name.
      type: str
      returned: always
    data_dir:
      description: The O(data_dir) it was found in.
      type: str
      returned: always
    path:
      description: The network directory.
      type: str
      returned: always
    allocated:
      description: Allocation files before the run (null when the run stopped before reading the directory).
      type: int
      returned: always
    live:
      description: Allocation files whose container ID the runtime listed (null when the run stopped before reading).
      type: int
      returned: always
    young:
      description: Files kept because they (or another file of the same container) are younger than O(grace_period).
      type: list
      elements: dict
      returned: always
    unknown:
      description: Files without a readable container ID; kept.
      type: list
      elements: dict
      returned: always
    leaked:
      description: Leaked allocations (C(ip), C(container_id), C(ifname), C(age) in seconds, C(path), C(backup)).
      type: list
      elements: dict
      returned: always
    removed:
      description: Paths moved out of the directory by this run (in check mode, that would be moved).
      type: list
      elements: str
      returned: always
    remaining:
      description: Leaked paths not moved because the run failed part-way.
      type: list
      elements: str
      returned: always
    backup_dir:
      description: Where this network's files went (or would go).
      type: str
      returned: always
    refused:
      description: True when nothing in the network belongs to a listed container and O(allow_all) is false.
      type: bool
      returned: always
    lock:
      description:
        - The lock file held and the seconds waited for it (C(held) false in check mode without a lock file).
        - C(missing) - the network had no lock file; C(created) - this run created it (empty, as host-local does),
          which is reported as a change (check mode creates nothing and reports that it would).
      type: dict
      returned: always
  sample:
    - name: gke-pod-network
      data_dir: /var/lib/cni/networks
      path: /var/lib/cni/networks/gke-pod-network
      allocated: 4
      live: 2
      young: []
      unknown: []
      leaked:
        - ip: 10.8.3.4
          container_id: c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00
          ifname: eth0
          age: 7260
          path: /var/lib/cni/networks/gke-pod-network/10.8.3.4
          backup: /var/lib/netmedic/backups/cni_ipam_gc/20261125T200000Z-4242/var/lib/cni/networks/gke-pod-network/10.8.3.4
      removed: [/var/lib/cni/networks/gke-pod-network/10.8.3.4]
      remaining: []
      backup_dir: /var/lib/netmedic/backups/cni_ipam_gc/20261125T200000Z-4242/var/lib/cni/networks/gke-pod-network
      refused: false
      lock: {path: /var/lib/cni/networks/gke-pod-network/lock, held: true, waited: 0.0, missing: false, created: false}
runtime:
  description: The runtime asked and what it listed.
  returned: when networks were found
  type: dict
  sample:
    name: containerd
    source: socket
    cli: ctr
    endpoint: /run/containerd/containerd.sock
    namespace: k8s.io
    listed: 7
    commands: [{cmd: [/usr/bin/ctr, --address, /run/containerd/containerd.sock, --timeout, 30s, --namespace, k8s.io, containers, ls, -q], rc: 0, count: 7}]
pruned:
  description:
    - Backup directories of earlier runs removed by the retention (O(backup_keep_days), O(backup_keep_count)); in
      check mode, what would be removed. C(errors) lists directories that could not be removed (the run still succeeds).
  returned: always
  type: dict
  sample: {"removed": ["/var/lib/netmedic/backups/cni_ipam_gc/20261001T020000Z-4242"], "errors": []}
backup_dir:
  description: This run's backup directory (created only when something was moved), or null when nothing is to be moved.
  returned: always
  type: str
  sample: /var/lib/netmedic/backups/cni_ipam_gc/20261125T200000Z-4242
moved:
  description: Every file moved, with its backup path and how (C(rename) or C(copy)).
  returned: always
  type: list
  elements: dict
  sample:
    - path: /var/lib/cni/networks/cb0/172.20.5.3
      backup: /var/lib/netmedic/backups/cni_ipam_gc/20261125T200000Z-4242/var/lib/cni/networks/cb0/172.20.5.3
      method: rename
remaining:
  description: Leaked files still in place after a failure part-way (empty on success).
  returned: always
  type: list
  elements: str
  sample: []
not_networks:
  description: Sub-directories of O(data_dir) that hold no host-local allocation file; never touched.
  returned: always
  type: list
  elements: str
  sample: [/var/lib/dpkg]
missing_networks:
  description: Names in O(networks) found in no O(data_dir) (as a directory holding host-local allocations).
  returned: always
  type: list
  elements: str
  sample: []
summary:
  description: Totals over all networks.
  returned: always
  type: dict
  sample: {"allocated": 9, "live": 4, "young": 1, "unknown": 0, "leaked": 4, "removed": 4}
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["N-1"]
"""

import contextlib

from ansible_collections.netmedic.k8s.plugins.module_utils import ipam, runtime
from ansible_collections.netmedic.k8s.plugins.module_utils.ipam_gc import GCError, GCRun, finish, prune_run_dirs, run_gc
from ansible_collections.netmedic.k8s.plugins.module_utils.lifecycle import ModuleLifecycle
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import Runner

# run_gc: the same steps in one call (the C-8 pod, the benchmarks), importable from here as before.
__all__ = ['ARGUMENT_SPEC', 'CniIpamGc', 'GCError', 'main', 'run_gc']

ARGUMENT_SPEC = dict(
    data_dir=dict(type='list', elements='path', default=list(ipam.DEFAULT_DATA_DIRS)),
    networks=dict(type='list', elements='str', default=[]),
    runtime=dict(type='str', default='auto', choices=['auto', 'containerd', 'crio', 'docker']),
    runtime_cli=dict(type='str', default='auto', choices=['auto', 'ctr', 'crictl', 'docker']),
    runtime_endpoint=dict(type='str'),
    namespace=dict(type='str', default=runtime.DEFAULT_CONTAINERD_NAMESPACE),
    runtime_timeout=dict(type='int', default=30),
    grace_period=dict(type='int', default=600),
    backup_dir=dict(type='path', default='/var/lib/netmedic/backups/cni_ipam_gc'),
    backup_keep_days=dict(type='int', default=30),
    backup_keep_count=dict(type='int', default=0),
    allow_all=dict(type='bool', default=False),
    lock_timeout=dict(type='int', default=30),
)


class CniIpamGc(ModuleLifecycle):
    """Catalog N-1 on the lifecycle; the steps are ipam_gc.GCRun's (shared with the C-8 pod's run_gc).

    read: networks, runtime and the first listing, WITHOUT host-local's lock; held: the lock of every
    network (GCRun.locked); plan: under it, the second listing (apply only), the scan and the plan;
    apply: the moves; verify: read back and manifest; after (lock released): the result and retention.
    """

    catalog = ['N-1']
    options = ARGUMENT_SPEC

    def _step(self, step):
        try:
            step()
        except GCError as e:
            self._fill(e.data, e.msg)

    def _fill(self, data, failed=None):
        """The result of the run (ipam_gc.finish, the same mapping as the C-8 pod's); fails when ``failed``."""
        out, warnings = finish(data, failed, self.check_mode, want_diff=self.module._diff)
        for msg in warnings:
            self.module.warn(msg)
        result = self.result
        result.changed = out.pop('changed')
        result.before = out.pop('before')
        result.after = out.pop('after')
        result.backups = out.pop('backups')
        result.diffs = out.pop('diff', [])
        for key in ('catalog', 'failed', 'msg'):
            out.pop(key, None)
        result.extra = out
        if failed:
            result.fail(failed)

    def validate(self):
        for key in ('backup_keep_days', 'backup_keep_count'):
            if self.params[key] < 0:
                self.refuse('%s must be 0 (no limit) or more, got %d; nothing was changed' % (key, self.params[key]))
        self.gc = GCRun(Runner(self.module), self.params, self.check_mode)
        self._step(self.gc.validate)

    def read(self):
        self._step(self.gc.read)

    def held(self):
        # host-local's lock from before the second listing through the moves; nothing to hold without networks.
        return self._locked() if self.gc.nets else super(CniIpamGc, self).held()

    @contextlib.contextmanager
    def _locked(self):
        # Taking the locks can fail too (another holder past lock_timeout, an unreadable lock file): that failure
        # goes through the same result mapping as every other step (the documented keys, nothing changed), and the
        # locks already taken are released by GCRun.locked itself.
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self.gc.locked())
            except GCError as e:
                self._fill(e.data, e.msg)
            yield

    def plan(self):
        if self.gc.nets:
            self._step(self.gc.plan)

    def will_change(self):
        return bool(self.gc.todo)

    def apply(self):
        self._step(self.gc.apply)

    def verify(self):
        self._step(self.gc.verify)

    def after(self):
        self._fill(self.gc.data)
        # Retention after a successful run only (a failed run ended above and leaves every backup where it is),
        # with host-local's lock already released.
        backup_dir = self.result.extra.get('backup_dir')
        try:
            done = prune_run_dirs(self.params['backup_dir'], self.params['backup_keep_count'],
                                  self.params['backup_keep_days'], protect=[backup_dir] if backup_dir else [],
                                  check_mode=self.check_mode)
        except OSError as e:
            done = {'removed': [], 'errors': ['%s: %s' % (self.params['backup_dir'], e)]}
        self.result.extra['pruned'] = {'removed': done['removed'], 'errors': done['errors']}
        if done['removed'] and not self.check_mode:
            self.result.changed = True
        for err in done['errors']:
            self.module.warn('backup retention: could not remove %s' % err)


def main():
    CniIpamGc().run()


if __name__ == '__main__':
    main()
