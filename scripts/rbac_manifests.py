#!/usr/bin/env python
"""Generate rbac/*.yml, the least-privilege RBAC manifests per playbook (issue 10 hole 13), from one table.

Each module's API calls are listed once (MODULES: what plugins/module_utils/k8s/client.py, k8s/edit.py,
k8s/lock.py and the module itself request, by RBAC verb, API group and resource); each playbook names
the modules it runs (PLAYBOOKS); the manifests are the union.  ``--check`` fails when the committed
files differ from what this table generates (tests/lab/test_rbac_manifests.py runs it), and
tests/lab/test_rbac_playbooks.py runs every playbook against the API double with exactly these grants.

    python scripts/rbac_manifests.py            # (re)write rbac/
    python scripts/rbac_manifests.py --check    # exit 1 and name the stale files
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / 'rbac'
SA_NAMESPACE = 'netmedic'
TARGET_NAMESPACE = 'kube-system'     # the modules' default ``namespace``: kube-proxy, Flannel, Terway, Leases

# Scope 'cluster' = ClusterRole + ClusterRoleBinding (cluster-scoped objects, or pods in every namespace);
# scope 'namespace' = Role + RoleBinding in TARGET_NAMESPACE.  A rule: (scope, apiGroup, resource, verbs).
EDIT_SERVICE = [   # k8s/edit.py: read, dry run (needs the write verb), backup ConfigMap, write, read back
    ('namespace', '', 'configmaps', ('get', 'create', 'update', 'delete')),
]
MODULES = {
    'kube_proxy_config': EDIT_SERVICE + [('namespace', 'apps', 'daemonsets', ('list',))],
    'flannel_config': EDIT_SERVICE + [('namespace', 'apps', 'daemonsets', ('list',))],
    'terway_config': EDIT_SERVICE + [('namespace', 'apps', 'daemonsets', ('list',))],
    'ip_masq_agent': EDIT_SERVICE + [('namespace', 'apps', 'daemonsets', ('get', 'list', 'update'))],
    'configmap_rollback': EDIT_SERVICE + [('namespace', '', 'configmaps', ('list',))],
    'daemonset_restart': [
        ('namespace', 'apps', 'daemonsets', ('get',)),
        ('namespace', '', 'configmaps', ('get',)),
        ('namespace', '', 'pods', ('list', 'delete')),
        ('namespace', '', 'pods/log', ('get',)),
        ('cluster', '', 'nodes', ('list',)),
    ],
    'cluster_lock': [('namespace', 'coordination.k8s.io', 'leases', ('get', 'create', 'update', 'delete'))],
    'health_gate': [
        ('cluster', '', 'nodes', ('list',)),
        ('namespace', 'apps', 'daemonsets', ('get',)),
        ('namespace', '', 'pods', ('list',)),
    ],
    'node_drain': [
        ('cluster', '', 'nodes', ('get', 'patch')),
        ('cluster', '', 'pods', ('list',)),
        ('cluster', '', 'pods/eviction', ('create',)),
    ],
    'k8s_info_node': [('cluster', '', 'nodes', ('get', 'list'))],    # kubernetes.core.k8s_info kind=Node
    'k8s_info_daemonset': [('namespace', 'apps', 'daemonsets', ('get', 'list'))],
    # playbooks/tasks/flannel_hairpin_pod(s).yml: kubernetes.core.k8s_info / k8s state=absent on the pods the user
    # selects, in the user's namespace (cluster-wide here; narrow it to a Role in that namespace if you can).
    'k8s_hairpin_pods': [('cluster', '', 'pods', ('get', 'list', 'delete'))],
    # W-2's Flannel pod lookup and its probe pod (kubernetes.core k8s_info / k8s, kube-system by default): found
    # missing when the playbook first ran with its grants (issue 10 hole 13).
    'k8s_w2_pods': [('namespace', '', 'pods', ('get', 'list', 'create', 'delete')),
                    ('namespace', 'apps', 'daemonsets', ('get', 'list'))],
    'k8s_info_configmap': [('namespace', '', 'configmaps', ('get', 'list'))],
    'k8s_info_pdb': [('cluster', 'policy', 'poddisruptionbudgets', ('get', 'list'))],
    'k8s_patch_daemonset': [('namespace', 'apps', 'daemonsets', ('get', 'patch'))],   # kubernetes.core.k8s state=patched
    'k8s_delete_node': [('cluster', '', 'nodes', ('get', 'delete'))],                  # kubernetes.core.k8s state=absent
    'backup_retention': [('namespace', '', 'configmaps', ('list', 'delete'))],
    # role ipam_cleanup_daemonset (kubernetes.core.k8s apply / state=absent) and the playbook's rollout wait (k8s_info).
    'k8s_ipam_cleanup_objects': [
        ('namespace', '', 'serviceaccounts', ('get', 'create', 'patch', 'delete')),
        ('namespace', '', 'configmaps', ('get', 'create', 'patch', 'delete')),
        ('namespace', 'apps', 'daemonsets', ('get', 'list', 'create', 'patch', 'delete')),
    ],
    'network_audit': [
        ('cluster', '', 'nodes', ('list',)),
        ('cluster', '', 'pods', ('list',)),
        ('cluster', '', 'pods/log', ('get',)),
        ('cluster', '', 'services', ('list',)),
        ('cluster', '', 'events', ('list',)),
        ('cluster', 'networking.k8s.io', 'networkpolicies', ('list',)),
        ('namespace', '', 'configmaps', ('get', 'list')),
        ('namespace', 'apps', 'daemonsets', ('get', 'list')),
    ],
}
VERIFIED_ROLLOUT = ['configmap_rollback', 'daemonset_restart']
CHANGE_GUARD = ['cluster_lock']

PLAYBOOKS = {
    'conntrack_tuning': {
        'catalog': 'W-5 (C-1 fix B)',
        'modules': CHANGE_GUARD + ['kube_proxy_config'] + VERIFIED_ROLLOUT,
    },
    'udp_timeout': {
        'catalog': 'W-4 (C-3)',
        'modules': CHANGE_GUARD + ['kube_proxy_config'] + VERIFIED_ROLLOUT,
    },
    'ipvs_scheduler_change': {
        'catalog': 'W-3 (C-2, C-7)',
        # The reboot after an iptables fallback (catalog C-2) is role node_rotation: drain, Node and PDB reads.
        'modules': (CHANGE_GUARD + ['health_gate', 'kube_proxy_config'] + VERIFIED_ROLLOUT
                    + ['node_drain', 'k8s_info_node', 'k8s_info_pdb']),
    },
    'flannel_datadir_migration': {
        'catalog': 'W-2 (C-5, N-7)',
        'modules': (CHANGE_GUARD + ['flannel_config'] + VERIFIED_ROLLOUT
                    + ['health_gate', 'node_drain', 'k8s_info_node', 'k8s_w2_pods']),
    },
    'cilium_lb_maps': {
        'catalog': 'W-6 (N-10)',
        'modules': CHANGE_GUARD + ['health_gate', 'daemonset_restart', 'k8s_info_daemonset'],
    },
    'daemonset_restart': {
        'catalog': 'C-7',
        'modules': CHANGE_GUARD + ['health_gate', 'daemonset_restart'],
    },
    'ipam_cleanup_daemonset': {
        'catalog': 'C-8 (N-1)',
        'modules': CHANGE_GUARD + ['health_gate', 'k8s_ipam_cleanup_objects'],
    },
    'ipam_gc_fleet': {
        'catalog': 'W-7 (N-1)',
        'modules': CHANGE_GUARD + ['health_gate', 'node_drain'],
    },
    'flannel_config': {
        'catalog': 'C-5',
        'modules': CHANGE_GUARD + ['health_gate', 'flannel_config', 'k8s_info_daemonset', 'k8s_hairpin_pods'] + VERIFIED_ROLLOUT,
    },
    'terway_config': {
        'catalog': 'C-6',
        'modules': CHANGE_GUARD + ['health_gate', 'terway_config', 'k8s_info_daemonset'] + VERIFIED_ROLLOUT,
    },
    'ip_masq_agent': {
        'catalog': 'C-4',
        'modules': CHANGE_GUARD + ['health_gate', 'ip_masq_agent', 'daemonset_restart', 'k8s_info_daemonset',
                                   'k8s_info_configmap', 'k8s_patch_daemonset'],
    },
    'node_rotation': {
        'catalog': 'W-1',
        'modules': CHANGE_GUARD + ['health_gate', 'node_drain', 'k8s_info_node', 'k8s_delete_node', 'k8s_info_pdb'],
    },
    'arp_flush': {
        'catalog': 'W-6 (N-6)',
        'modules': CHANGE_GUARD + ['health_gate'],
    },
    'backup_retention': {
        'catalog': 'issue 10 hole 11',
        'what': 'module netmedic.k8s.backup_retention',
        'modules': ['backup_retention'],
    },
    'read-only': {
        'catalog': 'D-1 ... D-7',
        'what': 'read-only use - network_audit, health_gate, configmap_rollback without restore',
        'modules': ['network_audit', 'health_gate'],
        'read_only': True,
    },
}
# Entries run against the RBAC-enforcing API double with exactly their grants (tests/lab/test_rbac_playbooks.py,
# tests/lab/test_backup_retention.py); the others are derived from the modules they call, not yet proved by a run.
PROVED = ('conntrack_tuning', 'udp_timeout', 'ipvs_scheduler_change', 'ipam_gc_fleet', 'backup_retention', 'read-only',
          'flannel_config', 'terway_config', 'ip_masq_agent', 'node_rotation', 'flannel_datadir_migration', 'cilium_lb_maps',
          'arp_flush', 'daemonset_restart', 'ipam_cleanup_daemonset')
# Playbooks that never call the Kubernetes API (node plays over SSH only): no manifest.
NODE_ONLY = ('diagnose', 'remediate_node')
READ_VERBS = ('get', 'list', 'watch')
VERB_ORDER = ('get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection')


class _Dumper(yaml.SafeDumper):
    """Block sequences indented under their key (what yamllint and ansible-lint expect)."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def rules_for(name):
    """``{'cluster': [PolicyRule], 'namespace': [PolicyRule]}`` for one entry of PLAYBOOKS."""
    spec = PLAYBOOKS[name]
    merged = {}
    for module in spec['modules']:
        for scope, group, resource, verbs in MODULES[module]:
            merged.setdefault((scope, group, resource), set()).update(verbs)
    if spec.get('read_only'):
        bad = {k: v - set(READ_VERBS) for k, v in merged.items() if v - set(READ_VERBS)}
        if bad:
            raise ValueError('read-only entry %s has write verbs: %r' % (name, bad))
    out = {'cluster': [], 'namespace': []}
    for (scope, group, resource), verbs in sorted(merged.items()):
        out[scope].append({'apiGroups': [group], 'resources': [resource],
                           'verbs': sorted(verbs, key=VERB_ORDER.index)})
    return out


