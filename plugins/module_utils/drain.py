# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cordon ownership and "drain that means drained" (catalog W-1, W-2, W-7), as pure functions over API dicts.

A node netmedic cordons carries the annotation ``netmedic.io/cordoned-by: <run id>``; netmedic only
ever uncordons a node that carries it, so a re-run (a new AWX job, another run id) still recognises
the node an earlier run left cordoned, and a node someone else cordoned is never uncordoned.

Drain: DaemonSet pods and mirror (static) pods stay; finished pods (Succeeded/Failed) are ignored;
pods with emptyDir volumes and pods no controller owns are refused unless allowed (their data, or
the pod itself, is gone for good); every other pod is evicted through the Eviction API (PodDisruption
Budgets honoured). After the timeout, any such pod still on the node - running or terminating - is
a failure.
"""

from __future__ import annotations

CORDON_ANNOTATION = 'netmedic.io/cordoned-by'
MIRROR_ANNOTATION = 'kubernetes.io/config.mirror'


class DrainError(ValueError):
    """Bad input, or a node state that makes the drain unsafe."""


def _meta(obj):
    return (obj or {}).get('metadata') or {}


def cordon_state(node):
    """``{'unschedulable', 'owner', 'by_netmedic', 'by_other'}`` for a Node dict.

    ``owner`` is the run id in the annotation (None when absent). A node that is unschedulable without
    the annotation was cordoned by someone else.
    """
    owner = (_meta(node).get('annotations') or {}).get(CORDON_ANNOTATION)
    unschedulable = bool(((node or {}).get('spec') or {}).get('unschedulable'))
    return {'unschedulable': unschedulable, 'owner': owner,
            'by_netmedic': unschedulable and owner is not None,
            'by_other': unschedulable and owner is None}


def cordon_patch(node, run_id):
    """The merge patch that cordons ``node`` and records ``run_id`` as its owner, or None when nothing changes.

    Already cordoned by netmedic: nothing (the first owner stays). Cordoned by someone else: nothing
    either - the annotation is not added, so netmedic will never uncordon it.
    """
    if not run_id or not isinstance(run_id, str):
        raise DrainError('run_id must be a non-empty string')
    state = cordon_state(node)
    if state['unschedulable']:
        return None
    return {'metadata': {'resourceVersion': _meta(node).get('resourceVersion'),
                         'annotations': {CORDON_ANNOTATION: run_id}},
            'spec': {'unschedulable': True}}


def uncordon_patch(node):
    """The merge patch that uncordons a node netmedic cordoned (and drops the annotation), or None.

    A node cordoned by someone else, or not cordoned, gets no patch. A stale annotation on a node that
    is schedulable again (someone uncordoned it by hand) is removed.
    """
    state = cordon_state(node)
    if state['owner'] is None:
        return None
    patch = {'metadata': {'resourceVersion': _meta(node).get('resourceVersion'),
                          'annotations': {CORDON_ANNOTATION: None}}}
    if state['unschedulable']:
        patch['spec'] = {'unschedulable': False}
    return patch


def pod_ref(pod):
    meta = _meta(pod)
    return '%s/%s' % (meta.get('namespace'), meta.get('name'))


def _controller(pod):
    refs = _meta(pod).get('ownerReferences') or []
    for ref in refs:
        if ref.get('controller'):
            return ref
    return refs[0] if refs else None


def classify(pod, delete_emptydir_data=False, allow_unmanaged=False):
    """``(action, reason)`` for one pod on the node being drained.

    action: ``skip`` (stays, not waited for), ``evict``, or ``refuse`` (blocks the drain).
    """
    meta = _meta(pod)
    if MIRROR_ANNOTATION in (meta.get('annotations') or {}):
        return 'skip', 'mirror pod (static pod of the kubelet)'
    phase = ((pod.get('status') or {}).get('phase'))
    if phase in ('Succeeded', 'Failed') and not meta.get('deletionTimestamp'):
        return 'skip', 'finished (%s)' % phase
    owner = _controller(pod)
    if owner is not None and owner.get('kind') == 'DaemonSet':
        return 'skip', 'DaemonSet pod'
    if owner is None and not allow_unmanaged:
        return 'refuse', 'not managed by a controller: evicting it deletes it for good (allow_unmanaged)'
    volumes = (pod.get('spec') or {}).get('volumes') or []
    if any('emptyDir' in v for v in volumes) and not delete_emptydir_data:
        return 'refuse', 'has emptyDir volume(s) whose data is lost (delete_emptydir_data)'
    return 'evict', 'unmanaged, allowed' if owner is None else '%s %s' % (owner.get('kind'), owner.get('name'))


def plan(pods, delete_emptydir_data=False, allow_unmanaged=False):
    """Split the node's pods: ``{'evict': [pod...], 'skip': [entry...], 'refuse': [entry...]}``.

    Entries are ``{'pod': ns/name, 'uid', 'reason'}``; ``evict`` keeps the pod dicts (sorted by name).
    """
    out = {'evict': [], 'skip': [], 'refuse': []}
    for pod in sorted(pods, key=pod_ref):
        action, reason = classify(pod, delete_emptydir_data, allow_unmanaged)
        if action == 'evict':
            out['evict'].append(pod)
        else:
            out[action].append({'pod': pod_ref(pod), 'uid': _meta(pod).get('uid'), 'reason': reason})
    return out


def still_there(evicted, current_pods):
    """Pods of ``evicted`` (dicts) that are still on the node: same namespace, name and uid.

    Returns ``[{'pod', 'uid', 'state'}]``; ``state`` is ``Terminating`` once a deletion is pending.
    A pod with the same name but another uid is a replacement, not the evicted pod.
    """
    by_key = {(_meta(p).get('namespace'), _meta(p).get('name'), _meta(p).get('uid')): p for p in current_pods}
    left = []
    for pod in evicted:
        meta = _meta(pod)
        now = by_key.get((meta.get('namespace'), meta.get('name'), meta.get('uid')))
        if now is None:
            continue
        state = 'Terminating' if _meta(now).get('deletionTimestamp') else ((now.get('status') or {}).get('phase') or 'Unknown')
        left.append({'pod': pod_ref(now), 'uid': meta.get('uid'), 'state': state})
    return left


def eviction_body(pod, grace_period=None, dry_run=False):
    """The policy/v1 Eviction for ``pod``, with a uid precondition (a replacement is never evicted).

    ``dry_run`` also goes into ``deleteOptions``: the server reads a DELETE's options from its body
    and ignores the query (issue 15, measured for pod deletes); the eviction must not depend on
    the server copying the query into the body.
    """
    meta = _meta(pod)
    options = {'preconditions': {'uid': meta.get('uid')}}
    if dry_run:
        options['dryRun'] = ['All']
    if grace_period is not None:
        options['gracePeriodSeconds'] = grace_period
    return {'apiVersion': 'policy/v1', 'kind': 'Eviction',
            'metadata': {'name': meta.get('name'), 'namespace': meta.get('namespace')},
            'deleteOptions': options}


def failure_message(node, left, blocked):
    """One line naming every pod still on ``node`` after the timeout (and why, when the API said)."""
    parts = []
    for entry in left:
        why = blocked.get(entry['pod'])
        parts.append('%s (%s%s)' % (entry['pod'], entry['state'], '; eviction refused: %s' % why if why else ''))
    return ('drain of %s did not finish: %d pod(s) still on the node after the timeout: %s'
            % (node, len(left), ', '.join(parts)))
