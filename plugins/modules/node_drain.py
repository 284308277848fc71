#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: node_drain
short_description: Cordon, drain (evictions honouring PodDisruptionBudgets) or uncordon a Node; a drain that times out fails
version_added: 0.2.0
description:
  - The cordon/drain/uncordon step of catalog B(W-1) (node rotation), B(W-2) (Flannel dataDir migration) and B(W-7)
    (leaked CNI IPs fleet-wide). Replaces C(kubernetes.core.k8s_drain), which returns C(ok) with only a warning when
    its timeout passes while pods still run, so that the destructive step after it (provider hook, reboot, directory
    removal) ran with pods still on the node.
  - B(Cordon ownership.) Cordoning sets C(spec.unschedulable) and the annotation C(netmedic.io/cordoned-by) (value
    O(run_id)) in one patch. O(state=uncordon) uncordons only a node that carries that annotation - whichever netmedic
    run set it, so a re-run (a new AWX job) uncordons the node an earlier, failed run left cordoned - and removes it.
    A node cordoned by someone else is never annotated and never uncordoned; RV(cordon.by_other) reports it.
  - B(Drain.) Pods owned by a DaemonSet and mirror (static) pods stay on the node; finished pods (Succeeded, Failed)
    are ignored. Pods with C(emptyDir) volumes and pods no controller owns are refused - the module fails before it
    cordons or evicts anything - unless O(delete_emptydir_data) or O(allow_unmanaged) allows them. Every other pod is
    evicted through the Eviction API (C(pods/eviction)), so PodDisruptionBudgets are honoured; an eviction refused
    with HTTP 429 is retried every O(poll_interval) seconds until O(timeout).
  - B(Drained means drained.) When O(timeout) has passed and any pod to be evicted is still on the node - still
    running, blocked by a budget, or terminating (for example held by a finalizer) - the module B(fails) and lists
    those pods. The node stays cordoned; nothing after this task should run.
  - Every API request is bounded by O(request_timeout); an API that cannot be read fails the module, it is never read
    as "no pods".
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - netmedic.k8s.k8s_auth
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the Node and its pods and returns what would be cordoned and evicted (RV(pods) with outcome
        C(would evict) or C(would wait for budget)). The cordon patch and each eviction are sent as server-side dry
        runs, so nothing is changed. Refusals (emptyDir, unmanaged pods) fail in check mode too.
  diff_mode:
    support: full
    details: The diff shows C(spec.unschedulable), the ownership annotation and the pods to be evicted.
  platform:
    platforms: posix
    support: full
    details: Runs where the C(kubernetes) client is installed, usually the controller (C(delegate_to=localhost)).
options:
  name:
    description: The Node's name.
    type: str
    required: true
  state:
    description:
      - V(drain) cordons the node, then evicts its pods and waits until they are gone.
      - V(cordon) only cordons (recording ownership).
      - V(uncordon) uncordons the node only if netmedic cordoned it (the annotation is present) and removes the
        annotation; a node cordoned by someone else is left alone and reported.
    type: str
    choices: [drain, cordon, uncordon]
    default: drain
  run_id:
    description:
      - Who cordons - stored as the annotation's value, for people and change reports (any netmedic run may uncordon
        a node that carries the annotation). Pass the AWX job id (C(awx_job_id)) when there is one.
      - Default - C(netmedic@<controller host>/<UTC time>).
    type: str
  timeout:
    description: Seconds, from the first eviction, until every evicted pod must be gone from the node.
    type: int
    default: 300
  poll_interval:
    description: Seconds between eviction retries (after a 429) and between two reads while waiting.
    type: float
    default: 2.0
  request_timeout:
    description: Seconds each API request may take before it fails.
    type: int
    default: 30
  grace_period:
    description: C(gracePeriodSeconds) for each eviction; omitted - the pod's own terminationGracePeriodSeconds.
    type: int
  delete_emptydir_data:
    description: Evict pods with C(emptyDir) volumes too (their emptyDir data is lost). Without it they refuse the drain.
    type: bool
    default: false
  allow_unmanaged:
    description:
      - Evict pods no controller owns (no ownerReference) too - nothing recreates them. Without it they refuse the drain.
    type: bool
    default: false
seealso:
  - module: netmedic.k8s.health_gate
  - name: Safely Drain a Node (Kubernetes documentation)
    description: Evictions, PodDisruptionBudgets and what kubectl drain skips.
    link: https://kubernetes.io/docs/tasks/administer-cluster/safely-drain-node/
notes:
  - Nothing is removed that could be restored, so nothing is backed up; evicted pods are recreated elsewhere by their
    controllers. RV(pods) names every pod and what happened to it.
  - Ansible modules cannot stream; per-pod progress is in RV(pods) when the task ends (also when it fails).
