"""playbooks/node_rotation.yml (catalog W-1) as one job template, against the API double: the playbook validates its
variables, then runs role node_rotation (its own behaviour is tested in test_node_rotation_role.py/_spine.py).

The provider hook is a tasks file that makes the Node report a new boot ID, as a replaced machine would. The runner is
tests/lab/node_rotation_run.py's ``run_job_template``; the cases that stop before any node (bad input, a held Lease) went
to tests/cluster/test_node_rotation_playbook.py (issue 15)."""

from __future__ import annotations

import pytest

from tests.lab.node_rotation_run import run_job_template

NS = 'kube-system'


@pytest.fixture
def run(tmp_path):
    return lambda double, *extra, check=False: run_job_template(double, tmp_path, *extra, check=check)


def node(double, name='lab-node-1'):
    return double.store.get('nodes', None, name)


def web_pods(double):
    pods, _rv = double.store.list('pods', 'default', label_selector='app=web')
    return {p['metadata']['uid']: p['spec'].get('nodeName') for p in pods}


NODES = ['-e', '{"netmedic_rotation_nodes": ["lab-node-1"]}']


@pytest.mark.double_only('kubelet: the rotated machine comes back as a new Node bootID patched through the API; on the real server the simulated '
                         "node's status heartbeat writes its own bootID back within 60 s (a kubelet that never reboots)")
def test_w1_check_changes_nothing_then_one_node_rotated(double, run):
    pods = web_pods(double)
    rc, _tasks, output = run(double, *NODES, check=True)
    assert rc == 0, output
    assert not node(double)['spec'].get('unschedulable') and web_pods(double) == pods
    assert double.store.find('leases', NS, 'netmedic-node-rotation') is None

    rc, _tasks, output = run(double, *NODES)
    assert rc == 0, output
    rotated = node(double)
    assert rotated['status']['nodeInfo']['bootID'] == 'rotated-lab-node-1'
    assert not rotated['spec'].get('unschedulable')                             # uncordoned again
    drained = {uid for uid, where in pods.items() if where == 'lab-node-1'}
    assert drained and drained.isdisjoint(web_pods(double))                    # its pods were evicted
    assert double.store.find('leases', NS, 'netmedic-node-rotation') is None   # released
