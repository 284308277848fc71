"""Role netmedic.k8s.ipvs_scheduler (catalog W-3 = C-2 + C-7 with rollback) against the API double.

The double's simulated kube-proxy logs ``Using ipvs Proxier.`` on a node only when that node has
``ip_vs_<scheduler>`` loaded (``StaticNodeState`` here; ``lab.vmstate.VMNodeState`` on the VM
lab), and the documented ``Can't use the IPVS proxier ...`` line otherwise.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.kubedouble import StaticNodeState

DOUBLE_ONLY = ("kubelet: the restart is verified by kube-proxy's log line ('Using ipvs Proxier.', or the fallback when a node lacks the scheduler's "
               "kernel module), written by the double's simulated kube-proxy; the simulated nodes serve no pod logs")

ROOT = Path(__file__).resolve().parents[2]
ENV = {'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections')}
NS = 'kube-system'
NODES = ('lab-node-1', 'lab-node-2', 'lab-node-3')
KP = 'k8s-app=kube-proxy-worker'


def _proxy_pods(double):
    pods, _rv = double.store.list('pods', NS, label_selector=KP)
    return {p['spec']['nodeName']: p for p in pods}


def _logs(double, pod):
    return ''.join((double.store.logs.get(pod['metadata']['uid']) or {}).values())


def _task(results, name):
    """A role task's result; the json callback names it ``<role> : <task name>``."""
    found = [r for key, r in results.items() if key == name or key.endswith(' : ' + name)]
    assert found, 'no task %r in %s' % (name, sorted(results))
    return found[0]


RESTART = 'Restart the DaemonSets node by node, verifying each new pod (C-7)'


@pytest.fixture
def playbook(playbook):
    """conftest's ``playbook`` with a longer limit: the role now restarts one node per task (issue 9 finding 13)."""
    return lambda double, tasks, extra_env=None: playbook(double, tasks, extra_env=extra_env, timeout=900)


def _failed_step(results):
    """The node step that failed: role verified_rollout restarts one node per task (issue 9 finding 13)."""
    failed = [r for key, r in results.items() if ' : Restart and verify (C-7) - kube-proxy-worker on ' in key and r.get('failed')]
    assert len(failed) == 1, sorted(results)
    return failed[0]


def _step_nodes(results):
    """Nodes restarted and verified by the node steps, in order."""
    return [e['node'] for key, r in results.items() if ' : Restart and verify (C-7) - kube-proxy-worker on ' in key
            for e in r.get('restarted') or []]


def _worker(task):
    """The kube-proxy-worker item of a task looping over the discovered DaemonSets."""
    found = [r for r in task['results'] if r['item'] in ('kube-proxy-worker', {'item': 'kube-proxy-worker'})
             or (isinstance(r['item'], dict) and r['item'].get('item') == 'kube-proxy-worker')]
    assert len(found) == 1, task
    return found[0]


def _role(check=False, **extra):
    task = {'name': 'W-3', 'ansible.builtin.include_role': {'name': 'netmedic.k8s.ipvs_scheduler'},
            'vars': dict({'ipvs_scheduler_name': 'lc', 'ipvs_scheduler_timeout': 60}, **extra)}
    if check:
        task['ansible.builtin.include_role']['apply'] = {'check_mode': True}
    return yaml.safe_dump([task])


@pytest.fixture
def lc_everywhere():
    return StaticNodeState({n: {'ip_vs', 'ip_vs_rr', 'ip_vs_lc', 'nf_conntrack'} for n in NODES})


@pytest.fixture
def lc_missing_on_node_3():
    return StaticNodeState({'lab-node-1': {'ip_vs', 'ip_vs_rr', 'ip_vs_lc'},
                            'lab-node-2': {'ip_vs', 'ip_vs_rr', 'ip_vs_lc'},
                            'lab-node-3': {'ip_vs', 'ip_vs_rr'}})


