"""Role netmedic.k8s.node_rotation (W-1) on the safety spine: issue 9 finding 4 (the hand-rolled lock's
holes) reproduced against the API double, plus "lock held by another run" and "outside the window".

Every assertion reads the double's store (Nodes cordoned, pods evicted, the Lease).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.lab.playbook_run import module_python, playbook_command, playbook_env, run_playbook
from tests.lab.provider_hooks import boot_id_hook

DOUBLE_ONLY = ("kubelet: the rotated machine comes back as a new Node bootID patched through the API; on the real server the simulated node's status"
               ' heartbeat writes its own bootID back within 60 s (a kubelet that never reboots)')

ROOT = Path(__file__).resolve().parents[2]
NODES = ['lab-node-1', 'lab-node-2', 'lab-node-3']
LEASE = ('kube-system', 'netmedic-node-rotation')
OLD_CM = ('kube-system', 'netmedic-node-rotation-lock')
OLD_KEY = 'netmedic.k8s/node-rotation-lock'

BOOT = boot_id_hook('rotated')

RECORD_LEASE = """\
- name: Test probe - read the rotation Lease while the node is being rotated
  ansible.builtin.uri:
    url: "{{ test_api }}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/netmedic-node-rotation"
    headers:
      Authorization: "Bearer {{ test_token }}"
  register: test_lease
- name: Test probe - keep it
  ansible.builtin.lineinfile:
    path: "{{ test_record }}"
    line: "{{ {'node': node_rotation_node, 'spec': test_lease.json.spec} | to_json }}"
    create: true
    mode: "0644"
"""

WAIT_FLAG = """\
- name: Test probe - stay in the hook until the test says go
  ansible.builtin.wait_for:
    path: "{{ test_flag }}"
    timeout: 120
