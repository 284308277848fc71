"""netmedic.k8s.network_audit's failure path and the client helpers it reads the cluster with, on the double and on the
real kube-apiserver (issue 15).

Ported from tests/lab/test_network_audit.py (issue 15 item 4; 2 of its 4 cases): credentials the server rejects make
the audit fail with the 401 instead of reporting no findings, and neither the rejected nor the real credential shows in
the output; ``k8s_client.list_objects`` follows ``continue`` tokens to every pod of the cluster, a 404 read is None and a
401 raises. The seed's findings (GKE v1.24, kind ``version``) and the provoked D-6/D-7 (a NotReady Node, a crash-looping
agent's log: ``kubelet``) stay in tests/lab. Nothing is written: both tests only read.

The rejected credential is the test's kubeconfig with every user's credentials replaced by a bearer token no server
issued (the double's kubeconfig carries a token, the lab's real one a client certificate). On the real server other
clients create and delete pods (nodesim, the controllers, an earlier test's namespace going away), so the paged list is
compared with a list read just before and one just after that agree (read again until they do).
"""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client

BAD_TOKEN = 'not-the-token'


def bad_kubeconfig(cluster, path):
    """``cluster``'s kubeconfig with every user's credentials replaced by ``BAD_TOKEN`` (written to ``path``); returns the
    secrets it replaced (a token, a client key), so a test can look for them in the output."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    secrets = []
    for user in config['users']:
        secrets += [value for key, value in (user.get('user') or {}).items() if key in ('token', 'client-key-data') and value]
        user['user'] = {'token': BAD_TOKEN}
    assert secrets, 'the kubeconfig has no token or client key to leave out of the output'
    path.write_text(yaml.safe_dump(config))
    return secrets


def test_api_errors_fail_instead_of_reporting_nothing(cluster, module_tasks, tmp_path):
    # A kubeconfig whose token the server rejects: every list is a 401.
    bad = tmp_path / 'bad.kubeconfig'
    secrets = bad_kubeconfig(cluster, bad)
    rc, results, output = module_tasks(cluster, yaml.safe_dump([
        {'name': 'bad token', 'ignore_errors': True, 'netmedic.k8s.network_audit': {'kubeconfig': str(bad)}},
    ]))
    assert rc == 0, output
    res = results['bad token']
    assert res['failed'] is True and '401' in res['msg'] and 'nothing was assumed' in res['msg']
    assert 'findings' not in res
    assert BAD_TOKEN not in output and not [s for s in secrets if s in output]


def _pod_uids(cluster):
    return sorted(p['metadata']['uid'] for p in cluster.items('Pod'))


def test_client_helpers_page_through_lists_and_tell_absent_from_error(cluster, tmp_path):
    """k8s_client.list_objects follows ``continue`` tokens; a 404 read is None; a 401 raises."""
    client = k8s_client.Cluster({'kubeconfig': str(cluster.kubeconfig), 'context': cluster.context})
    for _attempt in range(20):
        stored = _pod_uids(cluster)
        paged = k8s_client.list_objects(client, 'Pod', page=2)
        if _pod_uids(cluster) == stored:
            break
    else:
        raise AssertionError('the pods changed during every one of 20 reads: no quiet moment to compare the paged list with')
    assert len(stored) > 4
    assert sorted(p['metadata']['uid'] for p in paged) == stored
    assert k8s_client.get_object(client, 'DaemonSet', 'kube-system', 'no-such-ds') is None
    assert k8s_client.get_object(client, 'Node', None, 'lab-node-1')['metadata']['name'] == 'lab-node-1'
    bad = tmp_path / 'bad.kubeconfig'
    bad_kubeconfig(cluster, bad)
    with pytest.raises(k8s_client.K8sError) as err:
        k8s_client.list_objects(k8s_client.Cluster({'kubeconfig': str(bad), 'context': cluster.context}), 'Pod')
    assert err.value.status == 401
