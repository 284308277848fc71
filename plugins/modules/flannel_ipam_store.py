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

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netmedic.k8s.plugins.module_utils import flannel, ipam
from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS
from ansible_collections.netmedic.k8s.plugins.module_utils.result import Result

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


def _share(module, result):
    params = module.params
    result.extra['ipam_dir'] = flannel.share_ipam_dir(params['old_ipam_dir'], params['new_ipam_dir'],
                                                      params['lock_timeout'], module.check_mode,
                                                      link_absent=params['link_absent'])
    flannel_dir = None
    if os.path.lexists(params['old_flannel_dir']):
        flannel_dir = flannel.share_dir(params['old_flannel_dir'], params['new_flannel_dir'], module.check_mode)
    for rep in [result.extra['ipam_dir']] + ([flannel_dir] if flannel_dir else []):
        if rep['state_before'] != rep['state_after']:
            result.add_diff({'path': rep['path'], 'is': 'directory on disk' if rep['state_before'] == 'disk' else 'absent'},
                            {'path': rep['path'], 'is': 'link to %s' % rep['shared_with'], 'copied': rep['copied'],
                             'disk directory kept as': rep['kept'] or (rep['path'] + flannel.STORE_SUFFIX
                                                                       if rep['state_before'] == 'disk' else None)},
                            rep['path'])
            result.add_backup(rep['kept'], rep['path'])
    result.extra['flannel_dir'] = flannel_dir


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = Result(module, ['N-7', 'W-2'])
    result.extra.update(ipam_dir=None, flannel_dir=None)
    try:
        _validate(module.params)
        if module.params['state'] == 'verified':
            ok, evidence = flannel.verify_tmpfs(HostFS(), module.params['new_ipam_dir'],
                                                [module.params['old_ipam_dir'], module.params['old_flannel_dir']],
                                                module.params['expect_ips'])
            result.extra['verification'] = evidence
            if not ok:
                result.fail('Flannel IPAM store is not (only) on tmpfs: %s' % '; '.join(evidence['problems']))
        else:
            _share(module, result)
    except flannel.FlannelError as e:
        if e.report:
            result.extra['ipam_dir'] = e.report
        result.fail(str(e))
    except ipam.LockTimeout as e:
        result.fail('%s; nothing was linked' % e)
    except (IOError, OSError) as e:
        result.fail('cannot share the store: %s' % e)
    result.exit()


if __name__ == '__main__':
    main()
