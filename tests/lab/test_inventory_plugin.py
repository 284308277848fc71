"""Inventory plugin netmedic.k8s.k8s_nodes against the API double (real kubernetes client over HTTP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def _plain(value):
    """Values from the API are marked unsafe (never templated): unwrap ansible-inventory's JSON form."""
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


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
    hostvars = _plain(inv['_meta']['hostvars'])
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
