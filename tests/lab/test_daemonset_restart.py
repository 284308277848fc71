"""netmedic.k8s.daemonset_restart (catalog C-7) through ansible-playbook against the API double.

The double's kube-proxy log provider says ``Using ipvs Proxier.`` only when the node has
``ip_vs`` and ``ip_vs_<scheduler>`` loaded (StaticNodeState): lab-node-1 gets ``ip_vs_lc`` here,
lab-node-2 and lab-node-3 keep the default modules (rr, wrr, sh), so after switching the scheduler
to ``lc`` (C-2) a restart succeeds on node 1 and must be detected as failed on node 2.

The cases that read no log and need no NotReady Node or crash loop (check mode, bad input, a node selector with
batches, an unreadable proxy mode, ``patterns_preset: none`` on Terway's two-container pods) went to
tests/cluster/test_daemonset_restart.py (issue 15), where they run on the real kube-apiserver too.
"""

from __future__ import annotations

import time

import pytest
import yaml

from lab.kubedouble import StaticNodeState
from lab.kubedouble.logs import DEFAULT_MODULES

DOUBLE_ONLY = ("kubelet: the restart is verified by kube-proxy's log line ('Using ipvs Proxier.', or the fallback when a node lacks the scheduler's "
               "kernel module), written by the double's simulated kube-proxy; the simulated nodes serve no pod logs")

DS = 'kube-proxy-worker'
FAST = {'poll_interval': 0.05, 'timeout': 20}


@pytest.fixture
def node_state():
    return StaticNodeState({'lab-node-1': set(DEFAULT_MODULES) | {'ip_vs_lc'}})


def proxy_pods(double):
    pods, _rv = double.store.list('pods', 'kube-system', label_selector='k8s-app=%s' % DS)
    return {p['spec']['nodeName']: p for p in pods}


def uids(double):
    return {node: pod['metadata']['uid'] for node, pod in proxy_pods(double).items()}


def switch_scheduler(double, scheduler='lc'):
    cm = double.store.get('configmaps', 'kube-system', DS)
    cm['data']['config.conf'] = cm['data']['config.conf'].replace('scheduler: rr', 'scheduler: %s' % scheduler)
    double.store.update('configmaps', 'kube-system', DS, cm)


def task(name, args, **extra):
    entry = {'name': name, 'netmedic.k8s.daemonset_restart': dict({'name': DS}, **args)}
    entry.update(extra)
    return entry


def test_success_on_node_with_module_failure_detected_where_missing(double, module_tasks):
    switch_scheduler(double)
    before = uids(double)
    names = {node: pod['metadata']['name'] for node, pod in proxy_pods(double).items()}
    started = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() - 1))
    tasks = yaml.safe_dump([
        task('rollout', dict(FAST, node_order=['lab-node-1', 'lab-node-2']), ignore_errors=True),
        task('resume node 1', dict(FAST, nodes=['lab-node-1'], restarted_since=started)),
    ])
    rc, results, output = module_tasks(double, tasks)
    assert rc == 0, output
    res = results['rollout']
    assert res['failed'] is True and res['changed'] is True
    assert [r['node'] for r in res['restarted']] == ['lab-node-1']
    assert res['restarted'][0]['old_pod'] == names['lab-node-1']
    assert res['restarted'][0]['matched'].endswith('Using ipvs Proxier.')
    failed = res['failed_node']
    assert failed['node'] == 'lab-node-2' and failed['reason'] == 'failure line'
    assert "Can't use the IPVS proxier" in failed['line'] and '[ip_vs_lc]' in failed['line']
    assert res['remaining'] == ['lab-node-3'] and res['unverified'] == []
    assert 'stopped at node lab-node-2' in res['msg']
    after = uids(double)
    assert after['lab-node-1'] != before['lab-node-1'] and after['lab-node-2'] != before['lab-node-2']
    assert after['lab-node-3'] == before['lab-node-3'], 'the rollout must stop before node 3'
    assert failed['pod'] == proxy_pods(double)['lab-node-2']['metadata']['name']
    # Re-running for node 1 with restarted_since: the new pod counts as done, nothing is deleted.
    resume = results['resume node 1']
    assert resume['changed'] is False and resume['plan'] == []
    assert [s['node'] for s in resume['already_restarted']] == ['lab-node-1']
    assert uids(double)['lab-node-1'] == after['lab-node-1']


@pytest.mark.double_only("kubelet: a Node made NotReady on demand (its DaemonSet pods going unready with it); the simulated node's heartbeat "
                         'reports Ready again within 60 s')
