"""Inventory plugin netmedic.k8s.k8s_nodes against the API double (real kubernetes client over HTTP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.lab.multicluster import plain

DOUBLE_ONLY = "portable: the k8s_nodes inventory over the seed's Nodes (cordon and labels are ordinary updates, a bad token a real 401)"

ROOT = Path(__file__).resolve().parents[2]


def _inventory(tmp_path, body, env_extra=None):
    path = tmp_path / 'cluster.k8s_nodes.yml'
    path.write_text(body)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'), ANSIBLE_INVENTORY_ENABLED='netmedic.k8s.k8s_nodes',
               ANSIBLE_NOCOLOR='1', ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'))
    env.pop('ANSIBLE_CONFIG', None)
    env.pop('K8S_AUTH_KUBECONFIG', None)
    env.update(env_extra or {})
    proc = subprocess.run([str(Path(sys.executable).with_name('ansible-inventory')), '-i', str(path), '--list'],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    return proc


def test_nodes_become_hosts_with_groups(double, tmp_path):
    # A cordoned node and a NotReady node, as the workflows leave them.
    node2 = double.store.get('nodes', None, 'lab-node-2')
    node2['spec']['unschedulable'] = True
    double.store.update('nodes', None, 'lab-node-2', node2)
    proc = _inventory(tmp_path, 'plugin: netmedic.k8s.k8s_nodes\nkubeconfig: %s\n'
                      'keyed_groups:\n  - key: k8s_node.kubelet_version | default("none")\n    prefix: kubelet\n'
                      % double.kubeconfig_path)
    assert proc.returncode == 0, proc.stderr
    inv = json.loads(proc.stdout)
    hostvars = plain(inv['_meta']['hostvars'])
    assert sorted(hostvars) == ['lab-node-1', 'lab-node-2', 'lab-node-3']
    assert [hostvars[n]['ansible_host'] for n in sorted(hostvars)] == ['10.77.0.11', '10.77.0.12', '10.77.0.13']
    assert hostvars['lab-node-1']['k8s_node']['ready'] is True
    assert sorted(inv['k8s_nodes']['hosts']) == sorted(hostvars)
    assert inv['k8s_cordoned']['hosts'] == ['lab-node-2']
    assert sorted(inv['k8s_ready']['hosts']) == sorted(hostvars)
    assert double.token not in proc.stdout


def test_label_selector_and_api_errors_fail_loudly(double, tmp_path):
    node = double.store.get('nodes', None, 'lab-node-3')
    node['metadata'].setdefault('labels', {})['pool'] = 'blue'
    double.store.update('nodes', None, 'lab-node-3', node)
    proc = _inventory(tmp_path, 'plugin: netmedic.k8s.k8s_nodes\nkubeconfig: %s\nlabel_selector: pool=blue\n'
                      % double.kubeconfig_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(json.loads(proc.stdout)['_meta']['hostvars']) == ['lab-node-3']

    # Wrong token: the inventory must fail, not come back empty.
    proc = _inventory(tmp_path, 'plugin: netmedic.k8s.k8s_nodes\nkubeconfig: %s\napi_key: not-the-token\n'
                      % double.kubeconfig_path, {'ANSIBLE_INVENTORY_UNPARSED_FAILED': '1'})
    assert proc.returncode != 0
    assert '401' in proc.stderr and 'cannot list Nodes' in proc.stderr, proc.stderr
    assert 'not-the-token' not in proc.stderr


def _cached_source(tmp_path, double, name='cluster', extra=''):
    path = tmp_path / ('%s.k8s_nodes.yml' % name)
    path.write_text('plugin: netmedic.k8s.k8s_nodes\nkubeconfig: %s\ncache: true\ncache_plugin: ansible.builtin.jsonfile\n'
                    'cache_connection: %s\ncache_timeout: 3600\n%s' % (double.kubeconfig_path, tmp_path / 'inv-cache', extra))
    return path


def _list(tmp_path, path, *args, env_extra=None):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'), ANSIBLE_INVENTORY_ENABLED='netmedic.k8s.k8s_nodes',
               ANSIBLE_NOCOLOR='1', ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'), ANSIBLE_INVENTORY_UNPARSED_FAILED='1')
    env.pop('ANSIBLE_CONFIG', None)
    for name in [n for n in env if n.startswith('K8S_AUTH_')]:
        env.pop(name)
    env.update(env_extra or {})
    proc = subprocess.run([str(Path(sys.executable).with_name('ansible-inventory')), '-i', str(path), '--list', *args],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_issue11_item4_inventory_is_cacheable_per_source_and_flushable(double, tmp_path):
    """Issue 11 item 4: the inventory plugin is Cacheable; the cache key is per source (and per connection)."""
    everything = _cached_source(tmp_path, double)
    inv = _list(tmp_path, everything)
    assert 'k8s_cordoned' not in inv
    entries = sorted(p.name for p in (tmp_path / 'inv-cache').iterdir())
    assert len(entries) == 1, entries
    cached = json.loads((tmp_path / 'inv-cache' / entries[0]).read_text())
    if isinstance(cached, dict) and '__payload__' in cached:   # ansible-core >= 2.19 jsonfile envelope
        cached = json.loads(cached['__payload__'])
    assert sorted(n['metadata']['name'] for n in cached) == ['lab-node-1', 'lab-node-2', 'lab-node-3']
    assert double.token not in (tmp_path / 'inv-cache' / entries[0]).read_text()

    node2 = double.store.get('nodes', None, 'lab-node-2')
    node2['spec']['unschedulable'] = True
    node2['metadata'].setdefault('labels', {})['pool'] = 'blue'
    double.store.update('nodes', None, 'lab-node-2', node2)
    # Served from the cache: the cordon made after the first read is not seen.
    assert 'k8s_cordoned' not in _list(tmp_path, everything)
    # Another source (another selector) has its own entry, read from the API.
    blue = _cached_source(tmp_path, double, 'blue', 'label_selector: pool=blue\n')
    assert sorted(plain(_list(tmp_path, blue)['_meta']['hostvars'])) == ['lab-node-2']
    assert len(list((tmp_path / 'inv-cache').iterdir())) == 2
    # --flush-cache reads the API again and refreshes the entry.
    assert _list(tmp_path, everything, '--flush-cache')['k8s_cordoned']['hosts'] == ['lab-node-2']
    assert _list(tmp_path, everything)['k8s_cordoned']['hosts'] == ['lab-node-2']


def test_issue11_item4_inventory_takes_kubernetes_core_k8s_auth_variables(double, tmp_path):
    """Issue 11 item 4: an option left unset falls back to its K8S_AUTH_* variable, as in kubernetes.core."""
    path = tmp_path / 'env.k8s_nodes.yml'
    path.write_text('plugin: netmedic.k8s.k8s_nodes\n')
    inv = _list(tmp_path, path, env_extra={'K8S_AUTH_KUBECONFIG': str(double.kubeconfig_path)})
    assert sorted(plain(inv['_meta']['hostvars'])) == ['lab-node-1', 'lab-node-2', 'lab-node-3']
    # A wrong token from K8S_AUTH_API_KEY replaces the kubeconfig's: the API refuses and the inventory fails.
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'), ANSIBLE_INVENTORY_ENABLED='netmedic.k8s.k8s_nodes',
               ANSIBLE_NOCOLOR='1', ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'), ANSIBLE_INVENTORY_UNPARSED_FAILED='1',
               K8S_AUTH_KUBECONFIG=str(double.kubeconfig_path), K8S_AUTH_API_KEY='env-wrong-token')
    env.pop('ANSIBLE_CONFIG', None)
    proc = subprocess.run([str(Path(sys.executable).with_name('ansible-inventory')), '-i', str(path), '--list'],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert '401' in proc.stderr and 'cannot list Nodes' in proc.stderr, proc.stderr
    assert 'env-wrong-token' not in proc.stderr
