# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""KubeProxyConfiguration edits (catalog C-0 … C-3), as pure functions.

The ConfigMap key ``config.conf`` holds a ``KubeProxyConfiguration`` YAML document that
kube-proxy parses strictly.  Edits are made with ruamel.yaml's round-trip mode, so
comments (the ACK examples carry some), key order and quoting survive, and a
document that needs no change is returned byte for byte.
"""

from __future__ import annotations

import io
import re
import traceback

try:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.scalarstring import PlainScalarString
    HAS_RUAMEL = True
    RUAMEL_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported by the module via missing_required_lib
    HAS_RUAMEL = False
    RUAMEL_IMPORT_ERROR = traceback.format_exc()
    YAMLError = ValueError

API_VERSION = 'kubeproxy.config.k8s.io/v1alpha1'
KIND = 'KubeProxyConfiguration'
CONFIG_KEY = 'config.conf'
# Where each distribution keeps it (catalog C-0), in the order they are looked for.
CONFIGMAP_NAMES = ['kube-proxy-worker', 'kube-proxy-master', 'kube-proxy']

# IPVS schedulers kube-proxy accepts (catalog N-4); the last four need newer kernels.
IPVS_SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos']
PROXY_MODES = ['', 'iptables', 'ipvs', 'nftables', 'kernelspace']

_DURATION_RE = re.compile(r'^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|\u00b5s|ms|s|m|h))+$')
_DURATION_PART_RE = re.compile(r'(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)')
_UNIT_SECONDS = {'ns': 1e-9, 'us': 1e-6, '\u00b5s': 1e-6, 'ms': 1e-3, 's': 1.0, 'm': 60.0, 'h': 3600.0}


class ConfigError(ValueError):
    """Bad input or a document that cannot be edited safely."""


def parse_duration(value):
    """Seconds in a Go duration string (``10s``, ``1m30s``, ``300ms``, ``0``)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ConfigError('expected a Go duration string such as "10s" or "1m30s", got %r' % (value,))
    text = value.strip()
    if text == '0':
        return 0.0
    if not _DURATION_RE.match(text):
        raise ConfigError('malformed duration %r: expected a Go duration such as "10s", "300ms" or "1m30s"' % (value,))
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART_RE.findall(text))


def _duration(value):
    parse_duration(value)
    return value.strip()


def _int(minimum=0):
    def check(value):
        if isinstance(value, bool):
            raise ConfigError('expected an integer, got %r' % (value,))
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and re.match(r'^\s*\d+\s*$', value):
            number = int(value)
        else:
            raise ConfigError('expected an integer, got %r' % (value,))
        if number < minimum:
            raise ConfigError('expected an integer >= %d, got %d' % (minimum, number))
        return number
    return check


def _choice(choices, what):
    def check(value):
        if not isinstance(value, str) or value not in choices:
            raise ConfigError('unknown %s %r; valid: %s' % (what, value, ', '.join(c or '""' for c in choices)))
        return value
    return check


def _bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ('true', 'false'):
        return value.lower() == 'true'
    raise ConfigError('expected true or false, got %r' % (value,))


# The settings netmedic edits, by dotted path, with their validators.
SETTINGS = {
    'mode': _choice(PROXY_MODES, 'proxy mode'),
    'conntrack.maxPerCore': _int(0),
    'conntrack.min': _int(0),
    'conntrack.tcpEstablishedTimeout': _duration,
    'conntrack.tcpCloseWaitTimeout': _duration,
    'conntrack.udpTimeout': _duration,
    'conntrack.udpStreamTimeout': _duration,
    'ipvs.scheduler': _choice(IPVS_SCHEDULERS, 'IPVS scheduler'),
    'ipvs.udpTimeout': _duration,
    'ipvs.tcpTimeout': _duration,
    'ipvs.tcpFinTimeout': _duration,
    'ipvs.syncPeriod': _duration,
    'ipvs.minSyncPeriod': _duration,
    'ipvs.strictARP': _bool,
    'ipvs.excludeCIDRs': lambda v: list(v) if isinstance(v, list) else _fail_list(v),
}


def _fail_list(value):
    raise ConfigError('expected a list, got %r' % (value,))


