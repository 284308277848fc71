# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cluster lock on a ``coordination.k8s.io/v1`` Lease (the workflow safety spine, issue 9).

One Lease per cluster and workflow family (``kube-system/netmedic-<family>``).  ``plan`` is a
pure function from (the Lease read, the request, now) to one action; ``run`` reads, plans and
writes with compare-and-swap (create fails with 409 when someone created it first, replace and
delete carry the ``resourceVersion`` read, so a concurrent writer makes them fail with 409) and
re-plans on fresh data after a conflict, so of two runs racing exactly one holds the lock.

Rules: a free lock is a Lease that does not exist (release deletes it, with the
``resourceVersion`` as precondition).  An existing Lease whose holder, renew time or duration is
missing or unreadable is HELD, never expired; only an explicit takeover takes it.  A Lease of
another holder whose ``renewTime + leaseDurationSeconds`` has passed may be taken over.
"""

from __future__ import annotations

import copy
import datetime
import getpass
import re
import secrets
import socket

API_VERSION = 'coordination.k8s.io/v1'
MANAGED_BY = ('app.kubernetes.io/managed-by', 'netmedic')
FAMILY_ANNOTATION = 'netmedic.k8s/lock-family'
UTC = datetime.timezone.utc
_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', re.ASCII)
_SUBDOMAIN = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$', re.ASCII)
_HOLDER = re.compile(r'^[A-Za-z0-9@._:/+-]{1,200}$', re.ASCII)
_JOB_ID = re.compile(r'^[0-9]{1,18}$', re.ASCII)
_TIME = re.compile(r'^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$', re.ASCII)
STATES = ('acquired', 'renewed', 'released')
MAX_DURATION = 7 * 24 * 3600


class LockError(ValueError):
    """Bad input or a lock that cannot be taken/kept; the message says what to do."""


def format_time(moment):
    """Kubernetes MicroTime text: ``2026-12-01T22:00:00.000000Z``."""
    return moment.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def parse_time(text):
    """An aware datetime from RFC 3339 text, or None when missing or unreadable."""
    if not isinstance(text, str):
        return None
    match = _TIME.match(text.strip())
    if not match:
        return None
    fraction = (match.group(2) or '.0')[1:7].ljust(6, '0')
    zone = '+00:00' if match.group(3) == 'Z' else match.group(3)
    try:
        return datetime.datetime.fromisoformat('%s.%s%s' % (match.group(1), fraction, zone)).astimezone(UTC)
    except ValueError:
        return None


def lease_name(family, name=None):
    """The Lease name: ``name`` when given, else ``netmedic-<family>``; both must be DNS names."""
    if not isinstance(family, str) or not _LABEL.match(family) or len(family) > 50:
        raise LockError('family must be a lowercase DNS label of at most 50 characters (a-z, 0-9, -), such as '
                        'node-rotation; got %r' % (family,))
    result = name if name else 'netmedic-%s' % family
    if not isinstance(result, str) or len(result) > 253 or not _SUBDOMAIN.match(result):
        raise LockError('name must be a lowercase DNS subdomain (a-z, 0-9, - and .), got %r' % (result,))
    return result


def check_namespace(namespace):
    if not isinstance(namespace, str) or len(namespace) > 63 or not _LABEL.match(namespace):
        raise LockError('namespace must be a lowercase DNS label (a-z, 0-9, -), got %r' % (namespace,))
    return namespace


def check_duration(duration):
    if isinstance(duration, bool) or not isinstance(duration, int) or not 1 <= duration <= MAX_DURATION:
        raise LockError('duration must be whole seconds between 1 and %d, got %r' % (MAX_DURATION, duration))
    return duration


def identity(holder=None, job_id=None, nonce=None, user=None, host=None):
    """The holder identity of this run.

    An explicit ``holder`` is used as is.  Else ``awx-job-<id>`` when an AWX job id is known, else
    ``<user>@<host>``; either is followed by ``/<nonce>`` when a nonce is given.  Without job id
    and nonce a random nonce is made, so two runs from one controller never share an identity.
    """
    if holder not in (None, ''):
        if not isinstance(holder, str) or not _HOLDER.match(holder):
            raise LockError('holder must be 1-200 characters of A-Z a-z 0-9 @ . _ : / + -, got %r' % (holder,))
        return holder
    if job_id not in (None, ''):
        job_id = str(job_id).strip()
        if not _JOB_ID.match(job_id):
            raise LockError('job_id must be the AWX job number (digits only), got %r' % (job_id,))
        base = 'awx-job-%s' % job_id
    else:
        base = '%s@%s' % (user or getpass.getuser(), (host or socket.gethostname()).split('.')[0])
        if nonce in (None, ''):
            nonce = secrets.token_hex(4)
    ident = base if nonce in (None, '') else '%s/%s' % (base, nonce)
    if not _HOLDER.match(ident):
        raise LockError('the holder identity %r has characters a Lease holder should not carry; give holder or a '
                        'nonce of A-Z a-z 0-9 . _ -' % (ident,))
    return ident


def inspect(lease, now):
    """What a Lease says: ``holder``, ``renew_time``, ``duration``, ``expires``, ``expired`` and ``problems``."""
    spec = (lease or {}).get('spec') or {}
    holder = spec.get('holderIdentity')
    renew = parse_time(spec.get('renewTime'))
    duration = spec.get('leaseDurationSeconds')
    problems = []
    if not isinstance(holder, str) or not holder:
        problems.append('holderIdentity is missing or empty')
    if renew is None:
        problems.append('renewTime is missing or unreadable (%r)' % (spec.get('renewTime'),))
    if isinstance(duration, bool) or not isinstance(duration, int) or duration <= 0:
        problems.append('leaseDurationSeconds is missing or not a positive integer (%r)' % (duration,))
    expires = None
    if renew is not None and not isinstance(duration, bool) and isinstance(duration, int) and duration > 0:
        expires = renew + datetime.timedelta(seconds=duration)
    return {'holder': holder if isinstance(holder, str) else None, 'renew_time': spec.get('renewTime'),
            'duration': duration, 'expires': format_time(expires) if expires else None,
            'expired': bool(expires is not None and not problems and now >= expires),
            'transitions': spec.get('leaseTransitions') if isinstance(spec.get('leaseTransitions'), int) else 0,
            'problems': problems, '_expires': expires}


def _spec(holder, now, duration, acquire_time, transitions):
    return {'holderIdentity': holder, 'leaseDurationSeconds': duration, 'acquireTime': acquire_time,
            'renewTime': format_time(now), 'leaseTransitions': transitions}


def new_lease(namespace, name, family, holder, now, duration):
    return {'apiVersion': API_VERSION, 'kind': 'Lease',
            'metadata': {'name': name, 'namespace': namespace, 'labels': {MANAGED_BY[0]: MANAGED_BY[1]},
                         'annotations': {FAMILY_ANNOTATION: family}},
            'spec': _spec(holder, now, duration, format_time(now), 0)}


def plan(lease, state, holder, now, duration, takeover=False, namespace='kube-system', name=None, family=None):
    """One action for the request; pure.

    Returns ``{'action', 'write', 'body', 'reason', 'previous_holder', 'held_by_us'}`` where
    ``write`` is None, ``create``, ``replace`` or ``delete`` and ``action`` one of created,
    taken_over, renewed, kept, released, already_free, not_ours, refused, lost.
    """
    if state not in STATES:
        raise LockError('state must be one of %s, got %r' % (', '.join(STATES), state))
    where = 'Lease %s/%s' % (namespace, name)
    out = {'write': None, 'body': None, 'previous_holder': None, 'held_by_us': False}
    if lease is None:
        if state == 'acquired':
            return dict(out, action='created', write='create', held_by_us=True,
                        body=new_lease(namespace, name, family, holder, now, duration),
                        reason='%s is free; %s takes it for %d s' % (where, holder, duration))
        if state == 'renewed':
            return dict(out, action='lost', reason='%s does not exist: the lock of %s was released or removed by '
                        'someone else, so this run no longer holds it' % (where, holder))
        return dict(out, action='already_free', reason='%s does not exist: nothing to release' % where)

    info = inspect(lease, now)
    ours = info['holder'] == holder
    body = copy.deepcopy(lease)
    spec = body.setdefault('spec', {})
    out['previous_holder'] = info['holder']
    rest = ('renewed %s, lease %s s, expires %s' % (info['renew_time'], info['duration'], info['expires'])
            if not info['problems'] else '; '.join(info['problems']))

    if state == 'released':
        if ours:
            return dict(out, action='released', write='delete', body=body,
                        reason='%s held by %s: released (deleted)' % (where, holder))
        return dict(out, action='not_ours', reason='%s is held by %r, not by %s: left alone' % (where, info['holder'], holder))

    if state == 'renewed':
        if not ours:
            return dict(out, action='lost', reason='%s is now held by %r (%s), not by %s: this run lost the lock; '
                        'stop and find out why' % (where, info['holder'], rest, holder))
        body['spec'] = _spec(holder, now, duration, spec.get('acquireTime') or format_time(now), info['transitions'])
        return dict(out, action='renewed', write='replace', body=body, held_by_us=True,
                    reason='%s renewed by %s for %d s' % (where, holder, duration))

    # acquired
    if ours:
        expires = info['_expires']
        if not info['problems'] and info['duration'] == duration and expires is not None \
                and (expires - now).total_seconds() > duration / 2.0:
            return dict(out, action='kept', held_by_us=True,
                        reason='%s is already held by %s (%s)' % (where, holder, rest))
        body['spec'] = _spec(holder, now, duration, spec.get('acquireTime') or format_time(now), info['transitions'])
        return dict(out, action='renewed', write='replace', body=body, held_by_us=True,
                    reason='%s is already held by %s: renewed for %d s' % (where, holder, duration))
    if takeover or info['expired']:
        why = ('takeover requested' if takeover else 'its lease expired at %s' % info['expires'])
        body['spec'] = _spec(holder, now, duration, format_time(now), info['transitions'] + 1)
        return dict(out, action='taken_over', write='replace', body=body, held_by_us=True,
                    reason='%s was held by %r (%s); %s: taken over by %s' % (where, info['holder'], rest, why, holder))
    if info['problems']:
        return dict(out, action='refused', reason='%s exists but cannot be read as a lock (%s); it is treated as HELD, '
                    'never as expired. Check who wrote it, then take it over explicitly (takeover)' % (where, rest))
    return dict(out, action='refused', reason='%s is held by %r (acquired %s, %s); another run is in progress. '
                'Wait for it, or take it over explicitly (takeover) once you know it is gone'
                % (where, info['holder'], spec.get('acquireTime'), rest))


_UNREAD = object()


def run(client, namespace, name, family, state, holder, duration, takeover=False, check_mode=False,
        clock=None, retries=3, before=_UNREAD):
    """Read, plan and (unless ``check_mode``) write with compare-and-swap; re-plan after a 409/404.

    ``client`` has ``get(ns, name) -> dict | None``, ``create(ns, body)``, ``replace(ns, name, body)``
    and ``delete(ns, name, resource_version)``; a conflict raises an exception with ``status`` 409
    (404 for a Lease gone between read and write).  ``before``: the Lease as the caller just read it
    (None: absent), used for the first attempt instead of reading it again; after a conflict the Lease
    is always read afresh.  Returns ``(plan, before, after)``.
    """
    clock = clock or (lambda: datetime.datetime.now(UTC))
    for attempt in range(retries + 1):
        if attempt or before is _UNREAD:
            before = client.get(namespace, name)
        step = plan(before, state, holder, clock(), duration, takeover, namespace, name, family)
        if check_mode or step['write'] is None:
            after = step['body'] if step['write'] in ('create', 'replace') else (None if step['write'] == 'delete' else before)
            return step, before, after
        try:
            if step['write'] == 'create':
                after = client.create(namespace, step['body'])
            elif step['write'] == 'replace':
                after = client.replace(namespace, name, step['body'])
            else:
                client.delete(namespace, name, before['metadata']['resourceVersion'])
                after = None
        except Exception as exc:  # only a lost race is retried; anything else propagates
            if getattr(exc, 'status', None) in (404, 409):
                continue
            raise
        return step, before, after
    raise LockError('Lease %s/%s kept changing under us (%d conflicts); nothing was taken' % (namespace, name, retries + 1))


def summary(step, before, after, holder, namespace, name, now):
    """The module's ``lock`` result."""
    current = inspect(after, now) if after else None
    return {'namespace': namespace, 'name': name, 'holder': holder, 'action': step['action'],
            'held': step['held_by_us'], 'previous_holder': step['previous_holder'],
            'current_holder': current['holder'] if current else None,
            'expires': current['expires'] if current else None,
            'lease_duration': current['duration'] if current else None,
            'resource_version': ((after or {}).get('metadata') or {}).get('resourceVersion'),
            'reason': step['reason']}


