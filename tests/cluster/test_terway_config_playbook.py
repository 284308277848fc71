"""playbooks/terway_config.yml (catalog C-6) on the double and on the real kube-apiserver (issue 15): the runs that
stop before any change - in_cluster_loadbalance refused on a Terway older than v1.2.0 (issue 10 C-6), bad input, and
the cluster lock held by another run.

Ported from tests/lab/test_terway_config_playbook.py (where the runs verified by Terway's policy log line or a crash
loop stay). Each test works on copies of the seed's ``eni-config`` ConfigMap and ``terway-eniip`` DaemonSet (with
the ServiceAccount its pods run as, so the real DaemonSet controller runs them) in a namespace of its own: the playbook
is pointed there with ``netmedic_terway_namespace``, and its cluster lock with ``change_guard_lock_namespace`` (role
change_guard's argument; an extra var wins over its ``kube-system`` default), so kube-system stays as the seed made
it. What is asserted is read back through the API.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from tests.cluster.conftest import copy_accounts, copy_seed, daemonset_settled
from tests.cluster.test_terway_config import set_terway_image
from tests.lab.playbook_run import run_playbook

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'terway_config.yml'
CM = 'eni-config'
DS = 'terway-eniip'


@pytest.fixture
def terway(writable, scratch):
    """``scratch`` with the seed's eni-config and terway-eniip (its pods Ready on the three nodes); the namespace."""
    copy_accounts(writable, scratch)
    copy_seed(writable, scratch, names=[CM, DS])
    _ds, pods = daemonset_settled(writable, scratch, DS)
    assert len(pods) == 3, pods
    return scratch


@pytest.fixture
def run(tmp_path):
    def _run(cluster, ns, *extra, check=False):
        where = ['-e', 'netmedic_terway_namespace=%s' % ns, '-e', 'change_guard_lock_namespace=%s' % ns]
        return run_playbook(cluster, tmp_path, PLAYBOOK, *where, *extra, check=check)
    return _run


def data(cluster, ns):
    return cluster.get('ConfigMap', ns, CM)['data']


def uids(cluster, ns):
    """The UIDs of the live Terway pods (a Terminating one is not counted: it is going)."""
    return {p['metadata']['uid'] for p in cluster.items('Pod', ns, label_selector='app=%s' % DS)
            if not p['metadata'].get('deletionTimestamp')}


def backups(cluster, ns):
    return cluster.items('ConfigMap', ns, label_selector='netmedic.k8s/backup-of=%s' % CM)


def test_issue10_c6_playbook_refuses_in_cluster_loadbalance_on_old_terway(writable, terway, run):
    cluster, ns = writable, terway
    set_terway_image(cluster, ns, 'registry.lab.invalid/acs/terway:v1.1.9')
    before = data(cluster, ns)          # (the image change itself makes the DaemonSet controller roll the pods)
    rc, _tasks, output = run(cluster, ns, '-e', 'netmedic_terway_in_cluster_loadbalance=true')
    assert rc != 0 and 'Terway v1.1.9 is older than v1.2.0' in output, output
    assert data(cluster, ns) == before
    assert backups(cluster, ns) == [] and 'Recreate the Terway pods node by node' not in output
    assert cluster.find('Lease', ns, 'netmedic-terway') is None


def test_c6_bad_input_and_lock_held_change_nothing(writable, terway, run):
    cluster, ns = writable, terway
    before, pods = data(cluster, ns), uids(cluster, ns)
    rc, _tasks, output = run(cluster, ns, '-e', 'netmedic_terway_disable_network_policy=sometimes')
    assert rc != 0 and 'netmedic_terway_disable_network_policy' in output, output
    now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    cluster.create({'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease', 'metadata': {'name': 'netmedic-terway'},
                    'spec': {'holderIdentity': 'awx-job-9', 'leaseDurationSeconds': 3600, 'renewTime': now, 'acquireTime': now}},
                   namespace=ns)
    rc, _tasks, output = run(cluster, ns, '-e', 'netmedic_terway_disable_network_policy=true')
    assert rc != 0 and "held by 'awx-job-9'" in output, output
    assert data(cluster, ns) == before and uids(cluster, ns) == pods and backups(cluster, ns) == []
    assert cluster.get('Lease', ns, 'netmedic-terway')['spec']['holderIdentity'] == 'awx-job-9'   # left alone
