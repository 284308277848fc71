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
import ipaddress
import traceback

from ansible_collections.netmedic.k8s.plugins.module_utils.versions import Version

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
# Linux kube-proxy's modes ("" = the default, iptables); kernelspace is Windows-only and would crash these DaemonSets.
PROXY_MODES = ['', 'iptables', 'ipvs', 'nftables']

# IPVS mode is deprecated since Kubernetes 1.35 (issue 15 item 5). Right after "Using ipvs Proxier" kube-proxy logs
# one of these at error level and records a Warning event (reason IPVSDeprecation) on its Node; it keeps running
# in IPVS mode, so a restart verification must not read them as a failure (k8s.io/kubernetes
# cmd/kube-proxy/app/server_linux.go, createProxier).
IPVS_DEPRECATED_SINCE = '1.35'
IPVS_DEPRECATION_MESSAGES = {
    '1.35': "The ipvs proxier is now deprecated and may be removed in a future release. Please use 'nftables' instead.",
    '1.37': "The ipvs proxier has been deprecated and will be disabled by default in Kubernetes 1.40 and removed in "
            "Kubernetes 1.43. Migrate to the 'nftables' proxier instead.",
}
IPVS_DEPRECATION_RE = r'(?i)the ipvs proxier (is now|has been) deprecated'
IPVS_DEPRECATION_EVENT_REASON = 'IPVSDeprecation'
# kube-proxy's nftables mode refuses older kernels (pkg/util/kernel NFTablesKubeProxyKernelVersion).
NFTABLES_MIN_KERNEL = (5, 13)


def ipvs_deprecated(version):
    """True when kube-proxy of this Kubernetes ``version`` deprecates IPVS mode, None when it cannot be parsed."""
    try:
        return Version(version).minor >= Version(IPVS_DEPRECATED_SINCE).minor
    except ValueError:
        return None


def ipvs_way_off(kernels):
    """The mode to leave IPVS for, given ``{node: status.nodeInfo.kernelVersion}``.

    nftables when every node's kernel is at least 5.13 (what kube-proxy's nftables mode requires), iptables when
    one is older; ``unknown`` lists nodes whose kernel is unreadable (then the answer is None: never a guess).
    """
    old, unknown = [], []
    for node, kernel in sorted(kernels.items()):
        try:
            if Version(str(kernel or '').split('-', maxsplit=1)[0]).minor < NFTABLES_MIN_KERNEL:
                old.append(node)
        except ValueError:
            unknown.append(node)
    mode = None if unknown else ('iptables' if old else 'nftables')
    return {'mode': mode, 'kernels_older_than_5_13': old, 'kernel_unknown': unknown}


# kube-proxy's int32 fields (conntrack.maxPerCore, conntrack.min are *int32 in KubeProxyConntrackConfiguration).
INT32_MAX = 2 ** 31 - 1
# Go's time.Duration is an int64 count of nanoseconds.
_MAX_DURATION_NS = 2 ** 63 - 1
_UNIT_NS = {'ns': 1, 'us': 10 ** 3, '\u00b5s': 10 ** 3, '\u03bcs': 10 ** 3, 'ms': 10 ** 6, 's': 10 ** 9,
            'm': 60 * 10 ** 9, 'h': 3600 * 10 ** 9}
_ASCII_DIGITS = '0123456789'


class ConfigError(ValueError):
    """Bad input or a document that cannot be edited safely."""


