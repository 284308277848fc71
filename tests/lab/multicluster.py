"""Helpers of the many-clusters tests (issue 14 items 4 and 5): a k8s_nodes inventory listing API doubles as clusters,
the environment it is read in, and what each double's audit log says was written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NS = 'kube-system'
DS = 'kube-proxy-worker'
LEASE = 'netmedic-kube-proxy'        # the Lease family of a kube-proxy DaemonSet (playbooks/daemonset_restart.yml)
RESTART = 'Restart node by node, verifying each new pod (C-7)'
# Three clusters and their nodes (name, InternalIP): each double gets only its own.
SPLIT = {'eu': [('eu-node-1', '10.71.0.11'), ('eu-node-2', '10.71.0.12')],
         'us': [('us-node-1', '10.72.0.11')],
         'ap': [('ap-node-1', '10.73.0.11'), ('ap-node-2', '10.73.0.12')]}


def inventory_env(tmp_path):
    """ansible-inventory's environment: this checkout as netmedic.k8s and no K8S_AUTH_* at all."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_INVENTORY_ENABLED='netmedic.k8s.k8s_nodes',
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'), ANSIBLE_INVENTORY_UNPARSED_FAILED='1')
    env.pop('ANSIBLE_CONFIG', None)
    for name in [n for n in env if n.startswith('K8S_AUTH_')]:
        env.pop(name)      # nothing may come from the environment: each cluster has only its own kubeconfig
    return env


def fleet_inventory(tmp_path, doubles, extra=''):
    """A k8s_nodes source listing every double of ``doubles`` ({name: double}) as one cluster, by its own kubeconfig."""
    lines = ['plugin: netmedic.k8s.k8s_nodes', 'clusters:']
    for name, double in doubles.items():
        lines += ['  - name: %s' % name, '    kubeconfig: %s' % double.kubeconfig_path]
    path = tmp_path / 'fleet.k8s_nodes.yml'
    path.write_text('\n'.join(lines) + '\n' + extra)
    return path


def ansible_inventory(tmp_path, path):
    return subprocess.run([str(Path(sys.executable).with_name('ansible-inventory')), '-i', str(path), '--list'],
                          env=inventory_env(tmp_path), capture_output=True, text=True, timeout=300, check=False)


def plain(value):
    """Values from the API are marked unsafe (never templated): unwrap ansible-inventory's JSON form."""
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def inventory_hosts(tmp_path, path):
    proc = ansible_inventory(tmp_path, path)
    assert proc.returncode == 0, proc.stderr
    return sorted(json.loads(proc.stdout)['_meta']['hostvars'])


def ds_pod_uids(double):
    """{node: uid} of the DaemonSet's pods, read from the double's store."""
    pods, _rv = double.store.list('pods', NS, label_selector='k8s-app=%s' % DS)
    return {p['spec']['nodeName']: p['metadata']['uid'] for p in pods}


def lease_writes(double):
    """The Lease writes (not dry runs) the double's audit log holds: [(verb, user)]."""
    return [(e['verb'], e['user']) for e in double.audit
            if e['resource'] == 'leases' and e['verb'] in ('create', 'update', 'patch', 'delete') and not e['dryRun']]


def pod_deletes(double):
    return [e for e in double.audit if e['resource'] == 'pods' and e['verb'] == 'delete' and not e['dryRun']]