"""


def _env(double, tmp_path, **extra):
    return playbook_env(double, tmp_path, dict({'ANSIBLE_CALLBACKS_ENABLED': 'netmedic.k8s.change_report', 'AWX_JOB_ID': None},
                                               **extra))


def _play(double, tmp_path, label, hook, **variables):
    """The role in a one-play playbook, with the provider ``hook``; returns its path."""
    hook_path = tmp_path / ('hook-%s.yml' % label)
    hook_path.write_text(hook)
    merged = {'node_rotation_nodes': NODES, 'node_rotation_poll_interval': 1, 'node_rotation_ready_timeout': 30,
              'node_rotation_health_timeout': 30, 'node_rotation_drain_timeout': 30,
              'node_rotation_provider_tasks': str(hook_path), 'test_api': double.url, 'test_token': double.token,
              'test_record': str(tmp_path / 'leases.jsonl'), 'test_flag': str(tmp_path / 'go')}
    merged.update(variables)
    play = [{'hosts': 'localhost', 'gather_facts': False, 'vars': {'ansible_python_interpreter': module_python()[0]},
             'tasks': [{'name': 'W-1', 'ansible.builtin.include_role': {'name': 'netmedic.k8s.node_rotation'},
                        'vars': merged}]}]
    path = tmp_path / ('play-%s.yml' % label)
    path.write_text(yaml.safe_dump(play))
    return path


def _command(double, tmp_path, label, hook, check=False, **variables):
    return playbook_command(_play(double, tmp_path, label, hook, **variables), check=check)


def _run(double, tmp_path, label, hook=BOOT, env=None, check=False, **variables):
    tmp = tmp_path / ('tmp-%s' % label)
    tmp.mkdir(exist_ok=True)
    rc, _results, output = run_playbook(double, tmp_path, _play(double, tmp_path, label, hook, **variables), check=check,
                                        timeout=600, env=dict({'ANSIBLE_CALLBACKS_ENABLED': 'netmedic.k8s.change_report',
                                                               'AWX_JOB_ID': None, 'TMPDIR': str(tmp)}, **(env or {})))
    return rc, output


def _cordoned(double):
    return {n: bool(double.store.get('nodes', None, n)['spec'].get('unschedulable')) for n in NODES}


def _web_pods(double):
    pods, _rv = double.store.list('pods', 'default', label_selector='app=web')
    return {p['metadata']['uid']: p['spec'].get('nodeName') for p in pods}


def _boot_ids(double):
    return {n: double.store.get('nodes', None, n)['status']['nodeInfo'].get('bootID') for n in NODES}


def _ago(seconds):
    return time.strftime('%Y-%m-%dT%H:%M:%S.000000Z', time.gmtime(time.time() - seconds))


def _hold(double, holder, lease_spec):
    """Another run holds the lock - in the old form (ConfigMap annotation) and the new one (Lease)."""
    double.store.create('configmaps', OLD_CM[0], {
        'apiVersion': 'v1', 'kind': 'ConfigMap',
        'metadata': {'name': OLD_CM[1], 'namespace': OLD_CM[0], 'annotations': {OLD_KEY: json.dumps({'holder': holder})}}})
    double.store.create('leases', LEASE[0], {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                                             'metadata': {'name': LEASE[1], 'namespace': LEASE[0]}, 'spec': lease_spec})


def test_issue9_f4_second_job_from_the_same_controller_is_refused(double, tmp_path):
    """Finding 4: the holder was user@host, so two jobs from one controller both 'owned' the lock."""
    web = _web_pods(double)
    first = sorted(set(web.values()))[0]
    others = [n for n in NODES if n != first]
    flag = tmp_path / 'go'
    tmp = tmp_path / 'tmp-job1'
    tmp.mkdir()
    job1 = subprocess.Popen(_command(double, tmp_path, 'job1', BOOT + WAIT_FLAG, node_rotation_nodes=[first]),
                            cwd=str(tmp_path), env=_env(double, tmp_path, TMPDIR=str(tmp)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        double.wait_for(lambda store: store.get('nodes', None, first)['status']['nodeInfo'].get('bootID')
                        == 'rotated-%s' % first, timeout=180)            # job 1 is inside its provider hook
        rc, output = _run(double, tmp_path, 'job2', node_rotation_nodes=[others[0]])
        assert rc != 0, output
        assert 'another run is in progress' in output, output
        assert not _cordoned(double)[others[0]]                           # job 2 changed nothing
    finally:
        flag.write_text('go')
        out, _err = job1.communicate(timeout=300)
    assert job1.returncode == 0, out
    assert _cordoned(double) == dict.fromkeys(NODES, False)
    assert double.store.find('leases', *LEASE) is None                   # job 1 released it


@pytest.mark.double_only('portable: stops before anything the double alone can do (bad input, a held Lease, a closed window); the real server '
                         'refuses the same')
def test_issue9_f4_lock_without_ttl_fields_is_held_not_expired(double, tmp_path):
    """Finding 4: a lock record without TTL fields was taken over as expired."""
    _hold(double, 'other-run', {'holderIdentity': 'other-run'})
    web = _web_pods(double)
    boots = _boot_ids(double)
    rc, output = _run(double, tmp_path, 'nottl', node_rotation_nodes=['lab-node-1'], node_rotation_holder='ci-a')
    assert rc != 0, output
    assert 'treated as HELD' in output, output
    assert _cordoned(double) == dict.fromkeys(NODES, False) and _web_pods(double) == web and _boot_ids(double) == boots
    assert double.store.get('leases', *LEASE)['spec'] == {'holderIdentity': 'other-run'}


def test_issue9_f4_lease_covers_one_node_and_is_renewed_before_each(double, tmp_path):
    """Finding 4: the TTL (3600 s) was shorter than one node's worst case and not renewed while waiting."""
    rc, output = _run(double, tmp_path, 'ttl', hook=BOOT + RECORD_LEASE, node_rotation_nodes=NODES[:2],
                      )
    assert rc == 0, output
    seen = [json.loads(line) for line in (tmp_path / 'leases.jsonl').read_text().splitlines()]
    assert [s['node'] for s in seen] == NODES[:2]
    worst = 30 + 30 + 30                                                # drain + ready + health timeouts
    assert all(s['spec']['leaseDurationSeconds'] >= worst for s in seen), seen
    assert seen[1]['spec']['renewTime'] > seen[0]['spec']['renewTime'], seen    # renewed before node 2
    assert seen[0]['spec']['holderIdentity'] == seen[1]['spec']['holderIdentity']
    assert double.store.find('leases', *LEASE) is None


def test_issue9_f4_failed_job_releases_so_the_next_job_can_run(double, tmp_path):
    """Finding 4: a failed job's lock blocked the next job (a new AWX container) until the TTL passed."""
    pdb = double.store.get('poddisruptionbudgets', 'default', 'web')
    pdb['spec']['minAvailable'] = 3
    double.store.update('poddisruptionbudgets', 'default', 'web', pdb)
    double.wait_for(lambda store: store.get('poddisruptionbudgets', 'default', 'web')['status'].get('desiredHealthy') == 3)
    web = _web_pods(double)
    first = sorted(set(web.values()))[0]
    rc, output = _run(double, tmp_path, 'fail', node_rotation_nodes=[first], node_rotation_holder='ci-a')
    assert rc != 0 and _cordoned(double)[first], output                 # stopped at the drain, node left cordoned
    assert double.store.find('leases', *LEASE) is None                  # released on failure
    pdb = double.store.get('poddisruptionbudgets', 'default', 'web')
    pdb['spec']['minAvailable'] = 1
    double.store.update('poddisruptionbudgets', 'default', 'web', pdb)
    spare = [n for n in NODES if n != first]
    # The node the failed run left cordoned counts as unhealthy for the next run's health gate: allow one.
    rc, output = _run(double, tmp_path, 'next', node_rotation_nodes=[spare[0]], node_rotation_holder='ci-b',
                      node_rotation_max_unhealthy=1)
    assert rc == 0, output
    assert _boot_ids(double)[spare[0]] == 'rotated-%s' % spare[0]


