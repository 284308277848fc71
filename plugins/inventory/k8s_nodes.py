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
  - Connection settings are those of the netmedic and C(kubernetes.core) modules, with the same C(K8S_AUTH_*)
    environment variables.
author:
  - netmedic maintainers (@netmedic)
requirements:
  - kubernetes (Python client)
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: Marks the file as this plugin's.
    required: true
    choices: [netmedic.k8s.k8s_nodes]
  kubeconfig:
    description: Path to a kubeconfig file.
    type: path
    env:
      - name: K8S_AUTH_KUBECONFIG
  context:
    description: Kubeconfig context.
    type: str
    env:
      - name: K8S_AUTH_CONTEXT
  host:
    description: API URL.
    type: str
    env:
      - name: K8S_AUTH_HOST
  api_key:
    description: Bearer token.
    type: str
    env:
      - name: K8S_AUTH_API_KEY
  ca_cert:
    description: CA bundle for the API server certificate.
    type: path
    aliases: [ssl_ca_cert]
    env:
      - name: K8S_AUTH_SSL_CA_CERT
  validate_certs:
    description: Verify the API server certificate.
    type: bool
    aliases: [verify_ssl]
    env:
      - name: K8S_AUTH_VERIFY_SSL
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
"""

import re

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable

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


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = 'netmedic.k8s.k8s_nodes'

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(('k8s_nodes.yml', 'k8s_nodes.yaml'))

    def _list_nodes(self):
        if not k8s_client.HAS_K8S:
            raise AnsibleParserError('netmedic.k8s.k8s_nodes needs the kubernetes Python package: %s' % k8s_client.K8S_IMPORT_ERROR)
        params = {key: self.get_option(key) for key in ('kubeconfig', 'context', 'host', 'api_key', 'ca_cert', 'validate_certs')}
        try:
            api = k8s_client.api_client(params)
            core = k8s_client.k8s.CoreV1Api(api)
            items, token = [], None
            while True:
                kwargs = {'limit': 500}
                if token:
                    kwargs['_continue'] = token
                if self.get_option('label_selector'):
                    kwargs['label_selector'] = self.get_option('label_selector')
                page = core.list_node(**kwargs)
                items.extend(api.sanitize_for_serialization(n) for n in page.items)
                token = page.metadata._continue if page.metadata else None
                if not token:
                    return items
        except k8s_client.K8sError as e:
            raise AnsibleParserError('netmedic.k8s.k8s_nodes: %s' % e.msg)
        except Exception as e:  # ApiException, connection errors: never an empty inventory
            raise AnsibleParserError('netmedic.k8s.k8s_nodes: cannot list Nodes: %s' % k8s_client.api_error(e, 'listing Nodes').msg)

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        nodes = self._list_nodes()
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