def _go_duration_ns(text):
    """Nanoseconds in ``text`` exactly as Go's ``time.ParseDuration`` reads it (``[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+``),
    including its int64 overflow checks; raises ConfigError with Go's reason."""
    orig, s, neg = text, text, False
    if s[:1] in ('-', '+'):
        neg, s = s[0] == '-', s[1:]
    if s == '0':
        return 0
    if not s:
        raise ConfigError('invalid duration %r' % orig)
    total = 0
    while s:
        if not (s[0] == '.' or s[0] in _ASCII_DIGITS):
            raise ConfigError('invalid duration %r' % orig)
        i, whole = 0, 0
        while i < len(s) and s[i] in _ASCII_DIGITS:
            whole = whole * 10 + ord(s[i]) - 48
            if whole > 2 ** 63:
                raise ConfigError('duration %r is out of range (Go durations end at 2562047h47m16.854775807s)' % orig)
            i += 1
        pre, s = i > 0, s[i:]
        frac, scale, post = 0, 1.0, False
        if s[:1] == '.':
            s, i, overflow = s[1:], 0, False
            while i < len(s) and s[i] in _ASCII_DIGITS:
                if not overflow:
                    nxt = frac * 10 + ord(s[i]) - 48
                    if frac > (2 ** 63 - 1) // 10 or nxt > 2 ** 63:
                        overflow = True
                    else:
                        frac, scale = nxt, scale * 10
                i += 1
            post, s = i > 0, s[i:]
        if not pre and not post:
            raise ConfigError('invalid duration %r' % orig)
        i = 0
        while i < len(s) and not (s[i] == '.' or s[i] in _ASCII_DIGITS):
            i += 1
        if i == 0:
            raise ConfigError('missing unit in duration %r' % orig)
        unit, s = s[:i], s[i:]
        if unit not in _UNIT_NS:
            raise ConfigError('unknown unit %r in duration %r' % (unit, orig))
        if whole > 2 ** 63 // _UNIT_NS[unit]:
            raise ConfigError('duration %r is out of range (Go durations end at 2562047h47m16.854775807s)' % orig)
        value = whole * _UNIT_NS[unit]
        if frac > 0:
            # Go adds the fraction in float64, truncated: same arithmetic here (Python floats are IEEE doubles).
            value += int(float(frac) * (float(_UNIT_NS[unit]) / scale))
            if value > 2 ** 63:
                raise ConfigError('duration %r is out of range (Go durations end at 2562047h47m16.854775807s)' % orig)
        total += value
        if total > 2 ** 63:
            raise ConfigError('duration %r is out of range (Go durations end at 2562047h47m16.854775807s)' % orig)
    if neg:
        return -total
    if total > _MAX_DURATION_NS:
        raise ConfigError('duration %r is out of range (Go durations end at 2562047h47m16.854775807s)' % orig)
    return total


