"""PATCH semantics: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

Strategic merge follows the Kubernetes rules for the fields netmedic touches: lists with a patch
merge key are merged element by element (``containers``/``env``/``volumes`` by ``name``,
``volumeMounts`` by ``mountPath``, container ``ports`` by ``containerPort``, Service ``ports`` by
``port``, ``conditions`` by ``type`` ...), other lists are replaced, ``null`` deletes a key, and the
``$patch: replace|delete|merge``, ``$deleteFromPrimitiveList/<f>``, ``$retainKeys`` and
``$setElementOrder/<f>`` directives are understood (element order directives are accepted and ignored).
"""

from __future__ import annotations

import copy
import json

import jsonpatch

from .errors import ApiError, bad_request

MERGE_PATCH = 'application/merge-patch+json'
JSON_PATCH = 'application/json-patch+json'
STRATEGIC_PATCH = 'application/strategic-merge-patch+json'
APPLY_PATCH = 'application/apply-patch+yaml'
PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH)

# Path suffix (field names, list indexes dropped) -> patch merge key.
_SUFFIX_KEYS = {
    ('containers',): 'name',
    ('initContainers',): 'name',
    ('ephemeralContainers',): 'name',
    ('containers', 'env'): 'name',
    ('initContainers', 'env'): 'name',
    ('containers', 'ports'): 'containerPort',
    ('initContainers', 'ports'): 'containerPort',
    ('containers', 'volumeMounts'): 'mountPath',
    ('initContainers', 'volumeMounts'): 'mountPath',
    ('containers', 'volumeDevices'): 'devicePath',
    ('spec', 'volumes'): 'name',
    ('spec', 'imagePullSecrets'): 'name',
    ('spec', 'hostAliases'): 'ip',
    ('status', 'conditions'): 'type',
    ('metadata', 'ownerReferences'): 'uid',
}
_KIND_KEYS = {
    ('Service', ('spec', 'ports')): 'port',
    ('Node', ('status', 'addresses')): 'type',
    ('ServiceAccount', ('secrets',)): 'name',
}
# Lists of scalars with patchStrategy=merge (set union instead of replacement).
_PRIMITIVE_MERGE = {('metadata', 'finalizers')}

_DELETE = object()


def merge_key(kind, path):
    if (kind, path) in _KIND_KEYS:
        return _KIND_KEYS[(kind, path)]
    for size in (2, 1):
        if len(path) >= size and path[-size:] in _SUFFIX_KEYS:
            return _SUFFIX_KEYS[path[-size:]]
    return None


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target, operations):
    """RFC 6902 JSON patch; a body that is not a list is a 400, a failing operation a 422."""
    if not isinstance(operations, list):
        raise bad_request('json: cannot unmarshal object into Go value of type jsonpatch.Patch')
    try:
        patch = jsonpatch.JsonPatch(operations)
        return patch.apply(copy.deepcopy(target))
    except jsonpatch.InvalidJsonPatch as exc:
        raise bad_request(str(exc)) from exc
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, IndexError, TypeError) as exc:
        raise ApiError(422, 'Invalid', 'the server rejected our request due to an error in our request: %s' % exc) from exc


def strategic_merge(target, patch, kind):
    if not isinstance(patch, dict):
        raise bad_request('strategic merge patch must be a JSON object')
    result = _merge_map(target if isinstance(target, dict) else {}, patch, kind, ())
    return {} if result is _DELETE else result


def _merge_map(orig, patch, kind, path):
    directive = patch.get('$patch', 'merge')
    if directive == 'delete':
        return _DELETE
    if directive == 'replace':
        return _merge_map({}, {k: v for k, v in patch.items() if k != '$patch'}, kind, path)
    if directive != 'merge':
        raise bad_request('Unknown patch type: %s in map: %s' % (directive, json.dumps(patch)))
    result = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    for key, value in patch.items():
        if key in ('$patch', '$retainKeys') or key.startswith('$setElementOrder/'):
            continue
        if key.startswith('$deleteFromPrimitiveList/'):
            name = key.split('/', 1)[1]
            result[name] = [x for x in result.get(name) or [] if x not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _merge_map(result.get(key), value, kind, (*path, key))
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, kind, (*path, key))
        else:
            result[key] = value
    if '$retainKeys' in patch:
        keep = set(patch['$retainKeys'])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _clean(item, kind, path):
    return _merge_map({}, item, kind, path) if isinstance(item, dict) else copy.deepcopy(item)


def _merge_list(orig, patch, kind, path):
    orig = orig if isinstance(orig, list) else []
    if any(isinstance(x, dict) and x.get('$patch') == 'replace' for x in patch):
        return [_clean(x, kind, path) for x in patch if not (isinstance(x, dict) and '$patch' in x)]
    key = merge_key(kind, path)
    if key is None:
        if path in _PRIMITIVE_MERGE:
            return list(orig) + [x for x in patch if x not in orig]
        return [_clean(x, kind, path) for x in patch]
    result = copy.deepcopy(orig)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request('map: %s does not contain declared merge key: %s' % (json.dumps(item), key))
        index = next((i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get('$patch') == 'delete':
            if index is not None:
                del result[index]
        elif index is None:
            result.append(_clean(item, kind, path))
        else:
            result[index] = _merge_map(result[index], item, kind, path)
    return result


def apply_patch(target, content_type, body, kind):
    """Apply a decoded PATCH body of ``content_type`` to ``target`` (a dict); returns a new dict."""
    if content_type == MERGE_PATCH:
        if not isinstance(body, dict):
            raise bad_request('merge patch must be a JSON object')
        return merge_patch(target, body)
    if content_type == JSON_PATCH:
        return json_patch(target, body)
    if content_type in (STRATEGIC_PATCH, APPLY_PATCH):
        return strategic_merge(target, body, kind)
    raise ApiError(415, 'UnsupportedMediaType',
                   'the body of the request was in an unknown format - accepted media types include: %s'
                   % ', '.join(PATCH_TYPES))