def _meta(name, namespace=None, labels=True):
    meta = {'name': name}
    if namespace:
        meta['namespace'] = namespace
    if labels:
        meta['labels'] = {'app.kubernetes.io/managed-by': 'netmedic', 'app.kubernetes.io/part-of': 'netmedic.k8s'}
    return meta


def service_account(name):
    """The ServiceAccount of one entry (a DNS-1123 name: no underscores)."""
    return 'netmedic-%s' % name.replace('_', '-')


def documents(name):
    """The manifest's objects: ServiceAccount, ClusterRole + binding, Role + binding (the last two if needed)."""
    rules = rules_for(name)
    role = 'netmedic:%s' % name.replace('_', '-')
    sa = service_account(name)
    subject = [{'kind': 'ServiceAccount', 'name': sa, 'namespace': SA_NAMESPACE}]
    docs = [{'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': _meta(sa, SA_NAMESPACE)}]
    ref = {'apiGroup': 'rbac.authorization.k8s.io'}
    if rules['cluster']:
        docs.append({'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRole', 'metadata': _meta(role),
                     'rules': rules['cluster']})
        docs.append({'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRoleBinding', 'metadata': _meta(role),
                     'roleRef': dict(ref, kind='ClusterRole', name=role), 'subjects': subject})
    if rules['namespace']:
        docs.append({'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'Role',
                     'metadata': _meta(role, TARGET_NAMESPACE), 'rules': rules['namespace']})
        docs.append({'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'RoleBinding',
                     'metadata': _meta(role, TARGET_NAMESPACE), 'roleRef': dict(ref, kind='Role', name=role),
                     'subjects': subject})
    return docs


