"""playbooks/cilium_lb_maps.yml (catalog N-10, issue 9 finding 11) on the double and on the real kube-apiserver
(issue 15): clear the full maps, restart that node's agent.

Ported from tests/lab/test_cilium_lb_maps_playbook.py (issue 15 item 4; all six cases, the RBAC one with the
``identity`` and ``Audit`` fixtures). The node half is real: two inventory hosts ``lab-node-1`` and ``lab-node-2``
(local connection, this machine as root) each get their own pinned eBPF hash maps, named like Cilium's, on a private
BPF filesystem mounted under the test's temporary directory; the real ``netmedic.k8s.cilium_lb_maps`` module runs the
real ``bpftool`` on them and every assertion dumps the maps with bpftool independently. The cluster half is the API:
the agent DaemonSet is a copy of the seed's ``anetd`` (label k8s-app=cilium) in the test's own namespace
(``netmedic_cilium_namespace``), found by its label; its pod on each node is deleted and must come back Ready (on the
real server a graceful deletion finished by lab/k8s/nodesim.py, a new pod from the real DaemonSet controller; the
restart is verified by readiness, ``patterns_preset: none``, as the playbook always does). The RBAC case runs on the
seed's own ``kube-system/anetd``, where rbac/cilium_lb_maps.yml grants, and waits for it settled afterwards. The Lease
is the playbook's ``kube-system/netmedic-cilium`` (``spine_leases``: none before or after). What is not real: no Cilium
agent refills the maps after its restart (they stay empty), and nothing else under /sys/fs/bpf is touched.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cluster.conftest import Audit, copy_accounts, copy_seed, daemonset_settled, hold_lease, pod_ready
from tests.lab.playbook_run import module_python, run_playbook

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'cilium_lb_maps.yml'
NS = 'kube-system'
LEASE = 'netmedic-cilium'
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
def agent(spine_leases, scratch):
    """``scratch`` holding a copy of the seed's agent DaemonSet ``anetd`` (and the ServiceAccounts its pods run as),
    one Ready pod per node: ``(cluster, namespace)``."""
    cluster = spine_leases
    copy_accounts(cluster, scratch, kinds=('DaemonSet',))
    copy_seed(cluster, scratch, kinds=('DaemonSet',), names=['anetd'])
    daemonset_settled(cluster, scratch, 'anetd')
    return cluster, scratch


@pytest.fixture
def run(tmp_path, nodes):
    def _run(target, namespace, *extra, check=False):
        return run_playbook(target, tmp_path, PLAYBOOK, '-i', str(nodes['inventory']), '-e', 'netmedic_targets=cilium_nodes',
                            '-e', 'netmedic_cilium_namespace=%s' % namespace, *extra, check=check)
    return _run


def agents(cluster, namespace):
    """``{node: (uid, deletionTimestamp)}`` of the agent pods (label k8s-app=cilium): one pod per node, a Terminating
    one (a real pod DELETE is graceful) shows as such."""
    pods = cluster.items('Pod', namespace, label_selector='k8s-app=cilium')
    found = {p['spec']['nodeName']: (p['metadata']['uid'], p['metadata'].get('deletionTimestamp')) for p in pods}
    assert len(found) == len(pods), [(p['metadata']['name'], p['spec']['nodeName']) for p in pods]
    return found


def counts(nodes):
    return {node: (count(m[SERVICES]), count(m[BACKENDS])) for node, m in nodes['maps'].items()}


def test_issue9_f11_check_then_clear_and_restart_node_by_node_then_idempotent(agent, run, nodes):
    cluster, ns = agent
    uids = agents(cluster, ns)
    assert sorted(uids) == ['lab-node-1', 'lab-node-2', 'lab-node-3'] and not any(ts for _u, ts in uids.values())
    rc, tasks, output = run(cluster, ns, check=True)
    assert rc == 0, output
    assert counts(nodes) == dict.fromkeys(NODES, (60, 10))                  # check mode deleted nothing
    assert agents(cluster, ns) == uids and not nodes['backups'].exists()
    assert 'would be restarted' in output

    rc, tasks, output = run(cluster, ns)
    assert rc == 0, output
    assert counts(nodes) == dict.fromkeys(NODES, (0, 10))                   # only the full map, on both nodes
    after = agents(cluster, ns)
    assert after['lab-node-1'][0] != uids['lab-node-1'][0] and after['lab-node-2'][0] != uids['lab-node-2'][0]
    assert after['lab-node-3'] == uids['lab-node-3']                      # not in the run
    for node in NODES:                                                    # each node saved its full map first
        (saved,) = (nodes['backups'] / node).iterdir()
        assert saved.name.startswith(SERVICES + '.') and len(json.loads(saved.read_text())['entries']) == 60
    pods = cluster.items('Pod', ns, label_selector='k8s-app=cilium')
    assert len(pods) == 3 and all(pod_ready(p) for p in pods)
    assert cluster.find('Lease', NS, LEASE) is None                       # released
    assert 'node 2/2 lab-node-2' in output

    rc, tasks, output = run(cluster, ns)
    assert rc == 0, output
    assert not any(t.get('changed') for t in tasks.values()), [n for n, t in tasks.items() if t.get('changed')]
    assert agents(cluster, ns) == after and counts(nodes) == dict.fromkeys(NODES, (0, 10))


def test_issue9_f11_resume_restarts_the_agent_a_dead_run_left_after_clearing(agent, run, nodes):
    """A run that died after clearing lab-node-1's maps and before restarting its agent: the re-run restarts it."""
    cluster, ns = agent
    uids = agents(cluster, ns)
    bpftool('map', 'delete', 'pinned', str(nodes['maps']['lab-node-1'][SERVICES]), 'key', 'hex', '01', '00', '00', '00')
    for node in NODES:                                                    # nothing left to clear anywhere
        for i in range(2, 61):
            bpftool('map', 'delete', 'pinned', str(nodes['maps'][node][SERVICES]), 'key', 'hex',
                    *('%02x' % b for b in i.to_bytes(4, 'little')))
    bpftool('map', 'delete', 'pinned', str(nodes['maps']['lab-node-2'][SERVICES]), 'key', 'hex', '01', '00', '00', '00')
    (nodes['backups'] / 'lab-node-1').mkdir(parents=True)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
    (nodes['backups'] / 'lab-node-1' / ('%s.%s.json' % (SERVICES, later.strftime('%Y%m%dT%H%M%SZ')))).write_text('{}\n')
    rc, _tasks, output = run(cluster, ns, '--limit', 'lab-node-1,localhost')
    assert rc == 0, output
    after = agents(cluster, ns)
    assert after['lab-node-1'][0] != uids['lab-node-1'][0] and after['lab-node-1'][1] is None   # restarted after the clear
    assert after['lab-node-2'] == uids['lab-node-2']                      # not in the limit
    assert cluster.find('Lease', NS, LEASE) is None