@pytest.mark.double_only('portable: stops before anything the double alone can do (bad input, a held Lease, a closed window); the real server '
                         'refuses the same')
def test_lock_held_by_a_live_run_stops_with_nothing_changed(double, tmp_path):
    _hold(double, 'awx-job-41', {'holderIdentity': 'awx-job-41', 'leaseDurationSeconds': 3600,
                                 'renewTime': _ago(10), 'acquireTime': _ago(10)})
    web, boots = _web_pods(double), _boot_ids(double)
    rc, output = _run(double, tmp_path, 'held', node_rotation_nodes=['lab-node-1'], env={'AWX_JOB_ID': '42'})
    assert rc != 0 and "held by 'awx-job-41'" in output, output
    assert _cordoned(double) == dict.fromkeys(NODES, False) and _web_pods(double) == web and _boot_ids(double) == boots
    assert double.store.get('leases', *LEASE)['spec']['holderIdentity'] == 'awx-job-41'


def test_outside_the_window_nothing_changed_and_override_is_recorded(double, tmp_path):
    window = {'days': ['sat', 'sun'], 'start': '22:00', 'end': '04:00', 'timezone': 'Europe/Berlin'}
    web, boots = _web_pods(double), _boot_ids(double)
    rc, output = _run(double, tmp_path, 'closed', node_rotation_nodes=['lab-node-1'], node_rotation_window=window,
                      node_rotation_now='2026-11-25T12:00:00Z')
    assert rc != 0 and 'outside the change window' in output, output
    assert _cordoned(double) == dict.fromkeys(NODES, False) and _web_pods(double) == web and _boot_ids(double) == boots
    assert double.store.find('leases', *LEASE) is None
    rc, output = _run(double, tmp_path, 'override', node_rotation_nodes=['lab-node-1'], node_rotation_window=window,
                      node_rotation_now='2026-11-25T12:00:00Z', netmedic_window_override=True)
    assert rc == 0, output
    assert _boot_ids(double)['lab-node-1'] == 'rotated-lab-node-1'
    reports = [json.loads(p.read_text()) for p in (tmp_path / 'report').glob('change-report-*.json')]
    report = next(r for r in reports if r['playbook'] == 'play-override.yml')
    assert any('OVERRIDDEN' in w for e in report['entries'] for w in e.get('warnings') or []), report


@pytest.mark.double_only('portable: stops before anything the double alone can do (bad input, a held Lease, a closed window); the real server '
                         'refuses the same')
def test_check_mode_reports_the_closed_window_and_writes_no_lease(double, tmp_path):
    window = {'days': ['sat'], 'start': '22:00', 'end': '04:00', 'timezone': 'Europe/Berlin'}
    versions = {n: double.store.get('nodes', None, n)['metadata']['resourceVersion'] for n in NODES}
    rc, output = _run(double, tmp_path, 'check', check=True, node_rotation_nodes=['lab-node-1'],
                      node_rotation_window=window, node_rotation_now='2026-11-25T12:00:00Z')
    assert rc == 0, output
    assert 'a real run would stop here' in output
    assert double.store.find('leases', *LEASE) is None
    assert {n: double.store.get('nodes', None, n)['metadata']['resourceVersion'] for n in NODES} == versions


@pytest.mark.double_only('portable: stops before anything the double alone can do (bad input, a held Lease, a closed window); the real server '
                         'refuses the same')
def test_issue9_f4_lock_ttl_below_one_nodes_worst_case_is_refused(double, tmp_path):
    # drain 30 + ready 30 + health 30 + the provider hook's 30 (issue 9 finding 12: the hook's time counts too)
    rc, output = _run(double, tmp_path, 'shortttl', node_rotation_nodes=['lab-node-1'], node_rotation_lock_ttl=60,
                      node_rotation_provider_timeout=30)
    assert rc != 0 and "node_rotation_lock_ttl (60 s) is shorter than one node's worst case (120 s" in output, output
    assert double.store.find('leases', *LEASE) is None and _cordoned(double) == dict.fromkeys(NODES, False)
