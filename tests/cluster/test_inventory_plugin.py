"""Inventory plugin netmedic.k8s.k8s_nodes on the double and on the real kube-apiserver (issue 15).

Ported from tests/lab/test_inventory_plugin.py (issue 15 item 4; none of its cases needed the double). The seed's
Nodes become hosts: ``ansible_host`` from each Node's InternalIP, groups for the cordoned and the Ready ones, a label
selector, the Node list cached per source and refreshed by ``--flush-cache``, the ``K8S_AUTH_*`` variables taken as
in kubernetes.core, and a wrong token failing the inventory (a real 401) instead of an empty one; the kubeconfig's
credentials never printed. The cordon and the labels are ordinary Node updates through the API; the Nodes are
cluster-scoped, so every test puts them back as they were (``nodes_restored``). What the hosts must be is read
through the API, not taken from the plugin's answer.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.lab.multicluster import plain

ROOT = Path(__file__).resolve().parents[2]
NODES = ['lab-node-1', 'lab-node-2', 'lab-node-3']
# The seed's node addresses: the double serves them; lab/k8s/nodesim.py registers loopback ones (127.0.100.N)
# on the real server (nodesim.load_seed: the API server dials a node's address, and nothing may reach 10.77.0.x).
SEED_IPS = ['10.77.0.11', '10.77.0.12', '10.77.0.13']
TEST_LABELS = ('pool',)   # the labels the tests set (and nodes_restored puts back)


def _merge_patch_node(cluster, name, patch):
    return cluster.core.patch_node(name, patch, _content_type='application/merge-patch+json')


@pytest.fixture
def nodes_restored(nodes_uncordoned):
    """``nodes_uncordoned`` (the cordon this file plants taken off after the test), and the labels this file sets put
    back as they were before it (Nodes are cluster-scoped: the next test, and on the real server the next file, must
    find them clean)."""
    cluster = nodes_uncordoned
    before = {n['metadata']['name']: n for n in cluster.items('Node')}
    assert sorted(before) == NODES, sorted(before)
    yield cluster
    for name, old in before.items():
        _merge_patch_node(cluster, name, {'metadata': {'labels': {k: (old['metadata'].get('labels') or {}).get(k)
                                                                  for k in TEST_LABELS}}})
        now = cluster.get('Node', None, name)
        assert (now['metadata'].get('labels') or {}) == (old['metadata'].get('labels') or {}), name


def _internal_ips(cluster):
    return [next(a['address'] for a in cluster.get('Node', None, n)['status']['addresses'] if a['type'] == 'InternalIP')
            for n in NODES]


def _secrets(cluster):
    """The kubeconfig's credentials as they would show if printed: a token, client key and certificate data (as
    stored and decoded)."""
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    context_name = cluster.context or config['current-context']
    context = next(c['context'] for c in config['contexts'] if c['name'] == context_name)
    user = next(u['user'] for u in config['users'] if u['name'] == context['user'])
    found = [user[k] for k in ('token', 'password') if user.get(k)]
    for key in ('client-key-data', 'client-certificate-data'):
        if user.get(key):
            found.append(user[key])
            pem = base64.b64decode(user[key]).decode()
            found += [line for line in pem.splitlines() if line and not line.startswith('-----')][:2]
    assert found, 'no credential in %s' % cluster.kubeconfig
    return found


def _context_line(cluster):
    return 'context: %s\n' % cluster.context if cluster.context else ''


def _base_env(tmp_path):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'), ANSIBLE_INVENTORY_ENABLED='netmedic.k8s.k8s_nodes',
               ANSIBLE_NOCOLOR='1', ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'))
    env.pop('ANSIBLE_CONFIG', None)
    for name in [n for n in env if n.startswith('K8S_AUTH_')]:
        env.pop(name)
    return env


def _inventory(tmp_path, body, env_extra=None):
    path = tmp_path / 'cluster.k8s_nodes.yml'
    path.write_text(body)
    env = _base_env(tmp_path)
    env.update(env_extra or {})
    return subprocess.run([str(Path(sys.executable).with_name('ansible-inventory')), '-i', str(path), '--list'],
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_nodes_become_hosts_with_groups(nodes_restored, tmp_path):
    cluster = nodes_restored
    # A cordoned node, as the workflows leave it.
    _merge_patch_node(cluster, 'lab-node-2', {'spec': {'unschedulable': True}})
    assert cluster.get('Node', None, 'lab-node-2')['spec']['unschedulable'] is True
    proc = _inventory(tmp_path, 'plugin: netmedic.k8s.k8s_nodes\nkubeconfig: %s\n%s'
                      'keyed_groups:\n  - key: k8s_node.kubelet_version | default("none")\n    prefix: kubelet\n'
                      % (cluster.kubeconfig, _context_line(cluster)))
    assert proc.returncode == 0, proc.stderr
    inv = json.loads(proc.stdout)
    hostvars = plain(inv['_meta']['hostvars'])
    assert sorted(hostvars) == NODES
    addresses = _internal_ips(cluster)
    if cluster.is_double:
        assert addresses == SEED_IPS
    assert [hostvars[n]['ansible_host'] for n in sorted(hostvars)] == addresses
    assert hostvars['lab-node-1']['k8s_node']['ready'] is True
    assert sorted(inv['k8s_nodes']['hosts']) == sorted(hostvars)
    assert inv['k8s_cordoned']['hosts'] == ['lab-node-2']
    assert sorted(inv['k8s_ready']['hosts']) == sorted(hostvars)
    for secret in _secrets(cluster):
        assert secret not in proc.stdout


def test_label_selector_and_api_errors_fail_loudly(nodes_restored, tmp_path):
    cluster = nodes_restored
    _merge_patch_node(cluster, 'lab-node-3', {'metadata': {'labels': {'pool': 'blue'}}})
    proc = _inventory(tmp_path, 'plugin: netmedic.k8s.k8s_nodes\nkubeconfig: %s\n%slabel_selector: pool=blue\n'
                      % (cluster.kubeconfig, _context_line(cluster)))
    assert proc.returncode == 0, proc.stderr
    assert sorted(json.loads(proc.stdout)['_meta']['hostvars']) == ['lab-node-3']

    # Wrong token: the inventory must fail, not come back empty (nor read as the kubeconfig's own identity).
    proc = _inventory(tmp_path, 'plugin: netmedic.k8s.k8s_nodes\nkubeconfig: %s\n%sapi_key: not-the-token\n'
                      % (cluster.kubeconfig, _context_line(cluster)), {'ANSIBLE_INVENTORY_UNPARSED_FAILED': '1'})
    assert proc.returncode != 0
    assert '401' in proc.stderr and 'cannot list Nodes' in proc.stderr, proc.stderr
    assert 'not-the-token' not in proc.stderr


def _cached_source(tmp_path, cluster, name='cluster', extra=''):
    path = tmp_path / ('%s.k8s_nodes.yml' % name)
    path.write_text('plugin: netmedic.k8s.k8s_nodes\nkubeconfig: %s\n%scache: true\ncache_plugin: ansible.builtin.jsonfile\n'
                    'cache_connection: %s\ncache_timeout: 3600\n%s'
                    % (cluster.kubeconfig, _context_line(cluster), tmp_path / 'inv-cache', extra))
    return path


def _list(tmp_path, path, *args, env_extra=None):
    env = _base_env(tmp_path)
    env['ANSIBLE_INVENTORY_UNPARSED_FAILED'] = '1'
    env.update(env_extra or {})
    proc = subprocess.run([str(Path(sys.executable).with_name('ansible-inventory')), '-i', str(path), '--list', *args],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_issue11_item4_inventory_is_cacheable_per_source_and_flushable(nodes_restored, tmp_path):
    """Issue 11 item 4: the inventory plugin is Cacheable; the cache key is per source (and per connection)."""
    cluster = nodes_restored
    assert not any(n['spec'].get('unschedulable') for n in cluster.items('Node'))
    everything = _cached_source(tmp_path, cluster)
    inv = _list(tmp_path, everything)
    assert 'k8s_cordoned' not in inv
    entries = sorted(p.name for p in (tmp_path / 'inv-cache').iterdir())
    assert len(entries) == 1, entries
    text = (tmp_path / 'inv-cache' / entries[0]).read_text()
    cached = json.loads(text)
    if isinstance(cached, dict) and '__payload__' in cached:   # ansible-core >= 2.19 jsonfile envelope
        cached = json.loads(cached['__payload__'])
    assert sorted(n['metadata']['name'] for n in cached) == NODES
    for secret in _secrets(cluster):
        assert secret not in text

    _merge_patch_node(cluster, 'lab-node-2', {'spec': {'unschedulable': True}, 'metadata': {'labels': {'pool': 'blue'}}})
    # Served from the cache: the cordon made after the first read is not seen.
    assert 'k8s_cordoned' not in _list(tmp_path, everything)
    # Another source (another selector) has its own entry, read from the API.
    blue = _cached_source(tmp_path, cluster, 'blue', 'label_selector: pool=blue\n')
    assert sorted(plain(_list(tmp_path, blue)['_meta']['hostvars'])) == ['lab-node-2']
    assert len(list((tmp_path / 'inv-cache').iterdir())) == 2
    # --flush-cache reads the API again and refreshes the entry.
    assert _list(tmp_path, everything, '--flush-cache')['k8s_cordoned']['hosts'] == ['lab-node-2']
    assert _list(tmp_path, everything)['k8s_cordoned']['hosts'] == ['lab-node-2']


def test_issue11_item4_inventory_takes_kubernetes_core_k8s_auth_variables(cluster, tmp_path):
    """Issue 11 item 4: an option left unset falls back to its K8S_AUTH_* variable, as in kubernetes.core."""
    path = tmp_path / 'env.k8s_nodes.yml'
    path.write_text('plugin: netmedic.k8s.k8s_nodes\n')
    auth = {'K8S_AUTH_KUBECONFIG': str(cluster.kubeconfig)}
    if cluster.context:
        auth['K8S_AUTH_CONTEXT'] = cluster.context
    inv = _list(tmp_path, path, env_extra=auth)
    assert sorted(plain(inv['_meta']['hostvars'])) == [n['metadata']['name'] for n in cluster.items('Node')]
    # A wrong token from K8S_AUTH_API_KEY replaces the kubeconfig's: the API refuses and the inventory fails.
    env = _base_env(tmp_path)
    env.update(auth, ANSIBLE_INVENTORY_UNPARSED_FAILED='1', K8S_AUTH_API_KEY='env-wrong-token')
    proc = subprocess.run([str(Path(sys.executable).with_name('ansible-inventory')), '-i', str(path), '--list'],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert '401' in proc.stderr and 'cannot list Nodes' in proc.stderr, proc.stderr
    assert 'env-wrong-token' not in proc.stderr
