"""Least privilege, proved on a real RBAC authorizer (issue 10 hole 13, issue 15): each playbook runs with a token bound
to exactly its rbac/<playbook>.yml grants, and a writing playbook run with the read-only role gets a 403 and changes
nothing (read back as admin). Ported from tests/lab, where the double's own RBAC model judged the grants; here the
real kube-apiserver v1.37.2's RBAC authorizer does too (and the double, from the same test).

Denials are read from the request record (the ``Audit`` of tests/cluster/conftest.py: the double's, or the real server's
audit log, which records rbac/*.yml's ServiceAccounts: lab/k8s/audit-policy.yaml). Runs that change the seed take
``fresh`` (a double of their own; the real server reset to the seed afterwards). On the real server no kubelet serves
pod logs (nodesim), so the rollouts there verify by readiness alone (``*_patterns_preset=none``): the ``pods/log``
grant is proven on the double and, with a real kube-proxy, in tests/realnode.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.cluster import test_w6_spine as w6
from tests.cluster.conftest import Audit
from tests.lab.fleet import NODES, make_fleet
from tests.lab.fleet import files as fleet_files
from tests.lab.fleet import run_playbook as run_fleet

ROOT = Path(__file__).resolve().parents[2]
RBAC_DIR = ROOT / 'rbac'
PLAYBOOKS = ROOT / 'playbooks'
NS = 'kube-system'
NO_LOGS = ('-e', 'verified_rollout_patterns_preset=none', '-e', 'netmedic_kubeproxy_patterns_preset=none')


def denied(entries):
    return [e for e in entries if not e['allowed']]


def _conf(cluster, name='kube-proxy-worker'):
    return yaml.safe_load(cluster.get('ConfigMap', NS, name)['data']['config.conf'])


def _no_logs(cluster):
    return () if cluster.is_double else NO_LOGS


def _snapshot(cluster):
    """Everything a writing playbook could change, as admin reads it."""
    return ({c['metadata']['name']: c['metadata']['resourceVersion'] for c in cluster.items('ConfigMap', NS)},
            sorted(p['metadata']['uid'] for p in cluster.items('Pod', NS)),
            [lease['metadata']['name'] for lease in cluster.items('Lease', NS)],
            {n['metadata']['name']: n['spec'].get('unschedulable') for n in cluster.items('Node')})


def test_network_audit_runs_with_the_read_only_role(writable, identity, playbook):
    cluster = writable
    sa = identity(cluster, RBAC_DIR / 'read-only.yml')
    audit = Audit(cluster)
    rc, results, output = playbook(sa, """
        - name: audit
          netmedic.k8s.network_audit: {}
        - name: gate
          netmedic.k8s.health_gate:
            daemonsets: [kube-proxy-worker]
    """)
    entries = audit.entries()
    assert rc == 0, (output, denied(entries))
    assert 'findings' in results['audit']
    assert not denied(entries)
    assert {e['user'] for e in entries} == {sa.user}                     # the record saw the runs, as that account


def test_read_only_role_cannot_run_a_writing_playbook(kube_proxy_restored, identity, playbook_file, playbook):
    """A writing playbook with the read-only role: 403, nothing changed - also in check mode, whose server-side dry run
    needs the write verbs (docs/rbac.md says so). It runs against the seed's kube-proxy ConfigMaps: a regression that
    let it write is undone after it (``kube_proxy_restored``)."""
    cluster = kube_proxy_restored
    sa = identity(cluster, RBAC_DIR / 'read-only.yml')
    audit = Audit(cluster)
    before = _snapshot(cluster)
    for check in (True, False):
        rc, _tasks, output = playbook_file(sa, PLAYBOOKS / 'conntrack_tuning.yml', '-e', 'netmedic_conntrack_fix=cluster',
                                           check=check)
        assert rc != 0, output
        assert 'HTTP 403 Forbidden' in output and 'system:serviceaccount:netmedic:netmedic-read-only' in output, output
        assert _snapshot(cluster) == before
    assert {(e['verb'], e['resource']) for e in denied(audit.entries())} >= {('get', 'leases')}
    # The module alone in check mode: its server-side dry run is authorized as the write, so it is refused too.
    rc, results, output = playbook(sa, """
        - name: plan only
          netmedic.k8s.kube_proxy_config:
            settings: {conntrack.maxPerCore: 65536}
          check_mode: true
    """)
    msg = results['plan only']['msg']
    assert rc != 0 and 'dry run' in msg and 'HTTP 403' in msg and 'cannot update resource "configmaps"' in msg, output
    assert _snapshot(cluster) == before


def test_conntrack_tuning_runs_with_its_role(fresh, identity, playbook_file):
    cluster = fresh
    sa = identity(cluster, RBAC_DIR / 'conntrack_tuning.yml')
    audit = Audit(cluster)
    rc, _tasks, output = playbook_file(sa, PLAYBOOKS / 'conntrack_tuning.yml', '-e', 'netmedic_conntrack_fix=cluster',
                                       *_no_logs(cluster), check=True)
    assert rc == 0, (output, denied(audit.entries()))
    assert _conf(cluster)['conntrack']['maxPerCore'] == 32768
    rc, _tasks, output = playbook_file(sa, PLAYBOOKS / 'conntrack_tuning.yml', '-e', 'netmedic_conntrack_fix=cluster',
                                       *_no_logs(cluster))
    entries = audit.entries()
    assert rc == 0, (output, denied(entries))
    assert _conf(cluster)['conntrack']['maxPerCore'] == 65536
    assert not denied(entries)
    assert {e['user'] for e in entries if e['verb'] not in ('get', 'list', 'watch')} == {sa.user}


def test_udp_timeout_runs_with_its_role(fresh, identity, playbook_file):
    cluster = fresh
    sa = identity(cluster, RBAC_DIR / 'udp_timeout.yml')
    audit = Audit(cluster)
    rc, _tasks, output = playbook_file(sa, PLAYBOOKS / 'udp_timeout.yml', *_no_logs(cluster))
    entries = audit.entries()
    assert rc == 0, (output, denied(entries))
    assert _conf(cluster)['ipvs']['udpTimeout'] == '10s'
    assert not denied(entries)
    assert {e['user'] for e in entries if e['verb'] not in ('get', 'list', 'watch')} == {sa.user}


# The fix playbooks (issue 9) with exactly their grants: check mode, then the change (W-1 in check mode only: an
# apply rotates nodes), with the one answer each needs (as test_awx_surveys gives it). The seed's ip-masq-agent is
# 2.10 (allow_old_agent).
FIX_PLAYBOOKS = {
    'flannel_config': (['-e', 'netmedic_flannel_cni_version=0.3.1'], True),
    'terway_config': (['-e', 'netmedic_terway_disable_network_policy=true'], True),
    'ip_masq_agent': (['-e', 'netmedic_masq_allow_old_agent=true'], True),
    'node_rotation': (['-e', '{"netmedic_rotation_nodes": ["lab-node-1"], "netmedic_rotation_external_replacement": true}'], False),
}


@pytest.mark.parametrize('name', sorted(FIX_PLAYBOOKS))
def test_fix_playbook_runs_with_its_role(name, request, playbook_file):
    extra, apply = FIX_PLAYBOOKS[name]
    cluster = request.getfixturevalue('fresh' if apply else 'writable')      # a check run alone leaves the seed as it was
    sa = request.getfixturevalue('identity')(cluster, RBAC_DIR / ('%s.yml' % name))   # torn down before the cluster
    audit = Audit(cluster)
    rc, _tasks, output = playbook_file(sa, PLAYBOOKS / ('%s.yml' % name), *extra, *_no_logs(cluster), check=True)
    assert rc == 0, (output, denied(audit.entries()))
    if apply:
        rc, tasks, output = playbook_file(sa, PLAYBOOKS / ('%s.yml' % name), *extra, *_no_logs(cluster))
        failed = {task: r.get('msg') for task, r in tasks.items() if r.get('failed')}
        assert rc == 0, (failed, denied(audit.entries()))
    entries = audit.entries()
    assert not denied(entries)
    writers = {e['user'] for e in entries if e['verb'] not in ('get', 'list', 'watch')}
    assert writers == {sa.user}, writers


# C-7 and C-8 (issue 9: one AWX job template per fix), check mode then the change, each with exactly its grants.
IMAGE = 'registry.example/netmedic/gc-tools@sha256:' + '3f' * 32
C7_C8 = {
    'daemonset_restart': ['-e', 'netmedic_ds_name=kube-proxy-worker'],
    'ipam_cleanup_daemonset': ['-e', 'netmedic_ipam_cleanup_image=%s' % IMAGE],
}


@pytest.mark.parametrize('name', sorted(C7_C8))
def test_c7_c8_playbook_runs_with_its_role(name, fresh, identity, playbook_file):
    """Ported from tests/lab/test_rbac_c7_c8_playbooks.py. On the real server C-7's restart verifies by readiness alone
    (``netmedic_ds_patterns_preset=none``: nodesim serves no logs)."""
    cluster = fresh
    sa = identity(cluster, RBAC_DIR / ('%s.yml' % name))
    audit = Audit(cluster)
    extra = list(C7_C8[name]) + ([] if cluster.is_double else ['-e', 'netmedic_ds_patterns_preset=none'])
    for check in (True, False):
        rc, tasks, output = playbook_file(sa, PLAYBOOKS / ('%s.yml' % name), *extra, check=check)
        failed = {task: r.get('msg') for task, r in tasks.items() if r.get('failed')}
        assert rc == 0, (failed, denied(audit.entries()), output[-3000:])
    entries = audit.entries()
    assert not denied(entries)
    assert {e['user'] for e in entries if e['verb'] not in ('get', 'list', 'watch')} == {sa.user}


def test_ipam_gc_fleet_runs_with_its_role(nodes_uncordoned, identity, tmp_path):
    """W-7 with exactly its grants (ported from tests/lab): the fleet of three local "nodes" (tests/lab/fleet.py) against
    the cluster's Nodes, which it cordons and uncordons one at a time; every leaked address collected, no Node left
    cordoned (and, whatever happens, the Nodes and the kube-system Leases are put back for the next test:
    ``nodes_uncordoned``)."""
    cluster = nodes_uncordoned
    sa = identity(cluster, RBAC_DIR / 'ipam_gc_fleet.yml')
    audit = Audit(cluster)
    rc, _results, output = run_fleet(sa, tmp_path, make_fleet(tmp_path))
    entries = audit.entries()
    assert rc == 0, (output, denied(entries))
    assert not denied(entries)
    for index, node in enumerate(NODES, 1):
        assert '10.0.%d.3' % index not in fleet_files(tmp_path, node)      # the leaked one was collected
        assert not cluster.get('Node', None, node)['spec'].get('unschedulable')
    assert {e['user'] for e in entries if e['verb'] not in ('get', 'list', 'watch')} == {sa.user}


def test_arp_flush_runs_with_its_role(writable, identity, tmp_path):
    """W-6 with exactly its grants (ported from tests/lab): the lock and the health gate run from the node play on the
    controller (tests/cluster/test_w6_spine.py's runner: three local 'nodes', a VIP no neighbor table here holds)."""
    cluster = writable
    sa = identity(cluster, RBAC_DIR / 'arp_flush.yml')
    audit = Audit(cluster)
    rc, _results, output = w6.run(sa, tmp_path, check=True, job=301)
    assert rc == 0, (output, denied(audit.entries()))
    rc, _results, output = w6.run(sa, tmp_path, job=302)
    entries = audit.entries()
    assert rc == 0, (output, denied(entries))
    assert not denied(entries) and cluster.find('Lease', *w6.LEASE) is None
    assert {e['user'] for e in entries if e['verb'] not in ('get', 'list', 'watch')} == {sa.user}
