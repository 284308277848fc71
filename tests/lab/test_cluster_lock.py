"""Cluster lock (issue 9 "Cluster lock"): coordination.k8s.io/v1 Leases in the API double, the
lease_lock planner's compare-and-swap against it (two racing runs: exactly one wins) and the
``netmedic.k8s.cluster_lock`` module.  Outcomes are read back from the double's store.
Check mode through Ansible is a real ``ansible-playbook`` run (``test_module_check_mode_never_writes``); the other cases run the
module's ``main()`` in the test process (``module_tasks``, tests/harness.py: issue 12), over HTTP
through the real client as in a playbook run.
Two real ``ansible-playbook`` processes race in the last test.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import threading
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import lock as ll
from tests.lab.playbook_run import module_python, playbook_command, playbook_env

DOUBLE_ONLY = ('portable: Leases with any spec, their compare-and-swap (409 from real concurrent writers) and two racing ansible-playbook runs are '
               'ordinary real-server behaviour')

ROOT = Path(__file__).resolve().parents[2]
ENV = {'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections')}
NS, NAME = 'kube-system', 'netmedic-node-rotation'


def _lease(double, name=NAME):
    return double.store.find('leases', NS, name)


def _put_lease(double, spec, name=NAME):
    return double.store.create('leases', NS, {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                                              'metadata': {'name': name, 'namespace': NS}, 'spec': spec})


def _ago(seconds):
    return ll.format_time(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds))


def _client(double):
    return ll.LeaseApi(k8s_client.Cluster({'kubeconfig': str(double.kubeconfig_path)}), timeout=10)


# -- the API double serves Leases ------------------------------------------------------------------

def test_double_serves_leases_with_discovery_and_cas(double, api_client):
    groups = {g.name: g.preferred_version.group_version for g in k8s.ApisApi(api_client).get_api_versions().groups}
    assert groups['coordination.k8s.io'] == 'coordination.k8s.io/v1'
    coord = k8s.CoordinationV1Api(api_client)
    body = {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease', 'metadata': {'name': 'x', 'namespace': NS},
            'spec': {'holderIdentity': 'a', 'leaseDurationSeconds': 30}}
    created = coord.create_namespaced_lease(NS, body)
    with pytest.raises(ApiException, match=r'AlreadyExists|already exists'):
        coord.create_namespaced_lease(NS, body)
    stale = created.metadata.resource_version
    created.spec.holder_identity = 'b'
    coord.replace_namespaced_lease('x', NS, created)
    created.spec.holder_identity = 'c'
    created.metadata.resource_version = stale
    with pytest.raises(ApiException, match='Conflict'):
        coord.replace_namespaced_lease('x', NS, created)
    with pytest.raises(ApiException, match='Precondition failed'):
        coord.delete_namespaced_lease('x', NS, body={'preconditions': {'resourceVersion': stale}})
    assert double.store.get('leases', NS, 'x')['spec']['holderIdentity'] == 'b'
    assert [i.metadata.name for i in coord.list_namespaced_lease(NS).items] == ['x']


# -- the planner's compare-and-swap against the double --------------------------------------------

def test_two_concurrent_runs_exactly_one_wins(double):
    holders = ['awx-job-%d' % n for n in range(1, 7)]
    barrier = threading.Barrier(len(holders))
    outcomes = {}

    def attempt(holder):
        client = _client(double)
        barrier.wait()
        step, _before, _after = ll.run(client, NS, NAME, 'node-rotation', 'acquired', holder, 600)
        outcomes[holder] = step['action']

    threads = [threading.Thread(target=attempt, args=(h,)) for h in holders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [h for h, action in outcomes.items() if action == 'created']
    assert len(outcomes) == len(holders) and len(winners) == 1, outcomes
    assert all(action == 'refused' for h, action in outcomes.items() if h not in winners), outcomes
    assert _lease(double)['spec']['holderIdentity'] == winners[0]


def test_release_only_our_own_and_renew_after_loss_fails(double):
    client = _client(double)
    step, _b, _a = ll.run(client, NS, NAME, 'node-rotation', 'acquired', 'awx-job-1', 600)
    assert step['action'] == 'created'
    step, _b, _a = ll.run(client, NS, NAME, 'node-rotation', 'released', 'awx-job-2', 600)
    assert step['action'] == 'not_ours' and _lease(double)['spec']['holderIdentity'] == 'awx-job-1'
    step, _b, _a = ll.run(client, NS, NAME, 'node-rotation', 'released', 'awx-job-1', 600)
    assert step['action'] == 'released' and _lease(double) is None
    step, _b, _a = ll.run(client, NS, NAME, 'node-rotation', 'renewed', 'awx-job-1', 600)
    assert step['action'] == 'lost' and _lease(double) is None


# -- the module -----------------------------------------------------------------------------------

LOCK_TASK = """
- name: Lock
  netmedic.k8s.cluster_lock:
    family: node-rotation
    state: {state}
    {extra}
  register: lock
