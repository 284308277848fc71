"""playbooks/cilium_lb_maps.yml (catalog N-10, issue 9 finding 11): clear the full maps, restart that node's agent.

The node half is real: two inventory hosts ``lab-node-1`` and ``lab-node-2`` (local connection, this machine as
root) each get their own pinned eBPF hash maps, named like Cilium's, on a private BPF filesystem mounted under the
test's temporary directory; the real ``netmedic.k8s.cilium_lb_maps`` module runs the real ``bpftool`` on them and every
assertion dumps the maps with bpftool independently. The cluster half is the API double: the agent DaemonSet is the
seed's ``anetd`` (label k8s-app=cilium), whose pod on each node is deleted and must come back Ready. What is not real:
no Cilium agent refills the maps after its restart (they stay empty), and nothing else under /sys/fs/bpf is touched.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.lab.playbook_run import module_python, run_playbook

DOUBLE_ONLY = ('portable: the cluster half is the Lease, the health gate and an agent restart verified by Ready only (patterns_preset none), which '
               "the real DaemonSet controller and the simulated nodes do; the node half is this machine's bpffs")

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'cilium_lb_maps.yml'
NS = 'kube-system'
SERVICES, BACKENDS = 'cilium_lb4_services_v2', 'cilium_lb4_backends_v2'
NODES = ('lab-node-1', 'lab-node-2')


def bpftool(*args, data=None):
    proc = subprocess.run(['bpftool', *args], input=data, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def count(path):
    return len(json.loads(bpftool('-j', 'map', 'dump', 'pinned', str(path))))


def fill(path, entries, key=4):
    lines = ''.join('map update pinned %s key hex %s value hex %s\n'
                    % (path, ' '.join('%02x' % b for b in i.to_bytes(key, 'little')), ' '.join(['07'] * 12))
                    for i in range(1, entries + 1))
    bpftool('batch', 'file', '-', data=lines)


@pytest.fixture
def nodes(tmp_path):
    """Per node: its maps (services 60/64 = 93.75 % full, backends 10/64) on a private bpffs, and an inventory."""
    if os.geteuid() != 0 or shutil.which('bpftool') is None:
        pytest.fail('needs root and bpftool (Debian package bpftool, bindep.txt profile test): make setup')
    root = tmp_path / 'bpffs'
    root.mkdir()
    subprocess.run(['mount', '-t', 'bpf', 'bpf', str(root)], check=True)
    try:
        maps, hosts = {}, {}
        for node in NODES:
            (root / node).mkdir()
            maps[node] = {}
            for name, entries in ((SERVICES, 60), (BACKENDS, 10)):
                path = root / node / name
                bpftool('map', 'create', str(path), 'type', 'hash', 'key', '4', 'value', '12', 'entries', '64',
                        'name', name[:15])
                fill(path, entries)
                maps[node][name] = path
            hosts[node] = {'ansible_connection': 'local', 'ansible_python_interpreter': module_python()[0],
                           'netmedic_cilium_maps': [str(maps[node][SERVICES]), str(maps[node][BACKENDS])],
                           'netmedic_cilium_backup_dir': str(tmp_path / 'backups' / node)}
        inventory = tmp_path / 'inventory.json'
        inventory.write_text(json.dumps({'all': {'children': {'cilium_nodes': {'hosts': hosts}}}}))
        yield {'maps': maps, 'inventory': inventory, 'backups': tmp_path / 'backups'}
    finally:
        subprocess.run(['umount', str(root)], check=False)


@pytest.fixture
def run(tmp_path, nodes):
    def _run(double, *extra, check=False):
        return run_playbook(double, tmp_path, PLAYBOOK, '-i', str(nodes['inventory']), '-e', 'netmedic_targets=cilium_nodes',
                            *extra, check=check)
    return _run


def agent_uids(double):
    pods, _rv = double.store.list('pods', NS, label_selector='k8s-app=cilium')
    return {p['spec']['nodeName']: p['metadata']['uid'] for p in pods}


def counts(nodes):
    return {node: (count(m[SERVICES]), count(m[BACKENDS])) for node, m in nodes['maps'].items()}


def test_issue9_f11_check_then_clear_and_restart_node_by_node_then_idempotent(double, run, nodes):
    uids = agent_uids(double)
    rc, tasks, output = run(double, check=True)
    assert rc == 0, output
    assert counts(nodes) == dict.fromkeys(NODES, (60, 10))                  # check mode deleted nothing
    assert agent_uids(double) == uids and not nodes['backups'].exists()
    assert 'would be restarted' in output

    rc, tasks, output = run(double)
    assert rc == 0, output
    assert counts(nodes) == dict.fromkeys(NODES, (0, 10))                   # only the full map, on both nodes
    after = agent_uids(double)
    assert after['lab-node-1'] != uids['lab-node-1'] and after['lab-node-2'] != uids['lab-node-2']
    assert after['lab-node-3'] == uids['lab-node-3']                      # not in the run
    for node in NODES:                                                    # each node saved its full map first
        (saved,) = (nodes['backups'] / node).iterdir()
        assert saved.name.startswith(SERVICES + '.') and len(json.loads(saved.read_text())['entries']) == 60
    pods, _rv = double.store.list('pods', NS, label_selector='k8s-app=cilium')
    assert all(any(c['type'] == 'Ready' and c['status'] == 'True' for c in p['status']['conditions']) for p in pods)
    assert double.store.find('leases', NS, 'netmedic-cilium') is None    # released
    assert 'node 2/2 lab-node-2' in output

    rc, tasks, output = run(double)
    assert rc == 0, output
    assert not any(t.get('changed') for t in tasks.values()), [n for n, t in tasks.items() if t.get('changed')]
    assert agent_uids(double) == after and counts(nodes) == dict.fromkeys(NODES, (0, 10))


def test_issue9_f11_resume_restarts_the_agent_a_dead_run_left_after_clearing(double, run, nodes):
    """A run that died after clearing lab-node-1's maps and before restarting its agent: the re-run restarts it."""
    uids = agent_uids(double)
    bpftool('map', 'delete', 'pinned', str(nodes['maps']['lab-node-1'][SERVICES]), 'key', 'hex', '01', '00', '00', '00')
    for node in NODES:                                                    # nothing left to clear anywhere
        for i in range(2, 61):
            bpftool('map', 'delete', 'pinned', str(nodes['maps'][node][SERVICES]), 'key', 'hex',
                    *('%02x' % b for b in i.to_bytes(4, 'little')))
    bpftool('map', 'delete', 'pinned', str(nodes['maps']['lab-node-2'][SERVICES]), 'key', 'hex', '01', '00', '00', '00')
    (nodes['backups'] / 'lab-node-1').mkdir(parents=True)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
    (nodes['backups'] / 'lab-node-1' / ('%s.%s.json' % (SERVICES, later.strftime('%Y%m%dT%H%M%SZ')))).write_text('{}\n')
    rc, _tasks, output = run(double, '--limit', 'lab-node-1,localhost')
    assert rc == 0, output
    after = agent_uids(double)
    assert after['lab-node-1'] != uids['lab-node-1']                      # restarted after the interrupted clear
    assert after['lab-node-2'] == uids['lab-node-2']                      # not in the limit


