"""The API resources the double serves and the discovery documents that describe them."""

from __future__ import annotations

from dataclasses import dataclass, field

RW_VERBS = ('create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update')


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple = ()
    status: bool = False        # has a /status subresource (main writes keep status)
    generation: bool = False    # metadata.generation bumps on spec changes
    subresources: tuple = field(default=())

    @property
    def api_version(self):
        return '%s/%s' % (self.group, self.version) if self.group else self.version

    @property
    def key(self):
        return '%s/%s' % (self.group, self.plural) if self.group else self.plural

    @property
    def singular(self):
        return self.kind.lower()


def _rt(group, version, plural, kind, **kw):
    return ResourceType(group, version, plural, kind, **kw)


RESOURCE_TYPES = [
    _rt('', 'v1', 'namespaces', 'Namespace', namespaced=False, short_names=('ns',), status=True),
    _rt('', 'v1', 'nodes', 'Node', namespaced=False, short_names=('no',), status=True),
    _rt('', 'v1', 'pods', 'Pod', short_names=('po',), status=True, subresources=('log', 'eviction')),
    _rt('', 'v1', 'configmaps', 'ConfigMap', short_names=('cm',)),
    _rt('', 'v1', 'secrets', 'Secret'),
    _rt('', 'v1', 'services', 'Service', short_names=('svc',), status=True),
    _rt('', 'v1', 'serviceaccounts', 'ServiceAccount', short_names=('sa',)),
    _rt('', 'v1', 'endpoints', 'Endpoints', short_names=('ep',)),
    _rt('', 'v1', 'events', 'Event', short_names=('ev',)),
    _rt('apps', 'v1', 'daemonsets', 'DaemonSet', short_names=('ds',), status=True, generation=True),
    _rt('apps', 'v1', 'deployments', 'Deployment', short_names=('deploy',), status=True, generation=True),
    _rt('apps', 'v1', 'replicasets', 'ReplicaSet', short_names=('rs',), status=True, generation=True),
    _rt('policy', 'v1', 'poddisruptionbudgets', 'PodDisruptionBudget', short_names=('pdb',), status=True, generation=True),
    _rt('coordination.k8s.io', 'v1', 'leases', 'Lease'),
    _rt('networking.k8s.io', 'v1', 'networkpolicies', 'NetworkPolicy', short_names=('netpol',), generation=True),
    _rt('rbac.authorization.k8s.io', 'v1', 'clusterroles', 'ClusterRole', namespaced=False),
    _rt('rbac.authorization.k8s.io', 'v1', 'clusterrolebindings', 'ClusterRoleBinding', namespaced=False),
    _rt('rbac.authorization.k8s.io', 'v1', 'roles', 'Role'),
    _rt('rbac.authorization.k8s.io', 'v1', 'rolebindings', 'RoleBinding'),
]

BY_PATH = {(rt.group, rt.version, rt.plural): rt for rt in RESOURCE_TYPES}
BY_KIND = {(rt.api_version, rt.kind): rt for rt in RESOURCE_TYPES}
BY_KEY = {rt.key: rt for rt in RESOURCE_TYPES}
GROUPS = sorted({(rt.group, rt.version) for rt in RESOURCE_TYPES if rt.group})

POD = BY_KEY['pods']
NODE = BY_KEY['nodes']
NAMESPACE = BY_KEY['namespaces']
CONFIGMAP = BY_KEY['configmaps']
EVENT = BY_KEY['events']
SERVICEACCOUNT = BY_KEY['serviceaccounts']
DAEMONSET = BY_KEY['apps/daemonsets']
DEPLOYMENT = BY_KEY['apps/deployments']
REPLICASET = BY_KEY['apps/replicasets']
PDB = BY_KEY['policy/poddisruptionbudgets']


def lookup(ref):
    """A ResourceType from a key (``pods``, ``apps/daemonsets``), a kind (``DaemonSet``) or itself."""
    if isinstance(ref, ResourceType):
        return ref
    if ref in BY_KEY:
        return BY_KEY[ref]
    for rt in RESOURCE_TYPES:
        if ref in (rt.kind, rt.plural):
            return rt
    raise KeyError(ref)


def version_info(git_version):
    core = git_version.lstrip('v').split('-')[0].split('+')[0]
    major, minor = (core.split('.') + ['0', '0'])[:2]
    return {'major': major, 'minor': minor, 'gitVersion': git_version,
            'gitCommit': '0000000000000000000000000000000000000000', 'gitTreeState': 'clean',
            'buildDate': '2023-01-01T00:00:00Z', 'goVersion': 'go1.19.4', 'compiler': 'gc',
            'platform': 'linux/amd64'}


def api_versions():
    return {'kind': 'APIVersions', 'versions': ['v1'],
            'serverAddressByClientCIDRs': [{'clientCIDR': '0.0.0.0/0', 'serverAddress': '127.0.0.1:443'}]}


def _group_doc(group, version):
    gv = {'groupVersion': '%s/%s' % (group, version), 'version': version}
    return {'name': group, 'versions': [gv], 'preferredVersion': gv}


def api_group_list():
    return {'kind': 'APIGroupList', 'apiVersion': 'v1', 'groups': [_group_doc(g, v) for g, v in GROUPS]}


def api_group(group):
    for g, v in GROUPS:
        if g == group:
            return dict(_group_doc(g, v), kind='APIGroup', apiVersion='v1')
    return None


def api_resource_list(group, version):
    """The APIResourceList for ``/api/v1`` or ``/apis/<group>/<version>``, or None."""
    types = [rt for rt in RESOURCE_TYPES if (rt.group, rt.version) == (group, version)]
    if not types:
        return None
    resources = []
    for rt in types:
        entry = {'name': rt.plural, 'singularName': rt.singular, 'namespaced': rt.namespaced,
                 'kind': rt.kind, 'verbs': list(RW_VERBS)}
        if rt.short_names:
            entry['shortNames'] = list(rt.short_names)
        resources.append(entry)
        if rt.status:
            resources.append({'name': rt.plural + '/status', 'singularName': '', 'namespaced': rt.namespaced,
                              'kind': rt.kind, 'verbs': ['get', 'patch', 'update']})
        if 'log' in rt.subresources:
            resources.append({'name': rt.plural + '/log', 'singularName': '', 'namespaced': True,
                              'kind': 'Pod', 'verbs': ['get']})
        if 'eviction' in rt.subresources:
            resources.append({'name': rt.plural + '/eviction', 'singularName': '', 'namespaced': True,
                              'group': 'policy', 'version': 'v1', 'kind': 'Eviction', 'verbs': ['create']})
    return {'kind': 'APIResourceList', 'apiVersion': 'v1',
            'groupVersion': '%s/%s' % (group, version) if group else version, 'resources': resources}