"""


def _lock_task(state='acquired', **extra):
    lines = '\n    '.join('%s: %s' % (k, v) for k, v in extra.items())
    return LOCK_TASK.format(state=state, extra=lines)


def test_module_acquire_renew_release_cycle(double, module_tasks):
    rc, results, output = module_tasks(double, _lock_task(job_id=4711), extra_env=ENV)
    assert rc == 0, output
    got = results['Lock']
    assert got['changed'] and got['holder'] == 'awx-job-4711' and got['lock']['action'] == 'created'
    lease = _lease(double)
    assert lease['spec']['holderIdentity'] == 'awx-job-4711' and lease['spec']['leaseDurationSeconds'] == 3600
    # Again: already ours, more than half the lease left -> no write (idempotent).
    rc, results, output = module_tasks(double, _lock_task(job_id=4711), extra_env=ENV)
    assert rc == 0 and not results['Lock']['changed'], output
    assert _lease(double)['metadata']['resourceVersion'] == lease['metadata']['resourceVersion']
    rc, results, output = module_tasks(double, _lock_task('renewed', holder='awx-job-4711', duration=7200), extra_env=ENV)
    assert rc == 0 and results['Lock']['changed'] and results['Lock']['lock']['action'] == 'renewed', output
    assert _lease(double)['spec']['leaseDurationSeconds'] == 7200
    rc, results, output = module_tasks(double, _lock_task('released', holder='awx-job-4711'), extra_env=ENV)
    assert rc == 0 and results['Lock']['changed'], output
    assert _lease(double) is None
    rc, results, output = module_tasks(double, _lock_task('released', holder='awx-job-4711'), extra_env=ENV)
    assert rc == 0 and not results['Lock']['changed'], output


def test_module_identity_without_job_id_has_a_nonce(double, module_tasks):
    env = dict(ENV, AWX_JOB_ID='')
    rc, results, output = module_tasks(double, _lock_task(), extra_env=env)
    assert rc == 0, output
    holder = results['Lock']['holder']
    assert '@' in holder and '/' in holder and _lease(double)['spec']['holderIdentity'] == holder
    # A second run from the same controller is another holder: refused, the Lease unchanged.
    rc, results, output = module_tasks(double, _lock_task(), extra_env=env)
    assert rc != 0 and 'another run is in progress' in results['Lock']['msg'], output
    assert _lease(double)['spec']['holderIdentity'] == holder


def test_module_job_id_from_the_awx_environment(double, module_tasks):
    rc, results, output = module_tasks(double, _lock_task(), extra_env=dict(ENV, AWX_JOB_ID='99'))
    assert rc == 0 and results['Lock']['holder'] == 'awx-job-99', output


def test_module_missing_fields_are_held_and_takeover_is_explicit(double, module_tasks):
    _put_lease(double, {'holderIdentity': 'old-run'})                      # no renewTime, no duration
    rc, results, output = module_tasks(double, _lock_task(job_id=1), extra_env=ENV)
    assert rc != 0 and 'treated as HELD' in results['Lock']['msg'], output
    assert _lease(double)['spec'] == {'holderIdentity': 'old-run'}
    rc, results, output = module_tasks(double, _lock_task(job_id=1, takeover='true'), extra_env=ENV)
    assert rc == 0 and results['Lock']['lock']['action'] == 'taken_over', output
    assert results['Lock']['lock']['previous_holder'] == 'old-run' and results['Lock']['warnings']
    assert _lease(double)['spec']['holderIdentity'] == 'awx-job-1'
    assert _lease(double)['spec']['leaseTransitions'] == 1


def test_module_expired_lease_is_taken_over_live_one_refused(double, module_tasks):
    _put_lease(double, {'holderIdentity': 'awx-job-7', 'leaseDurationSeconds': 60, 'renewTime': _ago(30),
                        'acquireTime': _ago(30)})
    rc, results, output = module_tasks(double, _lock_task(job_id=8), extra_env=ENV)
    assert rc != 0 and "held by 'awx-job-7'" in results['Lock']['msg'], output
    lease = _lease(double)
    lease['spec']['renewTime'] = _ago(120)
    double.store.update('leases', NS, NAME, lease)
    rc, results, output = module_tasks(double, _lock_task(job_id=8), extra_env=ENV)
    assert rc == 0 and results['Lock']['lock']['action'] == 'taken_over', output
    assert _lease(double)['spec']['holderIdentity'] == 'awx-job-8'


def test_module_check_mode_never_writes(double, playbook):
    task = _lock_task(job_id=5) + '  check_mode: true\n  diff: true\n'
    rc, results, output = playbook(double, task, extra_env=ENV)
    assert rc == 0 and results['Lock']['changed'] and results['Lock']['lock']['action'] == 'created', output
    assert results['Lock']['diff'] and _lease(double) is None
    _put_lease(double, {'holderIdentity': 'awx-job-7', 'leaseDurationSeconds': 600, 'renewTime': _ago(1)})
    rc, results, output = playbook(double, task, extra_env=ENV)
    assert rc == 0 and not results['Lock']['changed'], output
    assert results['Lock']['lock']['action'] == 'refused' and not results['Lock']['lock']['held']
    assert _lease(double)['spec']['holderIdentity'] == 'awx-job-7'


@pytest.mark.parametrize('extra, message', [
    (dict(family='Node_Rotation'), 'family must be a lowercase DNS label'),
    (dict(family='x', duration=0), 'duration must be whole seconds between 1'),
    (dict(family='x', job_id='12a'), 'job_id must be the AWX job number'),
    (dict(family='x', state='renewed'), 'holder is required'),
    (dict(family='x', namespace='Kube_System'), 'namespace must be a lowercase DNS label'),
])
def test_module_bad_input_fails_before_the_api(double, module_tasks, extra, message):
    state = extra.pop('state', 'acquired')
    task = LOCK_TASK.replace('    family: node-rotation\n', '').format(
        state=state, extra='\n    '.join('%s: "%s"' % (k, v) for k, v in extra.items()))
    rc, results, output = module_tasks(double, task, extra_env=ENV)
    assert rc != 0 and message in results['Lock']['msg'], output
    assert double.store.list('leases')[0] == []


def test_two_jobs_or_awx_slices_racing_through_ansible_exactly_one_wins(double, tmp_path):
    """Two ansible-playbook processes (two jobs, or two slices of a sliced job: each has its own AWX job id)."""
    play = [{'hosts': 'localhost', 'gather_facts': False, 'vars': {'ansible_python_interpreter': module_python()[0]},
             'tasks': [{'name': 'Lock', 'netmedic.k8s.cluster_lock': {'family': 'node-rotation'}}]}]
    path = tmp_path / 'race.yml'
    path.write_text(yaml.safe_dump(play))
    procs = {}
    for job in ('101', '102'):
        tmp = tmp_path / ('tmp-%s' % job)
        tmp.mkdir()
        env = playbook_env(double, tmp_path, dict(ENV, TMPDIR=str(tmp), AWX_JOB_ID=job, ANSIBLE_LOCAL_TEMP=str(tmp / 'ansible-tmp')))
        procs[job] = subprocess.Popen(playbook_command(path), env=env, cwd=str(tmp_path), text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    outcome = {}
    for job, proc in procs.items():
        out, _err = proc.communicate(timeout=300)
        data = json.loads(out[out.index('{'):])
        outcome[job] = (proc.returncode, data['plays'][0]['tasks'][0]['hosts']['localhost'])
    winners = [job for job, (rc, _res) in outcome.items() if rc == 0]
    assert len(winners) == 1, outcome
    loser = next(job for job in outcome if job not in winners)
    assert "held by 'awx-job-%s'" % winners[0] in outcome[loser][1]['msg'], outcome
    assert _lease(double)['spec']['holderIdentity'] == 'awx-job-%s' % winners[0]
