"""Role netmedic.k8s.node_rotation (catalog W-1) against the API double.

The double's Nodes ``lab-node-1..3`` are rotated; the provider hook is a tasks file that does what
a provider would make visible in the API - the Node reports a new boot ID (PATCH of
``nodes/<name>/status``). Evictions go through the double's ``pods/eviction``, which honours the
PodDisruptionBudget ``web`` (minAvailable 2 of 3). What is asserted is read from the double's store.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.lab.provider_hooks import boot_id_hook

DOUBLE_ONLY = ("kubelet: the rotated machine comes back as a new Node bootID patched through the API; on the real server the simulated node's status"
               ' heartbeat writes its own bootID back within 60 s (a kubelet that never reboots)')

ROOT = Path(__file__).resolve().parents[2]
ENV = {'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections')}
NODES = ['lab-node-1', 'lab-node-2', 'lab-node-3']
STOP = 'Stop the rotation, the node stays cordoned - %s'
DRAIN = 'Drain with evictions, PodDisruptionBudgets honoured - %s'
UNCORDON = 'Uncordon the node (only if netmedic cordoned it) %s'

HOOK = boot_id_hook('rotated')


@pytest.fixture
def check_playbook(playbook):
    """conftest's ``playbook``, but ``ansible-playbook --check --diff`` (the role reads ansible_check_mode) by default,
    and a 600 s limit: rotating three nodes takes long on a loaded machine."""
    return lambda double, tasks, check=True: playbook(double, tasks, extra_env=ENV, check=check, timeout=600)


def _role(double, tmp_path, hook=True, **extra):
    variables = {'node_rotation_nodes': NODES, 'node_rotation_poll_interval': 1, 'node_rotation_ready_timeout': 30,
                 'node_rotation_health_timeout': 30, 'node_rotation_drain_timeout': 30, 'node_rotation_holder': 'ci-a',
                 'test_api': double.url, 'test_token': double.token}
    if hook:
        path = tmp_path / 'provider.yml'
        path.write_text(HOOK)
        variables['node_rotation_provider_tasks'] = str(path)
    variables.update(extra)
    task = {'name': 'W-1', 'ansible.builtin.include_role': {'name': 'netmedic.k8s.node_rotation'}, 'vars': variables}
    return yaml.safe_dump([task])


def _result(results, name):
    found = [r for key, r in results.items() if key == name or key.endswith(' : ' + name)]
    assert found, 'no task %r in %s' % (name, sorted(results))
    return found[0]


def _nodes(double):
    return {n: double.store.get('nodes', None, n) for n in NODES}


def _cordoned(double):
    return {n: bool(obj['spec'].get('unschedulable')) for n, obj in _nodes(double).items()}


def _web_pods(double):
    pods, _rv = double.store.list('pods', 'default', label_selector='app=web')
    return {p['metadata']['uid']: p['spec'].get('nodeName') for p in pods}


@pytest.mark.double_only('portable: check mode; the provider hook never runs')
def test_check_mode_changes_nothing(double, check_playbook, tmp_path):
    web = _web_pods(double)
    versions = {n: obj['metadata']['resourceVersion'] for n, obj in _nodes(double).items()}
    rc, results, output = check_playbook(double, _role(double, tmp_path))
    assert rc == 0, output
    assert all(_result(results, DRAIN % n)['changed'] for n in NODES)                   # would drain each
    assert _cordoned(double) == dict.fromkeys(NODES, False)
    assert {n: obj['metadata']['resourceVersion'] for n, obj in _nodes(double).items()} == versions
    assert _web_pods(double) == web


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


@pytest.mark.double_only('portable: the drain is refused by PDB web (the real 429) before the hook')
def test_budget_refusal_stops_and_leaves_the_node_cordoned(double, playbook, tmp_path):
    pdb = double.store.get('poddisruptionbudgets', 'default', 'web')
    pdb['spec']['minAvailable'] = 3                                       # no web pod may be evicted
    double.store.update('poddisruptionbudgets', 'default', 'web', pdb)
    double.wait_for(lambda store: store.get('poddisruptionbudgets', 'default', 'web')['status'].get('desiredHealthy') == 3)
    web = _web_pods(double)
    first = sorted(set(web.values()))[0]
    order = [first] + [n for n in NODES if n != first]
    rc, results, output = playbook(double, _role(double, tmp_path, node_rotation_nodes=order, node_rotation_drain_timeout=3),
                                   extra_env=ENV)
    assert rc != 0, output
    drain = _result(results, DRAIN % first)
    assert drain['failed'] and "would violate the pod's disruption budget" in drain['msg'], drain   # the API's 429
    stop = _result(results, STOP % first)
    assert stop['failed'] and '%s is LEFT CORDONED' % first in stop['msg'] and 'rotated before it: none' in stop['msg'], stop
    assert _cordoned(double) == {n: n == first for n in NODES}
    assert _web_pods(double) == web                                       # no web pod evicted


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


@pytest.mark.double_only('portable: stops before anything the double alone can do (bad input, a held Lease, a closed window); the real server '
                         'refuses the same')
def test_issue9_f12_no_hook_and_no_external_replacement_fails_before_anything(double, playbook, tmp_path):
    """Without a provider hook nothing brings the machines back: fail at once, not after 30 min per node."""
    versions = {n: obj['metadata']['resourceVersion'] for n, obj in _nodes(double).items()}
    rc, results, output = playbook(double, _role(double, tmp_path, hook=False), extra_env=ENV)
    assert rc != 0, output
    check = _result(results, 'Check who brings each node back (provider hook or external replacement)')
    assert check['failed'] and 'node_rotation_external_replacement' in check['msg'] and 'Nothing was changed' in check['msg']
    assert not any(name.endswith(DRAIN % n) for name in results for n in NODES)
    assert {n: obj['metadata']['resourceVersion'] for n, obj in _nodes(double).items()} == versions
    assert double.store.list('leases', 'kube-system')[0] == []


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
