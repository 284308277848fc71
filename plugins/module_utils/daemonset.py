# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""DaemonSet restarts with verification (catalog C-7), as pure functions over API dicts.

The seeds' recipe is "delete the pods, the DaemonSet recreates them" (002 for kube-proxy,
Flannel and Terway; 004 for anetd).  Done safely that means: refuse when the DaemonSet is
already unhealthy, go node by node (or in small batches), wait for the replacement pod on
each node to be Ready, read its log for the documented success and failure lines, and stop
at the first failure so the caller can roll back.
"""

from __future__ import annotations

import re

# Catalog C-2, seed 002 ("如何修改kube-proxy中IPVS负载均衡模式"): the three log lines to look for
# in the new kube-proxy pods.
KUBE_PROXY_SUCCESS = [r'Using ipvs Proxier']
KUBE_PROXY_FAILURE = [
    # "Can't use the IPVS proxier: IPVS proxier will not be used because the following required
    # kernel modules are not loaded: [ip_vs_lc]"  -> the module is missing, redo N-4.
    r"(?i)can'?t use (the )?ipvs proxier",
    # "Using iptables Proxier."  -> kube-proxy fell back to iptables: roll back, restart the node.
    r'Using iptables Proxier',
    # Older kube-proxy builds reject an unknown scheduler at start-up.
    r'(?i)scheduler .*not supported',
]
# kube-proxy in iptables (or nftables) mode logs its proxier too; there the line is success, and a proxier other
# than the configured one means the configuration did not take effect (issue 9 finding 6).
KUBE_PROXY_IPTABLES_SUCCESS = [r'Using iptables Proxier']
KUBE_PROXY_IPTABLES_FAILURE = [r'Using (ipvs|nftables) Proxier']
KUBE_PROXY_NFTABLES_SUCCESS = [r'Using nftables Proxier']
KUBE_PROXY_NFTABLES_FAILURE = [r'Using (ipvs|iptables) Proxier']
# Catalog C-6 (seed 002, "验证配置"): the Terway policy container's line.
TERWAY_LB_SUCCESS = [r'enable-in-cluster-loadbalance=true']

PRESETS = {
    'kube-proxy-ipvs': {'success': KUBE_PROXY_SUCCESS, 'failure': KUBE_PROXY_FAILURE, 'container': None},
    'kube-proxy-iptables': {'success': KUBE_PROXY_IPTABLES_SUCCESS, 'failure': KUBE_PROXY_IPTABLES_FAILURE, 'container': None},
    'kube-proxy-nftables': {'success': KUBE_PROXY_NFTABLES_SUCCESS, 'failure': KUBE_PROXY_NFTABLES_FAILURE, 'container': None},
    'terway-in-cluster-lb': {'success': TERWAY_LB_SUCCESS, 'failure': [r'enable-in-cluster-loadbalance=false',
                                                                       r'level=fatal'],
                             'container': 'policy'},
    'none': {'success': [], 'failure': [], 'container': None},
}
KUBE_PROXY_DAEMONSETS = ('kube-proxy', 'kube-proxy-worker', 'kube-proxy-master')


class RestartError(ValueError):
    """Bad input or a DaemonSet state that makes a restart unsafe."""


def is_kube_proxy(daemonset_name):
    return daemonset_name in KUBE_PROXY_DAEMONSETS


def preset_for(preset, daemonset_name, proxy_mode=None):
    """The preset name ``auto`` resolves to for this DaemonSet.

    For kube-proxy it follows ``proxy_mode``, the mode its configuration sets (``ipvs``, ``iptables``,
    ``nftables``): the caller reads it from the mounted ConfigMap. Unknown mode: RestartError, never a guess.
    """
    if preset != 'auto':
        if preset not in PRESETS:
            raise RestartError('unknown patterns preset %r; valid: auto, %s' % (preset, ', '.join(sorted(PRESETS))))
        return preset
    if not is_kube_proxy(daemonset_name):
        return 'none'
    name = 'kube-proxy-%s' % (proxy_mode,)
    if name not in PRESETS:
        raise RestartError('cannot tell which log lines mean success for %s: kube-proxy\'s proxy mode is %s; set '
                           'patterns_preset (kube-proxy-ipvs, kube-proxy-iptables, kube-proxy-nftables or none)'
                           % (daemonset_name, 'unknown' if proxy_mode is None else repr(proxy_mode)))
    return name


def configmap_volumes(ds):
    """Names of the ConfigMaps the DaemonSet's pods mount (``configMap`` and projected volumes), in order."""
    spec = ((((ds.get('spec') or {}).get('template') or {}).get('spec')) or {})
    names = []
    for volume in spec.get('volumes') or []:
        sources = [volume, *((volume.get('projected') or {}).get('sources') or [])]
        for source in sources:
            name = (source.get('configMap') or {}).get('name')
            if name and name not in names:
                names.append(name)
    return names


