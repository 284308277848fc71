"""The cluster edit service (``module_utils/k8s/edit.py``) and the client's timeouts and retries,
end to end through the cluster modules against the API double (issue #10 holes 6 and 9, issue #13).

The modules run in the test process (``module_tasks``, tests/harness.py: issue 12) and reach the
double over HTTP through the real client; their playbook interface is covered in their own files.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import yaml

DOUBLE_ONLY = ("fault: lands a concurrent edit between the module's read and its write (a wrapped store.get) and answers reads with 429 Retry-After "
               "/ 503 through the double's fault hook; a real server gives these only under a real race or overload")


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


def test_issue10_h6_flannel_backup_holds_the_concurrent_edit_it_overwrote(double, module_tasks):
    def kubectl_edit(cm):
        cm['data']['net-conf.json'] = cm['data']['net-conf.json'].replace('alloc', 'vxlan')

    fired = edit_after_first_read(double, 'configmaps', 'kube-flannel-cfg', kubectl_edit)
    rc, results, output = module_tasks(double, yaml.safe_dump([{'name': 'apply', 'netmedic.k8s.flannel_config': {'cni_version': '0.3.1'}}]))
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


def test_issue10_h6_terway_backup_holds_the_concurrent_edit_it_overwrote(double, module_tasks):
    def kubectl_edit(cm):
        cm['data']['disable_network_policy'] = 'true'

    fired = edit_after_first_read(double, 'configmaps', 'eni-config', kubectl_edit)
    rc, results, output = module_tasks(double, yaml.safe_dump([{'name': 'apply', 'netmedic.k8s.terway_config': {'in_cluster_loadbalance': True}}]))
    assert rc == 0, output
    assert fired, 'the concurrent edit was not injected'
    overwritten = fired[0]
    entry, cm = _only_backup(double, 'eni-config', results['apply'])
    assert cm['data'] == overwritten['data'], 'the backup does not hold what the write replaced'
    assert entry['data'] == overwritten['data']
    stored = double.store.find('configmaps', 'kube-system', 'eni-config')
    assert stored['data']['disable_network_policy'] == 'true' and stored['data']['in_cluster_loadbalance'] == 'true'


def test_issue10_h6_ip_masq_agent_backup_holds_the_concurrent_edit_it_overwrote(double, module_tasks):
    def kubectl_edit(ds):
        ds['spec']['template']['spec']['containers'][0]['args'].append('--nomasq-all-reserved-ranges')

    fired = edit_after_first_read(double, 'daemonsets', 'ip-masq-agent', kubectl_edit)
    rc, results, output = module_tasks(double, yaml.safe_dump([{'name': 'apply', 'netmedic.k8s.ip_masq_agent': {'allow_old_agent': True}}]))
    assert rc == 0, output
    assert fired, 'the concurrent edit was not injected'
    overwritten = fired[0]
    entry, cm = _only_backup(double, 'ip-masq-agent', results['apply'])
    saved = json.loads(cm['data']['daemonset.json'])
    assert saved['spec']['template'] == overwritten['spec']['template'], 'the backup does not hold what the write replaced'
    assert entry['args'] == overwritten['spec']['template']['spec']['containers'][0]['args']
    args = double.store.find('daemonsets', 'kube-system', 'ip-masq-agent')['spec']['template']['spec']['containers'][0]['args']
    assert args[-2:] == ['--nomasq-all-reserved-ranges', '--random-fully=false'], 'the concurrent edit was lost'


def _flannel(name, args, **extra):
    entry = {'name': name, 'netmedic.k8s.flannel_config': args}
    entry.update(extra)
    return entry


def test_issue10_h9_module_reads_retry_429_with_retry_after_and_503(double, module_tasks):
    from lab.kubedouble import errors

    seen = []

    def fault(method, path, query):
        if method == 'GET' and path == '/api/v1/namespaces/kube-system/configmaps/kube-flannel-cfg':
            seen.append(time.monotonic())
            if len(seen) == 1:
                raise errors.ApiError(429, 'TooManyRequests', 'too many requests, please try again later',
                                      headers={'Retry-After': '1'})
            if len(seen) == 2:
                raise errors.ApiError(503, 'ServiceUnavailable', 'the server is currently unable to handle the request')

    double.inject_fault(fault)
    rc, results, output = module_tasks(double, yaml.safe_dump([_flannel('check', {'cni_version': '0.3.1'}, check_mode=True)]))
    assert rc == 0, output
    assert results['check']['changed'] is True
    assert len(seen) == 3, seen
    assert seen[1] - seen[0] >= 1.0, 'Retry-After was not honoured'


def test_issue10_h9_persistent_503_fails_cleanly_after_bounded_retries(double, module_tasks):
    from lab.kubedouble import errors

    seen = []

    def fault(method, path, query):
        if method == 'GET' and path == '/api/v1/namespaces/kube-system/configmaps/kube-flannel-cfg':
            seen.append(method)
            raise errors.ApiError(503, 'ServiceUnavailable', 'the server is currently unable to handle the request')

    before = double.store.find('configmaps', 'kube-system', 'kube-flannel-cfg')
    double.inject_fault(fault)
    rc, results, _output = module_tasks(double, yaml.safe_dump([_flannel("apply", {"cni_version": "0.3.1", "request_retries": 1})]))
    assert rc != 0
    msg = results['apply']['msg']
    assert 'HTTP 503' in msg and '(after 1 retries)' in msg and 'nothing was changed' in msg, msg
    assert results['apply']['changed'] is False
    assert len(seen) == 2
    assert double.store.find('configmaps', 'kube-system', 'kube-flannel-cfg') == before
    assert backups_of(double, 'kube-flannel-cfg') == []


@pytest.mark.double_only('fault: an API server that accepts the connection and never answers (a bare socket here, not even the double)')
def test_issue10_h9_hung_api_server_fails_the_module_within_request_timeout(double, module_tasks):
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(8)
    accepted = []
    threading.Thread(target=lambda: [accepted.append(server.accept()[0]) for _attempt in range(8)], daemon=True).start()
    try:
        args = {'cni_version': '0.3.1', 'host': 'http://127.0.0.1:%d' % server.getsockname()[1], 'api_key': 'x',
                'request_timeout': 2}
        rc, results, _output = module_tasks(double, yaml.safe_dump([_flannel("apply", args)]))
    finally:
        for conn in accepted:
            conn.close()
        server.close()
    assert rc != 0
    msg = results['apply']['msg']
    assert 'no answer from the Kubernetes API within request_timeout=2.0s' in msg and 'nothing was changed' in msg, msg
    assert len(accepted) == 1, 'the request was sent %d times' % len(accepted)
