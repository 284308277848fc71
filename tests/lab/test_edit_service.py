"""The cluster edit service (``module_utils/k8s/edit.py``) and the client's timeouts and retries,
end to end through the cluster modules against the API double (issue #10 holes 6 and 9, issue #13).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
import yaml

COLLECTIONS = str(Path(__file__).resolve().parents[2] / 'collections')


@pytest.fixture
def run(playbook):
    return lambda double, tasks: playbook(double, tasks, extra_env={'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS})


def edit_after_first_read(double, plural, name, mutate):
    """A ``kubectl edit`` landing right after the module's first read of ``plural``/``name``.

    The first GET of the object over HTTP answers with the object as it was, then ``mutate`` is
    applied and stored before anything else can happen.  Returns the list the edited object is
    appended to (empty when the edit never fired).
    """
    store = double.store
    original = store.get
    fired = []

    def get(rt, namespace, obj_name):
        obj = original(rt, namespace, obj_name)
        if not fired and getattr(rt, 'plural', rt) == plural and obj_name == name:
            fresh = json.loads(json.dumps(obj))
            mutate(fresh)
            fired.append(store.update(plural, namespace, name, fresh))
        return obj

    store.get = get
    return fired


def backups_of(double, name):
    cms, _rv = double.store.list('configmaps', 'kube-system', label_selector='netmedic.k8s/backup-of=%s' % name)
    return cms


def _only_backup(double, name, result):
    (entry,) = result['backups']
    (cm,) = backups_of(double, name)
    assert entry['configmap'] == 'kube-system/%s' % cm['metadata']['name']
    return entry, cm


def test_issue10_h6_flannel_backup_holds_the_concurrent_edit_it_overwrote(double, run):
    def kubectl_edit(cm):
        cm['data']['net-conf.json'] = cm['data']['net-conf.json'].replace('alloc', 'vxlan')

    fired = edit_after_first_read(double, 'configmaps', 'kube-flannel-cfg', kubectl_edit)
    rc, results, output = run(double, yaml.safe_dump([{'name': 'apply', 'netmedic.k8s.flannel_config': {'cni_version': '0.3.1'}}]))
    assert rc == 0, output
    assert fired, 'the concurrent edit was not injected'
    overwritten = fired[0]
    entry, cm = _only_backup(double, 'kube-flannel-cfg', results['apply'])
    assert cm['data'] == overwritten['data'], 'the backup does not hold what the write replaced'
    assert cm['metadata']['annotations']['netmedic.k8s/resource-version'] == overwritten['metadata']['resourceVersion']
    assert entry['data'] == overwritten['data']
    stored = double.store.find('configmaps', 'kube-system', 'kube-flannel-cfg')
    assert '"Type": "vxlan"' in stored['data']['net-conf.json'], 'the concurrent edit was lost'
    assert json.loads(stored['data']['cni-conf.json'])['cniVersion'] == '0.3.1'


def test_issue10_h6_terway_backup_holds_the_concurrent_edit_it_overwrote(double, run):
    def kubectl_edit(cm):
        cm['data']['disable_network_policy'] = 'true'

    fired = edit_after_first_read(double, 'configmaps', 'eni-config', kubectl_edit)
    rc, results, output = run(double, yaml.safe_dump([{'name': 'apply', 'netmedic.k8s.terway_config': {'in_cluster_loadbalance': True}}]))
    assert rc == 0, output
    assert fired, 'the concurrent edit was not injected'
    overwritten = fired[0]
    entry, cm = _only_backup(double, 'eni-config', results['apply'])
    assert cm['data'] == overwritten['data'], 'the backup does not hold what the write replaced'
    assert entry['data'] == overwritten['data']
    stored = double.store.find('configmaps', 'kube-system', 'eni-config')
    assert stored['data']['disable_network_policy'] == 'true' and stored['data']['in_cluster_loadbalance'] == 'true'


def test_issue10_h6_ip_masq_agent_backup_holds_the_concurrent_edit_it_overwrote(double, run):
    def kubectl_edit(ds):
        ds['spec']['template']['spec']['containers'][0]['args'].append('--nomasq-all-reserved-ranges')

    fired = edit_after_first_read(double, 'daemonsets', 'ip-masq-agent', kubectl_edit)
    rc, results, output = run(double, yaml.safe_dump([{'name': 'apply', 'netmedic.k8s.ip_masq_agent': {'allow_old_agent': True}}]))
    assert rc == 0, output
    assert fired, 'the concurrent edit was not injected'
    overwritten = fired[0]
    entry, cm = _only_backup(double, 'ip-masq-agent', results['apply'])
    saved = json.loads(cm['data']['daemonset.json'])
    assert saved['spec']['template'] == overwritten['spec']['template'], 'the backup does not hold what the write replaced'
    assert entry['args'] == overwritten['spec']['template']['spec']['containers'][0]['args']
    args = double.store.find('daemonsets', 'kube-system', 'ip-masq-agent')['spec']['template']['spec']['containers'][0]['args']
    assert args[-2:] == ['--nomasq-all-reserved-ranges', '--random-fully=false'], 'the concurrent edit was lost'
