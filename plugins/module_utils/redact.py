# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place netmedic decides what is a credential and masks it (issue #10 hole 4).

Used by every module's result (``result.Result``: ``before``/``after``/``diff``/``backups``)
and by the ``change_report`` callback, so the same rule applies in the task output, ``--diff``,
``-vvv`` and the report files. It never changes what is written to a cluster or a node: a
backup ConfigMap keeps the real data, only what is *shown* is masked.

A key is credential-like when one of its words (``snake_case``, ``kebab-case``, ``camelCase``
and run-together spellings such as ``accesskey`` are split) is a secret word (``secret``,
``password``, ``token``, ``credential``, ``psk``, ...), or ``key`` together with another word
(``access_key``, ``client-key-data``, ``privateKey``; a bare ``key``, as in Kubernetes label
selectors and tolerations, is not), unless its last word says it only names or locates the
secret (``credential_path``, ``secretName``, ``secretKeyRef``, ``token_file``).

Secrets are also found inside text values: a JSON document kept as a string (Terway's
``eni_conf``), YAML, INI, ``KEY=value`` and ``--token=value`` lines. Their values are masked
where the key stands, and every value found that way is also replaced wherever else it shows
up in the same data (``secret_values`` gives them to ``AnsibleModule.no_log_values`` too).
"""

from __future__ import annotations

import re

MASK = '********'

# Words that make a key credential-like on their own.
SECRET_WORDS = frozenset((
    'secret', 'secrets', 'password', 'passwords', 'passwd', 'passphrase', 'pwd', 'token', 'tokens',
    'credential', 'credentials', 'psk', 'apikey', 'accesskey', 'secretkey', 'privatekey', 'authorization',
    'bearer', 'cookie', 'sas', 'otp',
))
# Run-together spellings found inside one word (``accessKeySecret`` is split by case already).
SECRET_FRAGMENTS = ('secret', 'password', 'passwd', 'token', 'credential', 'apikey', 'accesskey', 'privatekey')
# A last word that says the value only names, locates or describes the secret.
NOT_A_VALUE = frozenset((
    'path', 'paths', 'file', 'files', 'dir', 'directory', 'name', 'names', 'ref', 'refs', 'type', 'kind',
    'size', 'length', 'count', 'ttl', 'timeout', 'enabled', 'enable', 'disabled', 'policy', 'mode', 'format',
    'prefix', 'algorithm', 'version', 'namespace', 'url', 'endpoint', 'rotation', 'expiry', 'expires', 'max', 'min',
))
# Values that are never secrets, even under a credential-like key.
HARMLESS = frozenset(('', 'true', 'false', 'null', 'none', 'yes', 'no'))
# Values this short are masked where their key stands but not searched for elsewhere
# (replacing every "abc" in a result would garble it).
MIN_SEARCH_LEN = 4

_WORD = re.compile(r'[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+')
# key, separator, value: "key": "v" / key: v / key = v / --key=v / KEY=v (JSON, YAML, INI, env, command lines).
_PAIR = re.compile(
    r'''(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)(?P<q>["']?)(?P<sep>[ \t]*[:=][ \t]*)'''
    r'''(?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s,;{}\[\]#"'][^\s,;}\]#]*)''')


def words(key):
    """The lower-case words of a key name."""
    out = []
    for part in re.split(r'[^A-Za-z0-9]+', str(key)):
        out.extend(w.lower() for w in _WORD.findall(part))
    return out


def is_secret_key(key):
    """Whether a key names a credential (see the module docstring)."""
    parts = words(key)
    if not parts or parts[-1] in NOT_A_VALUE:
        return False
    if any(w in SECRET_WORDS for w in parts) or parts[-1] == 'auth':     # auth, basic_auth (not K8S_AUTH_HOST)
        return True
    if 'key' in parts and len(parts) > 1:
        return True
    compact = ''.join(parts)
    return any(fragment in compact for fragment in SECRET_FRAGMENTS)


def _harmless(value):
    """Not a secret: empty, a boolean, null, or a YAML block indicator (``|``: the value is on the next lines)."""
    if value is None or isinstance(value, bool):
        return True
    text = str(value).strip().lower()
    return text in HARMLESS or re.match(r'^[|>][-+0-9]*$', text) is not None


def _unquote(text):
    if len(text) >= 2 and text[0] == text[-1] and text[0] in '"\'':
        return text[1:-1]
    return text


_PEM = re.compile(r'-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----.*?-----END \1-----', re.S)
# A YAML block scalar under a key (``password: |``): the value is the more-indented lines below.
_BLOCK = re.compile(r'''^(?P<indent>[ \t]*)(?:-[ \t]+)?["']?(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)["']?[ \t]*:[ \t]*[|>][-+0-9]*[ \t]*$''')


def _indent(line):
    return len(line) - len(line.lstrip())


def _blocks(text):
    """``(first line, end line, value)`` of every block scalar under a credential-like key."""
    lines = text.split('\n')
    i = 0
    while i < len(lines):
        match = _BLOCK.match(lines[i])
        if match and is_secret_key(match.group('key')):
            indent, j = len(match.group('indent')), i + 1
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > indent):
                j += 1
            while j > i + 1 and not lines[j - 1].strip():
                j -= 1
            if j > i + 1:
                yield i + 1, j, '\n'.join(line.strip() for line in lines[i + 1:j])
            i = max(j, i + 1)
        else:
            i += 1


def _mask_blocks(text):
    if '|' not in text and '>' not in text:
        return text
    lines = text.split('\n')
    for start, end, _value in reversed(list(_blocks(text))):
        lines[start:end] = [lines[start][:_indent(lines[start])] + MASK]
    return '\n'.join(lines)


def _pairs(text):
    """Every key/value pair in ``text``; a non-credential pair's value is scanned again (``msg: token: x``)."""
    pos = 0
    while True:
        match = _PAIR.search(text, pos)
        if match is None:
            return
        yield match
        pos = match.end() if is_secret_key(match.group('key')) else match.start('value')


