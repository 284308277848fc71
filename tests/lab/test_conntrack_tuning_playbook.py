"""playbooks/conntrack_tuning.yml (catalog W-5), cluster side (Fix B, C-1), against the API double.

The node side (Fix A, role conntrack_tuning) runs on the VM lab; here the node plays match no host.
The double's simulated kube-proxy records the nf_conntrack_max it would set at start-up
(maxPerCore x the Node's CPUs, at least conntrack.min) in ``node_state.conntrack_max``. The refusals (bad input, a
--limit without the cluster play) are tests/cluster/test_conntrack_tuning_playbook.py, on the double and on the real
kube-apiserver (ported from here, issue 15).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

DOUBLE_ONLY = ("kubelet: the restarted kube-proxy's nf_conntrack_max (node_state.conntrack_max), its log line and a node losing ip_vs_rr are the "
               "double's simulated kube-proxy and node; the simulated nodes have no kernel and serve no logs")

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'conntrack_tuning.yml'
NS = 'kube-system'


def _restart(tasks):
    """The verified restart (role verified_rollout's task, named ``verified_rollout : ...`` by the callback)."""
    found = [r for name, r in tasks.items() if name.endswith('Restart the DaemonSets node by node, verifying each new pod (C-7)')]
    assert len(found) == 1, sorted(tasks)
    return found[0]


@pytest.fixture
def run(playbook_file):
    return lambda double, *extra, check=False: playbook_file(double, PLAYBOOK, *extra, check=check)


def _max_per_core(double):
    conf = yaml.safe_load(double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf'])
    return conf['conntrack']['maxPerCore']


def test_fix_b_check_apply_idempotent(double, node_state, run):
    rc, tasks, output = run(double, '-e', 'netmedic_conntrack_fix=cluster', check=True)
    assert rc == 0, output
    assert tasks['Set conntrack.maxPerCore in the kube-proxy ConfigMaps']['changed'] is True
    assert _max_per_core(double) == 32768                                       # check mode wrote nothing
    node_state.conntrack_max.clear()

    rc, tasks, output = run(double, '-e', 'netmedic_conntrack_fix=cluster')
    assert rc == 0, output
    assert _max_per_core(double) == 65536
    results = _restart(tasks)['results']
    restart = next(r for r in results if r['item'] == 'kube-proxy-worker')
    assert [r['node'] for r in restart['restarted']] == ['lab-node-1', 'lab-node-2', 'lab-node-3']
    # What each restarted kube-proxy set on its node: maxPerCore x 2 CPUs.
    assert node_state.conntrack_max == {'lab-node-1': 131072, 'lab-node-2': 131072, 'lab-node-3': 131072}

    rc, tasks, output = run(double, '-e', 'netmedic_conntrack_fix=cluster')
    assert rc == 0, output
    assert not any(t.get('changed') for t in tasks.values()), output


def test_issue9_f2_w5_never_lowers_max_per_core(double, node_state, run):
    # A cluster already at 131072 per core; W-5's default request is 65536.
    for name in ('kube-proxy-worker', 'kube-proxy-master', 'kube-proxy'):
        cm = double.store.get('configmaps', NS, name)
        conf = cm['data']['config.conf']
        conf = conf.replace('maxPerCore: 32768', 'maxPerCore: 131072').replace('maxPerCore: null', 'maxPerCore: 131072')
        cm['data']['config.conf'] = conf
        double.store.update('configmaps', NS, name, cm)
    texts = {n: double.store.get('configmaps', NS, n)['data']['config.conf']
             for n in ('kube-proxy-worker', 'kube-proxy-master', 'kube-proxy')}
    pods, _rv = double.store.list('pods', NS, label_selector='k8s-app=kube-proxy-worker')
    uids = sorted(p['metadata']['uid'] for p in pods)
    node_state.conntrack_max.clear()

    rc, tasks, output = run(double, '-e', 'netmedic_conntrack_fix=cluster')
    assert rc == 0, output
    config = tasks['Set conntrack.maxPerCore in the kube-proxy ConfigMaps']
    assert config['changed'] is False, config
    assert {(k['configmap'], k['current'], k['requested']) for k in config['kept']} >= {('kube-proxy-worker', 131072, 65536)}
    assert {n: double.store.get('configmaps', NS, n)['data']['config.conf'] for n in texts} == texts
    assert _max_per_core(double) == 131072
    pods, _rv = double.store.list('pods', NS, label_selector='k8s-app=kube-proxy-worker')
    assert sorted(p['metadata']['uid'] for p in pods) == uids        # no restart
    assert node_state.conntrack_max == {}                            # no kube-proxy started, nothing set on nodes
    backups, _rv = double.store.list('configmaps', NS, label_selector='netmedic.k8s/backup-of')
    assert backups == []


def test_issue9_f6_w5_on_an_iptables_cluster_restarts_every_node_and_finds_the_configmaps(double, node_state, run):
    # An iptables-mode cluster: "Using iptables Proxier." is success here, not a failure after the first node.
    for name in ('kube-proxy-worker', 'kube-proxy-master', 'kube-proxy'):
        cm = double.store.get('configmaps', NS, name)
        cm['data']['config.conf'] = cm['data']['config.conf'].replace('mode: ipvs\n', 'mode: iptables\n')
        double.store.update('configmaps', NS, name, cm)
    node_state.conntrack_max.clear()
    rc, tasks, output = run(double, '-e', 'netmedic_conntrack_fix=cluster')
    assert rc == 0, output
    # Discovered, not defaulted to kube-proxy-worker: every kube-proxy ConfigMap that exists was raised.
    for name in ('kube-proxy-worker', 'kube-proxy-master', 'kube-proxy'):
        conf = yaml.safe_load(double.store.get('configmaps', NS, name)['data']['config.conf'])
        assert conf['conntrack']['maxPerCore'] == 65536, name
        assert conf['mode'] == 'iptables', name
    results = {r['item']: r for r in _restart(tasks)['results']}
    assert sorted(results) == ['kube-proxy-master', 'kube-proxy-worker']      # the DaemonSets mounting them
    worker = results['kube-proxy-worker']
    assert worker['patterns']['preset'] == 'kube-proxy-iptables'
    assert [r['node'] for r in worker['restarted']] == ['lab-node-1', 'lab-node-2', 'lab-node-3']
    assert all('Using iptables Proxier' in r['matched'] for r in worker['restarted'])
    assert worker['remaining'] == [] and worker['failed_node'] is None          # no mixed state
    assert node_state.conntrack_max == {'lab-node-1': 131072, 'lab-node-2': 131072, 'lab-node-3': 131072}


def test_issue9_f10_w5_rolls_back_when_a_node_fails(double, node_state, run):
    # lab-node-3 lost its IPVS scheduler module: its new kube-proxy pod cannot use IPVS.
    node_state.unload('lab-node-3', 'ip_vs_rr')
    before = {n: double.store.get('configmaps', NS, n)['data'] for n in ('kube-proxy-worker', 'kube-proxy-master', 'kube-proxy')}
    node_state.conntrack_max.clear()
    rc, tasks, output = run(double, '-e', 'netmedic_conntrack_fix=cluster')
    assert rc != 0, output
    # Every ConfigMap holds exactly the backed-up bytes again ...
    assert {n: double.store.get('configmaps', NS, n)['data'] for n in before} == before
    assert _max_per_core(double) == 32768
    # ... and the nodes restarted with 65536 per core were restarted with the restored configuration: the pods
    # running there now are the ones the rollback's restart created.
    again = [r for name, r in tasks.items()
             if name.endswith('Restart the pods already restarted (and the failed one) with the restored configuration')]
    worker = next(r for r in again[0]['results'] if r['item']['item'] == 'kube-proxy-worker')
    pods, _rv = double.store.list('pods', NS, label_selector='k8s-app=kube-proxy-worker')
    running = {p['spec']['nodeName']: p['metadata']['name'] for p in pods}
    redone = {r['node']: r['pod'] for r in worker['restarted']}
    assert {'lab-node-1', 'lab-node-2'} <= set(redone) and all(running[n] == redone[n] for n in redone), (running, redone)
    assert 'rolled back' in output and 'lab-node-3' in output
