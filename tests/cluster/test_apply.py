"""kube_proxy_config applied for real (check, apply, again), on the double and on the real kube-apiserver (issue 15).

The real server brings what the double only models: its own defaulting and validation of the
ConfigMap, the resourceVersion checks of the one edit service's update, and the backup ConfigMap
created through the real admission chain. It runs in a namespace of its own (``scratch``) on a
ConfigMap made there, so the seed's kube-system objects stay as they are. What is asserted is read
back through the API.
"""

from __future__ import annotations

import yaml

from tests.cluster.test_workflows import run_tasks

CONF = {'apiVersion': 'kubeproxy.config.k8s.io/v1alpha1', 'kind': 'KubeProxyConfiguration', 'mode': 'ipvs',
        'conntrack': {'maxPerCore': 32768, 'min': 131072}, 'ipvs': {'scheduler': 'rr'}}
BACKUP_LABEL = 'netmedic.k8s/backup-of'


def test_issue15_kube_proxy_config_check_apply_and_again(writable, scratch, tmp_path):
    cluster = writable
    core = cluster.core
    core.create_namespaced_config_map(scratch, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'kube-proxy'},
                                                'data': {'config.conf': yaml.safe_dump(CONF)}})
    before = core.read_namespaced_config_map('kube-proxy', scratch)
    args = {'settings': {'conntrack': {'maxPerCore': 65536}}, 'names': ['kube-proxy'], 'namespace': scratch}
    rc, results, output = run_tasks(cluster, tmp_path, [
        {'name': 'check', 'check_mode': True, 'diff': True, 'netmedic.k8s.kube_proxy_config': args},
    ])
    assert rc == 0, output[-4000:]
    assert results['check']['changed'] is True
    same = core.read_namespaced_config_map('kube-proxy', scratch)
    assert same.metadata.resource_version == before.metadata.resource_version      # check mode wrote nothing
    assert not core.list_namespaced_config_map(scratch, label_selector=BACKUP_LABEL).items

    rc, results, output = run_tasks(cluster, tmp_path, [
        {'name': 'apply', 'netmedic.k8s.kube_proxy_config': args},
        {'name': 'again', 'netmedic.k8s.kube_proxy_config': args},
    ])
    assert rc == 0, output[-4000:]
    assert results['apply']['changed'] is True and results['again']['changed'] is False, (cluster.server, results)
    after = core.read_namespaced_config_map('kube-proxy', scratch)
    conf = yaml.safe_load(after.data['config.conf'])
    assert conf['conntrack']['maxPerCore'] == 65536 and conf['ipvs']['scheduler'] == 'rr' and conf['mode'] == 'ipvs'
    backups = core.list_namespaced_config_map(scratch, label_selector=BACKUP_LABEL).items
    assert len(backups) == 1, [b.metadata.name for b in backups]                     # one backup, of the first apply only
    assert yaml.safe_load(backups[0].data['config.conf'])['conntrack']['maxPerCore'] == 32768
    assert backups[0].metadata.labels[BACKUP_LABEL] == 'kube-proxy'
