"""netmedic.k8s.daemonset_restart (catalog C-7) through ansible-playbook against the API double.

The double's kube-proxy log provider says ``Using ipvs Proxier.`` only when the node has
``ip_vs`` and ``ip_vs_<scheduler>`` loaded (StaticNodeState): lab-node-1 gets ``ip_vs_lc`` here,
lab-node-2 and lab-node-3 keep the default modules (rr, wrr, sh), so after switching the scheduler
to ``lc`` (C-2) a restart succeeds on node 1 and must be detected as failed on node 2.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from lab.kubedouble import StaticNodeState
from lab.kubedouble.logs import DEFAULT_MODULES

DOUBLE_ONLY = ("kubelet: the restart is verified by kube-proxy's log line ('Using ipvs Proxier.', or the fallback when a node lacks the scheduler's "
               "kernel module), written by the double's simulated kube-proxy; the simulated nodes serve no pod logs")

COLLECTIONS = str(Path(__file__).resolve().parents[2] / 'collections')
DS = 'kube-proxy-worker'
FAST = {'poll_interval': 0.05, 'timeout': 20}


@pytest.fixture
def run(playbook):
    """``playbook`` with netmedic.k8s resolvable from this checkout."""
    return lambda double, tasks: playbook(double, tasks, extra_env={'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS})


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


@pytest.mark.double_only('portable: check mode plans from the DaemonSet and ConfigMap, reads no log, deletes nothing')
def test_check_mode_plans_and_deletes_nothing(double, run):
    switch_scheduler(double)
    before = uids(double)
    tasks = yaml.safe_dump([task('plan', dict(FAST, node_order='name'), check_mode=True, diff=True)])
    rc, results, output = run(double, tasks)
    assert rc == 0, output
    res = results['plan']
    assert res['changed'] is True
    assert res['plan'] == [['lab-node-1'], ['lab-node-2'], ['lab-node-3']]
    assert res['restarted'] == [] and res['failed_node'] is None
    assert res['remaining'] == ['lab-node-1', 'lab-node-2', 'lab-node-3']
    assert res['patterns']['preset'] == 'kube-proxy-ipvs'
    assert 'lab-node-2: %s' % proxy_pods(double)['lab-node-2']['metadata']['name'] in res['diff'][0]['before']
    time.sleep(0.3)   # a few controller ticks: a deleted pod would have been replaced by now
    assert uids(double) == before


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


BAD_INPUT = [
    ({'batch_size': 0}, 'batch_size must be >= 1'),
    ({'failure_patterns': ['(unclosed']}, 'invalid regular expression'),
    ({'node_order': 'random'}, 'node_order must be the word "name"'),
    ({'nodes': ['no-such-node']}, 'no pod of DaemonSet kube-system/kube-proxy-worker on node(s): no-such-node'),
    ({'node_order': ['lab-node-9']}, 'node_order names node(s) without a pod'),
    ({'restarted_since': 'yesterday'}, 'restarted_since must be a UTC time'),
    ({'name': 'no-such-ds'}, 'DaemonSet kube-system/no-such-ds not found'),
]


@pytest.mark.double_only('portable: stops before anything the double alone can do (bad input, a held Lease, a closed window); the real server '
                         'refuses the same')
def test_bad_input_is_refused_before_any_deletion(double, module_tasks):
    before = uids(double)
    tasks = yaml.safe_dump([task('bad %d' % i, dict(FAST, **args), ignore_errors=True) for i, (args, _m) in enumerate(BAD_INPUT)])
    rc, results, output = module_tasks(double, tasks)
    assert rc == 0, output
    for i, (_args, message) in enumerate(BAD_INPUT):
        res = results['bad %d' % i]
        assert res['failed'] is True and res['changed'] is False, res
        assert message in res['msg'], (message, res['msg'])
        assert res['restarted'] == []
    time.sleep(0.2)
    assert uids(double) == before


@pytest.mark.double_only('portable: node labels and patterns_preset none (Ready only): the real DaemonSet controller and simulated nodes suffice')
def test_selector_and_batches_restart_every_matching_node(double, module_tasks):
    for name in ('lab-node-2', 'lab-node-3'):
        node = double.store.get('nodes', None, name)
        node['metadata'].setdefault('labels', {})['pool'] = 'blue'
        double.store.update('nodes', None, name, node)
    before = uids(double)
    tasks = yaml.safe_dump([task('blue', dict(FAST, selector='pool=blue', batch_size=2, patterns_preset='none'))])
    rc, results, output = module_tasks(double, tasks)
    assert rc == 0, output
    res = results['blue']
    assert res['plan'] == [['lab-node-2', 'lab-node-3']]
    assert sorted(r['node'] for r in res['restarted']) == ['lab-node-2', 'lab-node-3']
    after = uids(double)
    assert after['lab-node-1'] == before['lab-node-1']
    assert after['lab-node-2'] != before['lab-node-2'] and after['lab-node-3'] != before['lab-node-3']


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


@pytest.mark.double_only('portable: stops before anything the double alone can do (bad input, a held Lease, a closed window); the real server '
                         'refuses the same')
def test_issue9_f6_auto_preset_refuses_when_the_mode_cannot_be_read(double, module_tasks):
    cm = double.store.get('configmaps', 'kube-system', DS)
    cm['data']['config.conf'] = 'mode: [unclosed\n'
    double.store.update('configmaps', 'kube-system', DS, cm)
    before = uids(double)
    _rc, results, _output = module_tasks(double, yaml.safe_dump([task('restart', dict(FAST), ignore_errors=True)]))
    res = results['restart']
    assert res['failed'] is True and res['changed'] is False, res
    assert "cannot read kube-proxy's proxy mode" in res['msg'] and 'nothing was restarted' in res['msg']
    time.sleep(0.2)
    assert uids(double) == before


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


@pytest.mark.double_only('portable: patterns_preset none reads no log; the restart is Ready only')
def test_preset_none_reads_no_log_so_a_multi_container_pod_restarts(double, module_tasks):
    """Found by the RBAC run of terway_config.yml: with no pattern to look for, the module still read each new pod's
    log without a container, which the API refuses for Terway's two-container pods (terway, policy)."""
    pods, _rv = double.store.list('pods', 'kube-system', label_selector='app=terway-eniip')
    assert pods and len(pods[0]['spec']['containers']) > 1
    before = {p['spec']['nodeName']: p['metadata']['uid'] for p in pods}
    tasks = yaml.safe_dump([{'name': 'terway', 'netmedic.k8s.daemonset_restart': dict(
        FAST, name='terway-eniip', nodes=['lab-node-1'], patterns_preset='none')}])
    rc, results, output = module_tasks(double, tasks)
    assert rc == 0, output
    assert [(r['node'], r['matched']) for r in results['terway']['restarted']] == [('lab-node-1', None)]
    after, _rv = double.store.list('pods', 'kube-system', label_selector='app=terway-eniip')
    assert {p['spec']['nodeName']: p['metadata']['uid'] for p in after}['lab-node-1'] != before['lab-node-1']
