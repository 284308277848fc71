"""Issue 9, open question of finding 4: W-1 (node-rotation), W-2 (flannel) and W-7 (ipam-gc) cordon and drain nodes
under different Lease families, so two of them could take nodes out at the same time and the health gate's
max_unhealthy budget would be spent twice. Every workflow that cordons or drains nodes now also holds the Lease
kube-system/netmedic-node-disruption (role change_guard, change_guard_node_disruption), API double.

Reuses the W-1 runner (tests/lab/node_rotation_run.py: role node_rotation with a provider stand-in) and the W-7 fleet
(tests/lab/fleet.py: three local "nodes" with leaked host-local allocations). Everything asserted is read back from the double's store
(Nodes, Leases) and the directories. Both cases here rotate a node (a new boot ID); the refusals while another workflow
holds node-disruption went to tests/cluster/test_node_disruption_lock.py (issue 15).
"""

from __future__ import annotations

import subprocess

from tests.lab import fleet
from tests.lab import node_rotation_run as w1

DOUBLE_ONLY = ("kubelet: the rotated machine comes back as a new Node bootID patched through the API; on the real server the simulated node's status"
               ' heartbeat writes its own bootID back within 60 s (a kubelet that never reboots)')

NS = 'kube-system'
DISRUPTION = 'netmedic-node-disruption'
# W-1's hook waits for the test's go; the W-7 run in between takes minutes on a loaded machine (W-1's own 120 s is short).
WAIT_FLAG = w1.WAIT_FLAG.replace('timeout: 120', 'timeout: 1200')


def _cordoned(double):
    return {n: bool(double.store.get('nodes', None, n)['spec'].get('unschedulable')) for n in fleet.NODES}


def _holder(double, name):
    lease = double.store.find('leases', NS, name)
    return None if lease is None else (lease.get('spec') or {}).get('holderIdentity')


def test_issue9_w1_takes_and_releases_node_disruption_with_its_own_holder(double, tmp_path):
    """W-1 holds node-disruption with the same holder as its node-rotation Lease while it rotates, and releases both."""
    rc, output = w1.run(double, tmp_path, 'nd', hook=w1.BOOT + w1.RECORD_LEASE.replace('netmedic-node-rotation', DISRUPTION),
                        node_rotation_nodes=['lab-node-1'], node_rotation_holder='ci-nd')
    assert rc == 0, output
    seen = [line for line in (tmp_path / 'leases.jsonl').read_text().splitlines() if line.strip()]
    assert seen and all('"holderIdentity": "ci-nd"' in line for line in seen), seen   # held during the hook
    assert _holder(double, DISRUPTION) is None and _holder(double, 'netmedic-node-rotation') is None


def test_issue9_w1_and_w7_at_once_only_one_drains(double, tmp_path):
    """Two concurrent jobs of different families: W-1 is inside its provider hook (lab-node-1 cordoned and drained);
    W-7 started now is refused on node-disruption with nothing cordoned or collected; W-1 then finishes and releases."""
    bindir = fleet.make_fleet(tmp_path)
    files = {n: fleet.files(tmp_path, n) for n in fleet.NODES}
    flag = tmp_path / 'go'
    tmp = tmp_path / 'tmp-job1'
    tmp.mkdir()
    job1 = subprocess.Popen(w1.command(double, tmp_path, 'job1', w1.BOOT + WAIT_FLAG, node_rotation_nodes=['lab-node-1']),
                            cwd=str(tmp_path), env=w1.job_env(double, tmp_path, TMPDIR=str(tmp)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        double.wait_for(lambda store: store.get('nodes', None, 'lab-node-1')['status']['nodeInfo'].get('bootID')
                        == 'rotated-lab-node-1', timeout=240)                 # job 1 is inside its provider hook
        holder = _holder(double, DISRUPTION)
        assert holder is not None and holder == _holder(double, 'netmedic-node-rotation')
        rc, _results, output = fleet.run_playbook(double, tmp_path, bindir)
        assert rc != 0 and 'node-disruption' in output, output
        cordoned = _cordoned(double)
        assert [n for n in fleet.NODES if cordoned[n]] == ['lab-node-1']        # only W-1's node is out
        assert {n: fleet.files(tmp_path, n) for n in fleet.NODES} == files     # W-7 collected nothing
        assert _holder(double, 'netmedic-ipam-gc') is None
    finally:
        flag.write_text('go')
        out, _err = job1.communicate(timeout=600)
    assert job1.returncode == 0, out
    assert not any(_cordoned(double).values())
    assert _holder(double, DISRUPTION) is None and _holder(double, 'netmedic-node-rotation') is None
