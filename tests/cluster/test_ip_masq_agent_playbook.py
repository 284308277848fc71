"""playbooks/ip_masq_agent.yml (catalog C-4) on the double and on the real kube-apiserver (issue 15): the edit, the
rollout verified by the DaemonSet's status (RollingUpdate, one pod at a time: the real DaemonSet controller's on the
real server, pods run and ended by nodesim), idempotence; bad input, the addon-manager refusal (issue 10 C-4) and a
held Lease change nothing.

Ported from tests/lab/test_ip_masq_agent_playbook.py (where only the crash-looping agent stays). Each test works on
a copy of the seed's ip-masq-agent DaemonSet and ConfigMap in a namespace of its own: the playbook is pointed there
with ``netmedic_masq_namespace``, and its cluster lock with ``change_guard_lock_namespace`` (role change_guard's
argument; an extra var wins over its ``kube-system`` default), so kube-system stays as the seed made it. What is
asserted is read back through the API.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from tests.cluster.conftest import copy_seed, daemonset_settled
from tests.lab.playbook_run import run_playbook

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'ip_masq_agent.yml'
DS = 'ip-masq-agent'
OLD = 'registry.lab.invalid/ip-masq-agent:v2.10.1'
NEW = 'registry.lab.invalid/ip-masq-agent:v2.11.0'
UPGRADE = ['-e', 'netmedic_masq_image=%s' % NEW]


@pytest.fixture
def masq(writable, scratch):
    """``scratch`` with the seed's ip-masq-agent (DaemonSet and ConfigMap), its three pods Ready; the namespace."""
    copy_seed(writable, scratch, names=[DS])
    _ds, pods = daemonset_settled(writable, scratch, DS)
    assert len(pods) == 3, pods
    return scratch


@pytest.fixture
def run(tmp_path):
    def _run(cluster, ns, *extra, check=False):
        where = ['-e', 'netmedic_masq_namespace=%s' % ns, '-e', 'change_guard_lock_namespace=%s' % ns]
        return run_playbook(cluster, tmp_path, PLAYBOOK, *where, *extra, check=check)
    return _run


def agent(cluster, ns):
    return cluster.get('DaemonSet', ns, DS)['spec']['template']['spec']['containers'][0]


def pods(cluster, ns):
    """The live agent pods by UID (a Terminating one is not counted: it is going)."""
    return {p['metadata']['uid']: p for p in cluster.items('Pod', ns, label_selector='k8s-app=%s' % DS)
            if not p['metadata'].get('deletionTimestamp')}


def test_c4_check_apply_rollout_verified_then_idempotent(writable, masq, run):
    cluster, ns = writable, masq
    before, uids = agent(cluster, ns), set(pods(cluster, ns))
    assert before['image'] == OLD and len(uids) == 3
    rc, _tasks, output = run(cluster, ns, *UPGRADE, check=True)
    assert rc == 0, output
    assert agent(cluster, ns) == before and set(pods(cluster, ns)) == uids

    rc, tasks, output = run(cluster, ns, *UPGRADE)
    assert rc == 0, output
    assert agent(cluster, ns)['image'] == NEW and agent(cluster, ns)['args'].count('--random-fully=false') == 1
    rolled = pods(cluster, ns)
    assert len(rolled) == 3 and set(rolled).isdisjoint(uids)                 # the playbook waited for every pod
    assert all(p['spec']['containers'][0]['image'] == NEW for p in rolled.values())
    # The cluster lock was taken and released in the test's namespace, not in kube-system.
    assert sorted((t['lock']['namespace'], t['lock']['action']) for t in tasks.values() if isinstance(t.get('lock'), dict)) == [
        (ns, 'created'), (ns, 'released')], output

    rc, tasks, output = run(cluster, ns, *UPGRADE)
    assert rc == 0, output
    assert not any(t.get('changed') for t in tasks.values()), [n for n, t in tasks.items() if t.get('changed')]
    assert set(pods(cluster, ns)) == set(rolled)


def test_issue10_c4_reconcile_mode_bad_input_and_lock_change_nothing(writable, masq, run):
    cluster, ns = writable, masq
    before, uids = agent(cluster, ns), set(pods(cluster, ns))
    rc, _tasks, output = run(cluster, ns, '-e', 'netmedic_masq_rollout_timeout=soon')
    assert rc != 0 and 'netmedic_masq_rollout_timeout' in output, output

    cluster.edit('DaemonSet', ns, DS, lambda ds: ds['metadata'].setdefault('labels', {}).update(
        {'addonmanager.kubernetes.io/mode': 'Reconcile'}))
    rc, _tasks, output = run(cluster, ns, *UPGRADE)
    assert rc != 0 and 'addon manager reconciles it' in output, output
    assert agent(cluster, ns) == before

    now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    cluster.create({'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease', 'metadata': {'name': 'netmedic-ip-masq-agent'},
                    'spec': {'holderIdentity': 'awx-job-3', 'leaseDurationSeconds': 3600, 'renewTime': now, 'acquireTime': now}},
                   namespace=ns)
    rc, _tasks, output = run(cluster, ns, *UPGRADE, '-e', 'netmedic_masq_allow_addon_manager_reconcile=true')
    assert rc != 0 and "held by 'awx-job-3'" in output, output
    assert agent(cluster, ns) == before
    assert cluster.get('Lease', ns, 'netmedic-ip-masq-agent')['spec']['holderIdentity'] == 'awx-job-3'   # left alone
    assert set(pods(cluster, ns)) == uids                                   # no agent restarted
