# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edits of Terway's ``eni-config`` / ``eni-config-fixed`` ConfigMaps (catalog C-6), as pure functions.

Layout (seed 002): the ConfigMap's data has ``eni_conf`` (a JSON document: vswitches,
security_group, ...), ``10-terway.conf`` (the CNI config; ``eniip_virtual_type`` says IPVlan)
and, at the same level as ``eni_conf``, the string flags ``disable_network_policy: "true"``
and ``in_cluster_loadbalance: "true"``.  ``eni-config-fixed`` holds only an ``eni_conf`` with
its own vSwitches for a labelled, tainted node pool.
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict

# One reader of a version from an image tag (shared with ip-masq-agent, C-4).
from ansible_collections.netmedic.k8s.plugins.module_utils.ip_masq import image_version
from ansible_collections.netmedic.k8s.plugins.module_utils.versions import Version

CONFIGMAPS = ('eni-config', 'eni-config-fixed')
ENI_CONF = 'eni_conf'
CNI_CONF = '10-terway.conf'
FLAGS = ('disable_network_policy', 'in_cluster_loadbalance')
# Pods to recreate after a change (seed 002): -l app=terway-eniip (ENI multi-IP), -l app=terway-eni (ENI single-IP).
POD_LABEL = ('app', ('terway-eniip', 'terway-eni'))
# Catalog C-6: IPvlan in-cluster load balancing needs Terway v1.2.0 or later.
LB_FIRST_VERSION = 'v1.2.0'
# Catalog C-6 verification: the policy container's log line.
LB_LINE = 'enable-in-cluster-loadbalance=%s'
# Keys of eni_conf that are JSON objects/lists/strings in the documented examples.
ENI_CONF_TYPES = {
    'vswitches': dict, 'security_group': str, 'security_groups': list, 'service_cidr': str, 'eni_tags': dict,
    'vswitch_selection_policy': str, 'max_pool_size': int, 'min_pool_size': int, 'credential_path': str, 'version': str,
}


class TerwayError(ValueError):
    """Bad input or an eni-config that cannot be edited safely."""


def load_eni_conf(text):
    try:
        conf = json.loads(text, object_pairs_hook=OrderedDict)
    except (TypeError, ValueError) as e:
        raise TerwayError('%s is not valid JSON (%s); Terway would crash-loop on it, fix it by hand first' % (ENI_CONF, e))
    if not isinstance(conf, dict):
        raise TerwayError('%s must be a JSON object' % ENI_CONF)
    return conf


def validate(settings):
    out = {}
    for key in FLAGS:
        value = settings.get(key)
        if value is None:
            continue
        if not isinstance(value, bool):
            raise TerwayError('%s must be true or false, got %r' % (key, value))
        out[key] = value
    eni = settings.get('eni_conf')
    if eni is not None:
        if not isinstance(eni, dict) or not eni:
            raise TerwayError('eni_conf must be a non-empty dictionary of eni_conf keys to set')
        for key, value in eni.items():
            wanted = ENI_CONF_TYPES.get(key)
            if wanted is not None and (not isinstance(value, wanted) or isinstance(value, bool)):
                raise TerwayError('eni_conf.%s must be a %s, got %r' % (key, wanted.__name__, value))
            if key == 'vswitches':
                for zone, ids in value.items():
                    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i.startswith('vsw-') for i in ids):
                        raise TerwayError('eni_conf.vswitches.%s must be a non-empty list of vSwitch IDs (vsw-...), got %r' % (zone, ids))
        out['eni_conf'] = eni
    if not out:
        raise TerwayError('nothing to set: give disable_network_policy, in_cluster_loadbalance or eni_conf')
    return out


def _indent(text):
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(' ')
        if stripped and stripped != line:
            return len(line) - len(stripped)
    return 2


def _flag(value):
    return 'true' if value else 'false'


def merge(current, wanted):
    """``wanted`` deep-merged into ``current`` (neither is modified): maps merge key by key, at any depth
    (a partial ``vswitches`` map keeps the zones it does not name: issue 10, C-6); any other value (a zone's
    list of vSwitch IDs, a string, a number) replaces the current one as a whole."""
    if not isinstance(current, dict) or not isinstance(wanted, dict):
        return copy.deepcopy(wanted)
    out = OrderedDict((k, copy.deepcopy(v)) for k, v in current.items())
    for key, value in wanted.items():
        out[key] = merge(current.get(key), value) if key in current else copy.deepcopy(value)
    return out


