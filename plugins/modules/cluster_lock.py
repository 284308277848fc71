#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: cluster_lock
short_description: Take, renew or release a per-cluster workflow lock (a coordination.k8s.io/v1 Lease)
version_added: 0.2.0
description:
  - Part of the workflow safety spine (issue 9) under the catalog workflows B(W-1) ... B(W-7); it makes sure only one
    netmedic workflow of a family runs against a cluster at a time.
  - The lock is a C(coordination.k8s.io/v1) Lease, by default C(kube-system/netmedic-<family>). C(spec.holderIdentity)
    names the run holding it, C(spec.renewTime) plus C(spec.leaseDurationSeconds) say until when.
    A free lock is a Lease that does not exist.
  - The holder identity is per run - O(holder) when given; else C(awx-job-<id>) from O(job_id) (the AWX/Tower job id,
    also read from the environment variable C(AWX_JOB_ID)); else C(<user>@<host>/<nonce>) with O(nonce) or a random
    nonce. It is returned in RV(holder); pass it as O(holder) to the later O(state=renewed) and O(state=released)
    tasks. Two jobs from one controller therefore never share a lock.
  - Every write is a compare-and-swap - a create fails when someone created the Lease first, a replace and a delete
    carry the C(resourceVersion) read. After a conflict the Lease is read again and the decision made again, so of
    two runs racing exactly one holds the lock and the other is refused.
  - O(state=acquired) takes a free lock; re-takes our own (renewing it unless more than half the lease is left, so a
    second run reports no change); takes over another holder's lock only when its C(renewTime) plus
    C(leaseDurationSeconds) has passed, or with O(takeover=true). A Lease whose holder, renew time or duration is
    missing or unreadable is treated as HELD, never as expired. Otherwise the task fails and nothing is written.
  - O(state=renewed) moves C(renewTime) to now (and sets O(duration)); it fails when the lock is no longer ours (it
    expired and was taken, or was removed) - the workflow must stop.
  - O(state=released) deletes the Lease when we hold it; a lock that is free or held by someone else is left alone
    (no failure, so an C(always) block can release after a refused acquire without touching the other run's lock).
  - AWX job slicing - the family is per cluster, so cluster steps must run once, not per slice; two slices taking the
    same family contend like two jobs (one wins, the other is refused). Take the lock in a play on the controller
    that is not sliced.
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
      - Reads the Lease and reports what it would do (RV(lock.action)), never writes. A lock held by another run is
        reported (RV(lock.held) false, a warning) without failing.
  diff_mode:
    support: full
    details: Shows the Lease's spec before and after.
  platform:
    platforms: posix
    support: full
    details: Runs where the C(kubernetes) client is installed, usually the controller.
options:
  family:
    description:
      - The workflow family the lock serializes, a lowercase DNS label such as V(node-rotation) or V(kube-proxy).
        Workflows of one family never run at the same time on one cluster.
    type: str
    required: true
  name:
    description: The Lease name (default C(netmedic-<family>)).
    type: str
  namespace:
    description: The Lease namespace.
    type: str
    default: kube-system
  state:
    description: Take (V(acquired)), extend (V(renewed)) or give back (V(released)) the lock.
    type: str
    choices: [acquired, renewed, released]
    default: acquired
  holder:
    description:
      - This run's identity. Required for V(renewed) and V(released) - use RV(holder) of the V(acquired) task.
    type: str
  job_id:
    description:
      - The AWX/Tower job id (pass C({{ awx_job_id | default(tower_job_id) | default(omit) }})); the identity is then
        C(awx-job-<id>). Digits only.
    type: str
  nonce:
    description:
      - Appended to the identity as C(/<nonce>); without a job id and without a nonce a random one is made.
    type: str
  duration:
    description:
      - Lease duration in seconds (C(leaseDurationSeconds)). It must cover the longest step between two renewals,
        for a rolling workflow one node's worst case; another run may take the lock over once it has passed.
    type: int
    default: 3600
  takeover:
    description:
      - Take the lock even when another run holds it (live, or with missing fields). Only after making sure that run
        is gone - the previous holder is returned in RV(lock.previous_holder) and warned about.
    type: bool
    default: false
  request_timeout:
    description: Seconds to wait for each API request.
    type: int
    default: 30
seealso:
  - module: netmedic.k8s.change_window
  - name: Kubernetes Leases
    description: The coordination.k8s.io/v1 Lease object.
    link: https://kubernetes.io/docs/concepts/architecture/leases/
notes:
  - RBAC - C(get), C(create), C(update) and C(delete) on C(leases.coordination.k8s.io) in O(namespace).
  - A job that is killed (no C(always) block runs) leaves the lock until its lease expires, or an operator takes it
    over with O(takeover=true).
"""

EXAMPLES = r"""
- name: Take the node-rotation lock for this AWX job
  netmedic.k8s.cluster_lock:
    family: node-rotation
    job_id: "{{ awx_job_id | default(tower_job_id) | default(omit) }}"
    duration: 5400
  register: lock

- name: Work, renewing before each long step, and always release
  block:
    - name: Renew before the next node
      netmedic.k8s.cluster_lock:
        family: node-rotation
        state: renewed
        holder: "{{ lock.holder }}"
        duration: 5400
  always:
    - name: Release the lock
      netmedic.k8s.cluster_lock:
        family: node-rotation
        state: released
        holder: "{{ lock.holder }}"
"""

RETURN = r"""
holder:
  description: This run's holder identity; pass it as O(holder) to later tasks.
  returned: success
  type: str
  sample: awx-job-4711
lock:
  description: The decision and the Lease afterwards.
  returned: success
  type: dict
  contains:
    namespace:
      description: Lease namespace.
      type: str
      returned: always
    name:
      description: Lease name.
      type: str
      returned: always
    holder:
      description: This run's identity.
      type: str
      returned: always
    action:
      description:
        - V(created), V(taken_over), V(renewed), V(kept) (already ours, nothing written), V(released),
          V(already_free), V(not_ours) (release of another holder's lock, left alone), V(refused) (held by another
          run; only in check mode without failing), V(lost) (renew of a lock that is no longer ours; check mode only).
      type: str
      returned: always
    held:
      description: Whether this run holds (in check mode - would hold) the lock afterwards.
      type: bool
      returned: always
    previous_holder:
      description: The holder found in the Lease before, if any.
      type: str
      returned: always
    current_holder:
      description: The holder in the Lease afterwards (in check mode - planned); null when free.
      type: str
      returned: always
    expires:
      description: When the lease runs out (UTC, renewTime + leaseDurationSeconds).
      type: str
      returned: always
    lease_duration:
      description: C(leaseDurationSeconds) afterwards.
      type: int
      returned: always
    resource_version:
      description: The Lease's resourceVersion afterwards.
      type: str
      returned: always
    reason:
      description: The decision in words.
      type: str
      returned: always
  sample:
    namespace: kube-system
    name: netmedic-node-rotation
    holder: awx-job-4711
    action: created
    held: true
    previous_holder: null
    current_holder: awx-job-4711
    expires: "2026-12-01T23:30:00.000000Z"
    lease_duration: 3600
    resource_version: "812"
    reason: Lease kube-system/netmedic-node-rotation is free; awx-job-4711 takes it for 3600 s
before:
  description: The Lease spec before (empty when there was none).
  returned: success
  type: dict
after:
  description: The Lease spec after (planned in check mode; empty when released).
  returned: success
  type: dict
backups:
  description: Always empty - a lock holds no user data; the previous holder is in RV(lock.previous_holder).
  returned: success
  type: list
  elements: dict
catalog:
  description: The workflows this spine serves.
  returned: always
  type: list
  elements: str
  sample: ["W-1", "W-2", "W-3", "W-4", "W-5", "W-6", "W-7"]
"""

import datetime
import os

from ansible_collections.netmedic.k8s.plugins.module_utils import lifecycle
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import lock as ll
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s.edit_module import ClusterModule


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class ClusterLock(ClusterModule):
    """The Lease lock of the workflow spine on the lifecycle: validate the inputs, read the Lease, plan
    (``lock.run`` in check mode: no write), report; apply writes with compare-and-swap (``lock.run``: the
    first attempt on the Lease read, a fresh read and a new plan after a 409), verify reads it back."""

    catalog = lifecycle.WORKFLOWS
    options = dict(
        family=dict(type='str', required=True),
        name=dict(type='str'),
        namespace=dict(type='str', default='kube-system'),
        state=dict(type='str', choices=list(ll.STATES), default='acquired'),
        holder=dict(type='str'),
        job_id=dict(type='str'),
        nonce=dict(type='str', no_log=False),
        duration=dict(type='int', default=3600),
        takeover=dict(type='bool', default=False),
        request_timeout=dict(type='int', default=30),
    )
    refusals = (ll.LockError,)
    written = False
    """True once apply() ran its compare-and-swap (the result then reports what it did)."""

    def validate(self):
        p = self.params
        self.name = ll.lease_name(p['family'], p['name'])
        self.namespace = ll.check_namespace(p['namespace'])
        self.duration = ll.check_duration(p['duration'])
        if p['state'] != 'acquired' and not p['holder']:
            raise ll.LockError('holder is required for state=%s: pass the holder returned by the acquired task '
                               '(register: lock, then holder: "{{ lock.holder }}")' % p['state'])
        if not 1 <= p['request_timeout'] <= 600:
            raise ll.LockError('request_timeout must be 1 ... 600 seconds, got %r' % p['request_timeout'])
        job_id = p['job_id'] if p['job_id'] not in (None, '') else os.environ.get('AWX_JOB_ID')
        self.holder = ll.identity(p['holder'], job_id, p['nonce'])

    def read(self):
        self.api = ll.LeaseApi(k8s_client.Cluster(self.params), self.params['request_timeout'])
        self.lease_before = self.api.get(self.namespace, self.name)

    def _run(self, check_mode):
        p = self.params
        self.step, self.lease_before, self.lease_after = ll.run(
            self.api, self.namespace, self.name, p['family'], p['state'], self.holder, self.duration,
            takeover=p['takeover'], check_mode=check_mode, clock=_now, before=self.lease_before)

    def plan(self):
        self._run(check_mode=True)

    def report(self):
        step, result = self.step, self.result
        where = 'Lease %s/%s' % (self.namespace, self.name)
        result.diffs = []
        result.before = (self.lease_before or {}).get('spec') or {}
        result.after = (self.lease_after or {}).get('spec') or {}
        result.changed = step['write'] is not None
        if result.changed:
            result.add_diff(result.before, result.after, where)
        lock = ll.summary(step, self.lease_before, self.lease_after, self.holder, self.namespace, self.name, _now())
        result.extra.update(holder=self.holder, lock=lock)
        if step['write'] is not None and not self.check_mode and not self.written:
            return  # the write decides: apply() reports again with what it did (no warning about a plan that may change)
        if step['action'] == 'taken_over':
            result.warn('the cluster lock was taken over: %s' % step['reason'])
        if step['action'] in ('refused', 'lost'):
            if self.check_mode:
                result.warn('check mode: a real run would stop here - %s' % step['reason'])
            else:
                result.fail(lifecycle.refusal_text(step['reason']))
        if step['action'] == 'not_ours':
            result.warn(step['reason'])

    def will_change(self):
        return self.step['write'] is not None

    def apply(self):
        result = self.result
        try:
            self._run(check_mode=False)
        except (k8s_client.K8sError, ll.LockError) as e:
            # Nothing was written: the result says so, not what the plan would have made.
            result.changed, result.diffs, result.after = False, [], result.before
            for key in ('lock', 'holder'):
                result.extra.pop(key, None)
            result.fail(lifecycle.refusal_text(getattr(e, 'msg', None) or e))
        self.written = True
        self.report()

    def verify(self):
        """Read the Lease back: after an acquire, renew or takeover this run holds it; after a release it is not ours."""
        if self.step['write'] is None:  # a 409 re-plan ended in kept/not_ours/already_free: nothing of ours written
            return
        try:
            now = self.api.get(self.namespace, self.name)
        except k8s_client.K8sError as e:
            self.result.fail('the Lease %s/%s was written but cannot be read back: %s' % (self.namespace, self.name, e.msg))
        holder = ((now or {}).get('spec') or {}).get('holderIdentity')
        if self.step['write'] == 'delete' and holder == self.holder:
            self.result.fail('the Lease %s/%s was released but still names %s as its holder' % (self.namespace, self.name, holder))
        if self.step['write'] != 'delete' and holder != self.holder:
            self.result.fail('the Lease %s/%s was written for %s but reading it back shows holder %r'
                             % (self.namespace, self.name, self.holder, holder))


def main():
    ClusterLock().run()


if __name__ == '__main__':
    main()
