# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CNI network configuration files (``/etc/cni/net.d``) and Flannel's subnet.env.

A file is either a single plugin configuration (``.conf``/``.json``: ``{"type":
..., "name": ..., "ipam": {...}}``) or a list (``.conflist``: ``{"name": ...,
"plugins": [...]}``; catalog C-5).  The container runtime uses the first valid file
in lexical order (libcni ``ConfFiles`` with these extensions).  host-local IPAM
(catalog N-1) stores its allocations in ``<ipam.dataDir>/<network name>/``;
the Flannel plugin delegates to host-local with the ``FLANNEL_SUBNET`` of
``/run/flannel/subnet.env`` as its only range (catalog N-7 moves that ``dataDir``
to tmpfs).
"""

from __future__ import annotations

import ipaddress
import json

CONF_DIR = '/etc/cni/net.d'
CONF_EXTENSIONS = ('.conf', '.conflist', '.json')
FLANNEL_SUBNET_ENV = '/run/flannel/subnet.env'
HOST_LOCAL_DATA_DIR = '/var/lib/cni/networks'


def conf_files(names):
    """The names libcni would load, in the order it considers them."""
    return sorted(n for n in names if n.endswith(CONF_EXTENSIONS) and not n.startswith('.'))


def ipam_range_sets(ipam):
    """host-local range sets of an ``ipam`` block, as lists of range dicts.

    The modern form is ``ranges: [[{subnet, rangeStart, rangeEnd, gateway}], ...]``
    (one allocation per set: a dual-stack network has a v4 and a v6 set); the
    legacy form puts ``subnet``/``rangeStart``/``rangeEnd``/``gateway`` directly in
    ``ipam``.
    """
    if not isinstance(ipam, dict):
        return []
    sets = []
    ranges = ipam.get('ranges')
    if isinstance(ranges, list):
        for item in ranges:
            rset = [item] if isinstance(item, dict) else item
            if not isinstance(rset, list):
                continue
            items = [_range_fields(r) for r in rset if isinstance(r, dict) and r.get('subnet')]
            if items:
                sets.append(items)
    elif ipam.get('subnet'):
        sets.append([_range_fields(ipam)])
    return sets


def _range_fields(r):
    return {k: r.get(k) for k in ('subnet', 'rangeStart', 'rangeEnd', 'gateway')}


def _plugin_summary(plugin):
    summary = {'type': plugin.get('type')}
    ipam = plugin.get('ipam')
    if isinstance(ipam, dict):
        summary['ipam'] = {'type': ipam.get('type'), 'dataDir': ipam.get('dataDir')}
    for key in ('bridge', 'isGateway', 'isDefaultGateway', 'hairpinMode', 'mtu', 'dataDir'):
        if key in plugin:
            summary[key] = plugin[key]
    delegate = plugin.get('delegate')
    if isinstance(delegate, dict):
        summary['delegate'] = {k: delegate[k] for k in ('type', 'hairpinMode', 'isDefaultGateway', 'mtu') if k in delegate}
    return summary


def _ipam_entry(network, plugin):
    """Where a plugin keeps host-local allocations and from which ranges."""
    ptype = plugin.get('type')
    ipam = plugin.get('ipam') if isinstance(plugin.get('ipam'), dict) else {}
    if ptype == 'flannel':
        # The flannel plugin builds a host-local ipam block from subnet.env; an ipam
        # block in its config (catalog N-7) only sets type/dataDir.
        return {
            'network': network,
            'plugin': ptype,
            'type': ipam.get('type') or 'host-local',
            'data_dir': ipam.get('dataDir') or HOST_LOCAL_DATA_DIR,
            'range_sets': None,
            'ranges_from': 'flannel_subnet_env',
            'subnet_file': plugin.get('subnetFile'),
        }
    if not ipam:
        return None
    return {
        'network': network,
        'plugin': ptype,
        'type': ipam.get('type'),
        'data_dir': (ipam.get('dataDir') or HOST_LOCAL_DATA_DIR) if ipam.get('type') == 'host-local' else ipam.get('dataDir'),
        'range_sets': ipam_range_sets(ipam),
        'ranges_from': 'config',
    }


def parse_conf(text, filename):
    """Summary of one CNI config file; invalid JSON is reported, never raised.

    Returns ``{'file', 'format' (conf|conflist), 'valid', 'error', 'name',
    'cniVersion', 'types', 'plugins', 'ipam', 'flannel'}``.
    """
    result = {
        'file': filename,
        'format': 'conflist' if filename.endswith('.conflist') else 'conf',
        'valid': False,
        'error': None,
        'name': None,
        'cniVersion': None,
        'types': [],
        'plugins': [],
        'ipam': [],
        'flannel': False,
    }
    try:
        data = json.loads(text)
    except ValueError as e:
        result['error'] = 'invalid JSON: %s' % e
        return result
    if not isinstance(data, dict):
        result['error'] = 'expected a JSON object, got %s' % type(data).__name__
        return result
    result['name'] = data.get('name')
    result['cniVersion'] = data.get('cniVersion')
    if 'plugins' in data:
        result['format'] = 'conflist'
        plugins = data.get('plugins')
        if not isinstance(plugins, list) or not plugins:
            result['error'] = '"plugins" must be a non-empty list'
            return result
    else:
        if result['format'] == 'conflist':
            result['error'] = 'a .conflist file needs a "plugins" list'
            return result
        plugins = [data]
    plugins = [p for p in plugins if isinstance(p, dict)]
    if any(not p.get('type') for p in plugins):
        result['error'] = 'every plugin needs a "type"'
        return result
    if not result['name']:
        result['error'] = 'the network needs a "name"'
        return result
    result['types'] = [p['type'] for p in plugins]
    result['plugins'] = [_plugin_summary(p) for p in plugins]
    result['flannel'] = 'flannel' in result['types']
    for plugin in plugins:
        entry = _ipam_entry(result['name'], plugin)
        if entry:
            result['ipam'].append(entry)
    result['valid'] = True
    return result


def mark_default(confs):
    """Flag the file the runtime uses: the first valid one in lexical order."""
    chosen = False
    for conf in confs:
        conf['default'] = bool(conf['valid'] and not chosen)
        chosen = chosen or conf['valid']
    return confs


def parse_subnet_env(text):
    """``/run/flannel/subnet.env`` (``KEY=VALUE`` lines) -> dict."""
    env = {}
    for raw in (text or '').splitlines():
        line = raw.strip()
        if not line or line.startswith('#') or '=' not in line:
            continue
        key, value = line.split('=', 1)
        env[key.strip()] = value.strip().strip('"\'')
    return env


def flannel_range_sets(env):
    """host-local range sets Flannel derives from subnet.env (v4, and v6 if any).

    ``FLANNEL_SUBNET=10.244.1.1/24`` is the gateway with the prefix; the range is
    the network (``10.244.1.0/24``), the gateway defaults to its first address.
    """
    sets = []
    for key in ('FLANNEL_SUBNET', 'FLANNEL_IPV6_SUBNET'):
        value = env.get(key)
        if not value:
            continue
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            continue
        sets.append([{'subnet': str(network), 'rangeStart': None, 'rangeEnd': None, 'gateway': None}])
    return sets
