"""The object store: one lock, one global resourceVersion counter, API-server write semantics.

Objects are plain dicts (the JSON the API returns). Every method that takes a resource type
accepts a ResourceType, a key (``pods``, ``apps/daemonsets``) or a kind (``DaemonSet``).
Reads return deep copies; writes raise ``ApiError`` with the status the real server would give.

Scale (issue 14): copies are made by ``clone`` (a copier for JSON-shaped data, several times faster
than ``copy.deepcopy``), each type's sorted key order is cached until a key is added or removed,
and a paged list copies only the page it returns.
"""

from __future__ import annotations

import calendar
import copy
import json
import os
import random
import threading
import time
import uuid

from . import admission, errors, validation
from .patching import APPLY_PATCH, apply_patch
from .resources import EVENT, NAMESPACE, RESOURCE_TYPES, lookup
from .selectors import labels_match, match_fields, parse_field_selector, parse_label_selector


def now(offset=0):
    """The API's timestamp (whole seconds, UTC) of now plus ``offset`` seconds."""
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() + offset))


def parse_time(stamp):
    """Seconds since the epoch of an API timestamp (``now()``'s format)."""
    return calendar.timegm(time.strptime(stamp, '%Y-%m-%dT%H:%M:%SZ'))


def pod_grace_period(pod, grace_period=None):
    """The grace period a DELETE gives a pod, as the real pod strategy (CheckGracefulDelete) computes it:
    DeleteOptions.gracePeriodSeconds, else the pod's terminationGracePeriodSeconds (0 when unset); 0 for a
    pod no kubelet runs (no nodeName) or one that has already terminated (Succeeded, Failed)."""
    spec, status = pod.get('spec') or {}, pod.get('status') or {}
    period = int(grace_period) if grace_period is not None else int(spec.get('terminationGracePeriodSeconds') or 0)
    if not spec.get('nodeName') or status.get('phase') in ('Succeeded', 'Failed'):
        period = 0
    return max(0, period)


def random_suffix(length=5):
    return ''.join(random.choices('bcdfghjklmnpqrstvwxz2456789', k=length))


_ATOMIC = frozenset((str, int, float, bool, type(None)))


def clone(obj):
    """A deep copy of JSON-shaped data (dicts, lists, str, numbers, bool, None); anything else via ``copy.deepcopy``."""
    kind = type(obj)
    if kind is dict:
        return {k: v if type(v) in _ATOMIC else clone(v) for k, v in obj.items()}
    if kind is list:
        return [v if type(v) in _ATOMIC else clone(v) for v in obj]
    if kind in _ATOMIC:
        return obj
    return copy.deepcopy(obj)


def owner_reference(obj, controller=True):
    return {'apiVersion': obj['apiVersion'], 'kind': obj['kind'], 'name': obj['metadata']['name'],
            'uid': obj['metadata']['uid'], 'controller': controller, 'blockOwnerDeletion': True}


