"""W-3 (role ipvs_scheduler, the cluster half of playbooks/ipvs_scheduler_change.yml): the node restart after an
iptables fallback, issue 9 finding 5's last sentence (catalog C-2, seed 002: "Using iptables Proxier" - roll back,
then restart that node), API double.

The role runs as the playbook's cluster play does, under its own kube-proxy Lease (ipvs_scheduler_acquire, default):
the playbook's node play (N-4 on real hosts) has no place on the double, and the playbook refuses a netmedic_targets
that matches no node (issue 11 item 5).

The double's kube-proxy on lab-node-3 (no ip_vs_lc) logs "Can't use the IPVS proxier" and "Using iptables Proxier.".
The reboot is role node_rotation with a provider stand-in (netmedic_reboot_provider_tasks) that gives the Node a new
boot ID, as a real reboot does. Everything asserted is read back from the double's store (ConfigMap bytes, Node
cordon/annotation/boot ID, Leases). The runner (``run``, ``_reboot_vars``; also tests/lab/test_rbac_playbooks.py's) is
tests/lab/w3_run.py's. The check-mode case runs on the double and the real kube-apiserver in
tests/cluster/test_w3_fallback_reboot.py (ported from here, issue 15 item 4).
"""

from __future__ import annotations

import datetime

import pytest

from lab.kubedouble import StaticNodeState
from tests.lab.test_w3_spine import _hold, _text
from tests.lab.w3_run import CORDON_ANNOTATION as ANNOTATION
from tests.lab.w3_run import LEASES, NODES, NS
from tests.lab.w3_run import reboot_vars as _reboot_vars
from tests.lab.w3_run import run_role as run

DOUBLE_ONLY = ("kubelet: the restart is verified by kube-proxy's log line ('Using ipvs Proxier.', or the fallback when a node lacks the scheduler's "
               "kernel module), written by the double's simulated kube-proxy; the simulated nodes serve no pod logs; the reboot is a new bootID, "
               'which the simulated node writes back')


@pytest.fixture
def lc_missing_on_node_3():
    return StaticNodeState({'lab-node-1': {'ip_vs', 'ip_vs_rr', 'ip_vs_lc'}, 'lab-node-2': {'ip_vs', 'ip_vs_rr', 'ip_vs_lc'},
                            'lab-node-3': {'ip_vs', 'ip_vs_rr'}})


@pytest.fixture
def lc_everywhere():
    return StaticNodeState({n: {'ip_vs', 'ip_vs_rr', 'ip_vs_lc'} for n in NODES})


def _nodes(double):
    return {n: double.store.get('nodes', None, n) for n in NODES}


def _boot(node):
    return node['status']['nodeInfo'].get('bootID')


def _cordoned(node):
    return bool(node['spec'].get('unschedulable')), (node['metadata'].get('annotations') or {}).get(ANNOTATION)


def _leases(double):
    return {name: double.store.find('leases', NS, name) for name in LEASES}


def test_issue9_f5_w3_iptables_fallback_rolls_back_then_reboots_that_node(make_double, lc_missing_on_node_3, tmp_path):
    """Issue 9 finding 5 (last sentence): after the fallback on lab-node-3 W-3 rolled the ConfigMap back but never
    restarted the node. Now: exact rollback, then lab-node-3 alone is cordoned, drained, rebooted (new boot ID), back
    Ready and uncordoned; the run still fails with the rollout's message; every Lease is released."""
    double = make_double(node_state=lc_missing_on_node_3)
    text, before = _text(double), _nodes(double)
    rc, output = run(double, tmp_path, 'fallback', env={'AWX_JOB_ID': '51'}, **_reboot_vars(double, tmp_path))
    assert rc != 0 and 'rolled back' in output, output
    assert _text(double) == text                                                     # the exact old bytes
    after = _nodes(double)
    assert _boot(after['lab-node-3']) == 'rebooted-lab-node-3', output               # the node was restarted
    assert all(_boot(after[n]) == _boot(before[n]) for n in ('lab-node-1', 'lab-node-2'))   # only that node
    assert all(_cordoned(after[n]) == (False, None) for n in NODES)                  # uncordoned, annotation gone
    assert 'lab-node-3 was rebooted (catalog C-2' in output, output
    assert _leases(double) == dict.fromkeys(LEASES)                                  # all three released


