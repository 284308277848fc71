"""The W-1 runner: role netmedic.k8s.node_rotation as a one-play playbook on localhost with a provider hook, for
tests/lab (the API double) and tests/cluster (the double or the real kube-apiserver) alike (issue 15 item 4: moved here
from tests/lab/test_node_rotation_spine.py, so both suites run the role the same way; no copy of it elsewhere).

``run(target, tmp_path, label, hook=BOOT, env=None, check=False, **variables)`` -> ``(rc, output)``; ``command``/``job_env``
for a test that starts the ``ansible-playbook`` process itself (two jobs at once). ``target`` is anything with a
``kubeconfig_path`` (a tests/lab double, a tests/cluster ``Cluster``). The stand-in hooks (``BOOT``, ``RECORD_LEASE``)
talk to the API themselves through ``test_api``/``test_token``: the double's URL and token, passed only when the target
has them (a hook run against another target would fail, not pass); ``WAIT_FLAG`` waits for the test's ``go``.
``run_job_template`` runs playbooks/node_rotation.yml itself (moved from tests/lab/test_node_rotation_playbook.py),
``role_task``/``task_result`` the role as a task of the ``playbook`` fixtures (from tests/lab/test_node_rotation_role.py).
Below them, what W-1 could change read through a tests/cluster ``Cluster``'s API, and the Nodes put back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import waiter
from tests.lab.playbook_run import module_python, playbook_command, playbook_env, run_playbook
from tests.lab.provider_hooks import boot_id_hook

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'node_rotation.yml'
NODES = ['lab-node-1', 'lab-node-2', 'lab-node-3']
LEASE = ('kube-system', 'netmedic-node-rotation')

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


def hook_vars(target):
    """``test_api``/``test_token`` for the stand-in hooks: the double's URL and token, nothing for another target."""
    if getattr(target, 'url', None) and getattr(target, 'token', None):
        return {'test_api': target.url, 'test_token': target.token}
    return {}


def job_env(target, tmp_path, **extra):
    """The environment of a run against ``target``: the change report on, no AWX job id, ``extra`` last."""
    return playbook_env(target, tmp_path, dict({'ANSIBLE_CALLBACKS_ENABLED': 'netmedic.k8s.change_report', 'AWX_JOB_ID': None},
                                               **extra))


def play(target, tmp_path, label, hook, **variables):
    """The role in a one-play playbook, with the provider ``hook`` (task file text); returns its path."""
    hook_path = tmp_path / ('hook-%s.yml' % label)
    hook_path.write_text(hook)
    merged = {'node_rotation_nodes': NODES, 'node_rotation_poll_interval': 1, 'node_rotation_ready_timeout': 30,
              'node_rotation_health_timeout': 30, 'node_rotation_drain_timeout': 30,
              'node_rotation_provider_tasks': str(hook_path),
              'test_record': str(tmp_path / 'leases.jsonl'), 'test_flag': str(tmp_path / 'go')}
    merged.update(hook_vars(target))
    merged.update(variables)
    playbook = [{'hosts': 'localhost', 'gather_facts': False, 'vars': {'ansible_python_interpreter': module_python()[0]},
                 'tasks': [{'name': 'W-1', 'ansible.builtin.include_role': {'name': 'netmedic.k8s.node_rotation'},
                            'vars': merged}]}]
    path = tmp_path / ('play-%s.yml' % label)
    path.write_text(yaml.safe_dump(playbook))
    return path


def command(target, tmp_path, label, hook, check=False, **variables):
    return playbook_command(play(target, tmp_path, label, hook, **variables), check=check)


def run(target, tmp_path, label, hook=BOOT, env=None, check=False, **variables):
    """One run to its end with TMPDIR ``tmp_path/tmp-<label>``: ``(rc, output)``."""
    tmp = tmp_path / ('tmp-%s' % label)
    tmp.mkdir(exist_ok=True)
    rc, _results, output = run_playbook(target, tmp_path, play(target, tmp_path, label, hook, **variables), check=check,
                                        timeout=600, env=dict({'ANSIBLE_CALLBACKS_ENABLED': 'netmedic.k8s.change_report',
                                                               'AWX_JOB_ID': None, 'TMPDIR': str(tmp)}, **(env or {})))
    return rc, output


def run_job_template(target, tmp_path, *extra, check=False):
    """playbooks/node_rotation.yml as the job template runs it (its variables validated, then the role), with the
    ``BOOT`` hook and short waits; ``extra``: more ``ansible-playbook`` arguments (``-e``). ``(rc, results, output)``."""
    hook = tmp_path / 'hook.yml'
    hook.write_text(BOOT)
    variables = {'netmedic_rotation_provider_tasks': str(hook), 'netmedic_rotation_poll_interval': 1,
                 'netmedic_rotation_drain_timeout': 60, 'netmedic_rotation_ready_timeout': 60,
                 'netmedic_rotation_health_timeout': 60}
    variables.update(hook_vars(target))
    return run_playbook(target, tmp_path, PLAYBOOK, '-e', json.dumps(variables), *extra, check=check)


