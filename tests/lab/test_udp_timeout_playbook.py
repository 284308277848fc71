"""playbooks/udp_timeout.yml (catalog W-4) against the API double: the version picks C-3 or N-5.

Only the cluster side runs here (the node side, N-5 with ipvsadm, runs on the VM lab: the
inventory below has no nodes, so the node play matches no host). The refusals (bad input, an iptables mode, a
--limit without the cluster play, a held Lease, a closed window) are tests/cluster/test_udp_timeout_playbook.py, on the
double and on the real kube-apiserver (ported from here, issue 15).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

DOUBLE_ONLY = ("kubelet: the restart is verified by kube-proxy's log line ('Using ipvs Proxier.', or the fallback when a node lacks the scheduler's "
               "kernel module), written by the double's simulated kube-proxy; the simulated nodes serve no pod logs")

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'udp_timeout.yml'
NS = 'kube-system'


def _restart(tasks):
    """The verified restart (role verified_rollout's task, named ``verified_rollout : ...`` by the callback)."""
    found = [r for name, r in tasks.items() if name.endswith('Restart the DaemonSets node by node, verifying each new pod (C-7)')]
    assert len(found) == 1, sorted(tasks)
    return found[0]


@pytest.fixture
def run(playbook_file):
    return lambda double, *extra, check=False: playbook_file(double, PLAYBOOK, *extra, check=check)


def _udp(double):
    conf = yaml.safe_load(double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf'])
    return (conf.get('ipvs') or {}).get('udpTimeout')


def _proxy_uids(double):
    pods, _rv = double.store.list('pods', NS, label_selector='k8s-app=kube-proxy-worker')
    return sorted(p['metadata']['uid'] for p in pods)


def test_new_cluster_uses_kube_proxy_udp_timeout(double, run):
    uids = _proxy_uids(double)
    rc, tasks, output = run(double, check=True)
    assert rc == 0, output
    assert tasks['Choose the fix']['ansible_facts']['netmedic_udp_timeout_plan']['method'] == 'cluster'
    assert tasks['Set ipvs.udpTimeout in the kube-proxy ConfigMaps (C-3)']['changed'] is True
    assert _udp(double) is None and _proxy_uids(double) == uids          # check mode: nothing written or restarted

    rc, tasks, output = run(double)
    assert rc == 0, output
    assert _udp(double) == '10s'
    results = _restart(tasks)['results']
    restart = next(r for r in results if r['item'] == 'kube-proxy-worker')
    assert len(restart['restarted']) == 3
    assert set(_proxy_uids(double)).isdisjoint(uids)

    uids = _proxy_uids(double)
    rc, tasks, output = run(double)
    assert rc == 0, output
    assert not any(t.get('changed') for t in tasks.values()), output
    assert _proxy_uids(double) == uids


@pytest.mark.double_only('version: v1.16.9-aliyun.1 and v1.17.3 servers pick the node path')
def test_old_clusters_go_to_the_nodes(make_double, run):
    old = make_double(version='v1.16.9-aliyun.1')
    rv = old.store.get('configmaps', NS, 'kube-proxy-worker')['metadata']['resourceVersion']
    rc, tasks, output = run(old)
    # N-5 works on the nodes, and this inventory has none: refused before the Lease or any write (the no-node guard;
    # the CI run of 2026-12-02 found the guard had run before the version was known and refused C-3 runs too).
    assert rc != 0, output
    assert tasks['Choose the fix']['ansible_facts']['netmedic_udp_timeout_plan']['method'] == 'node'
    assert 'matches no node' in tasks['Refuse a run whose netmedic_targets matches no node']['msg'], output
    assert 'Set ipvs.udpTimeout in the kube-proxy ConfigMaps (C-3)' not in tasks
    assert old.store.find('leases', NS, 'netmedic-kube-proxy') is None
    assert old.store.get('configmaps', NS, 'kube-proxy-worker')['metadata']['resourceVersion'] == rv

    # 1.17: kube-proxy has no ipvs.udpTimeout before 1.18, so the nodes it is; forcing C-3 fails before any write.
    odd = make_double(version='v1.17.3')
    rv = odd.store.get('configmaps', NS, 'kube-proxy-worker')['metadata']['resourceVersion']
    rc, tasks, output = run(odd)
    assert rc != 0, output
    assert tasks['Choose the fix']['ansible_facts']['netmedic_udp_timeout_plan']['method'] == 'node'
    rc, tasks, output = run(odd, '-e', 'netmedic_udp_timeout_method=cluster')
    assert rc != 0
    assert 'older than 1.18' in tasks['Set ipvs.udpTimeout in the kube-proxy ConfigMaps (C-3)']['msg']
    assert odd.store.get('configmaps', NS, 'kube-proxy-worker')['metadata']['resourceVersion'] == rv


def _set_mode(double, mode):
    for name in ('kube-proxy-worker', 'kube-proxy-master', 'kube-proxy'):
        cm = double.store.get('configmaps', NS, name)
        cm['data']['config.conf'] = cm['data']['config.conf'].replace('mode: ipvs\n', 'mode: %s\n' % mode)
        double.store.update('configmaps', NS, name, cm)


def _texts(double):
    return {n: double.store.get('configmaps', NS, n)['data']['config.conf']
            for n in ('kube-proxy-worker', 'kube-proxy-master', 'kube-proxy')}


def test_issue9_f1_mode_switch_only_when_asked(double, run):
    _set_mode(double, 'iptables')
    rc, _tasks, output = run(double, "-e", "netmedic_proxy_mode_switch=true")
    assert rc == 0, output
    conf = yaml.safe_load(double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf'])
    assert conf['mode'] == 'ipvs' and conf['ipvs']['udpTimeout'] == '10s'


def test_issue9_f10_w4_rolls_back_when_a_node_fails(double, node_state, run):
    node_state.unload('lab-node-3', 'ip_vs_rr')                   # lab-node-3's new kube-proxy cannot use IPVS
    before = _texts(double)
    rc, _tasks, output = run(double)
    assert rc != 0, output
    assert _texts(double) == before and _udp(double) is None       # the exact backed-up bytes
    pods, _rv = double.store.list('pods', NS, label_selector='k8s-app=kube-proxy-worker')
    by_node = {p['spec']['nodeName']: p for p in pods}
    for node in ('lab-node-1', 'lab-node-2'):                      # restarted again with the restored configuration
        log = ''.join((double.store.logs.get(by_node[node]['metadata']['uid']) or {}).values())
        assert 'Using ipvs Proxier.' in log, node
    assert 'rolled back' in output and 'lab-node-3' in output