def test_issue9_f5_w3_fallback_reboot_opt_out_only_reports(make_double, lc_missing_on_node_3, tmp_path):
    """netmedic_reboot_on_fallback=false: rolled back, the node named in the failure, nothing cordoned or rebooted."""
    double = make_double(node_state=lc_missing_on_node_3)
    text, before = _text(double), _nodes(double)
    rc, output = run(double, tmp_path, 'optout', netmedic_reboot_on_fallback=False, **_reboot_vars(double, tmp_path))
    assert rc != 0 and 'rolled back' in output, output
    assert 'Not rebooted (netmedic_reboot_on_fallback=false): lab-node-3' in output, output
    assert _text(double) == text
    after = _nodes(double)
    assert all(_boot(after[n]) == _boot(before[n]) and _cordoned(after[n]) == (False, None) for n in NODES)
    assert _leases(double) == dict.fromkeys(LEASES)


def test_issue9_f5_w3_rerun_after_a_kill_mid_reboot_finishes_it(make_double, lc_everywhere, tmp_path):
    """A job killed during the reboot left lab-node-3 cordoned (annotation w3-fallback/<holder>) and its Leases expired.
    The re-run (the module loaded meanwhile: the rollout passes) reboots lab-node-3 again and uncordons it."""
    double = make_double(node_state=lc_everywhere)
    node = double.store.get('nodes', None, 'lab-node-3')
    node['spec']['unschedulable'] = True
    node['metadata'].setdefault('annotations', {})[ANNOTATION] = 'w3-fallback/awx-job-52'
    double.store.update('nodes', None, 'lab-node-3', node)
    assert _cordoned(double.store.get('nodes', None, 'lab-node-3')) == (True, 'w3-fallback/awx-job-52')
    _hold(double, 'awx-job-52', age=7200, duration=3600)                              # the killed job's, expired
    rc, output = run(double, tmp_path, 'resume', env={'AWX_JOB_ID': '53'}, **_reboot_vars(double, tmp_path))
    assert rc == 0, output
    after = _nodes(double)
    assert _boot(after['lab-node-3']) == 'rebooted-lab-node-3', output
    assert all(_cordoned(after[n]) == (False, None) for n in NODES)
    assert 'scheduler: lc' in _text(double)
    assert _leases(double) == dict.fromkeys(LEASES)


def test_issue9_w3_fallback_reboot_waits_for_no_other_node_disruption(make_double, lc_missing_on_node_3, tmp_path):
    """Issue 9 open question: another workflow (here a W-2 job) holds node-disruption. The reboot after the fallback
    does not start (no node cordoned), the run fails saying so, W-3's own Leases are released, the other's is kept."""
    double = make_double(node_state=lc_missing_on_node_3)
    double.store.create('leases', NS, {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                                       'metadata': {'name': 'netmedic-node-disruption', 'namespace': NS},
                                       'spec': {'holderIdentity': 'awx-job-60', 'leaseDurationSeconds': 3600,
                                                'renewTime': _now(), 'acquireTime': _now()}})
    text, before = _text(double), _nodes(double)
    rc, output = run(double, tmp_path, 'disruption', **_reboot_vars(double, tmp_path))
    assert rc != 0 and 'node-disruption' in output, output
    assert _text(double) == text
    after = _nodes(double)
    assert all(_boot(after[n]) == _boot(before[n]) and _cordoned(after[n]) == (False, None) for n in NODES)
    leases = _leases(double)
    assert leases['netmedic-kube-proxy'] is None and leases['netmedic-node-rotation'] is None
    assert leases['netmedic-node-disruption']['spec']['holderIdentity'] == 'awx-job-60'


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def test_w3_default_reboot_hook_needs_the_nodes_inventory_host(make_double, lc_missing_on_node_3, tmp_path):
    """The default reboot hook reboots the node's inventory host, found by the shared filter netmedic.k8s.node_hosts
    (netmedic_node_name, else the inventory name). This inventory is localhost only: lab-node-3 has no host, so after
    the exact rollback the run fails naming it, before any cordon; nothing rebooted, every Lease released."""
    double = make_double(node_state=lc_missing_on_node_3)
    text, before = _text(double), _nodes(double)
    variables = _reboot_vars(double, tmp_path)
    del variables['netmedic_reboot_provider_tasks']                                   # the default hook
    rc, output = run(double, tmp_path, 'nohost', **variables)
    assert rc != 0 and 'No inventory host is Node lab-node-3' in output, output
    assert 'Nothing was cordoned or rebooted' in output, output
    assert _text(double) == text
    after = _nodes(double)
    assert all(_boot(after[n]) == _boot(before[n]) and _cordoned(after[n]) == (False, None) for n in NODES)
    assert _leases(double) == dict.fromkeys(LEASES)