class LeaseApi(object):
    """The four Lease calls ``run`` needs, through the cluster client, each with a timeout.

    Errors are ``k8s_client.K8sError`` (with ``status``); only a 404 on read means "absent" (a 404
    or 409 on a write is a lost race, which ``run`` retries from a fresh read).
    """

    def __init__(self, cluster, timeout):
        from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client

        self._k8s = k8s_client
        self._cluster = cluster
        self._timeout = timeout

    def _call(self, doing, method, namespace, name=None, body=None):
        path = self._k8s.resource_path('Lease', namespace, name)
        return self._cluster.call(doing, method, path, body=body, timeout=self._timeout)

    def get(self, namespace, name):
        try:
            return self._call('reading Lease %s/%s' % (namespace, name), 'GET', namespace, name)
        except self._k8s.K8sError as e:
            if e.status == 404:
                return None
            raise

    def create(self, namespace, body):
        return self._call('creating Lease %s/%s' % (namespace, body['metadata']['name']), 'POST', namespace, body=body)

    def replace(self, namespace, name, body):
        return self._call('replacing Lease %s/%s' % (namespace, name), 'PUT', namespace, name, body=body)

    def delete(self, namespace, name, resource_version):
        body = {'apiVersion': 'v1', 'kind': 'DeleteOptions', 'preconditions': {'resourceVersion': resource_version}}
        return self._call('deleting Lease %s/%s' % (namespace, name), 'DELETE', namespace, name, body=body)
