"""Role netmedic.k8s.node_rotation (catalog W-1) against the API double.

The double's Nodes ``lab-node-1..3`` are rotated; the provider hook is a tasks file that does what
a provider would make visible in the API - the Node reports a new boot ID (PATCH of
``nodes/<name>/status``). Evictions go through the double's ``pods/eviction``, which honours the
PodDisruptionBudget ``web`` (minAvailable 2 of 3). What is asserted is read from the double's store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENV = {'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections')}
NODES = ['lab-node-1', 'lab-node-2', 'lab-node-3']
LOCK = ('kube-system', 'netmedic-node-rotation-lock')
KEY = 'netmedic.k8s/node-rotation-lock'
STOP = 'Stop the rotation, the node stays cordoned - %s'
DRAIN = 'Drain with evictions, PodDisruptionBudgets honoured - %s'

HOOK = """\
- name: Provider stand-in - the machine comes back with a new boot ID
  ansible.builtin.uri:
    url: "{{ test_api }}/api/v1/nodes/{{ node_rotation_node }}/status"
    method: PATCH
    headers:
      Authorization: "Bearer {{ test_token }}"
      Content-Type: application/merge-patch+json
    body_format: json
    body: {status: {nodeInfo: {bootID: "rotated-{{ node_rotation_node }}"}}}
"""


@pytest.fixture
def check_playbook(tmp_path, private_tmpdir):
    """Like conftest's ``playbook`` fixture, but ``ansible-playbook --check --diff``: the role reads ansible_check_mode."""

    def _run(double, tasks):
        play = [{'hosts': 'localhost', 'gather_facts': False, 'vars': {'ansible_python_interpreter': sys.executable},
                 'tasks': yaml.safe_load(tasks)}]
        path = tmp_path / 'check.yml'
        path.write_text(yaml.safe_dump(play))
        env = dict(os.environ, K8S_AUTH_KUBECONFIG=str(double.kubeconfig_path), TMPDIR=str(private_tmpdir),
                   ANSIBLE_STDOUT_CALLBACK='ansible.posix.json', ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_NOCOLOR='1',
                   ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'), ANSIBLE_DEPRECATION_WARNINGS='0',
                   ANSIBLE_PYTHON_INTERPRETER=sys.executable, **ENV)
        env.pop('ANSIBLE_CONFIG', None)
        proc = subprocess.run([str(Path(sys.executable).with_name('ansible-playbook')), '-i', 'localhost,', '-c', 'local',
                               '--check', '--diff', str(path)], check=False, env=env, cwd=str(tmp_path), capture_output=True,
                              text=True, timeout=300)
        data = json.loads(proc.stdout)
        return proc.returncode, {t['task']['name']: t['hosts']['localhost'] for t in data['plays'][0]['tasks']}, proc.stdout + proc.stderr

    return _run


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


def _lock(double):
    cm = double.store.get('configmaps', *LOCK)
    if cm is None:
        return None
    value = (cm['metadata'].get('annotations') or {}).get(KEY)
    return json.loads(value) if value else {}


def _web_pods(double):
    pods, _rv = double.store.list('pods', 'default', label_selector='app=web')
    return {p['metadata']['uid']: p['spec'].get('nodeName') for p in pods}


def _get(double, kind, ns, name):
    try:
        return double.store.get(kind, ns, name)
    except Exception:  # the store raises its NotFound error
        return None


def test_check_mode_changes_nothing(double, check_playbook, tmp_path):
    web = _web_pods(double)
    versions = {n: obj['metadata']['resourceVersion'] for n, obj in _nodes(double).items()}
    rc, results, output = check_playbook(double, _role(double, tmp_path))
    assert rc == 0, output
    assert all(_result(results, DRAIN % n)['changed'] for n in NODES)                   # would drain each
    assert _cordoned(double) == dict.fromkeys(NODES, False)
    assert {n: obj['metadata']['resourceVersion'] for n, obj in _nodes(double).items()} == versions
    assert _web_pods(double) == web
    assert _get(double, 'configmaps', *LOCK) is None                     # not even the lock object


def test_rotation_with_hook_lock_and_budget(double, playbook, check_playbook, tmp_path):
    web_before = _web_pods(double)
    rc, results, output = playbook(double, _role(double, tmp_path, node_rotation_drain_retries=10,
                                                 node_rotation_drain_retry_delay=1), extra_env=ENV)
    assert rc == 0, output
    nodes = _nodes(double)
    assert all(nodes[n]['status']['nodeInfo']['bootID'] == 'rotated-%s' % n for n in NODES)   # the hook ran per node
    assert _cordoned(double) == dict.fromkeys(NODES, False)                                   # all uncordoned
    web_after = _web_pods(double)
    assert len(web_after) == 3 and not set(web_after) & set(web_before)                       # every web pod evicted once
    pdb = double.store.get('poddisruptionbudgets', 'default', 'web')
    assert pdb['status']['currentHealthy'] >= pdb['status']['desiredHealthy']
    assert _lock(double) == {}                                                                # released
    # A second holder can now take it: the lock is free.
    rc, results, output = check_playbook(double, _role(double, tmp_path, node_rotation_holder='ci-b'))
    assert rc == 0, output
    assert not _result(results, "Refuse while another holder's lock is alive").get('failed')


