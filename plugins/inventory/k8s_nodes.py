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
  - Many clusters - O(clusters) lists them (a name and the connection of each, as in C(kubernetes.core)); every
    cluster's Nodes are read with that cluster's own connection and added to C(k8s_nodes), to the group
    C(cluster_<name>) and carry the host variables C(netmedic_cluster) (the name), C(netmedic_kubeconfig) and
    C(netmedic_context) (the cluster's kubeconfig and context; C(netmedic_cluster_connection) repeats both for the
    playbooks' check that no extra variable overrides them) and C(netmedic_cluster_host) (the cluster's pseudo-host
    below, whose facts a node play reads instead of C(localhost)'s), so a node play's API steps delegated to the controller
    reach that node's cluster. Each cluster also becomes one pseudo-host C(netmedic-cluster-<name>) in the group
    C(netmedic_clusters) (the controller's Python, no privilege escalation, and an address ending in C(.invalid) so
    that only a play with a local connection (the play keyword) can run there; a node play reaching it fails as unreachable) with the same
    variables; the cluster plays of the C-4 to C-8 playbooks run on the hosts of C(netmedic_clusters) when that group
    exists (one cluster per batch, C(serial=1)), else on C(localhost) as before; C(docs/awx_scale.md) lists the
    playbooks not converted yet.
  - One cluster that cannot be read fails the whole inventory, naming the cluster (never a partial fleet). Two clusters
    with a Node of the same name are refused (Ansible host names are unique; give each cluster a C(label_selector) in its O(clusters) entry
    or separate inventories).
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
  clusters:
    description:
      - Many clusters in one inventory (see the description). Each entry needs C(name) and C(kubeconfig) (the playbooks
        hand every cluster play and delegated API step C(netmedic_kubeconfig)/C(netmedic_context), never the
        C(K8S_AUTH_*) environment, so a cluster without its own kubeconfig could be confused with another and is
        refused) and takes any other connection option of this plugin (C(context), C(request_timeout), C(validate_certs),
        C(impersonate_user), ...) plus C(label_selector); an option an entry leaves out is the plugin's top-level option
        (itself falling back to its C(K8S_AUTH_*) variable).
      - Unset (the default), the plugin reads one cluster with its top-level options exactly as before, and adds no
        C(cluster_*) group, no C(netmedic_*) variable and no pseudo-host.
    type: list
    elements: dict
    version_added: 0.2.0
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

# Three clusters in one inventory (e.g. inventories/fleet.k8s_nodes.yml): nodes in cluster_prod_eu, cluster_prod_us,
# cluster_staging; the playbooks' cluster steps run once per cluster on netmedic-cluster-<name> (group netmedic_clusters):
# plugin: netmedic.k8s.k8s_nodes
# request_timeout: 20
# clusters:
#   - name: prod_eu
#     kubeconfig: ~/.kube/prod-eu.yaml
#   - name: prod_us
#     kubeconfig: ~/.kube/fleet.yaml
#     context: prod-us
#   - name: staging
#     kubeconfig: ~/.kube/fleet.yaml
#     context: staging
#     label_selector: node-role.kubernetes.io/worker
"""

import hashlib
import json
import re
import sys

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client

ROLE_PREFIX = 'node-role.kubernetes.io/'
CLUSTER_GROUP = 'netmedic_clusters'
CLUSTER_HOST_PREFIX = 'netmedic-cluster-'
CLUSTER_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$')


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

    def _clusters(self):
        """[(name, connection params, label selector)]: one unnamed entry without O(clusters), else one per cluster.

        Every entry is checked before the first API request, so a typo fails the inventory with nothing read.
        """
        top = self._params()
        selector = self.get_option('label_selector')
        clusters = self.get_option('clusters')
        if not clusters:
            return [(None, top, selector)]
        allowed = set(k8s_client.AUTH_ARG_SPEC) | {'name', 'label_selector'}
        result, seen = [], {}
        for index, entry in enumerate(clusters):
            if not isinstance(entry, dict):
                raise AnsibleParserError('netmedic.k8s.k8s_nodes: clusters[%d] must be a dict (name, kubeconfig, ...)' % index)
            name = entry.get('name')
            if not isinstance(name, str) or not CLUSTER_NAME.match(name):
                raise AnsibleParserError('netmedic.k8s.k8s_nodes: clusters[%d].name must be 1-63 letters, digits, - or _ '
                                         '(starting with a letter or digit), got %r' % (index, name))
            safe = _safe(name)
            if safe in seen:
                raise AnsibleParserError('netmedic.k8s.k8s_nodes: clusters %r and %r both make the group cluster_%s'
                                         % (seen[safe], name, safe))
            seen[safe] = name
            unknown = sorted(set(entry) - allowed)
            if unknown:
                raise AnsibleParserError('netmedic.k8s.k8s_nodes: clusters[%d] (%s) has unknown options %s; allowed: %s'
                                         % (index, name, ', '.join(unknown), ', '.join(sorted(allowed))))
            kubeconfig = entry.get('kubeconfig')
            if not isinstance(kubeconfig, str) or not kubeconfig.strip():
                raise AnsibleParserError('netmedic.k8s.k8s_nodes: clusters[%d] (%s) needs its own kubeconfig (a path): the '
                                         'playbooks reach each cluster through netmedic_kubeconfig/netmedic_context' % (index, name))
            context = entry.get('context')
            if context is not None and not isinstance(context, str):
                raise AnsibleParserError('netmedic.k8s.k8s_nodes: clusters[%d] (%s).context must be a string' % (index, name))
            params = dict(top)
            params.update((key, value) for key, value in entry.items() if key in k8s_client.AUTH_ARG_SPEC)
            result.append((name, params, entry.get('label_selector', selector)))
        return result

    def _connection_digest(self, params, selector):
        """A hash of the resolved connection (options, else K8S_AUTH_* variables) and the selector, for the cache key."""
        auth = k8s_client.core_client._create_auth_spec(None, **k8s_client._core_kwargs(params))
        headers = k8s_client.core_client._create_headers(None, **k8s_client._core_kwargs(params))
        data = json.dumps([auth, headers, selector], sort_keys=True, default=str)
        return hashlib.sha256(data.encode('utf-8')).hexdigest()[:16]

    def _list_nodes(self, params, selector, cluster_name=None):
        if not k8s_client.HAS_K8S:
            raise AnsibleParserError('netmedic.k8s.k8s_nodes needs the kubernetes Python package: %s' % k8s_client.K8S_IMPORT_ERROR)
        where = ' of cluster %s' % cluster_name if cluster_name else ''
        try:
            cluster = k8s_client.Cluster(params)
            return k8s_client.list_objects(cluster, 'Node', label_selector=selector)
        except k8s_client.K8sError as e:  # API errors, timeouts, bad connection settings: never an empty inventory
            raise AnsibleParserError('netmedic.k8s.k8s_nodes: cannot list Nodes%s: %s' % (where, e.msg))
        except Exception as e:  # connection errors and the like
            raise AnsibleParserError('netmedic.k8s.k8s_nodes: cannot list Nodes%s: %s' % (where, k8s_client.api_error(e, 'listing Nodes').msg))

    def _nodes(self, path, cache, params, selector, cluster_name=None):
        """The Node list, from the inventory cache when it is on and holds this source's entry."""
        if not k8s_client.HAS_K8S_CORE:
            raise AnsibleParserError('netmedic.k8s.k8s_nodes needs the kubernetes.core collection: %s' % k8s_client.K8S_CORE_IMPORT_ERROR)
        use_cache = bool(self.get_option('cache'))
        if not use_cache:
            return self._list_nodes(params, selector, cluster_name)
        key = '%s_%s' % (self.get_cache_key(path), self._connection_digest(params, selector))
        if cache:
            try:
                cached = self._cache[key]
            except KeyError:
                cached = None
            if isinstance(cached, list):
                return cached
        nodes = self._list_nodes(params, selector, cluster_name)
        self._cache[key] = nodes
        return nodes

    def _add_cluster_host(self, name, params):
        """The pseudo-host of one cluster: where the playbooks' cluster plays run for it (on the controller)."""
        host = CLUSTER_HOST_PREFIX + name
        self.inventory.add_group(CLUSTER_GROUP)
        self.inventory.add_host(host, group=CLUSTER_GROUP)
        # No ansible_connection: the cluster plays say `connection: local` themselves, while a node play that does not
        # leave this host out would connect to an address that never resolves (RFC 6761 .invalid) and fail as
        # unreachable - a node fix can never run on the controller by mistake.
        for key, value in (('ansible_host', host + '.invalid'), ('ansible_python_interpreter', sys.executable),
                           ('ansible_become', False)):
            self.inventory.set_variable(host, key, value)
        self._set_cluster_vars(host, name, params)

    def _set_cluster_vars(self, host, name, params):
        self.inventory.set_variable(host, 'netmedic_cluster', name)
        # The cluster play's host of this cluster: where a node play reads what that play decided (hostvars[...]).
        self.inventory.set_variable(host, 'netmedic_cluster_host', CLUSTER_HOST_PREFIX + name)
        self.inventory.set_variable(host, 'netmedic_kubeconfig', params['kubeconfig'])
        if params.get('context'):
            self.inventory.set_variable(host, 'netmedic_context', params['context'])
        # The same again, for playbooks/tasks/cluster_target.yml: an extra variable overriding either is refused.
        self.inventory.set_variable(host, 'netmedic_cluster_connection',
                                    {'kubeconfig': params['kubeconfig'], 'context': params.get('context') or ''})

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        clusters = self._clusters()
        # Read every cluster before adding anything: one cluster that cannot be read fails the whole inventory.
        listed = [(name, params, self._nodes(path, cache, params, selector, name)) for name, params, selector in clusters]
        owner = {}
        for name, _params, nodes in listed:
            for node in nodes:
                node_name = node['metadata']['name']
                if node_name in owner and owner[node_name] != name:
                    raise AnsibleParserError('netmedic.k8s.k8s_nodes: Node %s is in cluster %s and in cluster %s; host names '
                                             'must be unique (narrow a cluster with label_selector or use two inventories)'
                                             % (node_name, owner[node_name], name))
                owner[node_name] = name
        self.inventory.add_group('k8s_nodes')
        for name, params, nodes in listed:
            if name is not None:
                self._add_cluster_host(name, params)
                self.inventory.add_group('cluster_%s' % _safe(name))
            self._add_nodes(nodes, name, params)

    def _add_nodes(self, nodes, cluster_name, params):
        strict = self.get_option('strict')
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
            if cluster_name is not None:
                self._set_cluster_vars(name, cluster_name, params)
                groups.append('cluster_%s' % _safe(cluster_name))
            for group in groups:
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)
            host_vars = self.inventory.get_host(name).get_vars()
            self._set_composite_vars(self.get_option('compose'), host_vars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option('groups'), host_vars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option('keyed_groups'), host_vars, name, strict=strict)
