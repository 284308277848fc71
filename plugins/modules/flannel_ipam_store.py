#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: flannel_ipam_store
short_description: Share a node's host-local store between Flannel's disk and tmpfs dataDirs, or verify the tmpfs store
version_added: 0.2.0
description:
  - The node half of catalog B(N-7) (Flannel IPAM C(dataDir) to tmpfs), used by workflow B(W-2)
    (C(playbooks/flannel_datadir_migration.yml)).
  - B(Why.) Once C(kube-flannel-cfg) points host-local at C(/var/run/cni/networks), every node whose Flannel pod
    restarts uses that store - empty on a node not yet rebooted, while its running pods hold addresses recorded only in
    C(/var/lib/cni/networks). A new pod there could be given an address a running pod holds (duplicate IPs).
  - B(O(state=shared)) (before the ConfigMap change) makes the two stores one, on each node. For every host-local
    network directory under O(old_ipam_dir) it takes host-local's own lock (C(flock) on C(<network>/lock)) on the
    disk directory and on the tmpfs directory, copies every allocation and C(last_reserved_ip.*) file into the tmpfs
    directory (an address already held there by another container is a conflict - the module fails before it links
    anything), then atomically exchanges O(old_ipam_dir) itself with a symbolic link to O(new_ipam_dir)
    (C(renameat2) C(RENAME_EXCHANGE) - at no instant is the path missing). The disk directory is kept, renamed
    C(<old_ipam_dir>.netmedic-disk-store); a network directory created in it meanwhile is carried over under its
    lock. Without a disk store yet, the link is created alone. host-local reserves an address by creating
    C(<dir>/<ip>) with C(O_EXCL), by path; with both configurations' paths resolving to one directory that holds every
    address in use, no address can be given twice, whichever configuration a CNI call reads. The link is one level
    above the network directories because host-local finds a container's addresses (GetByID, and ReleaseByID on DEL)
    by walking C(<dataDir>/<network>), and a walk does not descend into a root that is itself a link. Flannel's own O(old_flannel_dir) (one delegate config per
    container, read back on DEL) is shared the same way, so pods created before the switch are released properly.
  - B(O(state=verified)) (after the reboot and after a real allocation) is read-only - every address in
    O(expect_ips) must be allocated in a network directory under O(new_ipam_dir) on tmpfs, and none of the old paths
    (O(old_ipam_dir), O(old_flannel_dir)) may exist any more. It fails with the evidence otherwise. Checking before
    any pod got an address would find no network directory and fail for nothing, so give the addresses of pods
    started after the reboot.
  - A link left after a reboot points into the emptied tmpfs; W-2 archives and removes the old paths before it
    reboots the node.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - O(state=shared) reports per network what would be copied and linked (and conflicts) without locking or
        writing anything. O(state=verified) never changes anything.
  diff_mode:
    support: full
    details: Each shared path before (a directory) and after (a link to the tmpfs directory, what was copied).
  platform:
    platforms: posix
    support: full
    details: Linux node, as root (the stores belong to root); glibc 2.28 or later (renameat2).
