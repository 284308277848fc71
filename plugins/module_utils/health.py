# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health gate before every batch of a workflow (issue 9's safety spine), as pure functions.

Unhealthy are: Nodes that are not Ready, Nodes cordoned by someone else (unschedulable without
netmedic's ``netmedic.io/cordoned-by`` annotation - a node netmedic cordoned, e.g. one an earlier
run left behind, is the workflow's own and does not count), and Nodes running a pod of one of the
named DaemonSets that is not Ready; pods a named DaemonSet should have but does not count one each.
The count is compared with ``max_unhealthy``, a whole number or a percentage of the Nodes in scope
(rounded down, like Cluster API MachineHealthCheck's ``maxUnhealthy``).
"""

from __future__ import annotations

import re

from ansible_collections.netmedic.k8s.plugins.module_utils import daemonset as dsu
from ansible_collections.netmedic.k8s.plugins.module_utils import drain as du

_MAX = re.compile(r'^([0-9]{1,9})(%?)$')


class HealthError(ValueError):
    """Bad input (refused before anything is read)."""


def parse_max_unhealthy(value):
    """``('count', n)`` or ``('percent', n)`` from ``3``, ``"3"`` or ``"30%"``; anything else raises."""
    if isinstance(value, bool):
        raise HealthError('max_unhealthy must be a whole number >= 0 or a percentage like "30%%", got %r' % (value,))
    if isinstance(value, int):
        if value < 0:
            raise HealthError('max_unhealthy must be >= 0, got %d' % value)
        return 'count', value
    if isinstance(value, str):
        match = _MAX.match(value)   # ASCII digits only: no " 3", "3.0", "-1", "30 %" or full-width digits
        if match:
            number = int(match.group(1))
            if match.group(2):
                if number > 100:
                    raise HealthError('max_unhealthy percentage must be 0%%..100%%, got %r' % value)
                return 'percent', number
            return 'count', number
    raise HealthError('max_unhealthy must be a whole number >= 0 or a percentage like "30%%", got %r' % (value,))


def allowed(spec, total):
    """How many unhealthy items ``spec`` (from parse_max_unhealthy) tolerates among ``total`` Nodes."""
    kind, number = spec
    return number if kind == 'count' else (total * number) // 100


def parse_daemonset(ref, default_namespace='kube-system'):
    """``(namespace, name)`` from ``name`` or ``namespace/name``."""
    if not isinstance(ref, str) or not re.match(r'^([a-z0-9][-a-z0-9.]*/)?[a-z0-9][-a-z0-9.]*$', ref):
        raise HealthError('daemonsets entries must be "name" or "namespace/name" (lower-case DNS names), got %r' % (ref,))
    if '/' in ref:
        namespace, name = ref.split('/', 1)
        return namespace, name
    return default_namespace, ref


def node_ready(node):
    """``(ready, reason)`` from the Node's Ready condition (missing counts as Unknown)."""
    for cond in ((node.get('status') or {}).get('conditions') or []):
        if cond.get('type') == 'Ready':
            if cond.get('status') == 'True':
                return True, None
            return False, 'NotReady (%s%s)' % (cond.get('status'), ', %s' % cond['reason'] if cond.get('reason') else '')
    return False, 'NotReady (no Ready condition)'


def evaluate(nodes, daemonsets, max_unhealthy, required=()):
    """The gate's verdict.

    ``nodes``: Node dicts in scope; ``daemonsets``: ``[(ds dict, its pods)]``; ``max_unhealthy``: as given by
    the user; ``required``: Node names that must exist. Returns ``{'passed', 'unhealthy_count', 'allowed',
    'total', 'unhealthy': [{'kind', 'name', 'node', 'reason'}], 'missing_nodes', 'netmedic_cordoned'}``.
    """
    spec = parse_max_unhealthy(max_unhealthy)
    names = sorted(n['metadata']['name'] for n in nodes)
    evidence = []
    bad_nodes = set()
    netmedic_cordoned = []
    for node in sorted(nodes, key=lambda n: n['metadata']['name']):
        name = node['metadata']['name']
        ready, reason = node_ready(node)
        if not ready:
            evidence.append({'kind': 'Node', 'name': name, 'node': name, 'reason': reason})
            bad_nodes.add(name)
        cordon = du.cordon_state(node)
        if cordon['by_other']:
            evidence.append({'kind': 'Node', 'name': name, 'node': name, 'reason': 'cordoned by someone else'})
            bad_nodes.add(name)
        elif cordon['by_netmedic']:
            netmedic_cordoned.append({'node': name, 'by': cordon['owner']})
    missing_pods = 0
    for ds, pods in daemonsets:
        ref = '%s/%s' % (ds['metadata'].get('namespace'), ds['metadata']['name'])
        by_node = dsu.daemonset_pods(ds, pods)
        _count, bad = dsu.unhealthy(ds, by_node)
        for entry in bad:
            if entry['pod'] is None:
                missing = int(entry['state'].split()[0])
                missing_pods += missing
                evidence.append({'kind': 'DaemonSet', 'name': ref, 'node': None, 'reason': entry['state']})
                continue
            evidence.append({'kind': 'Pod', 'name': '%s/%s' % (ds['metadata'].get('namespace'), entry['pod']),
                             'node': entry['node'], 'reason': '%s pod %s' % (ref, entry['state'])})
            if entry['node'] in names:
                bad_nodes.add(entry['node'])
            else:
                missing_pods += 1
    count = len(bad_nodes) + missing_pods
    limit = allowed(spec, len(names))
    missing_nodes = [n for n in required if n not in names]
    return {'passed': count <= limit and not missing_nodes, 'unhealthy_count': count, 'allowed': limit,
            'total': len(names), 'unhealthy': evidence, 'missing_nodes': missing_nodes,
            'netmedic_cordoned': netmedic_cordoned}


def summary(verdict, max_unhealthy):
    """One line for the failure message."""
    parts = []
    if verdict['missing_nodes']:
        parts.append('Node(s) unknown to the API: %s' % ', '.join(verdict['missing_nodes']))
    if verdict['unhealthy_count'] > verdict['allowed']:
        parts.append('%d unhealthy, more than max_unhealthy=%s (%d of %d Nodes): %s' % (
            verdict['unhealthy_count'], max_unhealthy, verdict['allowed'], verdict['total'],
            '; '.join('%s %s: %s' % (e['kind'], e['name'], e['reason']) for e in verdict['unhealthy'])))
    return '. '.join(parts)
