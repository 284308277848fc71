"""Issue 14 item 4 (many clusters): the k8s_nodes inventory takes a list of clusters, groups the nodes per cluster and
makes each cluster one pseudo-host of the group netmedic_clusters carrying that cluster's connection; a workflow's
cluster play then runs once per cluster (serial 1, so change_guard's run_once steps are once per cluster) with that
cluster's own kubeconfig and its own Lease. Three API doubles, each with its own admin token and its own nodes."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.lab.multicluster import DS, LEASE, NS, RESTART, SPLIT, ansible_inventory, ds_pod_uids, fleet_inventory, lease_writes, plain, pod_deletes
from tests.lab.playbook_run import ANSIBLE_PLAYBOOK, run_playbook

DOUBLE_ONLY = ('multicluster: the k8s_nodes inventory and a workflow over three independent clusters (three doubles, each with its own nodes, token '
               'and request record)')

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'daemonset_restart.yml'


@pytest.fixture
def fleet(make_double):
    """Three clusters: their own token, kubeconfig, audit log and nodes (the split of SPLIT)."""
    return {name: make_double(nodes=nodes, audit=True) for name, nodes in SPLIT.items()}


def test_issue14_item4_inventory_groups_nodes_per_cluster_with_their_connection(fleet, tmp_path):
    """Item 4: every cluster read with its own credentials; nodes grouped per cluster; one pseudo-host per cluster."""
    proc = ansible_inventory(tmp_path, fleet_inventory(tmp_path, fleet))
    assert proc.returncode == 0, proc.stderr
    inv = json.loads(proc.stdout)
    hostvars = plain(inv['_meta']['hostvars'])
    for name, nodes in SPLIT.items():
        assert sorted(inv['cluster_%s' % name]['hosts']) == [n for n, _ip in nodes]
        for node, ip in nodes:
            assert hostvars[node]['ansible_host'] == ip
            assert hostvars[node]['netmedic_cluster'] == name
            assert hostvars[node]['netmedic_kubeconfig'] == str(fleet[name].kubeconfig_path)
        pseudo = hostvars['netmedic-cluster-%s' % name]
        assert pseudo['netmedic_kubeconfig'] == str(fleet[name].kubeconfig_path)
        assert 'ansible_connection' not in pseudo and pseudo['ansible_become'] is False
        assert pseudo['ansible_host'].endswith('.invalid')
        # Each double answered the Node list of its own cluster, authenticated as its own admin.
        listed = [e for e in fleet[name].audit if e['resource'] == 'nodes' and e['verb'] == 'list']
        assert listed and all(e['allowed'] and e['user'] == 'admin' for e in listed)
        assert fleet[name].token not in proc.stdout
    assert sorted(inv['netmedic_clusters']['hosts']) == ['netmedic-cluster-ap', 'netmedic-cluster-eu', 'netmedic-cluster-us']
    assert sorted(inv['k8s_nodes']['hosts']) == sorted(n for nodes in SPLIT.values() for n, _ip in nodes)
    assert not set(inv['k8s_nodes']['hosts']) & set(inv['netmedic_clusters']['hosts'])


def test_issue14_item4_one_unreadable_cluster_fails_the_whole_inventory(fleet, tmp_path):
    """Item 4: never a partial fleet - a cluster that cannot be read fails the inventory, naming the cluster."""
    fleet['us'].stop()
    proc = ansible_inventory(tmp_path, fleet_inventory(tmp_path, fleet))
    assert proc.returncode != 0
    assert 'cannot list Nodes of cluster us' in proc.stderr, proc.stderr


@pytest.mark.double_only('no-cluster: the inventory refuses the source before any request')
@pytest.mark.parametrize('body, message', [
    ('clusters:\n  - name: a\n', 'needs its own kubeconfig'),
    ('clusters:\n  - name: a\n    kubeconfig: /x\n  - name: a\n    kubeconfig: /y\n', 'both make the group cluster_a'),
    ('clusters:\n  - name: "a b"\n    kubeconfig: /x\n', 'clusters[0].name must be'),
    ('clusters:\n  - name: a\n    kubeconfig: /x\n    kubconfig: /y\n', 'unknown options kubconfig'),
])
def test_issue14_item4_bad_cluster_lists_fail_before_any_request(tmp_path, body, message):
    path = tmp_path / 'bad.k8s_nodes.yml'
    path.write_text('plugin: netmedic.k8s.k8s_nodes\n' + body)
    proc = ansible_inventory(tmp_path, path)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_issue14_item4_same_node_name_in_two_clusters_is_refused(make_double, tmp_path):
    doubles = {'one': make_double(nodes=[('node-1', '10.74.0.1')]), 'two': make_double(nodes=[('node-1', '10.75.0.1')])}
    proc = ansible_inventory(tmp_path, fleet_inventory(tmp_path, doubles))
    assert proc.returncode != 0
    assert 'Node node-1 is in cluster one and in cluster two' in proc.stderr, proc.stderr


def run_fleet(fleet, tmp_path, *extra, check=False):
    return run_playbook(next(iter(fleet.values())), tmp_path, PLAYBOOK, '-e', 'netmedic_ds_name=%s' % DS,
                        '-e', 'netmedic_change_id_required=true', *extra, check=check, by_host=True,
                        inventory=fleet_inventory(tmp_path, fleet), timeout=900,
                        env={'K8S_AUTH_KUBECONFIG': None, 'ANSIBLE_INVENTORY_ENABLED': 'netmedic.k8s.k8s_nodes'})


def test_issue14_item4_one_run_restarts_each_cluster_once_with_its_own_credentials_and_lock(fleet, tmp_path):
    """Item 4: daemonset_restart.yml with a 3-cluster inventory: each cluster's DaemonSet restarted exactly once, each
    under its own Lease (acquired and released in that cluster only), nothing from K8S_AUTH_* (unset)."""
    before = {name: ds_pod_uids(double) for name, double in fleet.items()}
    assert {name: sorted(uids) for name, uids in before.items()} == {n: [x for x, _ip in nodes] for n, nodes in SPLIT.items()}
    rc, results, output = run_fleet(fleet, tmp_path)
    assert rc == 0, output
    for name, double in fleet.items():
        host = 'netmedic-cluster-%s' % name
        after = ds_pod_uids(double)
        assert sorted(after) == sorted(before[name])
        assert all(after[node] != before[name][node] for node in after), (name, before[name], after)   # every pod new
        assert sorted(r['node'] for r in results[RESTART][host]['restarted']) == sorted(before[name])
        # The Lease of this cluster: created once and deleted once, by this cluster's admin; none left behind.
        writes = lease_writes(double)
        assert [v for v, _u in writes if v == 'create'] == ['create'] and [v for v, _u in writes if v == 'delete'] == ['delete'], writes
        assert double.store.find('leases', NS, LEASE) is None
        restarts = pod_deletes(double)
        assert len(restarts) == len(before[name]), restarts                     # each pod deleted once, no double-apply
    assert set(results[RESTART]) == {'netmedic-cluster-%s' % n for n in SPLIT}  # no localhost, no node
    assert 'localhost' not in json.dumps(sorted(results[RESTART]))


def test_issue14_item4_extra_var_kubeconfig_cannot_redirect_every_cluster(fleet, tmp_path):
    """Item 4: -e netmedic_kubeconfig outranks the inventory; it would send every cluster's steps to one cluster."""
    rc, _results, output = run_fleet(fleet, tmp_path, '-e', 'netmedic_kubeconfig=%s' % fleet['eu'].kubeconfig_path)
    assert rc != 0
    assert 'override' in output or 'outranks' in output, output
    for double in fleet.values():
        assert lease_writes(double) == []
        assert pod_deletes(double) == []


