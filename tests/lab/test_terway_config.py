"""netmedic.k8s.terway_config (catalog C-6) against the API double: the double-only cases.

The double's Terway ``policy`` container logs ``enable-in-cluster-loadbalance=true|false`` from
``eni-config`` when the pod starts, so the change is verified end to end with daemonset_restart.
The portable cases (check mode, create, bad input, a broken eni_conf, the version gate, vSwitches) run on both
servers in tests/cluster/test_terway_config.py (issue 15); what stays here needs the policy log line or a forced 409.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

COLLECTIONS = str(Path(__file__).resolve().parents[2] / 'collections')


@pytest.fixture
def run(playbook):
    return lambda double, tasks: playbook(double, tasks, extra_env={'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS})


def stored(double, name='eni-config'):
    return double.store.find('configmaps', 'kube-system', name)


def backups(double):
    cms, _rv = double.store.list('configmaps', 'kube-system', label_selector='netmedic.k8s/backup-of')
    return cms


def task(name, args, **extra):
    entry = {'name': name, 'netmedic.k8s.terway_config': args}
    entry.update(extra)
    return entry


@pytest.mark.double_only("kubelet: the restart is verified by Terway's policy container log line (the double's log provider); simulated nodes serve"
                         ' no logs')
def test_apply_idempotent_then_verified_by_the_policy_log(double, run):
    original = stored(double)
    rc, results, output = run(double, yaml.safe_dump([
        task('apply', {'in_cluster_loadbalance': True}),
        task('again', {'in_cluster_loadbalance': True}),
        {'name': 'restart', 'netmedic.k8s.daemonset_restart': {
            'name': 'terway-eniip', 'poll_interval': 0.05, 'timeout': 20,
            'container': '{{ apply.verify.container }}', 'success_patterns': '{{ apply.verify.success_patterns }}'}},
    ]).replace("- name: apply\n", "- name: apply\n  register: apply\n"))
    assert rc == 0, output
    apply, again, restart = results['apply'], results['again'], results['restart']
    assert apply['changed'] is True and again['changed'] is False
    data = stored(double)['data']
    assert data['in_cluster_loadbalance'] == 'true'
    assert data['eni_conf'] == original['data']['eni_conf'] and data['10-terway.conf'] == original['data']['10-terway.conf']
    [backup] = backups(double)
    assert backup['data'] == original['data'] and apply['backups'][0]['configmap'].endswith(backup['metadata']['name'])
    assert [r['node'] for r in restart['restarted']] == ['lab-node-1', 'lab-node-2', 'lab-node-3']
    assert all('enable-in-cluster-loadbalance=true' in r['matched'] for r in restart['restarted'])


@pytest.mark.double_only("fault: a concurrent write landed between the module's read and its write (the double's store.update wrapped), a "
                         'deterministic 409; a real server gives one only under a real race')
def test_conflict_is_retried(double, module_tasks):
    store = double.store
    original_update = store.update
    fired = []

    def update(rt, namespace, name, obj, **kwargs):
        if not fired and not kwargs.get('dry_run') and name == 'eni-config' and obj.get('kind') == 'ConfigMap':
            fresh = store.get('configmaps', namespace, name)
            fresh['data']['disable_network_policy'] = 'true'          # another operator's edit
            original_update('configmaps', namespace, name, fresh)
            fired.append(True)
        return original_update(rt, namespace, name, obj, **kwargs)

    store.update = update
    rc, results, output = module_tasks(double, yaml.safe_dump([task('apply', {'in_cluster_loadbalance': True})]))
    assert rc == 0, output
    assert fired and results['apply']['changed'] is True
    data = stored(double)['data']
    assert data['in_cluster_loadbalance'] == 'true' and data['disable_network_policy'] == 'true'


@pytest.mark.double_only("kubelet: the restart is verified by Terway's policy container log line (the double's log provider); simulated nodes serve"
                         ' no logs')
def test_restart_before_the_change_is_detected_as_failed(double, module_tasks):
    # Without in_cluster_loadbalance the policy container logs =false: the preset stops at the first node.
    rc, results, output = module_tasks(double, yaml.safe_dump([
        {'name': 'restart', 'ignore_errors': True, 'netmedic.k8s.daemonset_restart': {
            'name': 'terway-eniip', 'patterns_preset': 'terway-in-cluster-lb', 'poll_interval': 0.05, 'timeout': 20}}]))
    assert rc == 0, output
    res = results['restart']
    assert res['failed'] is True and res['failed_node']['node'] == 'lab-node-1'
    assert 'enable-in-cluster-loadbalance=false' in res['failed_node']['line']
    assert res['remaining'] == ['lab-node-2', 'lab-node-3']
