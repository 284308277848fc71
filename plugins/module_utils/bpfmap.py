# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pinned eBPF maps (catalog N-10, Cilium load-balancer maps): parse bpftool JSON, plan a clear.

Formats (bpftool 7.1, recorded on the CI host kernel, see tests/unit/fixtures/README.md):

- ``bpftool -j map show pinned PATH``:
  ``{"id": 25, "type": "hash", "name": "cilium_lb4_back", "bytes_key": 4, "bytes_value": 20,
  "max_entries": 8, ...}``;
- ``bpftool -j map dump pinned PATH``: ``[{"key": ["0x01", ...], "value": ["0x0a", ...]}, ...]``
  (maps with BTF add a ``formatted`` member, ignored here);
- deletions go through one ``bpftool batch file -`` process, one
  ``map delete pinned PATH key hex 01 00 00 00`` line per entry (the seed runs one bpftool
  per entry through xargs). A batch stops at its first failing command.
"""

import json
import re

CILIUM_LB_MAPS = ('/sys/fs/bpf/tc/globals/cilium_lb4_services_v2', '/sys/fs/bpf/tc/globals/cilium_lb4_backends_v2')

_HEX_BYTE_RE = re.compile(r'^(?:0x)?([0-9A-Fa-f]{1,2})$')
_PATH_RE = re.compile(r'^/[A-Za-z0-9_./-]+$')


class MapError(ValueError):
    pass


def validate_path(path):
    """Absolute path without white space or '..' (it is written into a bpftool batch line)."""
    if not isinstance(path, str) or not _PATH_RE.match(path) or '/../' in path + '/' or path.endswith('/'):
        raise MapError('not a pinned map path: %r (an absolute path without spaces or "..")' % (path,))
    return path


def validate_threshold(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value > 100:
        raise MapError('threshold must be a percentage between 1 and 100, got %r' % (value,))
    return value


def _load(text, what):
    try:
        return json.loads(text)
    except ValueError as e:
        raise MapError('%s printed invalid JSON: %s' % (what, e)) from None


def parse_map_show(text):
    """``bpftool -j map show pinned PATH`` -> ``{'id', 'type', 'name', 'max_entries', 'key_size', 'value_size'}``."""
    data = _load(text, 'bpftool map show')
    if not isinstance(data, dict) or 'max_entries' not in data:
        raise MapError('bpftool map show printed no map: %r' % (text[:200],))
    return {
        'id': data.get('id'),
        'type': data.get('type'),
        'name': data.get('name'),
        'max_entries': int(data['max_entries']),
        'key_size': data.get('bytes_key'),
        'value_size': data.get('bytes_value'),
    }


def _hex_bytes(items, what):
    out = []
    for item in items or []:
        match = _HEX_BYTE_RE.match(str(item))
        if not match:
            raise MapError('%s byte %r is not hex' % (what, item))
        out.append(match.group(1).lower().zfill(2))
    return out


def parse_dump(text):
    """``bpftool -j map dump pinned PATH`` -> ``[{'key': ['01', ...], 'value': ['0a', ...]}]``."""
    data = _load(text, 'bpftool map dump')
    if not isinstance(data, list):
        raise MapError('bpftool map dump printed %s, expected a list' % type(data).__name__)
    entries = []
    for item in data:
        if not isinstance(item, dict) or 'key' not in item:
            raise MapError('bpftool map dump entry without a key: %r' % (item,))
        entries.append({'key': _hex_bytes(item['key'], 'key'), 'value': _hex_bytes(item.get('value'), 'value')})
    return entries


def usage_percent(count, maximum):
    if not maximum:
        return None
    return round(100.0 * count / maximum, 1)


def plan(info, entries, threshold, clear):
    """Per-map decision: ``'clear'`` when ``clear`` and usage >= threshold, else ``'keep'``."""
    percent = usage_percent(len(entries), info['max_entries'])
    over = percent is not None and percent >= threshold
    return {
        'count': len(entries),
        'max_entries': info['max_entries'],
        'percent': percent,
        'over_threshold': over,
        'action': 'clear' if (clear and over and entries) else 'keep',
    }


def delete_batch(path, entries):
    """``bpftool batch file -`` input that deletes ``entries`` from the map pinned at ``path``."""
    validate_path(path)
    return ''.join('map delete pinned %s key hex %s\n' % (path, ' '.join(e['key'])) for e in entries)


def remaining(entries, now):
    """Entries of ``entries`` whose key is still in ``now`` (a later dump)."""
    keys = {tuple(e['key']) for e in now}
    return [e for e in entries if tuple(e['key']) in keys]


def error_text(stdout, stderr):
    """bpftool -j prints its errors as ``{"error": "..."}`` on stdout; plain mode uses stderr."""
    try:
        data = json.loads(stdout or '')
        if isinstance(data, dict) and data.get('error'):
            return str(data['error'])
    except ValueError:
        pass
    return (stderr or stdout or '').strip() or 'bpftool failed'
