"""Seed files: the objects (and server version) a double starts with.

Accepted shapes (YAML): a dict ``{version: ..., nodes: [...], objects: [...]}``; or a multi-document
stream of objects (``kind: List`` documents are expanded) where a document without ``kind`` is a
header with ``version`` and/or ``nodes``. ``version`` is a gitVersion string (``v1.24.9-gke.3200``);
``nodes`` is a list of ``{name, ip}`` (or ``name=ip`` strings) expanded into Ready Node objects.
"""

from __future__ import annotations

import ipaddress
from collections import namedtuple
from pathlib import Path

import yaml

from .resources import NAMESPACE, NODE, lookup

DEFAULT_VERSION = 'v1.24.9-gke.3200'
BASE_NAMESPACES = ('default', 'kube-system', 'kube-public', 'kube-node-lease')

Seed = namedtuple('Seed', 'version objects nodes')


def _node_entry(entry):
    if isinstance(entry, str):
        return parse_nodes(entry)[0]
    return entry['name'], entry['ip']


def load_seed(source):
    """A ``Seed(version, objects, nodes)`` from a path, YAML text, a dict or a list."""
    if source is None:
        return Seed(None, [], None)
    if isinstance(source, Path) or (isinstance(source, str) and '\n' not in source and Path(source).exists()):
        source = Path(source).read_text()
    docs = list(yaml.safe_load_all(source)) if isinstance(source, str) else [source]
    version, objects, nodes = None, [], None
    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, list):
            objects.extend(doc)
        elif 'kind' not in doc:
            version = doc.get('version', version)
            if doc.get('nodes') is not None:
                nodes = [_node_entry(n) for n in doc['nodes']]
            objects.extend(doc.get('objects') or [])
        elif doc.get('kind') == 'List':
            objects.extend(doc.get('items') or [])
        else:
            objects.append(doc)
    if isinstance(version, dict):
        version = version.get('gitVersion')
    return Seed(version, objects, nodes)


def parse_nodes(text):
    """``name=ip,name=ip`` -> ``[(name, ip), ...]``."""
    nodes = []
    for item in filter(None, (p.strip() for p in (text or '').split(','))):
        name, _sep, ip = item.partition('=')
        ipaddress.ip_address(ip)
        nodes.append((name, ip))
    return nodes


def make_node(name, ip, index, version, cpu='2', memory='4026524Ki'):
    """A Ready Linux node like a kubelet registers it."""
    stamp = '2024-01-01T00:00:00Z'
    conditions = [{'type': t, 'status': 'False', 'reason': 'Kubelet' + r, 'message': m,
                   'lastHeartbeatTime': stamp, 'lastTransitionTime': stamp}
                  for t, r, m in (('MemoryPressure', 'HasSufficientMemory', 'kubelet has sufficient memory available'),
                                  ('DiskPressure', 'HasNoDiskPressure', 'kubelet has no disk pressure'),
                                  ('PIDPressure', 'HasSufficientPID', 'kubelet has sufficient PID available'))]
    conditions.append({'type': 'Ready', 'status': 'True', 'reason': 'KubeletReady',
                       'message': 'kubelet is posting ready status', 'lastHeartbeatTime': stamp,
                       'lastTransitionTime': stamp})
    capacity = {'cpu': cpu, 'memory': memory, 'pods': '110', 'ephemeral-storage': '20466256Ki'}
    return {
        'apiVersion': 'v1', 'kind': 'Node',
        'metadata': {'name': name, 'labels': {
            'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64',
            'beta.kubernetes.io/os': 'linux', 'beta.kubernetes.io/arch': 'amd64'}},
        'spec': {'podCIDR': '172.20.%d.0/24' % index, 'podCIDRs': ['172.20.%d.0/24' % index]},
        'status': {
            'capacity': capacity, 'allocatable': dict(capacity), 'conditions': conditions,
            'addresses': [{'type': 'InternalIP', 'address': ip}, {'type': 'Hostname', 'address': name}],
            'nodeInfo': {'kubeletVersion': version.split('+')[0], 'kubeProxyVersion': version.split('+')[0],
                         'containerRuntimeVersion': 'containerd://1.6.20', 'kernelVersion': '6.1.0-18-amd64',
                         'osImage': 'Debian GNU/Linux 12 (bookworm)', 'operatingSystem': 'linux',
                         'architecture': 'amd64', 'machineID': '', 'systemUUID': '', 'bootID': ''},
            'daemonEndpoints': {'kubeletEndpoint': {'Port': 10250}},
        },
    }


def template_accounts(objects):
    """The ServiceAccounts the seed's workloads run as (their pod templates' ``serviceAccountName``, not ``default``)
    that the seed does not create itself, as lab/k8s/nodesim.py's seed creates them on the real server: the
    ServiceAccount admission refuses a pod naming a missing one (admission.check_service_account)."""
    have = {(o['metadata'].get('namespace') or 'default', o['metadata']['name']) for o in objects if o.get('kind') == 'ServiceAccount'}
    made = []
    for obj in objects:
        if obj.get('kind') not in ('Pod', 'DaemonSet', 'Deployment', 'ReplicaSet', 'StatefulSet', 'Job'):
            continue
        spec = obj.get('spec') or {}
        spec = spec if obj['kind'] == 'Pod' else (spec.get('template') or {}).get('spec') or {}
        name = spec.get('serviceAccountName') or spec.get('serviceAccount')
        key = (obj['metadata'].get('namespace') or 'default', name)
        if name and name != 'default' and key not in have:
            have.add(key)
            made.append({'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': {'name': name, 'namespace': key[0]}})
    return made


def populate(store, objects, nodes=None):
    """Create namespaces, nodes (``nodes`` = [(name, ip)] replaces the seed's Nodes), then the rest."""
    objects = [o for o in objects if not (nodes is not None and o.get('kind') == 'Node')]
    if nodes is not None:
        objects += [make_node(name, ip, i + 1, store.version) for i, (name, ip) in enumerate(nodes)]
    names = {o['metadata']['name'] for o in objects if o.get('kind') == 'Namespace'}
    objects = [{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': n}}
               for n in BASE_NAMESPACES if n not in names] + objects
    objects += template_accounts(objects)
    order = {NAMESPACE.kind: 0, NODE.kind: 1, 'ServiceAccount': 1.5}   # accounts before the pods that name them
    for obj in sorted(objects, key=lambda o: order.get(o.get('kind'), 2)):
        rt = lookup(obj['kind'])
        store.create(rt, obj['metadata'].get('namespace'), obj)
