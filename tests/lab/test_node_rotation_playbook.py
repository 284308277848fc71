"""playbooks/node_rotation.yml (catalog W-1) as one job template, against the API double: the playbook validates its
variables, then runs role node_rotation (its own behaviour is tested in test_node_rotation_role.py/_spine.py).

The provider hook is a tasks file that makes the Node report a new boot ID, as a replaced machine would."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from tests.lab.playbook_run import run_playbook
from tests.lab.provider_hooks import boot_id_hook

DOUBLE_ONLY = 'portable: stops before anything the double alone can do (bad input, a held Lease, a closed window); the real server refuses the same'

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'node_rotation.yml'
NS = 'kube-system'
HOOK = boot_id_hook('rotated')


@pytest.fixture
def run(tmp_path):
    hook = tmp_path / 'hook.yml'
    hook.write_text(HOOK)

    def _run(double, *extra, check=False):
        args = ['-e', json.dumps({'test_api': double.url, 'test_token': double.token,
                                  'netmedic_rotation_provider_tasks': str(hook),
                                  'netmedic_rotation_poll_interval': 1, 'netmedic_rotation_drain_timeout': 60,
                                  'netmedic_rotation_ready_timeout': 60, 'netmedic_rotation_health_timeout': 60})]
        return run_playbook(double, tmp_path, PLAYBOOK, *args, *extra, check=check)
    return _run


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


@pytest.mark.parametrize('extra, words', [
    (['-e', '{"netmedic_rotation_nodes": []}'], 'non-empty list of distinct Node names'),
    (['-e', '{"netmedic_rotation_nodes": ["lab-node-1", "lab-node-1"]}'], 'non-empty list of distinct Node names'),
    (['-e', '{"netmedic_rotation_nodes": ["lab-node-1"], "netmedic_rotation_provider_argv": ["/bin/true"]}'],
     'not both'),
    (['-e', '{"netmedic_rotation_nodes": ["lab-node-1"], "netmedic_rotation_drain_timeout": "long"}'],
     'netmedic_rotation_drain_timeout'),
])
def test_w1_bad_input_refused_before_any_change(double, run, extra, words):
    before = node(double)
    rc, _tasks, output = run(double, *extra)
    assert rc != 0 and words in output, output
    assert node(double)['spec'] == before['spec']
    assert double.store.find('leases', NS, 'netmedic-node-rotation') is None


def test_w1_lock_held_stops_before_the_first_node(double, run):
    now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    double.store.create('leases', NS, {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                                       'metadata': {'name': 'netmedic-node-rotation', 'namespace': NS},
                                       'spec': {'holderIdentity': 'awx-job-5', 'leaseDurationSeconds': 3600,
                                                'renewTime': now, 'acquireTime': now}})
    before = node(double)
    rc, _tasks, output = run(double, *NODES)
    assert rc != 0 and "held by 'awx-job-5'" in output, output
    assert node(double)['spec'] == before['spec']