def _hold_lock(double, holder, age, ttl=3600):
    body = {'apiVersion': 'v1', 'kind': 'ConfigMap',
            'metadata': {'name': LOCK[1], 'namespace': LOCK[0],
                         'annotations': {KEY: json.dumps({'holder': holder, 'acquired': 'then',
                                                          'acquired_epoch': time.time() - age, 'ttl': ttl})}}}
    double.store.create('configmaps', LOCK[0], body)


def test_live_lock_refuses_and_stale_lock_is_taken_over(double, playbook, tmp_path):
    _hold_lock(double, 'someone-else', age=60)
    rc, results, output = playbook(double, _role(double, tmp_path, node_rotation_nodes=['lab-node-1']), extra_env=ENV)
    assert rc != 0, output
    refused = _result(results, 'Refuse while another holder\'s lock is alive')
    assert refused['failed'] and 'locked by someone-else' in refused['msg'], refused
    assert _cordoned(double) == dict.fromkeys(NODES, False)
    assert _lock(double)['holder'] == 'someone-else'

    cm = double.store.get('configmaps', *LOCK)
    cm['metadata']['annotations'][KEY] = json.dumps({'holder': 'someone-else', 'acquired': 'then',
                                                     'acquired_epoch': time.time() - 7200, 'ttl': 3600})
    double.store.update('configmaps', *LOCK, cm)
    rc, results, output = playbook(double, _role(double, tmp_path, node_rotation_nodes=['lab-node-1']), extra_env=ENV)
    assert rc == 0, output
    assert _nodes(double)['lab-node-1']['status']['nodeInfo']['bootID'] == 'rotated-lab-node-1'
    assert _lock(double) == {}


def test_outside_the_window_refuses_before_anything(double, playbook, check_playbook, tmp_path):
    window = {'days': ['sat', 'sun'], 'start': '22:00', 'end': '04:00', 'timezone': 'Europe/Berlin'}
    # Wednesday 2026-11-25 12:00 UTC is outside; Sunday 2026-11-29 02:30 UTC (03:30 in Berlin) is inside.
    rc, results, output = playbook(double, _role(double, tmp_path, node_rotation_window=window,
                                                 node_rotation_now='2026-11-25T12:00:00Z'), extra_env=ENV)
    assert rc != 0, output
    gate = _result(results, 'Refuse outside the maintenance window')
    assert gate['failed'] and 'outside the maintenance window' in gate['msg'] and 'Wed 13:00 Europe/Berlin' in gate['msg'], gate
    assert _get(double, 'configmaps', *LOCK) is None and _cordoned(double) == dict.fromkeys(NODES, False)
    rc, results, output = check_playbook(double, _role(double, tmp_path, node_rotation_window=window,
                                                       node_rotation_now='2026-11-29T02:30:00Z'))
    assert rc == 0, output
    bad = dict(window, timezone='Mars/Olympus')
    rc, results, output = playbook(double, _role(double, tmp_path, node_rotation_window=bad), extra_env=ENV)
    assert rc != 0 and 'unknown timezone' in _result(results, 'Refuse outside the maintenance window')['msg'], output


def test_budget_refusal_stops_and_leaves_the_node_cordoned(double, playbook, tmp_path):
    pdb = double.store.get('poddisruptionbudgets', 'default', 'web')
    pdb['spec']['minAvailable'] = 3                                       # no web pod may be evicted
    double.store.update('poddisruptionbudgets', 'default', 'web', pdb)
    double.wait_for(lambda store: store.get('poddisruptionbudgets', 'default', 'web')['status'].get('desiredHealthy') == 3)
    web = _web_pods(double)
    first = sorted(set(web.values()))[0]
    order = [first] + [n for n in NODES if n != first]
    rc, results, output = playbook(double, _role(double, tmp_path, node_rotation_nodes=order), extra_env=ENV)
    assert rc != 0, output
    drain = _result(results, DRAIN % first)
    assert drain['failed'] and "would violate the pod's disruption budget" in drain['msg'], drain   # the API's 429
    stop = _result(results, STOP % first)
    assert stop['failed'] and '%s is LEFT CORDONED' % first in stop['msg'] and 'rotated before it: none' in stop['msg'], stop
    assert _cordoned(double) == {n: n == first for n in NODES}
    assert _web_pods(double) == web                                       # no web pod evicted
    assert _lock(double)['holder'] == 'ci-a'                              # kept until its TTL
