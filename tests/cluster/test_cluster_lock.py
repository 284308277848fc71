"""Cluster lock (issue 9 "Cluster lock"), on the double and on the real kube-apiserver (issue 15 item 4).

"A lock excludes other jobs" is a safety promise: the ``lease_lock`` planner's compare-and-swap on a
``coordination.k8s.io/v1`` Lease (racing runs: exactly one wins, the others refused by the server's
409s), and the ``netmedic.k8s.cluster_lock`` module over it. Ported from tests/lab/test_cluster_lock.py:
the Leases are planted, edited and read back through the API (``cluster.api``), not the double's store,
so the same tests run on whichever server ``cluster`` is (tests/cluster/conftest.py; a real one with
``NETMEDIC_TEST_WRITABLE=1``).

Each test works in a namespace of its own (``scratch``, the module's ``namespace``), except the
acquire/renew/release cycle, which keeps the module's default ``kube-system`` (its Lease is removed
before and after). The module runs in the test process (``module_tasks``, tests/cluster/conftest.py);
check mode and the race of two jobs are real ``ansible-playbook`` runs.
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import yaml
from kubernetes.client.rest import ApiException

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client  # noqa: E402
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import lock as ll  # noqa: E402
from tests.cluster.test_workflows import run_tasks as run_playbook_tasks  # noqa: E402
from tests.lab.playbook_run import module_python, playbook_command, playbook_env  # noqa: E402

ENV = {'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections')}
NAME = 'netmedic-node-rotation'
DEFAULT_NS = 'kube-system'


def _coord(cluster):
    return cluster.coordination


def _lease(cluster, namespace, name=NAME):
    """The Lease as plain data (camelCase, as the API sends it), None when there is none."""
    try:
        lease = _coord(cluster).read_namespaced_lease(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return cluster.api.sanitize_for_serialization(lease)


def _put_lease(cluster, namespace, spec, name=NAME):
    return _coord(cluster).create_namespaced_lease(namespace, {
        'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease', 'metadata': {'name': name, 'namespace': namespace}, 'spec': spec})


def _ago(seconds):
    return ll.format_time(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds))


def _client(cluster):
    return ll.LeaseApi(k8s_client.Cluster({'kubeconfig': str(cluster.kubeconfig), 'context': cluster.context}), timeout=10)


@pytest.fixture
def default_lease(writable):
    """The module's default Lease (kube-system/netmedic-node-rotation) absent before and after the test."""
    def clear():
        try:
            _coord(writable).delete_namespaced_lease(NAME, DEFAULT_NS)
        except ApiException as exc:
            if exc.status != 404:
                raise
    clear()
    yield writable
    clear()


# -- the planner's compare-and-swap ----------------------------------------------------------------

