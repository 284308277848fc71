"""Role netmedic.k8s.node_rotation (W-1) on the safety spine, on the double and on the real kube-apiserver (issue 15):
issue 9 finding 4 (the hand-rolled lock's holes) where a run must stop before the first node.

Ported from tests/lab/test_node_rotation_spine.py (issue 15 item 4; 4 of its 8 cases): a Lease without TTL fields is
held, not expired; a Lease held by a live run stops this one; check mode in a closed change window reports the stop
and writes no Lease; a lock TTL below one node's worst case is refused. None of them reaches a node, so no provider
hook runs (the cases that rotate a node - a new boot ID, which lab/k8s/nodesim.py's heartbeat would overwrite - stay
in tests/lab, kind ``kubelet``). The runner is tests/lab/node_rotation_run.py, the one both suites use.

The lock is the Lease ``kube-system/netmedic-node-rotation`` (the role's default); ``spine_leases`` fails the test
when a ``kube-system/netmedic-*`` Lease is there before it and removes every one after it, and the old lock form (a ConfigMap
``kube-system/netmedic-node-rotation-lock`` a test plants beside it) is deleted afterwards, so kube-system stays as
the seed made it. What is asserted is read back through the API: the Nodes (cordon, boot ID, and in check mode every
write but status), the web pods (same UIDs on the same nodes, none Terminating) and the Lease.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.lab import node_rotation_run as w1
from tests.lab.node_rotation_run import LEASE, NODE_RV_ON_DOUBLE, NODES, boot_ids, cordoned, node_writes, web_pods, web_settled

OLD_CM = ('kube-system', 'netmedic-node-rotation-lock')
OLD_KEY = 'netmedic.k8s/node-rotation-lock'


@pytest.fixture
def w1_cluster(nodes_uncordoned):
    """``nodes_uncordoned`` with the web pods settled; the old lock ConfigMap absent before the test, gone after it."""
    cluster = nodes_uncordoned
    assert cluster.find('ConfigMap', *OLD_CM) is None
    web_settled(cluster)
    yield cluster
    if cluster.find('ConfigMap', *OLD_CM) is not None:
        cluster.core.delete_namespaced_config_map(OLD_CM[1], OLD_CM[0])


def _ago(seconds):
    return time.strftime('%Y-%m-%dT%H:%M:%S.000000Z', time.gmtime(time.time() - seconds))


def _hold(cluster, holder, lease_spec):
    """Another run holds the lock - in the old form (ConfigMap annotation) and the new one (Lease), planted through the API."""
    cluster.create({'apiVersion': 'v1', 'kind': 'ConfigMap',
                    'metadata': {'name': OLD_CM[1], 'annotations': {OLD_KEY: json.dumps({'holder': holder})}}}, namespace=OLD_CM[0])
    return cluster.create({'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease', 'metadata': {'name': LEASE[1]},
                           'spec': lease_spec}, namespace=LEASE[0])


def test_issue9_f4_lock_without_ttl_fields_is_held_not_expired(w1_cluster, tmp_path):
    """Finding 4: a lock record without TTL fields was taken over as expired."""
    cluster = w1_cluster
    _hold(cluster, 'other-run', {'holderIdentity': 'other-run'})
    web = web_pods(cluster)
    boots = boot_ids(cluster)
    rc, output = w1.run(cluster, tmp_path, 'nottl', node_rotation_nodes=['lab-node-1'], node_rotation_holder='ci-a')
    assert rc != 0, output
    assert 'treated as HELD' in output, output
    assert cordoned(cluster) == dict.fromkeys(NODES, False) and web_pods(cluster) == web and boot_ids(cluster) == boots
    assert cluster.get('Lease', *LEASE)['spec'] == {'holderIdentity': 'other-run'}


def test_lock_held_by_a_live_run_stops_with_nothing_changed(w1_cluster, tmp_path):
    cluster = w1_cluster
    _hold(cluster, 'awx-job-41', {'holderIdentity': 'awx-job-41', 'leaseDurationSeconds': 3600,
                                  'renewTime': _ago(10), 'acquireTime': _ago(10)})
    web, boots = web_pods(cluster), boot_ids(cluster)
    rc, output = w1.run(cluster, tmp_path, 'held', node_rotation_nodes=['lab-node-1'], env={'AWX_JOB_ID': '42'})
    assert rc != 0 and "held by 'awx-job-41'" in output, output
    assert cordoned(cluster) == dict.fromkeys(NODES, False) and web_pods(cluster) == web and boot_ids(cluster) == boots
    assert cluster.get('Lease', *LEASE)['spec']['holderIdentity'] == 'awx-job-41'


@pytest.mark.double_strict(NODE_RV_ON_DOUBLE)
def test_check_mode_reports_the_closed_window_and_writes_no_lease(w1_cluster, tmp_path):
    cluster = w1_cluster
    window = {'days': ['sat'], 'start': '22:00', 'end': '04:00', 'timezone': 'Europe/Berlin'}
    writes = node_writes(cluster)
    rc, output = w1.run(cluster, tmp_path, 'check', check=True, node_rotation_nodes=['lab-node-1'],
                        node_rotation_window=window, node_rotation_now='2026-11-25T12:00:00Z')
    assert rc == 0, output
    assert 'a real run would stop here' in output
    assert cluster.find('Lease', *LEASE) is None
    assert node_writes(cluster) == writes


def test_issue9_f4_lock_ttl_below_one_nodes_worst_case_is_refused(w1_cluster, tmp_path):
    cluster = w1_cluster
    # drain 30 + ready 30 + health 30 + the provider hook's 30 (issue 9 finding 12: the hook's time counts too)
    rc, output = w1.run(cluster, tmp_path, 'shortttl', node_rotation_nodes=['lab-node-1'], node_rotation_lock_ttl=60,
                        node_rotation_provider_timeout=30)
    assert rc != 0 and "node_rotation_lock_ttl (60 s) is shorter than one node's worst case (120 s" in output, output
    assert cluster.find('Lease', *LEASE) is None and cordoned(cluster) == dict.fromkeys(NODES, False)
