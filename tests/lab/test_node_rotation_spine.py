"""Role netmedic.k8s.node_rotation (W-1) on the safety spine: issue 9 finding 4 (the hand-rolled lock's
holes) reproduced against the API double, plus "outside the window" with its override. Each of these rotates a node
(a new boot ID); the cases that stop before any node went to tests/cluster/test_node_rotation_spine.py (issue 15).

Every assertion reads the double's store (Nodes cordoned, pods evicted, the Lease).
"""

from __future__ import annotations

import json
import subprocess

from tests.lab import node_rotation_run as w1run
from tests.lab.node_rotation_run import BOOT, LEASE, NODES, RECORD_LEASE, WAIT_FLAG

DOUBLE_ONLY = ("kubelet: the rotated machine comes back as a new Node bootID patched through the API; on the real server the simulated node's status"
               ' heartbeat writes its own bootID back within 60 s (a kubelet that never reboots)')

# The runner is tests/lab/node_rotation_run.py (shared with tests/cluster/test_node_rotation_spine.py, where this file's
# portable cases went: a Lease without TTL fields, a live holder, check mode in a closed window, a TTL too short).
_run = w1run.run
_command = w1run.command
_env = w1run.job_env


def _cordoned(double):
    return {n: bool(double.store.get('nodes', None, n)['spec'].get('unschedulable')) for n in NODES}


def _web_pods(double):
    pods, _rv = double.store.list('pods', 'default', label_selector='app=web')
    return {p['metadata']['uid']: p['spec'].get('nodeName') for p in pods}


def _boot_ids(double):
    return {n: double.store.get('nodes', None, n)['status']['nodeInfo'].get('bootID') for n in NODES}


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