@pytest.mark.parametrize('extra, words', [
    (['-e', 'netmedic_cilium_threshold=most'], 'netmedic_cilium_threshold'),
    (['-e', 'netmedic_cilium_daemonset=cilium-nope'], 'DaemonSet {ns}/cilium-nope not found'),
])
def test_bad_input_refused_before_any_change(agent, run, nodes, extra, words):
    cluster, ns = agent
    uids = agents(cluster, ns)
    rc, _tasks, output = run(cluster, ns, *extra)
    assert rc != 0 and words.format(ns=ns) in output, output
    assert counts(nodes) == dict.fromkeys(NODES, (60, 10)) and agents(cluster, ns) == uids
    assert not nodes['backups'].exists()
    assert cluster.find('Lease', NS, LEASE) is None


def test_issue9_f4_lock_held_by_another_run_stops_before_any_node(agent, run, nodes):
    cluster, ns = agent
    held = hold_lease(cluster, NS, LEASE, 'awx-job-7', age=0)
    uids = agents(cluster, ns)
    rc, _tasks, output = run(cluster, ns)
    assert rc != 0 and "held by 'awx-job-7'" in output, output
    assert counts(nodes) == dict.fromkeys(NODES, (60, 10)) and agents(cluster, ns) == uids
    lease = cluster.get('Lease', NS, LEASE)
    assert lease['spec']['holderIdentity'] == 'awx-job-7'
    assert lease['metadata']['resourceVersion'] == held['metadata']['resourceVersion']      # not even renewed


def test_issue10_h13_runs_with_exactly_its_rbac_grants(spine_leases, identity, run, nodes):
    """rbac/cilium_lb_maps.yml is enough: the lock, the health gate and the agent restart, all as its ServiceAccount,
    authorized by RBAC (the real authorizer on the real server); nothing denied, every write that account's (the
    double's request record, or the real server's audit log). It grants in kube-system: the seed's own anetd."""
    cluster = spine_leases
    daemonset_settled(cluster, NS, 'anetd')
    uids = agents(cluster, NS)
    sa = identity(cluster, ROOT / 'rbac' / 'cilium_lb_maps.yml')
    audit = Audit(cluster)
    rc, _tasks, output = run(sa, NS, check=True)
    assert rc == 0, output
    assert agents(cluster, NS) == uids and counts(nodes) == dict.fromkeys(NODES, (60, 10))
    rc, _tasks, output = run(sa, NS)
    entries = audit.entries()
    assert rc == 0, (output, [e for e in entries if not e['allowed']])
    assert counts(nodes) == dict.fromkeys(NODES, (0, 10))
    after = agents(cluster, NS)
    assert all(after[n][0] != uids[n][0] for n in NODES) and after['lab-node-3'] == uids['lab-node-3']
    assert cluster.find('Lease', NS, LEASE) is None
    assert entries and not [e for e in entries if not e['allowed']]
    writes = {e['user'] for e in entries if e['verb'] not in ('get', 'list', 'watch')}
    assert writes == {sa.user}
    assert sa.user == 'system:serviceaccount:netmedic:netmedic-cilium-lb-maps'
    daemonset_settled(cluster, NS, 'anetd')                                # the seed's agent as it was: Ready everywhere