def _plain(value):
    """OrderedDicts as dicts (for comparisons and results)."""
    return json.loads(json.dumps(value))


def plan(data, settings):
    """``(new_data, changes)``.  ``data`` is the ConfigMap's data dict (not modified)."""
    wanted = validate(settings)
    new = dict(data)
    changes = []
    eni_text = data.get(ENI_CONF)
    if eni_text is None and 'eni_conf' not in wanted:
        raise TerwayError('the ConfigMap has no %s key; is this a Terway eni-config?' % ENI_CONF)
    conf = load_eni_conf(eni_text) if eni_text is not None else OrderedDict()
    for key in FLAGS:
        if key in wanted:
            text = _flag(wanted[key])
            current = data.get(key)
            if current is None or str(current).strip().lower() != text:
                changes.append({'path': key, 'before': current, 'after': text})
                new[key] = text
    if 'eni_conf' in wanted:
        edited = False
        for key, value in wanted['eni_conf'].items():
            merged = merge(conf.get(key), value) if key in conf else copy.deepcopy(value)
            if key not in conf or _plain(conf[key]) != _plain(merged):
                changes.append({'path': '%s.%s' % (ENI_CONF, key), 'before': _plain(conf.get(key)), 'after': _plain(merged)})
                conf[key] = merged
                edited = True
        if edited:
            new[ENI_CONF] = json.dumps(conf, indent=_indent(eni_text or ''), ensure_ascii=False, separators=(',', ': ')) + '\n'
    return (new if changes else data), changes


def virtual_type(data):
    """``eniip_virtual_type`` from ``10-terway.conf`` (None when absent or unreadable)."""
    try:
        conf = json.loads(data.get(CNI_CONF) or '{}')
    except ValueError:
        return None
    return conf.get('eniip_virtual_type') if isinstance(conf, dict) else None


def summary(data):
    conf = {}
    if data.get(ENI_CONF) is not None:
        try:
            conf = load_eni_conf(data[ENI_CONF])
        except TerwayError:
            conf = {}
    return {
        'disable_network_policy': data.get('disable_network_policy'),
        'in_cluster_loadbalance': data.get('in_cluster_loadbalance'),
        'eniip_virtual_type': virtual_type(data),
        'vswitches': conf.get('vswitches'),
    }


def warnings(data, settings):
    out = []
    if settings.get('in_cluster_loadbalance'):
        vtype = virtual_type(data)
        if vtype is None or str(vtype).lower() != 'ipvlan':
            out.append('in_cluster_loadbalance only has an effect with Terway >= v1.2.0 in IPvlan mode; %s says '
                       'eniip_virtual_type=%s' % (CNI_CONF, vtype))
    return out


def terway_version(daemonsets):
    """The lowest Terway version among the Terway DaemonSets' ``terway`` containers (image tag), or None
    when there is none or any one of them carries no readable version (never a guess)."""
    found = []
    for ds in daemonsets:
        containers = (((ds.get('spec') or {}).get('template') or {}).get('spec') or {}).get('containers') or []
        agents = [c for c in containers if c.get('name') == 'terway'] or \
                 [c for c in containers if (c.get('image') or '').split('@')[0].rsplit(':', 1)[0].endswith('/terway')]
        if not agents:
            return None
        for container in agents:
            version = image_version(container.get('image'))
            if version is None:
                return None
            found.append(version)
    return min(found) if found else None


def lb_version_problem(version):
    """A refusal message when ``in_cluster_loadbalance`` cannot work with Terway ``version`` (None = unknown)."""
    if version is None:
        return ('cannot read the Terway version from the image tag of its DaemonSets (container terway); '
                'in_cluster_loadbalance needs Terway %s or later: give terway_version if you know it' % LB_FIRST_VERSION)
    if version < Version(LB_FIRST_VERSION):
        return 'Terway %s is older than %s, the first with IPvlan in-cluster load balancing; upgrade Terway first' % (
            version, LB_FIRST_VERSION)
    return None


def verify_hint(settings):
    """What daemonset_restart should look for in the recreated pods (catalog C-6 gives one line)."""
    if settings.get('in_cluster_loadbalance') is None:
        return None
    return {'container': 'policy', 'success_patterns': [LB_LINE % _flag(settings['in_cluster_loadbalance'])]}