def test_two_concurrent_runs_exactly_one_wins(writable, scratch):
    cluster = writable
    holders = ['awx-job-%d' % n for n in range(1, 7)]
    barrier = threading.Barrier(len(holders))
    outcomes = {}
    # one client per run, made here: building kubernetes clients in six threads at once is not thread-safe (a client
    # without a host, "No host specified", seen once in ~10 runs); the race under test is the Lease writes'
    clients = {holder: _client(cluster) for holder in holders}

    def attempt(holder):
        client = clients[holder]
        barrier.wait()
        step, _before, _after = ll.run(client, scratch, NAME, 'node-rotation', 'acquired', holder, 600)
        outcomes[holder] = step['action']

    threads = [threading.Thread(target=attempt, args=(h,)) for h in holders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [h for h, action in outcomes.items() if action == 'created']
    assert len(outcomes) == len(holders) and len(winners) == 1, (cluster.server, outcomes)
    assert all(action == 'refused' for h, action in outcomes.items() if h not in winners), (cluster.server, outcomes)
    assert _lease(cluster, scratch)['spec']['holderIdentity'] == winners[0]


def test_release_only_our_own_and_renew_after_loss_fails(writable, scratch):
    cluster = writable
    client = _client(cluster)
    step, _b, _a = ll.run(client, scratch, NAME, 'node-rotation', 'acquired', 'awx-job-1', 600)
    assert step['action'] == 'created'
    step, _b, _a = ll.run(client, scratch, NAME, 'node-rotation', 'released', 'awx-job-2', 600)
    assert step['action'] == 'not_ours' and _lease(cluster, scratch)['spec']['holderIdentity'] == 'awx-job-1'
    step, _b, _a = ll.run(client, scratch, NAME, 'node-rotation', 'released', 'awx-job-1', 600)
    assert step['action'] == 'released' and _lease(cluster, scratch) is None
    step, _b, _a = ll.run(client, scratch, NAME, 'node-rotation', 'renewed', 'awx-job-1', 600)
    assert step['action'] == 'lost' and _lease(cluster, scratch) is None


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


def test_module_acquire_renew_release_cycle(default_lease, module_tasks):
    """In the module's default namespace, kube-system."""
    cluster = default_lease
    rc, results, output = module_tasks(cluster, _lock_task(job_id=4711))
    assert rc == 0, output
    got = results['Lock']
    assert got['changed'] and got['holder'] == 'awx-job-4711' and got['lock']['action'] == 'created'
    lease = _lease(cluster, DEFAULT_NS)
    assert lease['spec']['holderIdentity'] == 'awx-job-4711' and lease['spec']['leaseDurationSeconds'] == 3600
    # Again: already ours, more than half the lease left -> no write (idempotent).
    rc, results, output = module_tasks(cluster, _lock_task(job_id=4711))
    assert rc == 0 and not results['Lock']['changed'], output
    assert _lease(cluster, DEFAULT_NS)['metadata']['resourceVersion'] == lease['metadata']['resourceVersion']
    rc, results, output = module_tasks(cluster, _lock_task('renewed', holder='awx-job-4711', duration=7200))
    assert rc == 0 and results['Lock']['changed'] and results['Lock']['lock']['action'] == 'renewed', output
    assert _lease(cluster, DEFAULT_NS)['spec']['leaseDurationSeconds'] == 7200
    rc, results, output = module_tasks(cluster, _lock_task('released', holder='awx-job-4711'))
    assert rc == 0 and results['Lock']['changed'], output
    assert _lease(cluster, DEFAULT_NS) is None
    rc, results, output = module_tasks(cluster, _lock_task('released', holder='awx-job-4711'))
    assert rc == 0 and not results['Lock']['changed'], output


def test_module_identity_without_job_id_has_a_nonce(writable, scratch, module_tasks):
    cluster = writable
    rc, results, output = module_tasks(cluster, _lock_task(namespace=scratch), extra_env={'AWX_JOB_ID': ''})
    assert rc == 0, output
    holder = results['Lock']['holder']
    assert '@' in holder and '/' in holder and _lease(cluster, scratch)['spec']['holderIdentity'] == holder
    # A second run from the same controller is another holder: refused, the Lease unchanged.
    rc, results, output = module_tasks(cluster, _lock_task(namespace=scratch), extra_env={'AWX_JOB_ID': ''})
    assert rc != 0 and 'another run is in progress' in results['Lock']['msg'], output
    assert _lease(cluster, scratch)['spec']['holderIdentity'] == holder


def test_module_job_id_from_the_awx_environment(writable, scratch, module_tasks):
    rc, results, output = module_tasks(writable, _lock_task(namespace=scratch), extra_env={'AWX_JOB_ID': '99'})
    assert rc == 0 and results['Lock']['holder'] == 'awx-job-99', output


def test_module_missing_fields_are_held_and_takeover_is_explicit(writable, scratch, module_tasks):
    cluster = writable
    _put_lease(cluster, scratch, {'holderIdentity': 'old-run'})                       # no renewTime, no duration
    rc, results, output = module_tasks(cluster, _lock_task(job_id=1, namespace=scratch))
    assert rc != 0 and 'treated as HELD' in results['Lock']['msg'], output
    assert _lease(cluster, scratch)['spec'] == {'holderIdentity': 'old-run'}
    rc, results, output = module_tasks(cluster, _lock_task(job_id=1, takeover='true', namespace=scratch))
    assert rc == 0 and results['Lock']['lock']['action'] == 'taken_over', output
    assert results['Lock']['lock']['previous_holder'] == 'old-run' and results['Lock']['warnings']
    lease = _lease(cluster, scratch)
    assert lease['spec']['holderIdentity'] == 'awx-job-1' and lease['spec']['leaseTransitions'] == 1


def test_module_expired_lease_is_taken_over_live_one_refused(writable, scratch, module_tasks):
    cluster = writable
    _put_lease(cluster, scratch, {'holderIdentity': 'awx-job-7', 'leaseDurationSeconds': 60, 'renewTime': _ago(30),
                                  'acquireTime': _ago(30)})
    rc, results, output = module_tasks(cluster, _lock_task(job_id=8, namespace=scratch))
    assert rc != 0 and "held by 'awx-job-7'" in results['Lock']['msg'], output
    lease = _lease(cluster, scratch)
    lease['spec']['renewTime'] = _ago(120)                                            # the holder stopped renewing
    _coord(cluster).replace_namespaced_lease(NAME, scratch, lease)
    rc, results, output = module_tasks(cluster, _lock_task(job_id=8, namespace=scratch))
    assert rc == 0 and results['Lock']['lock']['action'] == 'taken_over', output
    assert _lease(cluster, scratch)['spec']['holderIdentity'] == 'awx-job-8'


def test_module_check_mode_never_writes(writable, scratch, tmp_path):
    """A real ansible-playbook run in check mode: plans the Lease, writes none; a live one is refused, left as it is."""
    cluster = writable
    task = {'name': 'Lock', 'check_mode': True, 'diff': True, 'register': 'lock',
            'netmedic.k8s.cluster_lock': {'family': 'node-rotation', 'job_id': 5, 'namespace': scratch}}
    rc, results, output = run_playbook_tasks(cluster, tmp_path, [task])
    assert rc == 0 and results['Lock']['changed'] and results['Lock']['lock']['action'] == 'created', output
    assert results['Lock']['diff'] and _lease(cluster, scratch) is None
    _put_lease(cluster, scratch, {'holderIdentity': 'awx-job-7', 'leaseDurationSeconds': 600, 'renewTime': _ago(1)})
    before = _lease(cluster, scratch)
    rc, results, output = run_playbook_tasks(cluster, tmp_path, [task])
    assert rc == 0 and not results['Lock']['changed'], output
    assert results['Lock']['lock']['action'] == 'refused' and not results['Lock']['lock']['held']
    after = _lease(cluster, scratch)
    assert after['spec']['holderIdentity'] == 'awx-job-7'
    assert after['metadata']['resourceVersion'] == before['metadata']['resourceVersion']


@pytest.mark.parametrize('extra, message', [
    (dict(family='Node_Rotation'), 'family must be a lowercase DNS label'),
    (dict(family='x', duration=0), 'duration must be whole seconds between 1'),
    (dict(family='x', job_id='12a'), 'job_id must be the AWX job number'),
    (dict(family='x', state='renewed'), 'holder is required'),
    (dict(family='x', namespace='Kube_System'), 'namespace must be a lowercase DNS label'),
])
def test_module_bad_input_fails_before_the_api(writable, scratch, module_tasks, extra, message):
    """Refused with the message, no Lease written (in the test's namespace, nor a netmedic one in kube-system)."""
    cluster = writable
    extra = dict(extra)
    state = extra.pop('state', 'acquired')
    extra.setdefault('namespace', scratch)
    task = LOCK_TASK.replace('    family: node-rotation\n', '').format(
        state=state, extra='\n    '.join('%s: "%s"' % (k, v) for k, v in extra.items()))
    rc, results, output = module_tasks(cluster, task)
    assert rc != 0 and message in results['Lock']['msg'], output
    assert _coord(cluster).list_namespaced_lease(scratch).items == []
    assert not [lease.metadata.name for lease in _coord(cluster).list_namespaced_lease(DEFAULT_NS).items
                if lease.metadata.name.startswith('netmedic-')]


def test_two_jobs_or_awx_slices_racing_through_ansible_exactly_one_wins(writable, scratch, tmp_path, request):
    """Two ansible-playbook processes (two jobs, or two slices of a sliced job: each has its own AWX job id)."""
    cluster = writable
    play = [{'hosts': 'localhost', 'gather_facts': False, 'vars': {'ansible_python_interpreter': module_python()[0]},
             'tasks': [{'name': 'Lock', 'netmedic.k8s.cluster_lock': {'family': 'node-rotation', 'namespace': scratch}}]}]
    path = tmp_path / 'race.yml'
    path.write_text(yaml.safe_dump(play))
    procs = {}
    # ansible-playbook's RPC socket lives under $TMPDIR (107 bytes at most): short directories, not tmp_path's
    short = Path(tempfile.mkdtemp(prefix='nm-lock-'))
    request.addfinalizer(lambda: shutil.rmtree(short, ignore_errors=True))
    for job in ('101', '102'):
        tmp = short / job
        tmp.mkdir()
        env = dict(ENV, TMPDIR=str(tmp), AWX_JOB_ID=job, ANSIBLE_LOCAL_TEMP=str(tmp / 'ansible-tmp'))
        procs[job] = subprocess.Popen(playbook_command(path), env=playbook_env(cluster, tmp_path, env), cwd=str(tmp_path), text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    outcome = {}
    for job, proc in procs.items():
        out, _err = proc.communicate(timeout=300)
        data = json.loads(out[out.index('{'):])
        outcome[job] = (proc.returncode, data['plays'][0]['tasks'][0]['hosts']['localhost'])
    winners = [job for job, (rc, _res) in outcome.items() if rc == 0]
    assert len(winners) == 1, (cluster.server, outcome)
    loser = next(job for job in outcome if job not in winners)
    assert "held by 'awx-job-%s'" % winners[0] in outcome[loser][1]['msg'], outcome
    assert _lease(cluster, scratch)['spec']['holderIdentity'] == 'awx-job-%s' % winners[0]