options:
  state:
    description:
      - V(shared) - one store for both configurations (before the ConfigMap change).
      - V(verified) - check the tmpfs store after a real allocation (read-only).
    type: str
    choices: [shared, verified]
    default: shared
  old_ipam_dir:
    description: host-local's disk dataDir (host-local's default).
    type: path
    default: /var/lib/cni/networks
  new_ipam_dir:
    description: The tmpfs dataDir that C(kube-flannel-cfg) names (catalog N-7 step 2).
    type: path
    default: /var/run/cni/networks
  old_flannel_dir:
    description: The flannel plugin's disk dataDir (its default).
    type: path
    default: /var/lib/cni/flannel
  new_flannel_dir:
    description: The flannel plugin's tmpfs dataDir (catalog N-7 step 2).
    type: path
    default: /var/run/cni/flannel
  link_absent:
    description:
      - For O(state=shared) when O(old_ipam_dir) does not exist - V(true) creates the link alone (a node that has no
        disk store yet, before the ConfigMap changes - its first pod with the old configuration then cannot start a
        second store); V(false) leaves it absent (a node already migrated; W-2 passes V(false) once
        C(kube-flannel-cfg) names the tmpfs dataDir).
    type: bool
    default: true
  lock_timeout:
    description: Seconds to wait for each of host-local's locks before failing (nothing changed then).
    type: int
    default: 60
  expect_ips:
    description: For O(state=verified) - addresses allocated since the reboot (for example a probe pod's IP).
    type: list
    elements: str
    default: []
notes:
  - Nothing is deleted. The disk directories stay, renamed C(*.netmedic-disk-store) (C(kept) in RV(ipam_dir) and
    RV(flannel_dir)); W-2 archives them with the rest of the old paths before it removes them.
seealso:
  - module: netmedic.k8s.flannel_config
  - module: netmedic.k8s.node_network_facts
  - name: W-2 runbook
    description: docs/runbooks/W-2.md in the collection.
    link: https://example.invalid/netmedic/k8s/docs/runbooks/W-2.md
"""

EXAMPLES = r"""
- name: One store for both Flannel configurations on every node, before kube-flannel-cfg changes
  netmedic.k8s.flannel_ipam_store:
    state: shared

- name: After the reboot, a probe pod got 172.20.1.7 - verify it was allocated on tmpfs and the old dirs are gone
  netmedic.k8s.flannel_ipam_store:
    state: verified
    expect_ips: [172.20.1.7]
"""

RETURN = r"""
ipam_dir:
  description:
    - O(state=shared) - C(path), C(shared_with), C(state_before) and C(state_after) (C(disk), C(shared), C(absent)),
      C(networks), C(copied) and C(identical) (C(<network>/<file>)), C(conflicts), C(kept) (where the disk directory
      now is), C(lock_waited) (seconds). Null for O(state=verified).
  returned: always
  type: dict
  sample: {"path": "/var/lib/cni/networks", "shared_with": "/var/run/cni/networks", "state_before": "disk",
           "state_after": "shared", "networks": ["cb0"], "copied": ["cb0/172.20.1.5", "cb0/last_reserved_ip.0"],
           "identical": [], "conflicts": [], "kept": "/var/lib/cni/networks.netmedic-disk-store"}
flannel_dir:
  description: The same for Flannel's own dataDir (O(state=shared)); null when O(old_flannel_dir) does not exist.
  returned: always
  type: dict
verification:
  description:
    - O(state=verified) - C(networks) under O(new_ipam_dir) with C(fstype)/C(tmpfs), C(allocations) (address -> file,
      container ID), C(old_paths_left), C(problems).
  returned: when state=verified
  type: dict
catalog:
  description: Catalog IDs this module serves.
  returned: always
  type: list
  elements: str
  sample: ["N-7", "W-2"]
"""

import contextlib

from ansible_collections.netmedic.k8s.plugins.module_utils import flannel, ipam
from ansible_collections.netmedic.k8s.plugins.module_utils.lifecycle import ModuleLifecycle
from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS

ARGUMENT_SPEC = dict(
    state=dict(type='str', choices=['shared', 'verified'], default='shared'),
    old_ipam_dir=dict(type='path', default='/var/lib/cni/networks'),
    new_ipam_dir=dict(type='path', default='/var/run/cni/networks'),
    old_flannel_dir=dict(type='path', default='/var/lib/cni/flannel'),
    new_flannel_dir=dict(type='path', default='/var/run/cni/flannel'),
    link_absent=dict(type='bool', default=True),
    lock_timeout=dict(type='int', default=60),
    expect_ips=dict(type='list', elements='str', default=[]),
)


def _validate(params):
    for key in ('old_ipam_dir', 'new_ipam_dir', 'old_flannel_dir', 'new_flannel_dir'):
        flannel._abs_path(params[key], key)
    if params['old_ipam_dir'] == params['new_ipam_dir'] or params['old_flannel_dir'] == params['new_flannel_dir']:
        raise flannel.FlannelError('the old and new dataDirs must differ')
    if params['lock_timeout'] < 1:
        raise flannel.FlannelError('lock_timeout must be at least 1 second, got %d' % params['lock_timeout'])
    for ip in params['expect_ips']:
        if not ipam.is_allocation_name(ip):
            raise flannel.FlannelError('expect_ips must be IP addresses, got %r' % (ip,))


def _changes(rep):
    return rep is not None and rep['state_before'] != rep['state_after']


class FlannelIpamStore(ModuleLifecycle):
    """Catalog N-7 (W-2's node half) on the lifecycle; the steps are flannel.py's (see its "node side of N-7").

    shared - read: what both old paths are (no lock); held: host-local's lock of every network of the disk
    store, disk then tmpfs (flannel.lock_ipam_networks; none in check mode); plan: under them, the files read
    and the pure plans (a conflict refuses, except in check mode, which reports it); apply: copy, swap in the
    links, carry over what came meanwhile; verify: the links and the copies read back.
    verified - read: the tmpfs store (read-only); report: fail with the evidence unless it is all on tmpfs.
    """

    catalog = ['N-7', 'W-2']
    options = ARGUMENT_SPEC
    refusals = (flannel.FlannelError, ipam.LockTimeout, IOError, OSError)
    refusal_carries_result = True  # a refusal returns the documented keys too (catalog, ipam_dir, flannel_dir, ...)
    # held() may have created the tmpfs network directories and host-local's lock files (as host-local itself does)
    # before a refusal: nothing was linked or copied, which is what a refusal says.
    nothing_changed = 'nothing was linked or copied'

    def __init__(self):
        super(FlannelIpamStore, self).__init__()
        self.fs = HostFS()
        self.result.extra.update(ipam_dir=None, flannel_dir=None)
        self.ipam = self.fdir = self.locks = None
        self.started = []       # the reports whose apply began (their ``copied``: what was copied so far)
        self.reshared = False   # apply shared a store created meanwhile from the start (share_ipam_dir read it back)

    def refusal(self, error):
        if isinstance(error, ipam.LockTimeout):
            return str(error)
        if isinstance(error, flannel.FlannelError):
            if error.report:
                self.result.extra['ipam_dir'] = error.report
            return str(error)
        if isinstance(error, (IOError, OSError)):
            return 'cannot share the store: %s' % error
        return super(FlannelIpamStore, self).refusal(error)

    def validate(self):
        _validate(self.params)

    def read(self):
        p = self.params
        if p['state'] == 'verified':
            self.ok, self.evidence = flannel.verify_tmpfs(self.fs, p['new_ipam_dir'], [p['old_ipam_dir'], p['old_flannel_dir']],
                                                          p['expect_ips'])
            return
        self.ipam_store = flannel.read_ipam_dir(p['old_ipam_dir'], p['new_ipam_dir'], self.fs)
        self.flannel_store = None
        if self.fs.lexists(p['old_flannel_dir']):
            self.flannel_store = flannel.read_flannel_dir(p['old_flannel_dir'], p['new_flannel_dir'], self.fs)

    def held(self):
        if self.params['state'] == 'verified':
            return super(FlannelIpamStore, self).held()
        return self._locked()

    @contextlib.contextmanager
    def _locked(self):
        # Taking a lock can fail (another holder past lock_timeout, an unusable tmpfs path): a refusal, and the locks
        # already taken are released by lock_ipam_networks itself.
        with contextlib.ExitStack() as stack:
            try:
                self.locks = stack.enter_context(flannel.lock_ipam_networks(self.ipam_store, self.params['lock_timeout'],
                                                                            self.check_mode, self.fs))
            except self.refusals as e:
                self.refuse(self.refusal(e))
            yield

    def plan(self):
        if self.params['state'] == 'verified':
            return
        contents = flannel.read_ipam_networks(self.ipam_store, self.fs)
        self.ipam = flannel.plan_ipam_share(self.ipam_store, contents, self.params['link_absent'])
        if self.flannel_store is not None:
            self.fdir = flannel.plan_flannel_share(self.flannel_store)

    def report(self):
        result = self.result
        if self.params['state'] == 'verified':
            result.extra['verification'] = self.evidence
            if not self.ok:
                result.fail('Flannel IPAM store is not (only) on tmpfs: %s' % '; '.join(self.evidence['problems']))
            return
        if not self.check_mode:
            error = flannel.conflict_error(self.ipam)
            if error is not None:
                raise error     # the refusal reports the store as it is; flannel_dir stays null (nothing planned is done)
        result.extra.update(ipam_dir=self.ipam, flannel_dir=self.fdir)
        self._record()

    def _record(self):
        """The diff per path changed (check mode: what would be) and, once applied, where the disk directories are."""
        result = self.result
        result.diffs, result.backups = [], []
        for rep in (self.ipam, self.fdir):
            if _changes(rep) or (rep is not None and rep['copied']):
                now = 'link to %s' % rep['shared_with'] if rep['state_after'] == 'shared' else rep['state_after']
                result.add_diff({'path': rep['path'], 'is': 'directory on disk' if rep['state_before'] == 'disk' else 'absent'},
                                {'path': rep['path'], 'is': now, 'copied': rep['copied'],
                                 'disk directory kept as': rep['kept'] or (rep['path'] + flannel.STORE_SUFFIX
                                                                           if rep['state_before'] == 'disk' else None)},
                                rep['path'])
                result.add_backup(rep['kept'], rep['path'])

    def apply(self):
        p = self.params
        try:
            if _changes(self.ipam):
                self.started.append(self.ipam)
                if flannel.apply_ipam_share(self.ipam, self.locks, self.fs) is None:
                    # a disk store was created meanwhile: share it from the start (its own locks, plan and read-back)
                    self.ipam = flannel.share_ipam_dir(p['old_ipam_dir'], p['new_ipam_dir'], p['lock_timeout'],
                                                       link_absent=p['link_absent'], fs=self.fs)
                    self.reshared = True
                    self.result.extra['ipam_dir'] = self.ipam
            if _changes(self.fdir):
                self.started.append(self.fdir)
                flannel.apply_flannel_share(self.fdir, self.fs)
        except self.refusals as e:
            self._failed(e)

    def _linked(self):
        """The old paths this run turned into links (what stays changed after a failure)."""
        return [rep['path'] for rep in (self.ipam, self.fdir)
                if rep is not None and rep['state_before'] != 'shared' and self.fs.islink(rep['path'])]

    def _read_back(self):
        """After a failure: each path as it is now (``state_after``), what a report whose apply never began did
        (nothing: ``copied`` empty), and the diff and backups from that."""
        for rep in (self.ipam, self.fdir):
            if rep is None:
                continue
            if not any(rep is started for started in self.started):
                rep['state_after'], rep['copied'] = rep['state_before'], []
                continue
            try:
                rep['state_after'] = flannel.link_state(rep['path'], rep['shared_with'], self.fs)
            except (flannel.FlannelError, OSError) as e:
                rep['state_after'] = 'unknown (%s)' % e
        self.result.extra.update(ipam_dir=self.ipam, flannel_dir=self.fdir)
        self._record()

    def _failed(self, error):
        # A failure in apply or verify: changed when a link was made or a file copied into the tmpfs store.
        if isinstance(error, flannel.FlannelError) and error.report:
            self.ipam = error.report
        self._read_back()
        linked = self._linked()
        copied = any(rep['copied'] for rep in self.started)
        self.result.changed = bool(linked or copied)
        if not linked:
            self.result.fail(self.refusal(error))
        prefix = '' if isinstance(error, flannel.FlannelError) else 'cannot share the store: '
        self.result.fail('%s%s (already linked: %s)' % (prefix, error, ', '.join(linked)))

    def verify(self):
        # host-local's copies are read back under the locks held since the plan (a network's files cannot change
        # without its lock); a store shared from the start in apply was read back by share_ipam_dir under its own.
        # Flannel's delegate files have no lock: a CNI DEL may remove one through the new link at any time, so only
        # the link is read back there.
        problems = []
        try:
            if _changes(self.ipam) and not self.reshared:
                problems += flannel.verify_share(self.ipam, self.fs)
            if _changes(self.fdir):
                problems += flannel.verify_share(dict(self.fdir, copied=[]), self.fs)
                self.fdir['state_after'] = flannel.link_state(self.fdir['path'], self.fdir['shared_with'], self.fs)
        except self.refusals as e:
            self._failed(e)
        self._record()
        if problems:
            self.result.fail('the stores were shared but read back wrong: %s' % '; '.join(problems))


def main():
    FlannelIpamStore().run()


if __name__ == '__main__':
    main()
