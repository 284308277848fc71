"""playbooks/node_rotation.yml (catalog W-1) as one job template, on the double and on the real kube-apiserver
(issue 15): the playbook validates its variables before the role does anything, and a Lease held by a live run stops
it before the first node.

Ported from tests/lab/test_node_rotation_playbook.py (issue 15 item 4; 5 of its 6 cases: four kinds of bad input and the
held Lease). None of them reaches a node, so the provider hook never runs (the case that rotates a node - a new boot ID,
which lab/k8s/nodesim.py's heartbeat would overwrite - stays in tests/lab, kind ``kubelet``). The runner is
tests/lab/node_rotation_run.py's ``run_job_template``, the one both suites use. The lock is the Lease
``kube-system/netmedic-node-rotation``: ``nodes_uncordoned`` (``spine_leases``) fails the test when a
``kube-system/netmedic-*`` Lease is there before it, removes every one after it and puts back a cordon a failed
assertion left. What is asserted is read back through the
API: the Node's spec and the Lease.
"""

from __future__ import annotations

import pytest

from tests.cluster.conftest import hold_lease
from tests.lab.node_rotation_run import LEASE, run_job_template


@pytest.fixture
def run(tmp_path):
    return lambda cluster, *extra, check=False: run_job_template(cluster, tmp_path, *extra, check=check)


def node(cluster, name='lab-node-1'):
    return cluster.get('Node', None, name)


NODES = ['-e', '{"netmedic_rotation_nodes": ["lab-node-1"]}']


@pytest.mark.parametrize('extra, words', [
    (['-e', '{"netmedic_rotation_nodes": []}'], 'non-empty list of distinct Node names'),
    (['-e', '{"netmedic_rotation_nodes": ["lab-node-1", "lab-node-1"]}'], 'non-empty list of distinct Node names'),
    (['-e', '{"netmedic_rotation_nodes": ["lab-node-1"], "netmedic_rotation_provider_argv": ["/bin/true"]}'],
     'not both'),
    (['-e', '{"netmedic_rotation_nodes": ["lab-node-1"], "netmedic_rotation_drain_timeout": "long"}'],
     'netmedic_rotation_drain_timeout'),
])
def test_w1_bad_input_refused_before_any_change(nodes_uncordoned, run, extra, words):
    cluster = nodes_uncordoned
    before = node(cluster)
    rc, _tasks, output = run(cluster, *extra)
    assert rc != 0 and words in output, output
    assert node(cluster)['spec'] == before['spec']
    assert cluster.find('Lease', *LEASE) is None


def test_w1_lock_held_stops_before_the_first_node(nodes_uncordoned, run):
    cluster = nodes_uncordoned
    hold_lease(cluster, *LEASE, 'awx-job-5', age=0)
    before = node(cluster)
    rc, _tasks, output = run(cluster, *NODES)
    assert rc != 0 and "held by 'awx-job-5'" in output, output
    assert node(cluster)['spec'] == before['spec']