NODE_PLAYBOOKS = ('arp_flush', 'cilium_lb_maps', 'conntrack_tuning', 'diagnose', 'ipam_gc_fleet', 'ipvs_scheduler_change',
                  'remediate_node', 'udp_timeout')


@pytest.mark.double_only('no-cluster: ansible-playbook --list-hosts on a static inventory')
@pytest.mark.parametrize('name', NODE_PLAYBOOKS)
def test_issue14_item4_node_plays_leave_out_the_cluster_pseudo_hosts(name, tmp_path):
    """Item 4: with a clusters inventory the default netmedic_targets ('all') took the per-cluster pseudo-hosts too, so
    diagnose.yml / remediate_node.yml ran node modules against netmedic-cluster-* (unreachable: the run failed). The
    node plays' default is now every host but the group netmedic_clusters; the hosts Ansible resolves are read back
    with --list-hosts (nothing runs)."""
    inv = tmp_path / 'inventory.ini'
    inv.write_text('[netmedic_clusters]\nnetmedic-cluster-a ansible_host=a.invalid\nnetmedic-cluster-b ansible_host=b.invalid\n'
                   '[k8s_nodes]\nnode-1\nnode-2\nnode-3\n')
    proc = subprocess.run([ANSIBLE_PLAYBOOK, '-i', str(inv), '--list-hosts', str(ROOT / 'playbooks' / ('%s.yml' % name))],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = set(re.findall(r'^\s+(\S+)$', proc.stdout, re.M))
    assert {'node-1', 'node-2', 'node-3'} <= listed, proc.stdout
    assert not any(host.startswith('netmedic-cluster-') for host in listed), proc.stdout