def flatten(settings, prefix=''):
    """{'ipvs': {'scheduler': 'lc'}} -> {'ipvs.scheduler': 'lc'}; dotted keys pass through."""
    flat = {}
    for key, value in settings.items():
        path = prefix + str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, path + '.'))
        else:
            flat[path] = value
    return flat


def validate_settings(settings):
    """Validated, typed ``{dotted.path: value}``; raises ConfigError naming the field."""
    if not isinstance(settings, dict) or not settings:
        raise ConfigError('settings must be a non-empty dictionary such as {"ipvs": {"scheduler": "lc"}}')
    result = {}
    for path, value in flatten(settings).items():
        check = SETTINGS.get(path)
        if check is None:
            raise ConfigError('unsupported KubeProxyConfiguration field %r; supported: %s' % (path, ', '.join(sorted(SETTINGS))))
        try:
            result[path] = check(value)
        except ConfigError as e:
            raise ConfigError('%s: %s' % (path, e))
    return result


def _yaml():
    yaml = YAML()  # round-trip
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    # Kubernetes writes unset fields as `null`; ruamel would write nothing after the colon.
    yaml.representer.add_representer(type(None), _represent_null)
    return yaml


def _represent_null(representer, _data):
    return representer.represent_scalar('tag:yaml.org,2002:null', 'null')


def load(text):
    """Parse ``config.conf``; raises ConfigError unless it is a KubeProxyConfiguration mapping."""
    if not HAS_RUAMEL:
        raise ConfigError('ruamel.yaml is required')
    try:
        doc = _yaml().load(text)
    except YAMLError as e:
        raise ConfigError('config.conf is not valid YAML: %s' % (e,))
    if not isinstance(doc, dict):
        raise ConfigError('config.conf must be a YAML mapping (a KubeProxyConfiguration), got %s' % type(doc).__name__)
    if doc.get('kind') != KIND:
        raise ConfigError('config.conf has kind %r, expected %s' % (doc.get('kind'), KIND))
    if doc.get('apiVersion') != API_VERSION:
        raise ConfigError('config.conf has apiVersion %r, expected %s' % (doc.get('apiVersion'), API_VERSION))
    return doc


def get_path(doc, path):
    node = doc
    for part in path.split('.'):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _same(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        try:
            return parse_duration(a) == parse_duration(b)
        except ConfigError:
            return a == b
    if isinstance(a, list) and isinstance(b, list):
        return list(a) == list(b)
    return False


def plan(text, settings):
    """Apply validated ``settings`` to the ``config.conf`` text.

    Returns ``(new_text, changes)`` where ``changes`` lists ``{'path', 'before', 'after'}``
    for every field that differs.  With no change ``new_text is text``.
    """
    wanted = validate_settings(settings)
    doc = load(text)
    changes = []
    for path, value in wanted.items():
        current = get_path(doc, path)
        if current is not None and _same(current, value):
            continue
        node = doc
        parts = path.split('.')
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = CommentedMap()
                node[part] = child
            elif not isinstance(child, dict):
                raise ConfigError('%s is %r, not a mapping: cannot set %s' % (part, child, path))
            node = child
        # A new value is written plain (``lc``), not in the old value's quotes (``""``).
        node[parts[-1]] = _plain_if_safe(value)
        changes.append({'path': path, 'before': _plain(current), 'after': _plain(value)})
    if not changes:
        return text, []
    out = io.StringIO()
    _yaml().dump(doc, out)
    new_text = out.getvalue()
    if not text.endswith('\n') and new_text.endswith('\n'):
        new_text = new_text[:-1]
    return new_text, changes


def _plain_if_safe(value):
    """Write strings unquoted where YAML reads them back as the same string."""
    if not isinstance(value, str) or not value:
        return value
    try:
        reread = YAML(typ='safe').load(value)
    except YAMLError:
        return value
    return PlainScalarString(value) if reread == value else value


def _plain(value):
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def summary(text):
    """The fields netmedic reports, from a config.conf text (None where unset)."""
    doc = load(text)
    return {path: _plain(get_path(doc, path)) for path in ('mode', 'conntrack.maxPerCore', 'conntrack.min',
                                                           'ipvs.scheduler', 'ipvs.udpTimeout')}
