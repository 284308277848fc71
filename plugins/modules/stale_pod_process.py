#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: stale_pod_process
short_description: Find (and on request stop) processes of a pod that the container runtime no longer knows
version_added: 0.1.0
description:
  - >-
    Fixes catalog entry B(N-9): after a container runtime crash a container's process survives in the pod's
    network namespace and keeps its port, so the restarted container fails with
    C(bind: Address already in use).
  - Finds every process whose cgroup belongs to the pod (O(pod_uid), cgroupfs or systemd driver spelling), takes
    the container ID from the cgroup path, and compares it with the runtime's own list (C(ctr -n k8s.io
    containers ls -q), C(crictl pods -q) + C(crictl ps -a -q), or C(docker ps -a -q --no-trunc)). A process whose
    container the runtime does not list is stale. The ports each process holds are read from its own network
    namespace (C(/proc/<pid>/net/*) and its socket file descriptors - what C(nsenter -t PID --net netstat -anp)
    shows).
  - With O(state=killed) the stale processes are sent O(signal) and the module waits up to O(wait) seconds for them
    to exit. Right before signalling it lists the runtime's containers again and re-reads each process (start time
    and cgroup), so a process the runtime owns by then, or a PID reused meanwhile, is never signalled.
  - Never acts when the runtime cannot be listed (an empty answer would make every process look stale), and never
    touches a process without a container ID in its cgroup path (reported as RV(uncertain)).
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Lists and reports; signals nothing.
  diff_mode:
    support: full
    details: Shows the stale processes before and after.
  platform:
    platforms: posix
    support: full
    details: Linux nodes with C(/proc), cgroups, and the runtime's CLI (ctr, crictl or docker).
options:
  pod_uid:
    description: The pod's C(metadata.uid) (C(kubectl get pod NAME -o jsonpath='{.metadata.uid}')).
    type: str
    required: true
  port:
    description: Only processes that hold this port (TCP or UDP, in the pod's network namespace).
    type: int
  state:
    description: V(report) only finds. V(killed) signals the stale processes.
    type: str
    choices: [report, killed]
    default: report
  signal:
    description: The signal for O(state=killed). The seed's fix is a plain C(kill PID) (V(TERM)).
    type: str
    choices: [TERM, KILL]
    default: TERM
  wait:
    description: Seconds to wait for signalled processes to exit (0-300). Still running afterwards = failure.
    type: int
    default: 10
  runtime:
    description: The container runtime.
    type: str
    choices: [containerd, crio, docker]
    default: containerd
  runtime_endpoint:
    description: The runtime's socket (path or C(unix://) URL); the CLI's default when not given.
    type: str
  namespace:
    description: containerd namespace (Kubernetes uses C(k8s.io)).
    type: str
    default: k8s.io
seealso:
  - module: netmedic.k8s.node_network_facts
  - name: Catalog N-9
    description: docs/catalog.md in the collection.
    link: https://example.invalid/netmedic/k8s/docs/catalog.md
notes:
  - Run as root on the node that runs the pod.
"""

EXAMPLES = r"""
- name: Which processes of this pod does containerd not know?
  netmedic.k8s.stale_pod_process:
    pod_uid: 3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8
    port: 8080

- name: Stop them (SIGTERM, wait 10 s)
  netmedic.k8s.stale_pod_process:
    pod_uid: 3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8
    port: 8080
    state: killed
"""

RETURN = r"""
stale:
  description: Processes of the pod whose container the runtime does not list (filtered by O(port)).
  returned: always
  type: list
  elements: dict
  sample: [{"pid": 4242, "comm": "python3", "cmdline": "python3 -m http.server 8080", "container_id": "deadbeef",
            "cgroup": "/kubepods/besteffort/pod3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8/deadbeef",
            "sockets": [{"proto": "tcp", "port": 8080, "state": "LISTEN"}]}]
owned:
  description: Processes of the pod whose container the runtime lists (never signalled).
  returned: always
  type: list
  elements: dict
  sample: []
uncertain:
  description: Processes in the pod's cgroup without a container ID in the path (never signalled).
  returned: always
  type: list
  elements: dict
  sample: []
signalled:
  description: PIDs that were (in check mode, would be) signalled.
  returned: always
  type: list
  elements: int
  sample: [4242]
runtime_containers:
  description: Number of sandboxes and containers the runtime listed.
  returned: always
  type: int
  sample: 12
before:
  description: PIDs of stale processes before the change.
  returned: always
  type: dict
  sample: {"stale": [4242]}
after:
  description: PIDs of stale processes after the change (re-scanned; in check mode, what would remain).
  returned: always
  type: dict
  sample: {"stale": []}
catalog:
  description: Catalog IDs this module implements.
  returned: always
  type: list
  elements: str
  sample: ["N-9"]
backups:
  description: Always empty; kept for the common result shape.
  returned: always
  type: list
  elements: dict
  sample: []
"""

import os
import signal
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netmedic.k8s.plugins.module_utils import podproc, runtime
from ansible_collections.netmedic.k8s.plugins.module_utils.result import Result
from ansible_collections.netmedic.k8s.plugins.module_utils.runner import Runner

SIGNALS = {'TERM': signal.SIGTERM, 'KILL': signal.SIGKILL}


def _view(proc):
    keys = ('pid', 'comm', 'cmdline', 'container_id', 'cgroup', 'sockets')
    return {k: proc.get(k) for k in keys}


def _live_ids(module, runner, p):
    cli = runtime.choose_cli(p['runtime'], runner.which)
    if cli is None:
        raise runtime.ListingError('no CLI for %s is installed (%s)' % (p['runtime'], ', '.join(runtime.LIST_CLIS[p['runtime']])))
    return runtime.list_live_ids(runner, p['runtime'], cli, p['runtime_endpoint'], p['namespace'])['ids']


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pod_uid=dict(type='str', required=True),
            port=dict(type='int'),
            state=dict(type='str', choices=['report', 'killed'], default='report'),
            signal=dict(type='str', choices=['TERM', 'KILL'], default='TERM'),
            wait=dict(type='int', default=10),
            runtime=dict(type='str', choices=['containerd', 'crio', 'docker'], default='containerd'),
            runtime_endpoint=dict(type='str'),
            namespace=dict(type='str', default='k8s.io'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = Result(module, ['N-9'])

    # 1. Validate input before reading or touching anything.
    try:
        uid = podproc.validate_uid(p['pod_uid'])
        if p['port'] is not None and not 1 <= p['port'] <= 65535:
            raise podproc.PodProcError('port must be between 1 and 65535, got %d' % p['port'])
        if not 0 <= p['wait'] <= 300:
            raise podproc.PodProcError('wait must be between 0 and 300 seconds, got %d' % p['wait'])
        if p['runtime_endpoint'] and runtime.endpoint_path(p['runtime_endpoint']) is None:
            raise podproc.PodProcError('runtime_endpoint %r is not a unix socket path or unix:// URL' % p['runtime_endpoint'])
    except podproc.PodProcError as e:
        module.fail_json(msg='%s (nothing was changed)' % e, changed=False)

    # 2. Read: the pod's processes first, then the runtime's list (a container created in between is listed).
    runner = Runner(module)
    processes = podproc.scan(uid)
    try:
        live = _live_ids(module, runner, p)
    except runtime.ListingError as e:
        module.fail_json(msg='%s; without the runtime\'s list no process can be called stale (nothing was changed)' % e, changed=False)
    groups = podproc.classify(processes, live)
    for proc in groups['stale'] + groups['owned']:
        proc['sockets'] = podproc.sockets_of(proc['pid'])
    for proc in groups['uncertain']:
        proc['sockets'] = []
    stale = groups['stale']
    if p['port'] is not None:
        stale = [s for s in stale if any(sock['port'] == p['port'] for sock in s['sockets'])]

    # 3. Plan (pure): the stale processes, when asked to.
    targets = stale if p['state'] == 'killed' else []
    result.before = {'stale': [s['pid'] for s in stale]}
    result.after = {'stale': [s['pid'] for s in stale if s not in targets]}
    result.add_diff(result.before, result.after, 'stale processes of pod %s' % uid)
    result.extra.update({
        'stale': [_view(s) for s in stale],
        'owned': [_view(s) for s in groups['owned']],
        'uncertain': [_view(s) for s in groups['uncertain']],
        'signalled': [s['pid'] for s in targets],
        'runtime_containers': len(live),
    })
    if groups['uncertain']:
        result.warn('%d process(es) of the pod have no container ID in their cgroup path and are left alone: %s'
                    % (len(groups['uncertain']), [s['pid'] for s in groups['uncertain']]))
    if stale and p['state'] == 'report':
        result.warn('%d process(es) of pod %s belong to containers the runtime does not know: %s (state=killed stops them)'
                    % (len(stale), uid, ', '.join('%d %s' % (s['pid'], s['comm']) for s in stale)))

    if module.check_mode or not result.changed:
        result.exit()

    # 4. Apply, re-checking the runtime and each process right before the signal.
    try:
        live_now = _live_ids(module, runner, p)
    except runtime.ListingError as e:
        result.changed = False
        result.fail('%s; nothing was signalled' % e)
    sent = []
    for proc in targets:
        now = podproc.process(proc['pid'])
        if proc['container_id'] in live_now or not podproc.same_process(proc, now):
            result.warn('pid %d was not signalled: it exited, was reused, or its container is listed now' % proc['pid'])
            continue
        try:
            os.kill(proc['pid'], SIGNALS[p['signal']])
            sent.append(proc)
        except OSError as e:
            result.warn('pid %d: %s' % (proc['pid'], e))
    result.extra['signalled'] = [s['pid'] for s in sent]
    result.changed = bool(sent)

    # 5. Verify: wait for them to exit, then re-scan.
    deadline = time.time() + p['wait']
    while True:
        alive = [s for s in sent if podproc.same_process(s, podproc.process(s['pid']))]
        if not alive or time.time() >= deadline:
            break
        time.sleep(0.2)
    remaining = podproc.classify(podproc.scan(uid), live_now)['stale']
    if p['port'] is not None:
        for proc in remaining:
            proc['sockets'] = podproc.sockets_of(proc['pid'])
        remaining = [s for s in remaining if any(sock['port'] == p['port'] for sock in s['sockets'])]
    result.after = {'stale': [s['pid'] for s in remaining]}
    if alive:
        result.fail('still running %d s after SIG%s: %s (signal=KILL forces them)'
                    % (p['wait'], p['signal'], ', '.join('%d %s' % (s['pid'], s['comm']) for s in alive)))
    result.exit()


if __name__ == '__main__':
    main()