def parse_duration_ns(value):
    """Nanoseconds in a Go duration string as kube-proxy reads it (``10s``, ``1m30s``, ``300ms``, ``0``).

    Go's grammar and int64 bounds exactly (ASCII digits only: full-width digits are refused as kube-proxy
    refuses them), and no negative values (kube-proxy's validation refuses them for every field netmedic edits).
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise ConfigError('expected a Go duration string such as "10s" or "1m30s", got %r' % (value,))
    text = value.strip(' \t')
    if any(c.isdigit() and not c.isascii() for c in text):
        raise ConfigError('malformed duration %r: only ASCII digits 0-9 are allowed, as in Go' % (value,))
    try:
        ns = _go_duration_ns(text)
    except ConfigError as e:
        raise ConfigError('malformed duration %r: %s; expected a Go duration such as "10s", "300ms" or "1m30s"'
                          % (value, e))
    if ns < 0:
        raise ConfigError('duration %r is negative; kube-proxy requires >= 0' % (value,))
    return ns


def parse_duration(value):
    """Seconds (float) in a Go duration string; see parse_duration_ns."""
    return parse_duration_ns(value) / 1e9


def _duration(value):
    parse_duration_ns(value)
    return value.strip(' \t')


def _int(minimum=0, maximum=INT32_MAX, go_type='int32'):
    def check(value):
        if isinstance(value, bool):
            raise ConfigError('expected an integer, got %r' % (value,))
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and value.strip(' \t') and value.strip(' \t').isascii() \
                and value.strip(' \t').isdigit():
            number = int(value.strip(' \t'))
        else:
            raise ConfigError('expected an integer (ASCII digits), got %r' % (value,))
        if number < minimum:
            raise ConfigError('expected an integer >= %d, got %d' % (minimum, number))
        if number > maximum:
            raise ConfigError('%d does not fit kube-proxy\'s %s field (at most %d)' % (number, go_type, maximum))
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


def parse_cidr(value):
    """An ``ipaddress`` network for a CIDR string as Go's ``net.ParseCIDR`` accepts it, else ConfigError.

    Go needs ``address/prefix`` with a decimal prefix (no netmask form, no bare address), no IPv6 zone,
    ASCII only, no surrounding spaces; host bits may be set (``10.0.0.1/8``).
    """
    bad = ConfigError('%r is not a CIDR (such as 10.0.0.0/8 or fd00::/64) as kube-proxy parses it' % (value,))
    if not isinstance(value, str) or not value.isascii() or value != value.strip() or value.count('/') != 1:
        raise bad
    address, prefix = value.split('/')
    if not prefix.isdigit() or '%' in address:
        raise bad
    try:
        ip = ipaddress.ip_address(address)
        if int(prefix) > ip.max_prefixlen:
            raise bad
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise bad


def _cidrs(value):
    if not isinstance(value, list):
        raise ConfigError('expected a list of CIDRs, got %r' % (value,))
    for item in value:
        parse_cidr(item)
    return list(value)


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
    'ipvs.excludeCIDRs': _cidrs,
}


# Fields (and values) kube-proxy only knows from a given minor version on; an older kube-proxy fails its strict
# decoding or its validation at start-up (issue 10 hole 5). ``(path, value or None for any value, version)``.
SINCE = [
    ('ipvs.udpTimeout', None, '1.18'),
    ('conntrack.udpTimeout', None, '1.29'),
    ('conntrack.udpStreamTimeout', None, '1.29'),
    ('mode', 'nftables', '1.29'),
]


def unsupported(wanted, version):
    """The validated ``wanted`` settings a kube-proxy of ``version`` does not know: ``[{'path', 'value', 'needs'}]``.

    Raises VersionError when ``version`` cannot be parsed.
    """
    current = Version(version)
    gaps = []
    for path, value, needs in SINCE:
        if path in wanted and (value is None or wanted[path] == value) and current < Version(needs):
            gaps.append({'path': path, 'value': wanted[path], 'needs': needs})
    return gaps


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
            return parse_duration_ns(a) == parse_duration_ns(b)
        except ConfigError:
            return a == b
    if isinstance(a, list) and isinstance(b, list):
        return list(a) == list(b)
    return False


# Fields netmedic never lowers unless told (catalog N-2/C-1, issue 9 finding 2), with the value kube-proxy
# uses when the field is unset (v1alpha1 defaults).
NEVER_LOWER = {'conntrack.maxPerCore': 32768, 'conntrack.min': 131072}
# Linux kube-proxy runs iptables when mode is empty or unset.
DEFAULT_MODE = 'iptables'
KEPT_LOWER = 'lower than the current value (allow_lower=true lowers it)'


def effective_mode(doc_or_text):
    """The proxy mode kube-proxy runs with this config (an unset or empty ``mode`` is iptables on Linux)."""
    doc = load(doc_or_text) if isinstance(doc_or_text, str) else doc_or_text
    return str(doc.get('mode') or '') or DEFAULT_MODE


def _current_int(path, current):
    if current is None:
        return NEVER_LOWER[path]
    if isinstance(current, int) and not isinstance(current, bool):
        return current
    raise ConfigError('%s is %r now, not an integer: cannot tell whether the new value lowers it; fix the '
                      'ConfigMap by hand first' % (path, _plain(current)))


def plan_edit(text, settings, allow_lower=False, require_mode=None):
    """Apply validated ``settings`` to the ``config.conf`` text.

    Returns ``{'text': new_text, 'changes': [...], 'kept': [...]}``: ``changes`` lists
    ``{'path', 'before', 'after'}`` for every field that differs; ``kept`` lists requests that were not
    applied because they would lower ``conntrack.maxPerCore`` / ``conntrack.min`` (an unset field counts
    as kube-proxy's default) and ``allow_lower`` is false. With no change ``new_text is text``.
    ``require_mode`` (a list of modes) refuses, with ConfigError, a document whose effective proxy mode
    is not one of them.
    """
    wanted = validate_settings(settings)
    doc = load(text)
    if require_mode is not None:
        mode = effective_mode(doc)
        allowed = [m or DEFAULT_MODE for m in require_mode]
        if mode not in allowed:
            unset = '' if doc.get('mode') else ' (mode unset: the default)'
            raise ConfigError('the configured proxy mode is %s%s, not %s; refusing to change anything (switching the '
                              'proxy mode was not asked for)' % (mode, unset, ' or '.join(allowed)))
    changes, kept = [], []
    for path, value in wanted.items():
        current = get_path(doc, path)
        if current is not None and _same(current, value):
            continue
        if path in NEVER_LOWER and not allow_lower:
            now = _current_int(path, current)
            if value < now:
                kept.append({'path': path, 'current': now, 'requested': value, 'reason': KEPT_LOWER})
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
        return {'text': text, 'changes': [], 'kept': kept}
    out = io.StringIO()
    _yaml().dump(doc, out)
    new_text = out.getvalue()
    if not text.endswith('\n') and new_text.endswith('\n'):
        new_text = new_text[:-1]
    return {'text': new_text, 'changes': changes, 'kept': kept}


def plan(text, settings, allow_lower=False, require_mode=None):
    """``(new_text, changes)`` of plan_edit (requests that would lower a value are left out)."""
    result = plan_edit(text, settings, allow_lower=allow_lower, require_mode=require_mode)
    return result['text'], result['changes']


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
