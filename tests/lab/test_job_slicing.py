"""Issue 14 item 5 (beyond one controller): a playbook run as N AWX-style job slices, concurrently.

AWX job slicing starts one ansible-playbook per slice, each on its share of the inventory's hosts (docs/awx_scale.md);
here each slice is an ``ansible-playbook --limit <its hosts>`` started at the same time as the others, with its own
AWX job id. With the k8s_nodes inventory's ``clusters`` list every cluster is one inventory host
(netmedic-cluster-<name>), so it lands in exactly one slice: that slice runs the cluster's steps, the other slices
find no cluster host and skip them. Asserted from the doubles' own audit logs and stores: each cluster's DaemonSet
restarted exactly once (one delete per pod, every pod new), one Lease taken and released per cluster (by one job),
every slice exit 0 (no spurious failure)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.lab.multicluster import DS, LEASE, NS, RESTART, SPLIT, ds_pod_uids, fleet_inventory, inventory_hosts, lease_writes, pod_deletes
from tests.lab.playbook_run import parse_results, playbook_command, playbook_env

DOUBLE_ONLY = ('multicluster: four concurrent AWX-style slices over three independent clusters (three doubles, each with its own nodes, token and '
               'request record)')

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'daemonset_restart.yml'


def awx_slices(hosts, count):
    """The hosts dealt round-robin into ``count`` slices, as AWX shares an inventory among slice jobs."""
    return [hosts[index::count] for index in range(count)]


def run_slices(fleet, tmp_path, slices, timeout=1200):
    """Start one ansible-playbook per slice at once (--limit = the slice's hosts, awx_job_id = 100 + slice);
    return [(rc, results by task and host, output)] in slice order."""
    inventory = fleet_inventory(tmp_path, fleet)
    procs = []
    for number, hosts in enumerate(slices, start=1):
        work = tmp_path / ('slice%d' % number)
        (work / 'tmp').mkdir(parents=True)
        cmd = playbook_command(PLAYBOOK, '--limit', ','.join(hosts), inventory=inventory,
                               extra_vars={'netmedic_ds_name': DS, 'awx_job_id': 100 + number})
        overrides = {'K8S_AUTH_KUBECONFIG': None, 'TMPDIR': work / 'tmp', 'ANSIBLE_INVENTORY_ENABLED': 'netmedic.k8s.k8s_nodes'}
        env = playbook_env(next(iter(fleet.values())), work, overrides)
        procs.append(subprocess.Popen(cmd, env=env, cwd=str(work), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    runs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        runs.append((proc.returncode, parse_results(out, by_host=True) if out.strip() else {}, out + err))
    return runs


@pytest.fixture
def fleet(make_double):
    return {name: make_double(nodes=nodes, audit=True) for name, nodes in SPLIT.items()}


@pytest.mark.parametrize('count', [4])
def test_issue14_item5_sliced_run_applies_each_cluster_once_and_no_slice_fails(fleet, tmp_path, count):
    """Item 5: daemonset_restart.yml as 4 concurrent slices over 3 clusters (8 hosts): each cluster's steps run in
    exactly one slice, under that cluster's Lease; the slice without a cluster host skips them; all exit 0."""
    hosts = inventory_hosts(tmp_path, fleet_inventory(tmp_path, fleet))
    clusters = ['netmedic-cluster-%s' % name for name in SPLIT]
    slices = awx_slices(hosts, count)
    assert sum(1 for s in slices if not set(s) & set(clusters)) >= 1       # a slice with nodes only
    before = {name: ds_pod_uids(double) for name, double in fleet.items()}

    runs = run_slices(fleet, tmp_path, slices)

    for number, (rc, _results, output) in enumerate(runs, start=1):
        assert rc == 0, 'slice %d failed:\n%s' % (number, output)
    # Which slice ran which cluster's restart: each cluster exactly once, in the slice that holds its host.
    ran = {}
    for number, (_rc, results, _output) in enumerate(runs, start=1):
        for host in results.get(RESTART, {}):
            ran.setdefault(host, []).append(number)
    assert ran == {host: [next(n for n, s in enumerate(slices, start=1) if host in s)] for host in clusters}, ran
    for name, double in fleet.items():
        after = ds_pod_uids(double)
        assert sorted(after) == sorted(before[name])
        assert all(after[node] != before[name][node] for node in after), (name, before[name], after)
        assert len(pod_deletes(double)) == len(before[name])                  # no double apply
        writes = lease_writes(double)
        assert [v for v, _u in writes if v == 'create'] == ['create'], writes   # one job took this cluster's Lease
        assert [v for v, _u in writes if v == 'delete'] == ['delete'], writes   # and released it
        assert double.store.find('leases', NS, LEASE) is None
