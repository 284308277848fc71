"""PodDisruptionBudget arithmetic and the pods/eviction subresource.

Simplification: the expected pod count is the number of live pods matching the budget's selector
(the real disruption controller asks the owning controllers for their scale).
"""

from __future__ import annotations

import math

from . import errors
from .resources import PDB, POD
from .selectors import selector_matches


def pod_ready(pod):
    status = pod.get('status') or {}
    return status.get('phase') == 'Running' and any(
        c.get('type') == 'Ready' and c.get('status') == 'True' for c in status.get('conditions') or [])


def pod_active(pod):
    return (pod.get('status') or {}).get('phase') not in ('Succeeded', 'Failed') \
        and not pod['metadata'].get('deletionTimestamp')


def _scaled(value, total):
    if isinstance(value, str) and value.endswith('%'):
        return math.ceil(total * int(value[:-1]) / 100.0)
    return int(value)


def budget_state(store, pdb):
    """currentHealthy / desiredHealthy / expectedPods / disruptionsAllowed for one budget."""
    namespace = pdb['metadata']['namespace']
    selector = pdb['spec'].get('selector')
    pods = [p for p in store.iter_objects(POD, namespace)
            if pod_active(p) and selector_matches(selector, p['metadata'].get('labels'))]
    expected = len(pods)
    healthy = sum(1 for p in pods if pod_ready(p))
    spec = pdb['spec']
    if spec.get('maxUnavailable') is not None:
        desired = max(0, expected - _scaled(spec['maxUnavailable'], expected))
    else:
        desired = _scaled(spec.get('minAvailable', 1), expected)
    return {'currentHealthy': healthy, 'desiredHealthy': desired, 'expectedPods': expected,
            'disruptionsAllowed': max(0, healthy - desired)}


def evict(store, namespace, name, body, dry_run=False):
    """POST pods/<name>/eviction: delete the pod unless a PodDisruptionBudget forbids it (429); a Terminating pod's is not checked."""
    with store.lock:
        pod = store.get(POD, namespace, name)
        body = body or {}
        if (body.get('metadata') or {}).get('name', name) != name:
            raise errors.bad_request('name in URL does not match name in Eviction object')
        options = body.get('deleteOptions') or {}
        if pod_active(pod) and pod['status'].get('phase') != 'Pending':
            budgets = [b for b in store.iter_objects(PDB, namespace)
                       if selector_matches(b['spec'].get('selector'), pod['metadata'].get('labels'))]
            if len(budgets) > 1:
                raise errors.ApiError(500, 'InternalError', 'This pod has more than one PodDisruptionBudget, which '
                                      'the eviction subresource does not support.')
            if budgets:
                state = budget_state(store, budgets[0])
                blocked = (state['disruptionsAllowed'] <= 0 if pod_ready(pod)
                           else state['currentHealthy'] < state['desiredHealthy'])
                if blocked:
                    raise errors.too_many_requests(
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        [{'reason': 'DisruptionBudget', 'message': 'The disruption budget %s needs %d healthy pods and '
                          'has %d currently' % (budgets[0]['metadata']['name'], state['desiredHealthy'],
                                                state['currentHealthy'])}])
        # a graceful deletion like a DELETE's: the pod is Terminating until its kubelet ends it (issue 15)
        grace = options.get('gracePeriodSeconds')
        store.delete(POD, namespace, name, dry_run=dry_run, preconditions=options.get('preconditions'),
                     propagation=options.get('propagationPolicy'), grace_period=None if grace is None else int(grace))
        return {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Success', 'code': 201}
