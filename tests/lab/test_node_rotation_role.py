"""Role netmedic.k8s.node_rotation (catalog W-1) against the API double.

The double's Nodes ``lab-node-1..3`` are rotated; the provider hook is a tasks file that does what
a provider would make visible in the API - the Node reports a new boot ID (PATCH of
``nodes/<name>/status``). Evictions go through the double's ``pods/eviction``, which honours the
PodDisruptionBudget ``web`` (minAvailable 2 of 3). What is asserted is read from the double's store. Each case here
rotates a node (a new boot ID); those that stop before the provider hook (check mode, a budget refusal, no hook at all)
went to tests/cluster/test_node_rotation_role.py (issue 15). ``_role``/``_result`` are tests/lab/node_rotation_run.py's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.node_rotation_run import NODES, role_task, task_result

DOUBLE_ONLY = ("kubelet: the rotated machine comes back as a new Node bootID patched through the API; on the real server the simulated node's status"
               ' heartbeat writes its own bootID back within 60 s (a kubelet that never reboots)')

ROOT = Path(__file__).resolve().parents[2]
ENV = {'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections')}
DRAIN = 'Drain with evictions, PodDisruptionBudgets honoured - %s'
UNCORDON = 'Uncordon the node (only if netmedic cordoned it) %s'


@pytest.fixture
def check_playbook(playbook):
    """conftest's ``playbook``, but ``ansible-playbook --check --diff`` (the role reads ansible_check_mode) by default,
    and a 600 s limit: rotating three nodes takes long on a loaded machine."""
    return lambda double, tasks, check=True: playbook(double, tasks, extra_env=ENV, check=check, timeout=600)


_role = role_task
_result = task_result


def _nodes(double):
    return {n: double.store.get('nodes', None, n) for n in NODES}


def _cordoned(double):
    return {n: bool(obj['spec'].get('unschedulable')) for n, obj in _nodes(double).items()}


def _web_pods(double):
    pods, _rv = double.store.list('pods', 'default', label_selector='app=web')
    return {p['metadata']['uid']: p['spec'].get('nodeName') for p in pods}


def test_rotation_with_hook_and_budget(double, check_playbook, tmp_path):
    web_before = _web_pods(double)
    rc, results, output = check_playbook(double, _role(double, tmp_path), check=False)   # 429s retried within the drain timeout
    assert rc == 0, output
    assert all(_result(results, UNCORDON % n)['changed'] for n in NODES)                     # each cordon was netmedic's
    nodes = _nodes(double)
    assert all(nodes[n]['status']['nodeInfo']['bootID'] == 'rotated-%s' % n for n in NODES)   # the hook ran per node
    assert _cordoned(double) == dict.fromkeys(NODES, False)                                   # all uncordoned
    web_after = _web_pods(double)
    assert len(web_after) == 3 and not set(web_after) & set(web_before)                       # every web pod evicted once
    pdb = double.store.get('poddisruptionbudgets', 'default', 'web')
    assert pdb['status']['currentHealthy'] >= pdb['status']['desiredHealthy']
    # The lock (a Lease) and the window are tested in test_node_rotation_spine.py.


def _hold_with_finalizer(double, node):
    """A web pod on ``node`` gets a finalizer: evicting it only marks it Terminating, it never goes away."""
    pods, _rv = double.store.list('pods', 'default', label_selector='app=web')
    pod = next(p for p in pods if p['spec'].get('nodeName') == node)
    pod['metadata']['finalizers'] = ['example.com/hold']
    double.store.update('pods', 'default', pod['metadata']['name'], pod)
    return pod['metadata']['name']


def test_issue9_f3_finalizer_pod_still_on_node_stops_before_the_hook(double, playbook, tmp_path):
    node = sorted(set(_web_pods(double).values()))[0]
    held = _hold_with_finalizer(double, node)
    boot = _nodes(double)[node]['status']['nodeInfo'].get('bootID')
    rc, results, output = playbook(double, _role(double, tmp_path, node_rotation_nodes=[node], node_rotation_drain_timeout=5),
                                   extra_env=ENV)
    assert rc != 0, output
    drain = _result(results, DRAIN % node)
    assert drain.get('failed') and held in drain['msg'], drain                  # the pod is named
    assert _nodes(double)[node]['status']['nodeInfo'].get('bootID') == boot     # the provider hook never ran
    assert _cordoned(double)[node] is True
    still = double.store.get('pods', 'default', held)
    assert still['spec']['nodeName'] == node and still['metadata'].get('deletionTimestamp')
    # Resume: the finalizer is released, the job is simply run again. The node this role left cordoned is its own
    # (annotation), so the health gate lets it through, the rotation completes and the node ends uncordoned.
    still['metadata']['finalizers'] = []
    double.store.update('pods', 'default', held, still)
    double.wait_for(lambda s: not [p for p in s.list('pods', 'default')[0] if p['metadata']['name'] == held] or None)
    rc, results, output = playbook(double, _role(double, tmp_path, node_rotation_nodes=[node], node_rotation_drain_timeout=30),
                                   extra_env=ENV)
    assert rc == 0, output
    after = _nodes(double)[node]
    assert after['status']['nodeInfo']['bootID'] == 'rotated-%s' % node
    assert not after['spec'].get('unschedulable') and 'netmedic.io/cordoned-by' not in (after['metadata'].get('annotations') or {})


RECREATE = """\
- name: Provider stand-in - the machine re-registers as a new Node object
  ansible.builtin.uri:
    url: "{{ test_api }}/api/v1/nodes"
    method: POST
    status_code: [201]
    headers:
      Authorization: "Bearer {{ test_token }}"
    body_format: json
    body:
      apiVersion: v1
      kind: Node
      metadata: {name: "{{ node_rotation_node }}", labels: {kubernetes.io/hostname: "{{ node_rotation_node }}"}}
      status:
        conditions: [{type: Ready, status: "True", reason: KubeletReady}]
        nodeInfo: {bootID: "new-{{ node_rotation_node }}", machineID: m, systemUUID: u, kernelVersion: 6.1.0, osImage: Debian 12,
                   containerRuntimeVersion: "containerd://1.6.20", kubeletVersion: v1.33.0, kubeProxyVersion: v1.33.0,
                   operatingSystem: linux, architecture: amd64}
"""


def test_issue9_f12_delete_node_then_it_reregisters(double, check_playbook, tmp_path):
    """node_rotation_delete_node: the Node object is deleted after the drain; the hook's machine registers anew."""
    uid = double.store.get('nodes', None, 'lab-node-1')['metadata']['uid']
    hook = tmp_path / 'recreate.yml'
    hook.write_text(RECREATE)
    rc, results, output = check_playbook(double, _role(double, tmp_path, hook=False, node_rotation_nodes=['lab-node-1'],
                                                       node_rotation_provider_tasks=str(hook),
                                                       node_rotation_delete_node=True), check=False)
    assert rc == 0, output
    assert _result(results, 'Delete the Node object (node_rotation_delete_node) - lab-node-1')['changed'] is True
    node = double.store.get('nodes', None, 'lab-node-1')
    assert node['metadata']['uid'] != uid and not node['spec'].get('unschedulable')
