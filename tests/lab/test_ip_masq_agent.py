"""netmedic.k8s.ip_masq_agent (catalog C-4) against the API double: the double-only cases.

The seed's agent is ip-masq-agent 2.10.1 without ``--random-fully=false``; the flag is honoured
from 2.11, so the module refuses it on the seed's image unless the image is upgraded with it.
The double's generic log provider prints a container's args when it starts, so the rolled-out
pods show the flag. The portable cases (bad input, OnDelete, the addon-manager refusal) run on both
servers in tests/cluster/test_ip_masq_agent.py (issue 15); what stays here needs the agents' logs or a forced 409.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

COLLECTIONS = str(Path(__file__).resolve().parents[2] / 'collections')
NEW_IMAGE = 'registry.lab.invalid/ip-masq-agent:v2.11.0'


@pytest.fixture
def run(playbook):
    return lambda double, tasks: playbook(double, tasks, extra_env={'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS})


def ds(double):
    return double.store.find('daemonsets', 'kube-system', 'ip-masq-agent')


def agent(double):
    return ds(double)['spec']['template']['spec']['containers'][0]


def backups(double):
    cms, _rv = double.store.list('configmaps', 'kube-system', label_selector='netmedic.k8s/backup-of=ip-masq-agent')
    return cms


def task(name, args, **extra):
    entry = {'name': name, 'netmedic.k8s.ip_masq_agent': args}
    entry.update(extra)
    return entry


@pytest.mark.double_only("kubelet: the rolled-out agents' logs must show the new flag (the double's generic log provider); simulated nodes serve no"
                         ' logs')
def test_old_agent_refused_check_mode_apply_idempotent(double, run):
    original = ds(double)
    rc, results, output = run(double, yaml.safe_dump([
        task('old', {}, ignore_errors=True),
        task('check', {'image': NEW_IMAGE}, check_mode=True, diff=True),
    ]))
    assert rc == 0, output
    assert results['old']['failed'] is True and 'older than 2.11' in results['old']['msg']
    check = results['check']
    assert check['changed'] is True and check['rollout'] is True
    assert [c['path'] for c in check['daemonset']['changes']] == ['image', 'args']
    assert '  - --random-fully=false\n' in check['diff'][0]['after'] and '--random-fully' not in check['diff'][0]['before']
    assert ds(double) == original and backups(double) == [], 'a refused or check-mode run wrote something'

    rc, results, output = run(double, yaml.safe_dump([
        task('apply', {'image': NEW_IMAGE}),
        task('again', {'image': NEW_IMAGE}),
        task('again without image', {}),
    ]))
    assert rc == 0, output
    assert results['apply']['changed'] is True
    assert results['again']['changed'] is False and results['again without image']['changed'] is False
    assert agent(double)['args'] == ['--masq-chain=IP-MASQ', '--nomasq-all-reserved-ranges', '--random-fully=false']
    assert agent(double)['image'] == NEW_IMAGE
    [backup] = backups(double)
    saved = json.loads(backup['data']['daemonset.json'])
    assert saved['spec']['template']['spec']['containers'][0]['args'] == original['spec']['template']['spec']['containers'][0]['args']
    assert results['apply']['backups'][0]['configmap'] == 'kube-system/%s' % backup['metadata']['name']
    assert results['apply']['backups'][0]['args'] == ['--masq-chain=IP-MASQ', '--nomasq-all-reserved-ranges']

    # The DaemonSet controller rolls the new template out; the new agents log the flag.
    def rolled(store):
        pods, _rv = store.list('pods', 'kube-system', label_selector='k8s-app=ip-masq-agent')
        ready = [p for p in pods if p['spec']['containers'][0]['image'] == NEW_IMAGE and p['status'].get('phase') == 'Running']
        return ready if len(ready) == 3 and len(pods) == 3 else None

    pods = double.wait_for(rolled, timeout=20)
    for pod in pods:
        assert '--random-fully=false' in double.store.logs[pod['metadata']['uid']]['ip-masq-agent']


@pytest.mark.double_only("fault: a concurrent write landed between the module's read and its write (the double's store.update wrapped), a "
                         'deterministic 409; a real server gives one only under a real race')
def test_allow_old_agent_and_conflict_retry(double, module_tasks):
    store = double.store
    original_update = store.update
    fired = []

    def update(rt, namespace, name, obj, **kwargs):
        if not fired and not kwargs.get('dry_run') and name == 'ip-masq-agent' and obj.get('kind') == 'DaemonSet':
            fresh = store.get('daemonsets', namespace, name)
            fresh['metadata'].setdefault('labels', {})['touched-by'] = 'someone-else'
            original_update('daemonsets', namespace, name, fresh)
            fired.append(True)
        return original_update(rt, namespace, name, obj, **kwargs)

    store.update = update
    rc, results, output = module_tasks(double, yaml.safe_dump([task('apply', {'allow_old_agent': True})]))
    assert rc == 0, output
    assert fired and results['apply']['changed'] is True
    assert agent(double)['args'][-1] == '--random-fully=false'
    assert ds(double)['metadata']['labels']['touched-by'] == 'someone-else', 'the concurrent write was lost'