"""

EXAMPLES = r"""
- name: Drain lab-node-1, PodDisruptionBudgets honoured, at most 10 minutes
  netmedic.k8s.node_drain:
    name: lab-node-1
    timeout: 600
    run_id: "{{ awx_job_id | default(omit) }}"
  delegate_to: localhost

- name: Cordon only (W-7 collects leaked IPs on a cordoned node)
  netmedic.k8s.node_drain:
    name: lab-node-2
    state: cordon

- name: Uncordon - only if netmedic cordoned it (also after an earlier, failed run)
  netmedic.k8s.node_drain:
    name: lab-node-2
    state: uncordon
  register: uncordon

- name: Say when someone else's cordon was left in place
  when: uncordon.cordon.by_other
  ansible.builtin.debug:
    msg: lab-node-2 was cordoned by someone else; left cordoned.
"""

RETURN = r"""
node:
  description: The Node's name.
  returned: always
  type: str
  sample: lab-node-1
cordon:
  description: The Node's cordon before and after this task, and whether someone else cordoned it.
  returned: always
  type: dict
  contains:
    before:
      description:
        - C(unschedulable), C(owner) (the annotation's run id, or null), C(by_netmedic), C(by_other) as read before the task.
      type: dict
      returned: always
    after:
      description: The same fields after the task (in check mode - what they would be).
      type: dict
      returned: always
    by_other:
      description:
        - True when the node was cordoned by someone else (unschedulable without the annotation) - it is not annotated
          and netmedic will never uncordon it.
      type: bool
      returned: always
  sample: {"before": {"unschedulable": false, "owner": null, "by_netmedic": false, "by_other": false},
           "after": {"unschedulable": true, "owner": "awx-job-4711", "by_netmedic": true, "by_other": false},
           "by_other": false}
pods:
  description:
    - One entry per pod on the node - C(pod) (namespace/name), C(uid), C(outcome) and C(reason).
    - C(outcome) is C(evicted) (gone), C(skipped) (DaemonSet, mirror or finished pod), C(refused) (emptyDir or
      unmanaged, not allowed), C(blocked) (evictions refused by a budget until the timeout), C(terminating) (deletion
      pending, e.g. a finalizer), C(running) (still there), C(would evict) or C(would wait for budget) (check mode).
    - C(attempts) counts eviction requests.
  returned: always
  type: list
  elements: dict
  sample: [{"pod": "default/web-6d4b-x2x9z", "uid": "1b2c...", "outcome": "evicted", "reason": "ReplicaSet web-6d4b",
            "attempts": 3}]
remaining:
  description: Pods (namespace/name) to be evicted that were still on the node at the end; empty after a drain that succeeded.
  returned: always
  type: list
  elements: str
  sample: []
catalog:
  description: Catalog IDs this module serves.
  returned: always
  type: list
  elements: str
  sample: ["W-1", "W-2", "W-7"]
"""

import contextlib
import socket
import time

from ansible_collections.netmedic.k8s.plugins.module_utils import drain as du
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s.edit_module import ClusterModule


def _read_node(cluster, name, timeout):
    node = k8s_client.get_object(cluster, 'Node', None, name, timeout=timeout)
    if node is None:
        raise k8s_client.K8sError('Node %s not found' % name, status=404, reason='NotFound')
    return node


def _node_pods(cluster, name, timeout):
    return k8s_client.list_objects(cluster, 'Pod', field_selector='spec.nodeName=%s' % name, timeout=timeout)


def _patch_node(cluster, name, patch, timeout, dry_run):
    return cluster.patch('Node', None, name, patch, dry_run=dry_run, timeout=timeout)


def _apply_patch(cluster, name, make_patch, timeout, dry_run, retries=3):
    """Read the Node, build the patch (None: nothing to do), send it; a 409 (changed meanwhile) re-reads it."""
    for attempt in range(retries + 1):
        node = _read_node(cluster, name, timeout)
        patch = make_patch(node)
        if patch is None:
            return node, None
        try:
            return node, _patch_node(cluster, name, patch, timeout, dry_run)
        except k8s_client.K8sError as e:
            if e.status != 409 or attempt >= retries:
                raise
    raise AssertionError('unreachable')  # pragma: no cover


def _evict(cluster, pod, p, dry_run):
    """'evicted', 'gone' or ('blocked', message); any other API answer raises."""
    body = du.eviction_body(pod, p['grace_period'], dry_run=dry_run)
    try:
        cluster.evict(pod, body, dry_run=dry_run, timeout=p['request_timeout'])
        return 'evicted', None
    except k8s_client.K8sError as e:
        if e.status == 404:
            return 'gone', None
        if e.status == 409:       # the uid precondition failed: the pod was already replaced
            return 'gone', None
        if e.status == 429:
            return 'blocked', e.msg
        raise


def _entry(pod, outcome, reason, attempts=0):
    return {'pod': du.pod_ref(pod), 'uid': pod['metadata'].get('uid'), 'outcome': outcome, 'reason': reason,
            'attempts': attempts}


def _refuse(module, result, name, refused, cordoned):
    result.extra['pods'] = [dict(r, outcome='refused', attempts=0) for r in refused] + result.extra['pods']
    result.fail('refusing to drain %s: %s. %s' % (
        name, '; '.join('%s %s' % (r['pod'], r['reason']) for r in refused),
        'The node is cordoned; nothing was evicted.' if cordoned else 'Nothing was changed.'))


class NodeDrain(ClusterModule):
    """Cordon (with a run_id owner), evict and wait; or uncordon what netmedic cordoned.

    The Node is read again and the patch decided under the 409 loop of :func:`_apply_patch`, and the pods are listed
    again once the node is cordoned, so what changes is only known in :meth:`apply`: it always runs (with server-side
    dry runs of the patch and of every eviction in check mode) and fills before/after/diff from what it did.
    """

    catalog = ['W-1', 'W-2', 'W-7']
    options = dict(
        name=dict(type='str', required=True),
        state=dict(type='str', default='drain', choices=['drain', 'cordon', 'uncordon']),
        run_id=dict(type='str'),
        timeout=dict(type='int', default=300),
        poll_interval=dict(type='float', default=2.0),
        request_timeout=dict(type='int', default=30),
        grace_period=dict(type='int'),
        delete_emptydir_data=dict(type='bool', default=False),
        allow_unmanaged=dict(type='bool', default=False),
    )
    refusals = (du.DrainError,)
    apply_in_check_mode = True

    def refusal(self, error):
        if isinstance(error, du.DrainError):
            return 'invalid input: %s' % error
        return '%s (node %s; cordoned: %s)' % (error.msg, self.params['name'], self.result.extra.get('cordon', {}).get(
            'after', {}).get('unschedulable', 'unknown'))

    def refuse(self, msg, **details):
        """A failure once the cluster is read reports what was read (``result.fail``: before, cordon, pods) and says
        whether the node is cordoned (see :meth:`refusal`)."""
        self.result.fail(msg, **details)

    @contextlib.contextmanager
    def failures(self):
        """API and input errors of apply/verify fail the same way as those of read and plan."""
        try:
            yield
        except (du.DrainError, k8s_client.K8sError) as e:
            self.result.fail(self.refusal(e))

    def validate(self):
        p = self.params
        self.result.extra.update({'node': p['name'], 'cordon': {}, 'pods': [], 'remaining': []})
        bad = []
        if not p['name'] or not p['name'].strip():
            bad.append('name must be a Node name')
        if p['timeout'] < 1:
            bad.append('timeout must be >= 1 (got %d)' % p['timeout'])
        if not p['poll_interval'] > 0:
            bad.append('poll_interval must be > 0')
        if p['request_timeout'] < 1:
            bad.append('request_timeout must be >= 1 (got %d)' % p['request_timeout'])
        if p['grace_period'] is not None and p['grace_period'] < 0:
            bad.append('grace_period must be >= 0')
        if p['run_id'] is not None and not p['run_id'].strip():
            bad.append('run_id must not be empty')
        if bad:
            self.module.fail_json(msg='invalid input: %s (nothing was changed)' % '; '.join(bad), changed=False, **self.result.extra)
        self.run_id = p['run_id'] or 'netmedic@%s/%s' % (socket.gethostname(), time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))

    def read(self):
        p, result = self.params, self.result
        self.cluster = k8s_client.Cluster(p)
        node = _read_node(self.cluster, p['name'], p['request_timeout'])
        self.before = before = du.cordon_state(node)
        result.before = {'unschedulable': before['unschedulable'], 'cordoned-by': before['owner']}
        result.extra['cordon'] = {'before': before, 'after': before, 'by_other': before['by_other']}
        self.pods = None if p['state'] == 'uncordon' else _node_pods(self.cluster, p['name'], p['request_timeout'])

    def plan(self):
        """The pods to evict, skip or refuse; a drain that would have to evict a pod it must not is refused here."""
        p = self.params
        if self.pods is None:
            return
        self.planned = planned = du.plan(self.pods, p['delete_emptydir_data'], p['allow_unmanaged'])
        self.result.extra['pods'] = [dict(s, outcome='skipped', attempts=0) for s in planned['skip']]
        if p['state'] == 'drain' and planned['refuse']:
            _refuse(self.module, self.result, p['name'], planned['refuse'], self.before['unschedulable'])

    def will_change(self):
        return True     # decided in apply (see the class docstring); it changes nothing when there is nothing to do

    def apply(self):
        with self.failures():
            if self.params['state'] == 'uncordon':
                self.uncordon()
            else:
                self.cordon_and_evict()

    def uncordon(self):
        p, result, before = self.params, self.result, self.before
        name = p['name']
        _node, written = _apply_patch(self.cluster, name, du.uncordon_patch, p['request_timeout'], self.check_mode)
        after = du.cordon_state(written) if written is not None and not self.check_mode else (
            {'unschedulable': False, 'owner': None, 'by_netmedic': False, 'by_other': False} if written is not None
            else before)
        if written is None and before['by_other']:
            result.warn('%s was cordoned by someone else (no %s annotation); left cordoned'
                        % (name, du.CORDON_ANNOTATION))
        result.extra['cordon'] = {'before': before, 'after': after, 'by_other': before['by_other']}
        result.after = {'unschedulable': after['unschedulable'], 'cordoned-by': after['owner']}
        result.add_diff(result.before, result.after, 'Node %s' % name)

    def cordon_and_evict(self):
        p, result, before, cluster = self.params, self.result, self.before, self.cluster
        name, rt, run_id = p['name'], p['request_timeout'], self.run_id
        _node, written = _apply_patch(cluster, name, lambda n: du.cordon_patch(n, run_id), rt, self.check_mode)
        after = dict(before, unschedulable=True, by_netmedic=before['by_netmedic'] or written is not None,
                     owner=before['owner'] if written is None else run_id)
        result.extra['cordon'] = {'before': before, 'after': after, 'by_other': before['by_other']}
        if before['by_other']:
            result.warn('%s was already cordoned by someone else; netmedic will not uncordon it' % name)
        result.after = {'unschedulable': True, 'cordoned-by': after['owner']}
        if p['state'] == 'cordon':
            result.add_diff(result.before, result.after, 'Node %s' % name)
            return

        if self.check_mode:
            for pod in self.planned['evict']:
                outcome, why = _evict(cluster, pod, p, dry_run=True)
                result.extra['pods'].append(_entry(pod, 'would wait for budget' if outcome == 'blocked' else 'would evict',
                                                   why or du.classify(pod, True, True)[1], 1))
            evict_names = [du.pod_ref(x) for x in self.planned['evict']]
            result.before['pods to evict'] = evict_names
            result.after['pods to evict'] = []
            result.add_diff(result.before, result.after, 'Node %s' % name)
            return

        # The node is cordoned now: pods that landed before the cordon are in this second listing.
        planned = du.plan(_node_pods(cluster, name, rt), p['delete_emptydir_data'], p['allow_unmanaged'])
        result.extra['pods'] = [dict(s, outcome='skipped', attempts=0) for s in planned['skip']]
        result.add_diff({'unschedulable': before['unschedulable'], 'cordoned-by': before['owner']},
                        {'unschedulable': True, 'cordoned-by': after['owner']}, 'Node %s' % name)
        if planned['refuse']:
            _refuse(self.module, result, name, planned['refuse'], True)
        self.todo = todo = planned['evict']
        if todo:
            result.add_diff({'pods': [du.pod_ref(x) for x in todo]}, {'pods': []}, 'Pods on Node %s' % name)
        self.attempts = attempts = {}
        self.blocked = blocked = {}
        evicted = set()
        deadline = time.time() + p['timeout']
        while True:
            for pod in todo:
                ref = du.pod_ref(pod)
                if ref in evicted:
                    continue
                attempts[ref] = attempts.get(ref, 0) + 1
                outcome, why = _evict(cluster, pod, p, dry_run=False)
                if outcome == 'blocked':
                    blocked[ref] = why
                else:
                    evicted.add(ref)
                    blocked.pop(ref, None)
            self.left = left = du.still_there(todo, _node_pods(cluster, name, rt))
            if not left or time.time() >= deadline:
                break
            time.sleep(min(p['poll_interval'], max(0.0, deadline - time.time())) or 0.01)

    def verify(self):
        """A drain ends with none of the evicted pods on the node (the last listing of the wait); each pod's outcome."""
        if self.params['state'] != 'drain':
            return
        result, left, blocked = self.result, self.left, self.blocked
        with self.failures():
            states = {e['pod']: e['state'] for e in left}
            for pod in self.todo:
                ref = du.pod_ref(pod)
                if ref not in states:
                    outcome = 'evicted'
                elif ref in blocked:
                    outcome = 'blocked'
                elif states[ref] == 'Terminating':
                    outcome = 'terminating'
                else:
                    outcome = 'running'
                result.extra['pods'].append(_entry(pod, outcome, blocked.get(ref) or du.classify(pod, True, True)[1],
                                                   self.attempts.get(ref, 0)))
        result.extra['remaining'] = [e['pod'] for e in left]
        if left:
            result.fail(du.failure_message(self.params['name'], left, blocked) + '. %s stays cordoned.' % self.params['name'])


def main():
    NodeDrain().run()


if __name__ == '__main__':
    main()