def test_check_mode_then_change_then_idempotent(make_double, playbook, lc_everywhere):
    double = make_double(node_state=lc_everywhere)
    text = double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf']
    uids = {n: p['metadata']['uid'] for n, p in _proxy_pods(double).items()}

    rc, results, output = playbook(double, _role(check=True), extra_env=ENV)
    assert rc == 0, output
    assert _task(results, 'Set ipvs.scheduler in the kube-proxy ConfigMaps (C-2; backs up the old data)')['changed']
    assert double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf'] == text
    assert {n: p['metadata']['uid'] for n, p in _proxy_pods(double).items()} == uids      # nothing restarted

    rc, results, output = playbook(double, _role(), extra_env=ENV)
    assert rc == 0, output
    conf = yaml.safe_load(double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf'])
    assert conf['ipvs']['scheduler'] == 'lc'
    pods = _proxy_pods(double)
    assert all(pods[n]['metadata']['uid'] != uids[n] for n in NODES)                     # every node restarted
    assert all('Using ipvs Proxier.' in _logs(double, pods[n]) for n in NODES)
    restart = _worker(_task(results, RESTART))
    assert [r['node'] for r in restart['restarted']] == list(NODES)
    # Issue 9 finding 13: one task per node, each saying "node i/N <name>" before it runs, and a summary.
    assert _step_nodes(results) == list(NODES)
    for i, node in enumerate(NODES, 1):
        label = 'kube-proxy-worker node %d/3 %s' % (i, node)
        assert _task(results, 'Progress - ' + label)['msg'].startswith(label + ': restarting'), sorted(results)
        assert _task(results, 'Progress, step done - ' + label)['msg'].startswith(label + ': restarted, verified')
    summary = _task(results, 'Summary (W-3)')['msg']
    assert any('changed ipvs.scheduler rr lc' in line for line in summary), summary
    assert any('3 node(s) restarted and verified in this run' in line for line in summary), summary

    again_uids = {n: p['metadata']['uid'] for n, p in pods.items()}
    rc, results, output = playbook(double, _role(), extra_env=ENV)
    assert rc == 0, output
    assert not any(r.get('changed') for r in results.values()), output
    assert {n: p['metadata']['uid'] for n, p in _proxy_pods(double).items()} == again_uids


def test_missing_module_is_detected_and_rolled_back(make_double, playbook, lc_missing_on_node_3):
    double = make_double(node_state=lc_missing_on_node_3)
    text = double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf']

    rc, results, output = playbook(double, _role(), extra_env=ENV)
    assert rc != 0, output                                                               # the play stops
    failed = _failed_step(results)
    assert failed['failed_node']['node'] == 'lab-node-3'
    assert "Can't use the IPVS proxier" in failed['failed_node']['line'] and 'ip_vs_lc' in failed['failed_node']['line']
    assert _step_nodes(results) == ['lab-node-1', 'lab-node-2']
    assert not any(k.endswith(RESTART) for k in results), 'the whole-DaemonSet task must not run after a failed step'
    report = _task(results, 'Report the failed node')['msg']
    assert any(line.startswith('kube-proxy-worker node 3/3 lab-node-3: FAILED (failure line)') for line in report), report
    # Rollback: the ConfigMap holds exactly the old text again ...
    assert double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf'] == text
    # ... and every node's kube-proxy runs it: rr, which every node has.
    pods = _proxy_pods(double)
    for node in NODES:
        log = _logs(double, pods[node])
        assert 'Using ipvs Proxier.' in log, (node, log)
    rolled = _task(results, 'Restart the pods already restarted (and the failed one) with the restored configuration')
    assert sorted(r['node'] for r in _worker(rolled)['restarted']) == list(NODES)
    stop = _task(results, 'Stop the workflow')
    assert stop['failed'] and 'rolled back' in stop['msg'], stop


def test_issue9_f5_resumed_run_rolls_back(make_double, playbook, lc_missing_on_node_3):
    """A job killed after the ConfigMap change (its restart never ran) is re-run: the ConfigMap no longer
    changes in this run, the restart fails on lab-node-3, and the rollback must still happen, from the backup."""
    double = make_double(node_state=lc_missing_on_node_3)
    before = double.store.get('configmaps', NS, 'kube-proxy-worker')
    text = before['data']['config.conf']
    killed = yaml.safe_dump([{'name': 'C-2 only (the job dies before the restart)', 'netmedic.k8s.kube_proxy_config': {
        'names': ['kube-proxy-worker'], 'settings': {'mode': 'ipvs', 'ipvs.scheduler': 'lc'}}}])
    rc, _results, output = playbook(double, killed, extra_env=ENV)
    assert rc == 0, output
    assert "scheduler: lc" in double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf']

    role = _role(ipvs_scheduler_configmaps=['kube-proxy-worker'], ipvs_scheduler_daemonsets=['kube-proxy-worker'])
    rc, _results, output = playbook(double, role, extra_env=ENV)
    assert rc != 0, output
    after = double.store.get('configmaps', NS, 'kube-proxy-worker')
    assert after['data'] == before['data'] and after['data']['config.conf'] == text    # the exact backed-up bytes
    pods = _proxy_pods(double)
    for node in NODES:                                                                   # every node runs rr again
        assert 'Using ipvs Proxier.' in _logs(double, pods[node]), node
    assert 'rolled back' in output and 'lab-node-3' in output


def test_issue9_f5_rerun_detects_the_node_a_failed_run_left_broken(make_double, playbook, lc_missing_on_node_3):
    """The first run restarted every node and lab-node-3 fell back (rollback off); the re-run must not count
    lab-node-3's new pod as done: it finds the failure line and rolls back."""
    double = make_double(node_state=lc_missing_on_node_3)
    text = double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf']
    rc, _results, output = playbook(double, _role(ipvs_scheduler_rollback=False, ipvs_scheduler_configmaps=['kube-proxy-worker'],
                                                  ipvs_scheduler_daemonsets=['kube-proxy-worker']), extra_env=ENV)
    assert rc != 0, output
    assert double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf'] != text   # not rolled back

    rc, _results, output = playbook(double, _role(ipvs_scheduler_configmaps=['kube-proxy-worker'],
                                                  ipvs_scheduler_daemonsets=['kube-proxy-worker']), extra_env=ENV)
    assert rc != 0, output
    assert double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf'] == text
    pods = _proxy_pods(double)
    for node in NODES:
        assert 'Using ipvs Proxier.' in _logs(double, pods[node]), node


def _leave_lc_half_done(double, playbook):
    """A first run that failed on lab-node-3 without rolling back: the ConfigMap says lc, every pod is new."""
    rc, _results, output = playbook(double, _role(ipvs_scheduler_rollback=False, ipvs_scheduler_configmaps=['kube-proxy-worker'],
                                                  ipvs_scheduler_daemonsets=['kube-proxy-worker']), extra_env=ENV)
    assert rc != 0, output


def test_issue9_f5_check_mode_says_what_would_be_rolled_back(make_double, playbook, lc_missing_on_node_3):
    double = make_double(node_state=lc_missing_on_node_3)
    _leave_lc_half_done(double, playbook)
    cm = double.store.get('configmaps', NS, 'kube-proxy-worker')
    uids = {n: p['metadata']['uid'] for n, p in _proxy_pods(double).items()}

    rc, results, output = playbook(double, _role(check=True, ipvs_scheduler_configmaps=['kube-proxy-worker'],
                                                 ipvs_scheduler_daemonsets=['kube-proxy-worker']), extra_env=ENV)
    assert rc != 0, output
    assert double.store.get('configmaps', NS, 'kube-proxy-worker') == cm                 # nothing restored ...
    assert {n: p['metadata']['uid'] for n, p in _proxy_pods(double).items()} == uids     # ... nothing restarted
    stop = _task(results, 'Stop the workflow')
    assert 'would be rolled back' in stop['msg'] and 'lab-node-3' in stop['msg'], stop['msg']


def test_issue9_f5_no_rollback_over_an_edit_made_since(make_double, playbook, lc_missing_on_node_3):
    double = make_double(node_state=lc_missing_on_node_3)
    _leave_lc_half_done(double, playbook)
    cm = double.store.get('configmaps', NS, 'kube-proxy-worker')
    cm['data']['config.conf'] += '# tuned by hand after the failed run\n'
    double.store.update('configmaps', NS, 'kube-proxy-worker', cm)
    edited = double.store.get('configmaps', NS, 'kube-proxy-worker')['data']

    rc, results, output = playbook(double, _role(ipvs_scheduler_configmaps=['kube-proxy-worker'],
                                                 ipvs_scheduler_daemonsets=['kube-proxy-worker']), extra_env=ENV)
    assert rc != 0, output
    assert double.store.get('configmaps', NS, 'kube-proxy-worker')['data'] == edited     # the hand edit is kept
    stop = _task(results, 'Stop the workflow')
    assert 'NOT rolled back' in stop['msg'] and 'edited after netmedic wrote it' in stop['msg'], stop['msg']


def test_w3_never_switches_an_iptables_cluster_unless_allowed(make_double, playbook, lc_everywhere):
    double = make_double(node_state=lc_everywhere)
    for name in ('kube-proxy-worker', 'kube-proxy-master', 'kube-proxy'):
        cm = double.store.get('configmaps', NS, name)
        cm['data']['config.conf'] = cm['data']['config.conf'].replace('mode: ipvs\n', 'mode: iptables\n')
        double.store.update('configmaps', NS, name, cm)
    texts = {n: double.store.get('configmaps', NS, n)['data'] for n in ('kube-proxy-worker', 'kube-proxy-master', 'kube-proxy')}
    uids = {n: p['metadata']['uid'] for n, p in _proxy_pods(double).items()}

    rc, results, output = playbook(double, _role(), extra_env=ENV)
    assert rc != 0, output
    assert 'proxy mode is iptables' in _task(results, 'Set ipvs.scheduler in the kube-proxy ConfigMaps (C-2; backs up the old data)')['msg']
    assert {n: double.store.get('configmaps', NS, n)['data'] for n in texts} == texts
    assert {n: p['metadata']['uid'] for n, p in _proxy_pods(double).items()} == uids

    rc, _results, output = playbook(double, _role(ipvs_scheduler_allow_mode_switch=True), extra_env=ENV)
    assert rc == 0, output
    for name in texts:                                       # discovered: every kube-proxy ConfigMap, not just the worker's
        conf = yaml.safe_load(double.store.get('configmaps', NS, name)['data']['config.conf'])
        assert conf['mode'] == 'ipvs' and conf['ipvs']['scheduler'] == 'lc', name