def _scan_text(text, found):
    found.update(m.group(0) for m in _PEM.finditer(text))
    found.update(line for _s, _e, value in _blocks(text) for line in value.split('\n') if line)
    for match in _pairs(text):
        if is_secret_key(match.group('key')):
            value = _unquote(match.group('value'))
            if not _harmless(value):
                found.add(value)


def _collect(value, found, secret=False):
    if isinstance(value, dict):
        for key, item in value.items():
            _collect(item, found, secret=is_secret_key(key))
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, found, secret=secret)
    elif secret and not _harmless(value):
        found.add(str(value))
    elif isinstance(value, str):
        _scan_text(value, found)


def secret_values(data):
    """Every credential value found in ``data`` (nested dicts/lists, and text values)."""
    found = set()
    _collect(data, found)
    return found


def _mask_pair(match):
    if not is_secret_key(match.group('key')) or _harmless(_unquote(match.group('value'))):
        return match.group(0)
    value = match.group('value')
    # An unquoted value becomes a quoted mask: '********' alone would be a YAML alias.
    quote = value[0] if value[0] in '"\'' and len(value) >= 2 and value[-1] == value[0] else '"'
    return '%s%s%s%s%s%s' % (match.group('key'), match.group('q'), match.group('sep'), quote, MASK, quote)


def mask_text(text, values=()):
    """``text`` with credential values masked where their key stands and wherever ``values`` occur."""
    text = _PEM.sub(MASK, _mask_blocks(text))
    out, pos = [], 0
    for match in _pairs(text):
        masked = _mask_pair(match)
        if masked != match.group(0):
            out += [text[pos:match.start()], masked]
            pos = match.end()
    out.append(text[pos:])
    text = ''.join(out)
    for value in sorted((v for v in values if len(v) >= MIN_SEARCH_LEN), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def _redact(value, values, secret=False):
    if isinstance(value, dict):
        return {key: _redact(item, values, secret=is_secret_key(key)) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(item, values, secret=secret) for item in value]
    if secret and not _harmless(value):
        return MASK
    if isinstance(value, str):
        return mask_text(value, values)
    return value


def redact(data, extra_values=()):
    """A copy of ``data`` with every credential masked (``data`` itself is not changed).

    ``extra_values`` are further strings to mask wherever they occur (for example the values
    of ``no_log`` options).
    """
    values = secret_values(data) | {v for v in extra_values if isinstance(v, str) and v}
    return _redact(data, values)


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def narrow_kubeconfig_no_log(module, option='kubeconfig'):
    """Keep only an inline kubeconfig's credentials in ``module.no_log_values``.

    ``kubeconfig`` is ``no_log`` so its content never reaches syslog (Ansible logs the whole
    option before the module runs). Ansible then masks *every* leaf of an inline kubeconfig in
    the result, so ``v1``, ``default`` or the cluster's name would read ``********`` wherever
    they occur. This keeps the values under credential-like keys (``token``, ``client-key-data``,
    ``password``, ...) and a path (not a secret) is shown again; values of other ``no_log``
    options stay masked whatever they are.
    """
    no_log = getattr(module, 'no_log_values', None)
    params = getattr(module, 'params', None) or {}
    value = params.get(option)
    if not isinstance(no_log, set) or value is None:
        return
    keep = secret_values(value)
    spec = getattr(module, 'argument_spec', None) or {}
    for name, opts in spec.items():
        if name != option and opts.get('no_log') and params.get(name) is not None:
            keep.update(_leaves(params[name]))
    for leaf in set(_leaves(value)) - keep:
        no_log.discard(leaf)
