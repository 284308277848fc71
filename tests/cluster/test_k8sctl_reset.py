"""The lab control plane's clean state is an etcd snapshot (issue 15 item 2), proved on the running control plane.

``k8sctl up`` saved it through etcd's snapshot API (``etcdctl snapshot save``) after the first bootstrap; ``k8sctl
reset`` restores it with ``etcdutl snapshot restore`` into a new data dir. Here: etcdutl reads the file as a snapshot
(revision, keys, hash), an object written after it is gone after a reset, what the bootstrap made is there, and the
file is the same one afterwards (a reset never re-takes it). Runs in ``make realcluster-test`` (the lab's own control
plane, NETMEDIC_TEST_K8SCTL=1); the ``lab_control_plane`` fixture resets and seeds it again afterwards.
"""

from __future__ import annotations

import re

from tests.cluster.conftest import run_k8sctl

SNAPSHOT_LINE = re.compile(r'^clean snapshot: (?P<path>\S+) \(etcd revision (?P<rev>\d+), (?P<keys>\d+) keys, '
                           r'hash (?P<hash>\d+)\)$', re.M)


def _snapshot():
    status = run_k8sctl('status')
    found = SNAPSHOT_LINE.search(status)
    assert found, status
    return found.groupdict()


def test_issue15_reset_restores_the_clean_etcd_snapshot(lab_control_plane):
    cluster = lab_control_plane
    before = _snapshot()
    assert int(before['keys']) > 0 and int(before['rev']) > 0, before

    cluster.create({'apiVersion': 'v1', 'kind': 'ConfigMap', 'data': {'written': 'after the snapshot'},
                    'metadata': {'name': 'netmedic-reset-probe', 'namespace': 'default'}})
    assert cluster.find('ConfigMap', 'default', 'netmedic-reset-probe') is not None

    out = run_k8sctl('reset')
    assert 'restore the clean etcd snapshot (etcdutl snapshot restore)' in out, out
    assert 'reset to the clean state in' in out, out

    assert cluster.find('ConfigMap', 'default', 'netmedic-reset-probe') is None
    # what the first bootstrap made before the snapshot was taken is back
    assert cluster.find('ServiceAccount', 'default', 'default') is not None
    assert cluster.find('ConfigMap', 'default', 'kube-root-ca.crt') is not None
    assert cluster.find('Namespace', None, 'kube-system') is not None
    assert _snapshot() == before  # the same file: a reset restores it, never takes it again