def mounting(daemonsets, configmap_names):
    """``{configmap: [names of the DaemonSets that mount it, sorted]}`` for each of ``configmap_names``."""
    found = {name: [] for name in configmap_names}
    for ds in daemonsets:
        for cm in configmap_volumes(ds):
            if cm in found:
                found[cm].append(ds['metadata']['name'])
    return {cm: sorted(names) for cm, names in found.items()}


def compile_patterns(patterns, what):
    compiled = []
    for pattern in patterns or []:
        if not isinstance(pattern, str) or not pattern:
            raise RestartError('%s: every pattern must be a non-empty string, got %r' % (what, pattern))
        try:
            compiled.append(re.compile(pattern))
        except re.error as e:
            raise RestartError('%s: invalid regular expression %r: %s' % (what, pattern, e))
    return compiled


def check_log(text, success, failure):
    """``('failed', line)`` when a failure pattern matches any line (failure wins), else
    ``('ok', line)`` for the first success match, ``('ok', None)`` when no success pattern is
    required, or ``('pending', None)`` while a required success line is not there yet."""
    lines = (text or '').splitlines()
    for line in lines:
        if any(p.search(line) for p in failure):
            return 'failed', line.strip()
    if not success:
        return 'ok', None
    for line in lines:
        if any(p.search(line) for p in success):
            return 'ok', line.strip()
    return 'pending', None


def selector_string(selector):
    """A label selector string from a LabelSelector dict (``matchLabels`` and ``matchExpressions``)."""
    selector = selector or {}
    parts = ['%s=%s' % (k, v) for k, v in sorted((selector.get('matchLabels') or {}).items())]
    for expr in selector.get('matchExpressions') or []:
        key, op, values = expr.get('key'), expr.get('operator'), expr.get('values') or []
        if op == 'In':
            parts.append('%s in (%s)' % (key, ','.join(values)))
        elif op == 'NotIn':
            parts.append('%s notin (%s)' % (key, ','.join(values)))
        elif op == 'Exists':
            parts.append(key)
        elif op == 'DoesNotExist':
            parts.append('!%s' % key)
        else:
            raise RestartError('unsupported selector operator %r' % (op,))
    if not parts:
        raise RestartError('the DaemonSet has an empty selector; refusing to act on every pod')
    return ','.join(parts)


def owned_by(pod, uid):
    return any(ref.get('uid') == uid and ref.get('kind') == 'DaemonSet'
               for ref in (pod.get('metadata') or {}).get('ownerReferences') or [])


def is_ready(pod):
    status = pod.get('status') or {}
    if status.get('phase') != 'Running' or (pod.get('metadata') or {}).get('deletionTimestamp'):
        return False
    return any(c.get('type') == 'Ready' and c.get('status') == 'True' for c in status.get('conditions') or [])


def pod_state(pod):
    """A short reason for a pod that is not Ready (phase, waiting reason)."""
    status = pod.get('status') or {}
    for cs in status.get('containerStatuses') or []:
        waiting = (cs.get('state') or {}).get('waiting')
        if waiting and waiting.get('reason'):
            return '%s (%s)' % (status.get('phase', 'Unknown'), waiting['reason'])
    if (pod.get('metadata') or {}).get('deletionTimestamp'):
        return 'Terminating'
    return status.get('phase', 'Unknown') if status.get('phase') != 'Running' else 'Running, not Ready'


def daemonset_pods(ds, pods):
    """Pods controlled by ``ds``, by node name (a node with two pods keeps the newest; both are reported)."""
    uid = ds['metadata']['uid']
    by_node = {}
    for pod in pods:
        if not owned_by(pod, uid):
            continue
        node = (pod.get('spec') or {}).get('nodeName')
        if not node:
            by_node.setdefault(None, []).append(pod)
            continue
        by_node.setdefault(node, []).append(pod)
    return by_node


def unhealthy(ds, by_node):
    """Pods of the DaemonSet that are not Ready, plus pods the controller has not created yet."""
    bad = []
    count = 0
    for node, pods in sorted(by_node.items(), key=lambda kv: kv[0] or ''):
        for pod in pods:
            if not is_ready(pod):
                bad.append({'node': node, 'pod': pod['metadata']['name'], 'state': pod_state(pod)})
                count += 1
    desired = (ds.get('status') or {}).get('desiredNumberScheduled')
    present = sum(len(p) for p in by_node.values())
    missing = max(0, int(desired) - present) if isinstance(desired, int) else 0
    if missing:
        bad.append({'node': None, 'pod': None, 'state': '%d desired pod(s) do not exist' % missing})
    return count + missing, bad


