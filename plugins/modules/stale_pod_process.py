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
  - The runtime is detected as M(netmedic.k8s.cni_ipam_gc) detects it (one shared function) - the kubelet's
    C(--container-runtime-endpoint), else the one runtime socket present - unless O(runtime) names it. Docker behind
    cri-dockerd is listed with C(crictl) through its CRI socket.
  - CRI-O's own monitor, C(conmon), runs in the pod's cgroup as C(crio-conmon-<id>.scope); it is reported in
    RV(monitors) and never signalled.
  - With O(state=killed) the stale processes are sent O(signal) and the module waits up to O(wait) seconds for them
    to exit. Right before signalling it lists the runtime's containers again, opens a pidfd on each process and
    only then re-reads it (start time and cgroup) - a process the runtime owns by then, or a PID reused meanwhile,
    is never signalled, and the signal goes through the pidfd (C(pidfd_send_signal)), which cannot reach another
    process. Where pidfds are unavailable (Python < 3.9 or Linux < 5.3) the module refuses to signal.
  - Never acts when the runtime cannot be listed or does not answer within O(runtime_timeout) (an empty answer would
    make every process look stale), and never touches a process without a container ID in its cgroup path
    (reported as RV(uncertain)).
  - Refuses (fails, nothing signalled, in check mode too) when the runtime lists no container at all, or when the
    pod has stale-looking processes but none the runtime lists - not even the sandbox's pause process, which a live
    pod always has. A wrong runtime, endpoint or namespace looks exactly like that.
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
    description:
      - The container runtime. V(auto) follows the kubelet's C(--container-runtime-endpoint) (command line, then
        C(/var/lib/kubelet/config.yaml)), else the one runtime socket present; none, or several without a kubelet
        setting, fails (set it).
    type: str
    choices: [auto, containerd, crio, docker]
    default: auto
  runtime_endpoint:
    description:
      - The runtime's socket (path or C(unix://) URL). Default - the detected one, or the CLI's own default when
        O(runtime) is set explicitly. A cri-dockerd socket is listed with C(crictl).
    type: str
  namespace:
    description: containerd namespace (Kubernetes uses C(k8s.io)).
    type: str
    default: k8s.io
  runtime_timeout:
    description:
      - Seconds (1-600) one listing of the runtime may take, wall clock, all its commands together; the CLI and every
        process it started are killed after that and the module fails, nothing signalled.
    type: int
    default: 30
requirements:
  - the container runtime's own CLI on the managed node (C(ctr) or C(crictl) for containerd, C(crictl) for CRI-O, C(docker)), which comes with the runtime
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
monitors:
  description: The runtime's own monitor processes in the pod's cgroup (CRI-O C(conmon)); never signalled.
  returned: always
  type: list
  elements: dict
  sample: []
runtime:
  description: The runtime asked (C(name), C(source) of the detection, C(cli), C(endpoint), C(namespace)); null when it could not be chosen.
  returned: always
  type: dict
  sample: {"name": "containerd", "source": "socket", "cli": "ctr", "endpoint": "/run/containerd/containerd.sock", "namespace": "k8s.io"}
signalled:
  description: PIDs that were (in check mode, would be) signalled.
  returned: always
  type: list
  elements: int
  sample: [4242]
runtime_containers:
  description: Number of sandboxes and containers the runtime listed (null when it could not be listed).
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

from ansible_collections.netmedic.k8s.plugins.module_utils import podproc
from ansible_collections.netmedic.k8s.plugins.module_utils.lifecycle import ModuleLifecycle
from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import Runner

ARGUMENT_SPEC = dict(
    pod_uid=dict(type='str', required=True),
    port=dict(type='int'),
    state=dict(type='str', choices=['report', 'killed'], default='report'),
    signal=dict(type='str', choices=['TERM', 'KILL'], default='TERM'),
    wait=dict(type='int', default=10),
    runtime=dict(type='str', choices=['auto', 'containerd', 'crio', 'docker'], default='auto'),
    runtime_endpoint=dict(type='str'),
    namespace=dict(type='str', default='k8s.io'),
    runtime_timeout=dict(type='int', default=podproc.DEFAULT_RUNTIME_TIMEOUT),
)


class StalePodProcess(ModuleLifecycle):
    """Catalog N-9 on the lifecycle; the steps are podproc.StaleRun's.

    validate: the input (a refusal); read: the runtime, the pod's processes and the runtime's list;
    plan: classify (a refusal with the partial result); apply: signal through pidfds; verify: wait
    and re-scan; after: the result (one mapping for every end, failures included).
    """

    catalog = ['N-9']
    options = ARGUMENT_SPEC
    refusals = (podproc.PodProcError,)

    def _step(self, step):
        try:
            step()
        except podproc.StaleError as e:
            self._fill(e.data, e.msg)

    def _fill(self, data, failed=None):
        """The result from the run's data; fails when ``failed``."""
        result = self.result
        for msg in data.pop('warnings', []):
            result.warn(msg)
        result.before = data.pop('before', {'stale': []})
        result.after = data.pop('after', {'stale': []})
        changed = data.pop('changed', False)
        if self.check_mode:
            changed = bool(changed) and failed is None
        else:
            changed = bool(data.get('signalled'))
        if changed:
            result.add_diff(result.before, result.after, 'stale processes of pod %s' % self.params['pod_uid'])
        result.changed = changed
        for key in ('stale', 'owned', 'uncertain', 'monitors', 'signalled'):
            data.setdefault(key, [])
        data.setdefault('runtime_containers', None)
        data.setdefault('runtime', None)
        result.extra.update(data)
        if failed:
            result.fail(failed)

    def validate(self):
        self.stale = podproc.StaleRun(Runner(self.module), self.params, self.check_mode, HostFS('/'))
        self.stale.validate()

    def read(self):
        self._step(self.stale.read)

    def plan(self):
        self._step(self.stale.plan)

    def will_change(self):
        return bool(self.stale.targets)

    def apply(self):
        self._step(self.stale.apply)

    def verify(self):
        self._step(self.stale.verify)

    def after(self):
        self._fill(self.stale.data)


def main():
    StalePodProcess().run()


if __name__ == '__main__':
    main()
