"""Issue 9, open question of finding 4: W-1 (node-rotation), W-2 (flannel) and W-7 (ipam-gc) cordon and drain nodes
under different Lease families, so two of them could take nodes out at the same time and the health gate's
max_unhealthy budget would be spent twice. Every workflow that cordons or drains nodes now also holds the Lease
kube-system/netmedic-node-disruption (role change_guard, change_guard_node_disruption), API double.

Reuses the W-1 helpers (role node_rotation with a provider stand-in) and the W-7 fleet (three local "nodes" with leaked
host-local allocations). Everything asserted is read back from the double's store (Nodes, Leases) and the directories.
"""

from __future__ import annotations

import datetime
import importlib.util
import subprocess
from pathlib import Path

import pytest

from tests.lab import test_node_rotation_spine as w1

DOUBLE_ONLY = ("kubelet: the rotated machine comes back as a new Node bootID patched through the API; on the real server the simulated node's status"
               ' heartbeat writes its own bootID back within 60 s (a kubelet that never reboots)')

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location('netmedic_w7_fleet_nd', HERE / 'test_ipam_gc_fleet.py')
fleet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet)

NS = 'kube-system'
DISRUPTION = 'netmedic-node-disruption'
# W-1's hook waits for the test's go; the W-7 run in between takes minutes on a loaded machine (W-1's own 120 s is short).
WAIT_FLAG = w1.WAIT_FLAG.replace('timeout: 120', 'timeout: 1200')


def _ago(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    return t.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def _hold_disruption(double, holder):
    double.store.create('leases', NS, {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                                       'metadata': {'name': DISRUPTION, 'namespace': NS},
                                       'spec': {'holderIdentity': holder, 'leaseDurationSeconds': 3600,
                                                'renewTime': _ago(10), 'acquireTime': _ago(10)}})


def _holder(double, name):
    lease = double.store.find('leases', NS, name)
    return None if lease is None else (lease.get('spec') or {}).get('holderIdentity')


def test_issue9_w1_takes_and_releases_node_disruption_with_its_own_holder(double, tmp_path):
    """W-1 holds node-disruption with the same holder as its node-rotation Lease while it rotates, and releases both."""
    rc, output = w1._run(double, tmp_path, 'nd', hook=w1.BOOT + w1.RECORD_LEASE.replace('netmedic-node-rotation', DISRUPTION),
                         node_rotation_nodes=['lab-node-1'], node_rotation_holder='ci-nd')
    assert rc == 0, output
    seen = [line for line in (tmp_path / 'leases.jsonl').read_text().splitlines() if line.strip()]
    assert seen and all('"holderIdentity": "ci-nd"' in line for line in seen), seen   # held during the hook
    assert _holder(double, DISRUPTION) is None and _holder(double, 'netmedic-node-rotation') is None


@pytest.mark.double_only('portable: stops before anything the double alone can do (bad input, a held Lease, a closed window); the real server '
                         'refuses the same')
def test_issue9_w1_refused_while_another_workflow_holds_node_disruption(double, tmp_path):
    """A W-2 or W-7 run holds node-disruption: W-1 stops before any node is cordoned, gives its node-rotation Lease
    back, and leaves the other run's Lease alone."""
    _hold_disruption(double, 'awx-job-300')
    boots = w1._boot_ids(double)
    rc, output = w1._run(double, tmp_path, 'refused', node_rotation_nodes=['lab-node-1'])
    assert rc != 0 and 'node-disruption' in output and "awx-job-300" in output, output
    assert w1._cordoned(double) == dict.fromkeys(w1.NODES, False)
    assert w1._boot_ids(double) == boots
    assert _holder(double, 'netmedic-node-rotation') is None                    # given back at once
    assert _holder(double, DISRUPTION) == 'awx-job-300'


@pytest.mark.double_only('portable: stops before anything the double alone can do (bad input, a held Lease, a closed window); the real server '
                         'refuses the same')
def test_issue9_w7_refused_while_another_workflow_holds_node_disruption(double, tmp_path):
    """W-7 (family ipam-gc) with node-disruption held by a W-1 job: nothing cordoned or collected, ipam-gc Lease free."""
    bindir = fleet._fleet(tmp_path)
    _hold_disruption(double, 'awx-job-301')
    before = ({n: fleet._files(tmp_path, n) for n in fleet.NODES}, fleet._cordoned(double))
    rc, _results, output = fleet.run_playbook(double, tmp_path, bindir)
    assert rc != 0 and 'node-disruption' in output, output
    assert ({n: fleet._files(tmp_path, n) for n in fleet.NODES}, fleet._cordoned(double)) == before
    assert _holder(double, 'netmedic-ipam-gc') is None
    assert _holder(double, DISRUPTION) == 'awx-job-301'


def test_issue9_w1_and_w7_at_once_only_one_drains(double, tmp_path):
    """Two concurrent jobs of different families: W-1 is inside its provider hook (lab-node-1 cordoned and drained);
    W-7 started now is refused on node-disruption with nothing cordoned or collected; W-1 then finishes and releases."""
    bindir = fleet._fleet(tmp_path)
    files = {n: fleet._files(tmp_path, n) for n in fleet.NODES}
    flag = tmp_path / 'go'
    tmp = tmp_path / 'tmp-job1'
    tmp.mkdir()
    job1 = subprocess.Popen(w1._command(double, tmp_path, 'job1', w1.BOOT + WAIT_FLAG, node_rotation_nodes=['lab-node-1']),
                            cwd=str(tmp_path), env=w1._env(double, tmp_path, TMPDIR=str(tmp)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        double.wait_for(lambda store: store.get('nodes', None, 'lab-node-1')['status']['nodeInfo'].get('bootID')
                        == 'rotated-lab-node-1', timeout=240)                 # job 1 is inside its provider hook
        holder = _holder(double, DISRUPTION)
        assert holder is not None and holder == _holder(double, 'netmedic-node-rotation')
        rc, _results, output = fleet.run_playbook(double, tmp_path, bindir)
        assert rc != 0 and 'node-disruption' in output, output
        cordoned = fleet._cordoned(double)
        assert [n for n in fleet.NODES if cordoned[n]] == ['lab-node-1']        # only W-1's node is out
        assert {n: fleet._files(tmp_path, n) for n in fleet.NODES} == files     # W-7 collected nothing
        assert _holder(double, 'netmedic-ipam-gc') is None
    finally:
        flag.write_text('go')
        out, _err = job1.communicate(timeout=600)
    assert job1.returncode == 0, out
    assert not any(fleet._cordoned(double).values())
    assert _holder(double, DISRUPTION) is None and _holder(double, 'netmedic-node-rotation') is None