def role_task(target, tmp_path, hook=True, **extra):
    """The role as one task (YAML text) for the ``playbook`` fixtures of both suites, rotating all three Nodes with the
    ``BOOT`` hook (``hook=False``: none), holder ``ci-a`` and 30 s waits; ``extra`` overrides its variables (moved from
    tests/lab/test_node_rotation_role.py)."""
    variables = {'node_rotation_nodes': NODES, 'node_rotation_poll_interval': 1, 'node_rotation_ready_timeout': 30,
                 'node_rotation_health_timeout': 30, 'node_rotation_drain_timeout': 30, 'node_rotation_holder': 'ci-a'}
    variables.update(hook_vars(target))
    if hook:
        path = tmp_path / 'provider.yml'
        path.write_text(BOOT)
        variables['node_rotation_provider_tasks'] = str(path)
    variables.update(extra)
    task = {'name': 'W-1', 'ansible.builtin.include_role': {'name': 'netmedic.k8s.node_rotation'}, 'vars': variables}
    return yaml.safe_dump([task])


def task_result(results, name):
    """The result of the role's task ``name`` (reported as ``<role> : <name>``)."""
    found = [r for key, r in results.items() if key == name or key.endswith(' : ' + name)]
    assert found, 'no task %r in %s' % (name, sorted(results))
    return found[0]


# -- what W-1 could change, read through the API of a tests/cluster ``Cluster`` (the double or the real server) -------

CORDON_ANNOTATION = 'netmedic.io/cordoned-by'
UNSCHEDULABLE_TAINT = 'node.kubernetes.io/unschedulable'


def cordoned(cluster):
    """``{node: cordoned}`` of the seed's Nodes."""
    return {n: bool(cluster.get('Node', None, n)['spec'].get('unschedulable')) for n in NODES}


def boot_ids(cluster):
    """``{node: bootID}``: a provider hook that ran would have changed one."""
    return {n: cluster.get('Node', None, n)['status']['nodeInfo'].get('bootID') for n in NODES}


def web_pods(cluster):
    """``{uid: (node, deletionTimestamp)}`` of the pods of Deployment ``default/web``: an eviction (on the real server a
    graceful deletion: the pod stays, Terminating, until its kubelet ends it) changes the mapping at once."""
    return {p['metadata']['uid']: (p['spec'].get('nodeName'), p['metadata'].get('deletionTimestamp'))
            for p in cluster.items('Pod', 'default', label_selector='app=web')}


# The reason of the ``double_strict`` marker of the tests that compare ``node_writes`` (tests/cluster/conftest.py).
NODE_RV_ON_DOUBLE = ("node_writes compares each Node's resourceVersion only on the double (on the real server the "
                     'simulated kubelets write status): there it is the only check of a write to a Node\'s status')


def node_writes(cluster):
    """Per Node what any write to it but its status shows: spec, labels, annotations and the non-status managedFields;
    on the double also the resourceVersion (on the real server it moves with lab/k8s/nodesim.py's status heartbeat, as
    with a kubelet's, so there the rest stands for it)."""
    found = {}
    for name in NODES:
        node = cluster.get('Node', None, name)
        meta = node['metadata']
        managed = sorted(json.dumps(m, sort_keys=True) for m in meta.get('managedFields') or [] if m.get('subresource') != 'status')
        found[name] = (node['spec'], meta.get('labels'), meta.get('annotations'), managed,
                       meta['resourceVersion'] if cluster.is_double else None)
    return found


def node_state(cluster):
    """Per Node: cordoned, netmedic's cordon annotation, the unschedulable taint (the real controller's, after a cordon)."""
    state = {}
    for name in NODES:
        node = cluster.get('Node', None, name)
        taints = [t['key'] for t in node['spec'].get('taints') or [] if t.get('key') == UNSCHEDULABLE_TAINT]
        state[name] = (bool(node['spec'].get('unschedulable')), (node['metadata'].get('annotations') or {}).get(CORDON_ANNOTATION), taints)
    return state


UNCORDONED = dict.fromkeys(NODES, (False, None, []))


def _pod_ready(pod):
    status = pod.get('status') or {}
    return (not pod['metadata'].get('deletionTimestamp') and status.get('phase') == 'Running'
            and any(c.get('type') == 'Ready' and c.get('status') == 'True' for c in status.get('conditions') or []))


def web_settled(cluster, timeout=120):
    """Wait until Deployment ``default/web`` runs three Ready pods, none Terminating (an earlier test's drain or a
    controller's replacement finished), so the pods read before a run change only if the run changes them."""
    def probe():
        return cluster.items('Pod', 'default', label_selector='app=web')

    try:
        waiter.wait_until(probe, lambda pods: len(pods) == 3 and all(_pod_ready(p) for p in pods), waiter.deadline(timeout), 0.5)
    except waiter.WaitTimeout as exc:
        pytest.fail('the web pods not settled after %s s: %s' % (timeout, [(p['metadata']['name'], p['status'].get('phase'),
                                                                           p['metadata'].get('deletionTimestamp')) for p in exc.last]))


def restore_nodes(cluster):
    """Every seed Node uncordoned, netmedic's cordon annotation gone, the real controller's taint off again (what a run
    that failed where it must not have left behind; the next test, and the next file, find the Nodes as seeded)."""
    for name, (is_cordoned, owner, _taints) in node_state(cluster).items():
        if is_cordoned or owner:
            cluster.core.patch_node(name, {'spec': {'unschedulable': None}, 'metadata': {'annotations': {CORDON_ANNOTATION: None}}},
                                    _content_type='application/merge-patch+json')
    waiter.wait_until(lambda: node_state(cluster), lambda state: state == UNCORDONED, waiter.deadline(60), 0.5)