@pytest.mark.parametrize('extra, words', [
    (['-e', 'netmedic_cilium_threshold=most'], 'netmedic_cilium_threshold'),
    (['-e', 'netmedic_cilium_daemonset=cilium-nope'], 'DaemonSet kube-system/cilium-nope not found'),
])
def test_bad_input_refused_before_any_change(double, run, nodes, extra, words):
    uids = agent_uids(double)
    rc, _tasks, output = run(double, *extra)
    assert rc != 0 and words in output, output
    assert counts(nodes) == dict.fromkeys(NODES, (60, 10)) and agent_uids(double) == uids
    assert not nodes['backups'].exists()


def test_issue9_f4_lock_held_by_another_run_stops_before_any_node(double, run, nodes):
    now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    double.store.create('leases', NS, {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                                       'metadata': {'name': 'netmedic-cilium', 'namespace': NS},
                                       'spec': {'holderIdentity': 'awx-job-7', 'leaseDurationSeconds': 3600,
                                                'renewTime': now, 'acquireTime': now}})
    uids = agent_uids(double)
    rc, _tasks, output = run(double)
    assert rc != 0 and "held by 'awx-job-7'" in output, output
    assert counts(nodes) == dict.fromkeys(NODES, (60, 10)) and agent_uids(double) == uids
    assert double.store.get('leases', NS, 'netmedic-cilium')['spec']['holderIdentity'] == 'awx-job-7'


@pytest.mark.double_only("audit: runs under a ServiceAccount bound to its rbac/*.yml grants and asserts from the double's request record that "
                         "nothing was denied and every write was that account's; the real one's audit log (k8sctl NETMEDIC_K8S_AUDIT_POLICY, "
                         'off by default) is read by no test yet')
def test_issue10_h13_runs_with_exactly_its_rbac_grants(make_double, as_identity, run, nodes):
    """rbac/cilium_lb_maps.yml is enough: the lock, the health gate and the agent restart, all as its ServiceAccount."""
    double = make_double(audit=True)
    sa = as_identity(double, ROOT / 'rbac' / 'cilium_lb_maps.yml')
    rc, _tasks, output = run(sa, check=True)
    assert rc == 0, output
    rc, _tasks, output = run(sa)
    assert rc == 0, output
    assert counts(nodes) == dict.fromkeys(NODES, (0, 10))
    assert not [e for e in double.audit if not e['allowed']]
    writes = {e['user'] for e in double.audit if e['verb'] not in ('get', 'list', 'watch')}
    assert writes == {'system:serviceaccount:netmedic:netmedic-cilium-lb-maps'}
