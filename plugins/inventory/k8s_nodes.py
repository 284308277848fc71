# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: k8s_nodes
short_description: The Kubernetes cluster's Nodes as an Ansible inventory, for netmedic's node fixes
version_added: 0.1.0
description:
  - Lists the cluster's Node objects through the Kubernetes API and adds one host per Node, so the node-level fixes
    (catalog N-*) and the workflows (W-*) run on exactly the nodes the cluster has.
  - The host name is the Node name; C(ansible_host) is its C(InternalIP) (or the first address of the types in
    O(address_types)). Host variables C(k8s_node) carry labels, taints, readiness, schedulability, kubelet
    and kernel versions, container runtime, pod CIDRs and provider ID.
  - Groups - C(k8s_nodes) (all), C(k8s_ready) / C(k8s_not_ready), C(k8s_cordoned), C(k8s_role_<role>) from the
    C(node-role.kubernetes.io/<role>) labels, plus O(keyed_groups)/O(groups)/O(compose) as in C(constructed).
  - If the API cannot be read, the inventory fails to load; it is never silently empty.
  - Connection settings are C(kubernetes.core)'s auth options with the same C(K8S_AUTH_*) environment variables
    (an option left unset falls back to its variable, read by C(kubernetes.core)'s own code), plus netmedic's
    O(request_timeout)/O(request_retries) - the same set the netmedic cluster modules take.
  - With O(cache) on, the Node list is kept in the configured inventory cache, under a key per inventory source
    and per connection (the resolved connection settings, hashed, and O(label_selector)), so two sources or two
    clusters never share an entry. A failed read is never cached.
author:
  - netmedic maintainers (@netmedic)
requirements:
  - kubernetes (Python client)
  - the C(kubernetes.core) collection
extends_documentation_fragment:
  - constructed
  - inventory_cache
  - kubernetes.core.k8s_auth_options
  - netmedic.k8s.k8s_auth
options:
  plugin:
    description: Marks the file as this plugin's.
    required: true
    choices: [netmedic.k8s.k8s_nodes]
  label_selector:
    description: Only Nodes matching this label selector (V(node-role.kubernetes.io/worker), V(pool=blue)).
    type: str
  address_types:
    description: Node address types to use for C(ansible_host), first match wins.
    type: list
    elements: str
    default: [InternalIP, ExternalIP, Hostname]
  exclude_not_ready:
    description: Leave out Nodes whose C(Ready) condition is not C(True).
    type: bool
    default: false
"""

EXAMPLES = r"""
# inventories/cluster.k8s_nodes.yml  (the file name must end in k8s_nodes.yml or k8s_nodes.yaml)
plugin: netmedic.k8s.k8s_nodes
kubeconfig: ~/.kube/config
label_selector: node-role.kubernetes.io/worker
keyed_groups:
  - key: k8s_node.labels['topology.kubernetes.io/zone'] | default('none')
    prefix: zone
compose:
  ansible_user: "'root'"

# then: ansible-playbook -i inventories/cluster.k8s_nodes.yml playbooks/diagnose.yml

# Token and API URL from the environment (K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_SSL_CA_CERT), the Node list
# cached for 10 minutes in JSON files (a second inventory file, e.g. inventories/env.k8s_nodes.yml):
# plugin: netmedic.k8s.k8s_nodes
# cache: true
# cache_plugin: ansible.builtin.jsonfile
# cache_connection: ~/.cache/netmedic-inventory
# cache_timeout: 600
"""

import hashlib
import json
import re

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client

ROLE_PREFIX = 'node-role.kubernetes.io/'


def _safe(name):
    return re.sub(r'[^A-Za-z0-9_]', '_', name)


def node_vars(node, address_types):
    """(address, k8s_node dict) of a Node object (a dict as the API returns it)."""
    meta = node.get('metadata') or {}
    spec = node.get('spec') or {}
    status = node.get('status') or {}
    addresses = status.get('addresses') or []
    address = None
    for kind in address_types:
        address = next((a.get('address') for a in addresses if a.get('type') == kind and a.get('address')), None)
        if address:
            break
    ready = next((c.get('status') for c in status.get('conditions') or [] if c.get('type') == 'Ready'), 'Unknown')
    info = status.get('nodeInfo') or {}
    labels = meta.get('labels') or {}
    return address, {
        'name': meta.get('name'),
        'labels': labels,
        'taints': spec.get('taints') or [],
        'ready': ready == 'True',
        'ready_status': ready,
        'unschedulable': bool(spec.get('unschedulable')),
        'roles': sorted(k[len(ROLE_PREFIX):] for k in labels if k.startswith(ROLE_PREFIX) and k[len(ROLE_PREFIX):]),
        'addresses': {a.get('type'): a.get('address') for a in addresses},
        'pod_cidrs': spec.get('podCIDRs') or ([spec['podCIDR']] if spec.get('podCIDR') else []),
        'provider_id': spec.get('providerID'),
        'kubelet_version': info.get('kubeletVersion'),
        'kernel_version': info.get('kernelVersion'),
        'container_runtime': info.get('containerRuntimeVersion'),
    }


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = 'netmedic.k8s.k8s_nodes'

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(('k8s_nodes.yml', 'k8s_nodes.yaml'))

    def _params(self):
        return {key: self.get_option(key) for key in k8s_client.AUTH_ARG_SPEC}

    def _connection_digest(self, params):
        """A hash of the resolved connection (options, else K8S_AUTH_* variables) and the selector, for the cache key."""
        auth = k8s_client.core_client._create_auth_spec(None, **k8s_client._core_kwargs(params))
        headers = k8s_client.core_client._create_headers(None, **k8s_client._core_kwargs(params))
        data = json.dumps([auth, headers, self.get_option('label_selector')], sort_keys=True, default=str)
        return hashlib.sha256(data.encode('utf-8')).hexdigest()[:16]

    def _list_nodes(self, params):
        if not k8s_client.HAS_K8S:
            raise AnsibleParserError('netmedic.k8s.k8s_nodes needs the kubernetes Python package: %s' % k8s_client.K8S_IMPORT_ERROR)
        try:
            cluster = k8s_client.Cluster(params)
            return k8s_client.list_objects(cluster, 'Node', label_selector=self.get_option('label_selector'))
        except k8s_client.K8sError as e:  # API errors, timeouts, bad connection settings: never an empty inventory
            raise AnsibleParserError('netmedic.k8s.k8s_nodes: cannot list Nodes: %s' % e.msg)
        except Exception as e:  # connection errors and the like
            raise AnsibleParserError('netmedic.k8s.k8s_nodes: cannot list Nodes: %s' % k8s_client.api_error(e, 'listing Nodes').msg)

    def _nodes(self, path, cache):
        """The Node list, from the inventory cache when it is on and holds this source's entry."""
        if not k8s_client.HAS_K8S_CORE:
            raise AnsibleParserError('netmedic.k8s.k8s_nodes needs the kubernetes.core collection: %s' % k8s_client.K8S_CORE_IMPORT_ERROR)
        params = self._params()
        use_cache = bool(self.get_option('cache'))
        if not use_cache:
            return self._list_nodes(params)
        key = '%s_%s' % (self.get_cache_key(path), self._connection_digest(params))
        if cache:
            try:
                cached = self._cache[key]
            except KeyError:
                cached = None
            if isinstance(cached, list):
                return cached
        nodes = self._list_nodes(params)
        self._cache[key] = nodes
        return nodes

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        nodes = self._nodes(path, cache)
        strict = self.get_option('strict')
        self.inventory.add_group('k8s_nodes')
        for node in sorted(nodes, key=lambda n: n['metadata']['name']):
            address, data = node_vars(node, self.get_option('address_types'))
            if self.get_option('exclude_not_ready') and not data['ready']:
                continue
            name = data['name']
            self.inventory.add_host(name, group='k8s_nodes')
            if address:
                self.inventory.set_variable(name, 'ansible_host', address)
            self.inventory.set_variable(name, 'k8s_node', data)
            groups = ['k8s_ready' if data['ready'] else 'k8s_not_ready']
            if data['unschedulable']:
                groups.append('k8s_cordoned')
            groups += ['k8s_role_%s' % _safe(role) for role in data['roles']]
            for group in groups:
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)
            host_vars = self.inventory.get_host(name).get_vars()
            self._set_composite_vars(self.get_option('compose'), host_vars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option('groups'), host_vars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option('keyed_groups'), host_vars, name, strict=strict)
