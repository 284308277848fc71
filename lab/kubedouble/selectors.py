"""Label selectors (string and object form) and field selectors."""

from __future__ import annotations

import re

from .errors import bad_request

_KEY = r'[A-Za-z0-9][-A-Za-z0-9_./]*'
_SET_RE = re.compile(r'^(%s)\s+(in|notin)\s+\((.*)\)$' % _KEY)
_EQ_RE = re.compile(r'^(%s)\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)$' % _KEY)
_EXISTS_RE = re.compile(r'^(!?)\s*(%s)$' % _KEY)


def _split_top_level(text):
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == '(':
            depth += 1
        elif ch == ')':
            depth -= 1
        if ch == ',' and depth == 0:
            parts.append(''.join(current))
            current = []
        else:
            current.append(ch)
    parts.append(''.join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(text):
    """Parse ``a=b,c!=d,e in (x,y),f notin (z),g,!h`` into ``(key, op, values)`` requirements."""
    reqs = []
    for part in _split_top_level(text or ''):
        m = _SET_RE.match(part)
        if m:
            values = {v.strip() for v in m.group(3).split(',') if v.strip()}
            reqs.append((m.group(1), m.group(2), values))
            continue
        m = _EQ_RE.match(part)
        if m:
            reqs.append((m.group(1), 'notin' if m.group(2) == '!=' else 'in', {m.group(3)}))
            continue
        m = _EXISTS_RE.match(part)
        if m:
            reqs.append((m.group(2), 'notexists' if m.group(1) else 'exists', set()))
            continue
        raise bad_request('unable to parse requirement: found %r, expected: in, notin, =, ==, !=, exists' % part)
    return reqs


def labels_match(reqs, labels):
    """Whether ``labels`` satisfy parsed requirements (an empty list matches everything)."""
    labels = labels or {}
    for key, op, values in reqs:
        present = key in labels
        if op == 'in' and not (present and labels[key] in values):
            return False
        if op == 'notin' and present and labels[key] in values:
            return False
        if op == 'exists' and not present:
            return False
        if op == 'notexists' and present:
            return False
    return True


def match_labels(selector_text, labels):
    return labels_match(parse_label_selector(selector_text), labels)


_EXPR_OPS = {'In': 'in', 'NotIn': 'notin', 'Exists': 'exists', 'DoesNotExist': 'notexists'}


def selector_requirements(selector):
    """Requirements from a LabelSelector object; ``None`` for a nil selector (matches nothing)."""
    if selector is None:
        return None
    reqs = [(k, 'in', {v}) for k, v in (selector.get('matchLabels') or {}).items()]
    for expr in selector.get('matchExpressions') or []:
        reqs.append((expr['key'], _EXPR_OPS[expr['operator']], set(expr.get('values') or [])))
    return reqs


def selector_matches(selector, labels):
    """LabelSelector object semantics: nil matches nothing, ``{}`` matches everything."""
    reqs = selector_requirements(selector)
    return reqs is not None and labels_match(reqs, labels)


# Field selectors ------------------------------------------------------------------------------

_COMMON_FIELDS = ('metadata.name', 'metadata.namespace')
_BOOLEAN_FIELDS = ('spec.unschedulable', 'spec.hostNetwork')
_KIND_FIELDS = {
    'Pod': ('spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName',
            'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.nominatedNodeName'),
    'Node': ('spec.unschedulable',),
    'Namespace': ('status.phase',),
    'Secret': ('type',),
    'Event': ('involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid',
              'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath',
              'reason', 'reportingComponent', 'source', 'type'),
}


def _field_value(obj, path):
    if path == 'source':
        return (obj.get('source') or {}).get('component', '')
    value = obj
    for part in path.split('.'):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool) or (value is None and path in _BOOLEAN_FIELDS):
        return 'true' if value else 'false'
    return '' if value is None else str(value)


def parse_field_selector(text, kind):
    reqs = []
    allowed = _COMMON_FIELDS + _KIND_FIELDS.get(kind, ())
    for part in _split_top_level(text or ''):
        m = re.match(r'^([A-Za-z.]+)\s*(==|=|!=)\s*(.*)$', part)
        if not m:
            raise bad_request('invalid selector: %r; can\'t understand %r' % (text, part))
        if m.group(1) not in allowed:
            raise bad_request('field label not supported: %s' % m.group(1))
        reqs.append((m.group(1), m.group(2) != '!=', m.group(3)))
    return reqs


def match_fields(reqs, obj):
    return all((_field_value(obj, path) == value) == equal for path, equal, value in reqs)