def parse_node_order(node_order):
    if node_order is None:
        return None
    if isinstance(node_order, str):
        if node_order != 'name':
            raise RestartError('node_order must be the word "name" or a list of node names, got %r' % (node_order,))
        return 'name'
    if isinstance(node_order, list) and all(isinstance(n, str) and n for n in node_order):
        if len(set(node_order)) != len(node_order):
            raise RestartError('node_order names a node twice')
        return list(node_order)
    raise RestartError('node_order must be the word "name" or a list of node names, got %r' % (node_order,))


def order_nodes(candidates, node_order, scope=None):
    """Order the candidate node names: ``None``/``'name'`` sort by name; a list goes first in its order,
    any other candidate after it by name.  A listed node outside ``scope`` (default: the candidates)
    is an error; a listed node in scope but not a candidate (already restarted) is left out."""
    candidates = sorted(set(candidates))
    if node_order is None or node_order == 'name':
        return candidates
    scope = set(candidates) if scope is None else set(scope)
    unknown = [n for n in node_order if n not in scope]
    if unknown:
        raise RestartError('node_order names node(s) without a pod of this DaemonSet in scope: %s' % ', '.join(unknown))
    return [n for n in node_order if n in candidates] + [n for n in candidates if n not in node_order]


def batches(nodes, batch_size):
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise RestartError('batch_size must be an integer >= 1, got %r' % (batch_size,))
    return [nodes[i:i + batch_size] for i in range(0, len(nodes), batch_size)]


def plan(ds, pods, nodes=None, node_labels_ok=None, node_order=None, batch_size=1, restarted_since=None):
    """The restart plan: ``{'batches': [[node, ...]], 'pods': {node: pod}, 'skipped': [...]}``.

    ``nodes`` limits to those node names (each must have a pod of the DaemonSet);
    ``node_labels_ok`` is the set of node names a node label selector matched (None = no selector);
    ``restarted_since`` (an RFC 3339 string) skips pods created at or after it - already restarted.
    """
    by_node = daemonset_pods(ds, pods)
    orphans = by_node.pop(None, [])
    for node, node_pods in by_node.items():
        if len(node_pods) > 1:
            raise RestartError('node %s has %d pods of this DaemonSet (%s); wait for the DaemonSet to settle'
                               % (node, len(node_pods), ', '.join(p['metadata']['name'] for p in node_pods)))
    candidates = set(by_node)
    if nodes is not None:
        missing = sorted(set(nodes) - candidates)
        if missing:
            raise RestartError('no pod of DaemonSet %s/%s on node(s): %s'
                               % (ds['metadata']['namespace'], ds['metadata']['name'], ', '.join(missing)))
        candidates &= set(nodes)
    if node_labels_ok is not None:
        candidates &= set(node_labels_ok)
    skipped = []
    if restarted_since:
        for node in sorted(candidates):
            created = by_node[node][0]['metadata'].get('creationTimestamp') or ''
            if created >= restarted_since:
                skipped.append({'node': node, 'pod': by_node[node][0]['metadata']['name'], 'created': created})
        candidates -= {s['node'] for s in skipped}
    ordered = order_nodes(candidates, node_order, scope=candidates | {s['node'] for s in skipped})
    return {
        'batches': batches(ordered, batch_size),
        'pods': {n: by_node[n][0] for n in ordered},
        'skipped': skipped,
        'unscheduled': [p['metadata']['name'] for p in orphans],
    }


def names_by_pod_label(daemonsets, key, values):
    """Names of the DaemonSets whose pod template has label ``key`` with one of ``values`` (sorted)."""
    found = []
    for ds in daemonsets:
        labels = ((((ds.get('spec') or {}).get('template') or {}).get('metadata') or {}).get('labels') or {})
        if labels.get(key) in values:
            found.append(ds['metadata']['name'])
    return sorted(found)


def replacement(pods, ds_uid, node, old_uid):
    """The DaemonSet's pod on ``node`` that is not the deleted one (or None)."""
    found = [p for p in pods if owned_by(p, ds_uid) and (p.get('spec') or {}).get('nodeName') == node
             and p['metadata'].get('uid') != old_uid and not p['metadata'].get('deletionTimestamp')]
    found.sort(key=lambda p: p['metadata'].get('creationTimestamp') or '')
    return found[-1] if found else None


def log_tail(text, lines=10):
    return (text or '').splitlines()[-lines:]


_RFC3339 = re.compile(r'^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$')


def check_since(value):
    """``restarted_since`` must be a UTC RFC 3339 time as the API writes it (``2026-11-25T20:00:00Z``)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise RestartError('restarted_since must be a UTC time like 2026-11-25T20:00:00Z, got %r' % (value,))
    return value