class Store:
    def __init__(self, version='v1.24.9', validate=True):
        self.lock = threading.RLock()
        self.version = version
        self.validate = validate and validation.available()
        self._objects = {rt.key: {} for rt in RESOURCE_TYPES}
        self._rv = 0
        self._order = {}   # resource key -> its keys sorted as iter_objects returns them (dropped on add/remove)
        self.logs = {}   # pod uid -> {container: text}

    # -- reads ---------------------------------------------------------------------------------

    @property
    def resource_version(self):
        return str(self._rv)

    def find(self, rt, namespace, name):
        rt = lookup(rt)
        with self.lock:
            obj = self._objects[rt.key].get((namespace if rt.namespaced else None, name))
            return clone(obj)

    def get(self, rt, namespace, name):
        rt = lookup(rt)
        obj = self.find(rt, namespace, name)
        if obj is None:
            raise errors.not_found(rt, name)
        return obj

    def iter_objects(self, rt, namespace=None):
        """Stored objects themselves (no copies): for use under ``self.lock`` by trusted code."""
        rt = lookup(rt)
        objects = self._objects[rt.key]
        order = self._order.get(rt.key)
        if order is None:
            order = self._order[rt.key] = sorted(objects, key=lambda key: (key[0] or '', key[1]))
        return [objects[key] for key in order if namespace is None or key[0] == namespace]

    def _objects_changed(self, rt_key):
        self._order.pop(rt_key, None)

    def list(self, rt, namespace=None, label_selector=None, field_selector=None):
        items, rv, _total = self.list_page(rt, namespace, label_selector, field_selector)
        return items, rv

    def list_page(self, rt, namespace=None, label_selector=None, field_selector=None, start=0, limit=0):
        """Copies of the matching objects ``[start:start + limit]`` (all when ``limit`` is 0), the
        resourceVersion and the number of matching objects: a page costs one scan, not one copy per object."""
        rt = lookup(rt)
        labels = parse_label_selector(label_selector) if label_selector else []
        fields = parse_field_selector(field_selector, rt.kind) if field_selector else []
        with self.lock:
            matching = [o for o in self.iter_objects(rt, namespace)
                        if labels_match(labels, o['metadata'].get('labels')) and match_fields(fields, o)]
            page = matching[start:start + limit] if limit else matching[start:]
            return [clone(o) for o in page], self.resource_version, len(matching)

    # -- writes --------------------------------------------------------------------------------

    def _check_type(self, rt, obj):
        if not isinstance(obj, dict):
            raise errors.bad_request('the body of the request must be a JSON object')
        if obj.get('apiVersion', rt.api_version) != rt.api_version:
            raise errors.bad_request('the API version in the data (%s) does not match the expected API version (%s)'
                                     % (obj['apiVersion'], rt.api_version))
        if obj.get('kind', rt.kind) != rt.kind:
            raise errors.bad_request('%s in version "%s" cannot be handled as a %s: the kind in the data does not match'
                                     % (obj['kind'], rt.version, rt.kind))
        obj['apiVersion'], obj['kind'] = rt.api_version, rt.kind
        if not isinstance(obj.setdefault('metadata', {}), dict):
            raise errors.bad_request('metadata must be an object')

    def _validate(self, rt, obj):
        if self.validate:
            problems = validation.validate(obj, self.version)
            if problems:
                raise errors.invalid(rt, obj['metadata'].get('name', ''), problems)

    def _commit(self, rt, obj):
        self._rv += 1
        obj['metadata']['resourceVersion'] = str(self._rv)
        meta = obj['metadata']
        objects = self._objects[rt.key]
        key = (meta.get('namespace'), meta['name'])
        if key not in objects:
            self._objects_changed(rt.key)
        objects[key] = obj
        return clone(obj)

    def create(self, rt, namespace, obj, dry_run=False, system=False):
        rt = lookup(rt)
        with self.lock:
            obj = clone(obj)
            self._check_type(rt, obj)
            meta = obj['metadata']
            if rt.namespaced:
                if namespace and meta.get('namespace') and meta['namespace'] != namespace:
                    raise errors.bad_request('the namespace of the provided object does not match the namespace sent '
                                             'on the request')
                meta['namespace'] = namespace or meta.get('namespace') or 'default'
                if (None, meta['namespace']) not in self._objects[NAMESPACE.key]:
                    raise errors.not_found(NAMESPACE, meta['namespace'])
            else:
                meta.pop('namespace', None)
            if rt.namespaced:
                admission.check_service_account(self, rt, obj)
            if not meta.get('name'):
                if not meta.get('generateName'):
                    raise errors.invalid(rt, '', [('metadata.name', 'Required value: name or generateName is required')])
                meta['name'] = meta['generateName'] + random_suffix()
                # As kube-apiserver >= 1.32 (RetryGenerateName): a generated name that is taken is drawn again.
                for _attempt in range(7):
                    if (meta.get('namespace'), meta['name']) not in self._objects[rt.key]:
                        break
                    meta['name'] = meta['generateName'] + random_suffix()
            admission.check_name(rt, meta['name'])
            admission.check_cluster_ip_free(self, rt, obj)   # before the name check, as the real server
            if (meta.get('namespace'), meta['name']) in self._objects[rt.key]:
                raise errors.already_exists(rt, meta['name'])
            for key in ('resourceVersion', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields'):
                meta.pop(key, None)
            meta['uid'] = str(uuid.uuid4())
            meta['creationTimestamp'] = now()
            if rt.generation:
                meta['generation'] = 1
            admission.apply_defaults(self, rt, obj)
            if not system:
                admission.check_semantics(rt, obj)
                self._validate(rt, obj)
            if dry_run:
                return obj
            return self._commit(rt, obj)

    def _current(self, rt, namespace, name):
        obj = self._objects[rt.key].get((namespace if rt.namespaced else None, name))
        if obj is None:
            raise errors.not_found(rt, name)
        return obj

    def _merge_update(self, rt, old, new, subresource):
        """Carry over what a client cannot change through this endpoint."""
        if subresource == 'status':
            merged = clone(old)
            if 'status' in new:
                merged['status'] = new['status']
            return merged
        merged = clone(new)
        if rt.status:
            if 'status' in old:
                merged['status'] = clone(old['status'])
            else:
                merged.pop('status', None)
        meta = merged['metadata']
        for key in ('uid', 'creationTimestamp', 'namespace', 'name', 'generation', 'deletionTimestamp',
                    'deletionGracePeriodSeconds'):
            if key in old['metadata']:
                meta[key] = old['metadata'][key]
            else:
                meta.pop(key, None)
        if rt.generation and _spec_view(merged) != _spec_view(old):
            meta['generation'] = old['metadata'].get('generation', 0) + 1
        return merged

    def _finish_update(self, rt, old, new, dry_run, system):
        if not system:
            admission.apply_defaults(self, rt, new, old=old)
            admission.check_semantics(rt, new, old=old)
            self._validate(rt, new)
        new['metadata']['resourceVersion'] = old['metadata']['resourceVersion']
        if new == old:
            return clone(old)
        if dry_run:
            return new
        meta = new['metadata']
        if meta.get('deletionTimestamp') and not meta.get('finalizers') and not meta.get('deletionGracePeriodSeconds'):
            # the last finalizer went (a graceful deletion still pending keeps the object until its grace 0 DELETE)
            self._remove(rt, new)
            return clone(new)
        return self._commit(rt, new)

    def update(self, rt, namespace, name, obj, dry_run=False, subresource=None, system=False):
        """PUT: a stale ``metadata.resourceVersion`` is a 409 Conflict, a missing one is unconditional."""
        rt = lookup(rt)
        with self.lock:
            old = self._current(rt, namespace, name)
            obj = clone(obj)
            self._check_type(rt, obj)
            meta = obj['metadata']
            if meta.get('name', name) != name:
                raise errors.bad_request('the name of the object (%s) does not match the name on the URL (%s)'
                                         % (meta['name'], name))
            if rt.namespaced and meta.get('namespace', namespace) != namespace:
                raise errors.bad_request('the namespace of the provided object does not match the namespace sent on '
                                         'the request')
            if meta.get('resourceVersion') and meta['resourceVersion'] != old['metadata']['resourceVersion']:
                raise errors.conflict(rt, name)
            new = self._merge_update(rt, old, obj, subresource)
            return self._finish_update(rt, old, new, dry_run, system)

    def patch(self, rt, namespace, name, content_type, body, dry_run=False, subresource=None, field_manager=None):
        rt = lookup(rt)
        with self.lock:
            if content_type == APPLY_PATCH:
                if not field_manager:
                    raise errors.bad_request('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                                             'is required for apply patch')
                if not isinstance(body, dict) or (body.get('metadata') or {}).get('name') != name:
                    raise errors.bad_request('the name of the object must match the name on the URL (%s)' % name)
                if self.find(rt, namespace, name) is None:
                    return self.create(rt, namespace, body, dry_run=dry_run)
            old = self._current(rt, namespace, name)
            patched = apply_patch(old, content_type, body, rt.kind)
            self._check_type(rt, patched)
            wanted_rv = patched['metadata'].get('resourceVersion')
            if wanted_rv and wanted_rv != old['metadata']['resourceVersion']:
                raise errors.conflict(rt, name)
            if patched['metadata'].get('name') != name:
                raise errors.bad_request('metadata.name: Invalid value: the name of the object does not match the URL')
            new = self._merge_update(rt, old, patched, subresource)
            return self._finish_update(rt, old, new, dry_run, system=False)

    def delete(self, rt, namespace, name, dry_run=False, propagation=None, preconditions=None, grace_period=None):
        """DELETE: returns the object as it was; objects with finalizers only get a deletionTimestamp.

        A pod takes the real server's graceful deletion (``_delete_pod``): ``grace_period`` is the
        DeleteOptions' gracePeriodSeconds (None: the pod's own terminationGracePeriodSeconds).
        """
        rt = lookup(rt)
        with self.lock:
            old = self._current(rt, namespace, name)
            for key in ('uid', 'resourceVersion'):
                wanted = (preconditions or {}).get(key)
                if wanted and wanted != old['metadata'][key]:
                    raise errors.precondition_failed(rt, name, key, wanted, old['metadata'][key])
            if rt.kind == 'Pod':
                return self._delete_pod(rt, old, dry_run, propagation, grace_period)
            if dry_run:
                return clone(old)
            if old['metadata'].get('finalizers'):
                if not old['metadata'].get('deletionTimestamp'):
                    marked = clone(old)
                    marked['metadata']['deletionTimestamp'] = now()
                    marked['metadata']['deletionGracePeriodSeconds'] = 0
                    return self._commit(rt, marked)
                return clone(old)
            self._remove(rt, old, propagation)
            return clone(old)

    def _delete_pod(self, rt, old, dry_run, propagation, grace_period):
        """A pod's DELETE as the real kube-apiserver does it (measured against v1.37.2, issue 15).

        With a grace period (a pod bound to a node, see ``pod_grace_period``) the pod is only marked
        Terminating: ``deletionTimestamp`` now + grace, ``deletionGracePeriodSeconds`` grace, same UID.
        Its node's kubelet (controllers.py ``_kubelet_finish``) ends it with a DELETE of grace 0. A
        DELETE of a Terminating pod may only shorten the grace (the deletionTimestamp moves by the
        difference, never before now); otherwise it answers the pod unchanged. Grace 0 removes the pod
        at once (a finalizer keeps it, Terminating with grace 0), the answer carrying deletionTimestamp now.
        """
        meta = old['metadata']
        pending = meta.get('deletionGracePeriodSeconds')
        marked = clone(old)
        if meta.get('deletionTimestamp'):
            if pending:
                if grace_period is None or int(grace_period) >= pending:
                    return clone(old)
                period = max(0, int(grace_period))
                stamp = max(parse_time(meta['deletionTimestamp']) - pending + period, int(time.time()))
                marked['metadata']['deletionTimestamp'] = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(stamp))
            elif meta.get('finalizers'):
                return clone(old)
            else:
                period = 0
        else:
            period = pod_grace_period(old, grace_period)
            marked['metadata']['deletionTimestamp'] = now(period)
        marked['metadata']['deletionGracePeriodSeconds'] = period
        if dry_run:
            return marked
        if period or meta.get('finalizers'):
            return self._commit(rt, marked)
        self._remove(rt, marked, propagation)
        return clone(marked)

    def _remove(self, rt, obj, propagation=None):
        meta = obj['metadata']
        if self._objects[rt.key].pop((meta.get('namespace'), meta['name']), None) is None:
            return
        self._objects_changed(rt.key)
        self._rv += 1
        self.logs.pop(meta['uid'], None)
        if rt.kind == 'Namespace':
            for other in RESOURCE_TYPES:
                if other.namespaced:
                    for child in self.iter_objects(other, meta['name']):
                        self._remove(other, child)
        for other in RESOURCE_TYPES:
            for child in self.iter_objects(other):
                refs = child['metadata'].get('ownerReferences') or []
                if any(ref.get('uid') == meta['uid'] for ref in refs):
                    if propagation == 'Orphan':
                        child['metadata']['ownerReferences'] = [r for r in refs if r.get('uid') != meta['uid']]
                        self._commit(other, child)
                    else:
                        self._remove(other, child)

    # -- helpers for controllers and tests -----------------------------------------------------

    def put(self, rt, obj):
        """Store a changed object as a controller would (no admission); returns the stored copy."""
        rt = lookup(rt)
        with self.lock:
            meta = obj['metadata']
            old = self._objects[rt.key].get((meta.get('namespace'), meta['name']))
            if old is None:
                return self.create(rt, meta.get('namespace'), obj, system=True)
            new = clone(obj)
            new['metadata']['resourceVersion'] = old['metadata']['resourceVersion']
            if new == old:
                return clone(old)
            return self._commit(rt, new)

    def remove(self, rt, namespace, name):
        rt = lookup(rt)
        with self.lock:
            obj = self._objects[rt.key].get((namespace if rt.namespaced else None, name))
            if obj is not None:
                self._remove(rt, obj)

    def record_event(self, involved, reason, message, event_type='Normal', component='kubelet'):
        meta = involved['metadata']
        namespace = meta.get('namespace') or 'default'
        event = {
            'metadata': {'name': '%s.%s' % (meta['name'], uuid.uuid4().hex[:16]), 'namespace': namespace},
            'involvedObject': {'kind': involved['kind'], 'apiVersion': involved['apiVersion'], 'name': meta['name'],
                               'namespace': meta.get('namespace'), 'uid': meta['uid']},
            'reason': reason, 'message': message, 'type': event_type, 'count': 1,
            'source': {'component': component}, 'firstTimestamp': now(), 'lastTimestamp': now(),
            'reportingComponent': component, 'reportingInstance': '',
        }
        with self.lock:
            if (None, namespace) in self._objects[NAMESPACE.key]:
                self.create(EVENT, namespace, event, system=True)

    # -- persistence ---------------------------------------------------------------------------

    def dump(self):
        with self.lock:
            objects = [obj for rt in RESOURCE_TYPES for obj in self.iter_objects(rt)]
            return {'version': self.version, 'resourceVersion': self._rv, 'objects': clone(objects),
                    'logs': clone(self.logs)}

    def load(self, data):
        with self.lock:
            self.version = data.get('version', self.version)
            self._objects = {rt.key: {} for rt in RESOURCE_TYPES}
            self._order = {}
            for obj in data['objects']:
                rt = lookup(obj['kind'])
                self._objects[rt.key][(obj['metadata'].get('namespace'), obj['metadata']['name'])] = obj
            self._rv = int(data['resourceVersion'])
            self.logs = data.get('logs', {})

    def save(self, path):
        tmp = '%s.tmp' % path
        with open(tmp, 'w') as handle:
            json.dump(self.dump(), handle)
        os.replace(tmp, path)


def _spec_view(obj):
    return {k: v for k, v in obj.items() if k not in ('metadata', 'status')}