def render(name):
    spec = PLAYBOOKS[name]
    target = spec.get('what', 'playbooks/%s.yml' % name)
    header = ['# Generated by scripts/rbac_manifests.py from its table - edit the table, not this file.',
              '# Least privilege for %s, catalog %s.' % (target, spec['catalog']),
              '# Modules: %s.' % ', '.join(spec['modules']),
              '# ServiceAccount %s/%s; Role in %s (change it if your kube-proxy/Flannel/Terway'
              % (SA_NAMESPACE, service_account(name), TARGET_NAMESPACE),
              '# objects or lock Lease live elsewhere). Create the namespace %s first. See docs/rbac.md.' % SA_NAMESPACE]
    proved = ('Proved: ran with exactly these grants against the RBAC-enforcing API double (tests/lab).' if name in PROVED
              else 'Derived from the modules it calls; not yet proved by a run with these grants.')
    header.append('# %s' % proved)
    if spec.get('read_only'):
        header.append('# Read-only: check mode of a writing playbook FAILS with it (server-side dry runs need the write verbs).')
    # One YAML document (a v1 List, as `kubectl apply -f` takes it): yamllint's single-document rule holds.
    listing = {'apiVersion': 'v1', 'kind': 'List', 'items': documents(name)}
    body = '---\n' + yaml.dump(listing, Dumper=_Dumper, default_flow_style=False, sort_keys=False)
    return '\n'.join(header) + '\n' + body


def expected():
    return {OUT / ('%s.yml' % name): render(name) for name in PLAYBOOKS}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--check', action='store_true', help='only compare; exit 1 when rbac/ is stale')
    args = parser.parse_args(argv)
    want = expected()
    stale = [p for p, text in want.items() if not p.exists() or p.read_text() != text]
    extra = [p for p in OUT.glob('*.yml') if p not in want] if OUT.is_dir() else []
    if args.check:
        for path in stale + extra:
            print('stale: %s (run python scripts/rbac_manifests.py)' % path.relative_to(ROOT), file=sys.stderr)
        return 1 if stale or extra else 0
    OUT.mkdir(exist_ok=True)
    for path in extra:
        path.unlink()
    for path, text in want.items():
        path.write_text(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
