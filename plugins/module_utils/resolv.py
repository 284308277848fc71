# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resolver configuration (catalog D-11).

Host-network pods and pods with ``dnsPolicy: Default`` use the node's resolver
configuration: ``/etc/resolv.conf`` or, on nodes running systemd-resolved (whose
``/etc/resolv.conf`` names only the local stub ``127.0.0.53``), the kubelet's
``--resolv-conf`` ``/run/systemd/resolve/resolv.conf``.  All nodes should list the
same nameservers.
"""

from __future__ import annotations

RESOLV_CONF = '/etc/resolv.conf'
SYSTEMD_RESOLV_CONF = '/run/systemd/resolve/resolv.conf'
DEFAULT_FILES = (RESOLV_CONF, SYSTEMD_RESOLV_CONF)
STUB_NAMESERVERS = ('127.0.0.53', '127.0.0.54')


def parse_resolv_conf(text):
    """``{'nameservers', 'search', 'options'}`` of a resolv.conf (last search/domain wins)."""
    nameservers = []
    search = []
    options = []
    for raw in (text or '').splitlines():
        line = raw.split('#', 1)[0].split(';', 1)[0].strip()
        if not line:
            continue
        words = line.split()
        key, values = words[0], words[1:]
        if key == 'nameserver' and values:
            nameservers.append(values[0])
        elif key in ('search', 'domain'):
            search = list(values)
        elif key == 'options':
            options.extend(values)
    return {'nameservers': nameservers, 'search': search, 'options': options}


def is_stub(parsed):
    """True when the file sends every query to systemd-resolved's local stub."""
    servers = parsed.get('nameservers') or []
    return bool(servers) and all(s in STUB_NAMESERVERS for s in servers)


def compare(files):
    """Compare parsed files (``[{'path', 'exists', 'nameservers', 'search', ...}]``).

    Returns ``{'agree' (None when fewer than two files exist), 'stub' (the first
    file is the systemd-resolved stub), 'effective' (the nameservers pods with the
    node's DNS get: the upstream file's when the first file is the stub),
    'differences'}``.
    """
    present = [f for f in files if f.get('exists')]
    stub = bool(present) and is_stub(present[0])
    effective = None
    if present:
        effective = present[0]['nameservers']
        if stub and len(present) > 1:
            effective = present[1]['nameservers']
    if len(present) < 2:
        return {'agree': None, 'stub': stub, 'effective_nameservers': effective, 'differences': []}
    first = present[0]
    differences = []
    for other in present[1:]:
        if set(other['nameservers']) != set(first['nameservers']):
            differences.append({'field': 'nameservers', 'paths': [first['path'], other['path']],
                                'values': [first['nameservers'], other['nameservers']]})
        if other['search'] != first['search']:
            differences.append({'field': 'search', 'paths': [first['path'], other['path']],
                                'values': [first['search'], other['search']]})
    return {'agree': not differences, 'stub': stub, 'effective_nameservers': effective, 'differences': differences}