def test_health_gate_refuses_when_pods_are_not_ready(double, module_tasks):
    node = double.store.get('nodes', None, 'lab-node-3')
    for cond in node['status']['conditions']:
        if cond['type'] == 'Ready':
            cond['status'] = 'False'
    double.store.update('nodes', None, 'lab-node-3', node, subresource='status')
    double.wait_for(lambda s: not any(c['type'] == 'Ready' and c['status'] == 'True'
                                      for c in proxy_pods(double)['lab-node-3']['status'].get('conditions', [])) or None)
    before = uids(double)
    tasks = yaml.safe_dump([
        task('gate', dict(FAST, nodes=['lab-node-1']), ignore_errors=True),
        task('allowed', dict(FAST, nodes=['lab-node-1'], max_unhealthy=1, patterns_preset='none')),
    ])
    rc, results, output = module_tasks(double, tasks)
    assert rc == 0, output
    gate = results['gate']
    assert gate['failed'] is True and gate['changed'] is False
    assert 'not Ready (max_unhealthy=0)' in gate['msg'] and 'nothing was restarted' in gate['msg']
    assert [u['node'] for u in gate['unhealthy']] == ['lab-node-3']
    allowed = results['allowed']
    assert allowed['changed'] is True and [r['node'] for r in allowed['restarted']] == ['lab-node-1']
    assert allowed['restarted'][0]['matched'] is None          # no pattern required with preset none
    after = uids(double)
    assert after['lab-node-1'] != before['lab-node-1']
    assert after['lab-node-3'] == before['lab-node-3'] and after['lab-node-2'] == before['lab-node-2']


@pytest.mark.double_only("kubelet: the new agent pod crash-loops on the new configuration (the double's log provider raises CrashLoop); simulated "
                         'nodes start every pod Running and Ready')
def test_crash_looping_replacement_stops_the_rollout_at_the_timeout(double, module_tasks):
    # A config kube-proxy rejects (a Go duration without a unit): the new pod crash-loops, never Ready.
    cm = double.store.get('configmaps', 'kube-system', DS)
    cm['data']['config.conf'] = cm['data']['config.conf'].replace('syncPeriod: 30s', 'syncPeriod: 30')
    double.store.update('configmaps', 'kube-system', DS, cm)
    before = uids(double)
    tasks = yaml.safe_dump([task('rollout', {'poll_interval': 0.1, 'timeout': 3}, ignore_errors=True)])
    rc, results, output = module_tasks(double, tasks)
    assert rc == 0, output
    res = results['rollout']
    assert res['failed'] is True and res['restarted'] == []
    failed = res['failed_node']
    assert failed['node'] == 'lab-node-1' and failed['reason'] == 'not ready'
    assert 'CrashLoopBackOff' in failed['state']
    assert any('time: invalid duration "30"' in line for line in failed['log_tail'])
    assert res['remaining'] == ['lab-node-2', 'lab-node-3']
    after = uids(double)
    assert after['lab-node-2'] == before['lab-node-2'] and after['lab-node-3'] == before['lab-node-3']


def test_issue9_f6_auto_preset_follows_an_iptables_configmap(double, module_tasks):
    cm = double.store.get('configmaps', 'kube-system', DS)
    cm['data']['config.conf'] = cm['data']['config.conf'].replace('mode: ipvs\n', 'mode: iptables\n')
    double.store.update('configmaps', 'kube-system', DS, cm)
    before = uids(double)
    rc, results, output = module_tasks(double, yaml.safe_dump([task('restart', dict(FAST))]))
    assert rc == 0, output
    res = results['restart']
    assert res['patterns']['preset'] == 'kube-proxy-iptables'
    assert [r['node'] for r in res['restarted']] == ['lab-node-1', 'lab-node-2', 'lab-node-3']
    assert all('Using iptables Proxier' in r['matched'] for r in res['restarted'])
    after = uids(double)
    assert set(after) == set(before) and all(after[n] != before[n] for n in before)   # every pod replaced


def test_issue9_f13_restarted_in_run_reports_node_steps_and_deletes_nothing(double, module_tasks):
    """Issue 9 finding 13: role verified_rollout restarts one node per task (progress per node), then calls the
    module once over the whole DaemonSet. That last call must verify every pod, delete nothing, and report the
    pods the node steps created as ``restarted`` (changed), the others as ``already_restarted``."""
    time.sleep(1.1)                                    # the seeded pods are older than the change
    started = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    tasks = yaml.safe_dump([
        task('step 1', dict(FAST, nodes=['lab-node-1'], restarted_since=started)),
        task('step 2', dict(FAST, nodes=['lab-node-2'], restarted_since=started)),
    ])
    rc, results, output = module_tasks(double, tasks)
    assert rc == 0, output
    step_pods = [results['step %d' % i]['restarted'][0]['pod'] for i in (1, 2)]
    before = uids(double)
    tasks = yaml.safe_dump([task('all', dict(FAST, restarted_since=started, restarted_in_run=step_pods[:1],
                                             node_order=['lab-node-3']))])
    rc, results, output = module_tasks(double, tasks)
    assert rc == 0, output
    res = results['all']
    assert res['changed'] is True
    # lab-node-3 is restarted now; lab-node-1 is reported as this run's; lab-node-2 as restarted before.
    assert [r['node'] for r in res['restarted']] == ['lab-node-1', 'lab-node-3']
    assert res['restarted'][0]['pod'] == step_pods[0] and res['restarted'][0]['old_pod'] is None
    assert res['restarted'][0]['matched'].endswith('Using ipvs Proxier.')
    assert [s['node'] for s in res['already_restarted']] == ['lab-node-2']
    after = uids(double)
    assert after['lab-node-1'] == before['lab-node-1'] and after['lab-node-2'] == before['lab-node-2']
    assert after['lab-node-3'] != before['lab-node-3']
    # Nothing left: the same call again reports this run's pods and deletes nothing.
    rc, results, output = module_tasks(double, tasks)
    assert rc == 0, output
    assert uids(double) == after
