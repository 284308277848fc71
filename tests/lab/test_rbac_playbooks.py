"""Least privilege, proved (issue 10 hole 13): each playbook runs against the API double with a token
bound to exactly its rbac/<playbook>.yml grants (the double enforces RBAC for non-admin tokens), and a
writing playbook run with the read-only role gets a 403 and changes nothing (read back as admin)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from lab.kubedouble import StaticNodeState

DOUBLE_ONLY = ("audit: runs under a ServiceAccount bound to its rbac/*.yml grants and asserts from the double's request record that nothing was "
               "denied and every write was that account's; the real one's audit log (k8sctl NETMEDIC_K8S_AUDIT_POLICY, off by default) is read by no test yet")

ROOT = Path(__file__).resolve().parents[2]


def _sibling(name):
    """Another test module of this directory (its playbook runner), loaded by path."""
    spec = importlib.util.spec_from_file_location('_rbac_' + name, Path(__file__).with_name(name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_IPAM = _sibling('test_ipam_gc_fleet')
_W3 = _sibling('test_w3_fallback_reboot')          # W-3's cluster half as the playbook runs it, and the reboot stand-in
run_ipam_gc_fleet, _fleet, _files = _IPAM.run_playbook, _IPAM._fleet, _IPAM._files
RBAC_DIR = ROOT / 'rbac'
PLAYBOOKS = ROOT / 'playbooks'
NS = 'kube-system'
NODES = ('lab-node-1', 'lab-node-2', 'lab-node-3')


def denied(double):
    return [e for e in double.audit if not e['allowed']]


def _conf(double, name='kube-proxy-worker'):
    return yaml.safe_load(double.store.get('configmaps', NS, name)['data']['config.conf'])


def _snapshot(double):
    """Everything a writing playbook could change, as admin reads it."""
    cms, _rv = double.store.list('configmaps', NS)
    pods, _rv = double.store.list('pods', NS)
    leases, _rv = double.store.list('leases', NS)
    nodes, _rv = double.store.list('nodes')
    return ({c['metadata']['name']: c['metadata']['resourceVersion'] for c in cms},
            sorted(p['metadata']['uid'] for p in pods), [lease['metadata']['name'] for lease in leases],
            {n['metadata']['name']: n['metadata']['resourceVersion'] for n in nodes})


@pytest.fixture
def audited(make_double):
    return lambda **kwargs: make_double(audit=True, **kwargs)


@pytest.mark.double_only('no-cluster: compares playbooks/ with rbac/')
def test_every_cluster_playbook_has_a_manifest():
    names = {p.stem for p in PLAYBOOKS.glob('*.yml')}
    node_only = {'diagnose', 'remediate_node'}
    assert {p.stem for p in RBAC_DIR.glob('*.yml')} >= names - node_only


def test_conntrack_tuning_runs_with_its_role(audited, as_identity, playbook_file):
    double = audited()
    sa = as_identity(double, RBAC_DIR / 'conntrack_tuning.yml')
    rc, _tasks, output = playbook_file(sa, PLAYBOOKS / 'conntrack_tuning.yml', '-e', 'netmedic_conntrack_fix=cluster', check=True)
    assert rc == 0, (output, denied(double))
    assert _conf(double)['conntrack']['maxPerCore'] == 32768
    rc, _tasks, output = playbook_file(sa, PLAYBOOKS / 'conntrack_tuning.yml', '-e', 'netmedic_conntrack_fix=cluster')
    assert rc == 0, (output, denied(double))
    assert _conf(double)['conntrack']['maxPerCore'] == 65536
    assert not denied(double)
    assert {e['user'] for e in double.audit} >= {'system:serviceaccount:netmedic:netmedic-conntrack-tuning'}


def test_udp_timeout_runs_with_its_role(audited, as_identity, playbook_file):
    double = audited()
    sa = as_identity(double, RBAC_DIR / 'udp_timeout.yml')
    rc, _tasks, output = playbook_file(sa, PLAYBOOKS / 'udp_timeout.yml')
    assert rc == 0, (output, denied(double))
    assert _conf(double)['ipvs']['udpTimeout'] == '10s'
    assert not denied(double)


def test_ipvs_scheduler_change_runs_with_its_role(audited, as_identity, tmp_path):
    """W-3's API calls are all in its cluster half (role ipvs_scheduler, which takes the kube-proxy Lease itself when
    run alone); the playbook's node play (N-4, modprobe on real hosts) makes none and needs nodes this inventory has
    not (the playbook refuses a run without them). One run with the SA's token covers every grant: the change to sh
    is written and lab-node-1 restarted and verified, lab-node-2 (no ip_vs_sh) falls back to iptables, so the exact
    rollback and the reboot after the fallback (role node_rotation: node-disruption Lease, cordon, drain via the
    Eviction API, PDB and Node reads) run with exactly these grants too - the drain's grants were missing from
    rbac/ipvs_scheduler_change.yml when the reboot was added."""
    double = audited(node_state=StaticNodeState({'lab-node-1': {'ip_vs', 'ip_vs_rr', 'ip_vs_lc', 'ip_vs_sh', 'nf_conntrack'},
                                                 'lab-node-2': {'ip_vs', 'ip_vs_rr', 'ip_vs_lc', 'nf_conntrack'}}),
                     nodes=[('lab-node-1', '10.10.0.11'), ('lab-node-2', '10.10.0.12')])
    sa = as_identity(double, RBAC_DIR / 'ipvs_scheduler_change.yml')
    before = double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf']
    rc, output = _W3.run(sa, tmp_path, 'rbac-sh', ipvs_scheduler_name='sh', **_W3._reboot_vars(double, tmp_path))
    assert rc != 0 and 'rolled back' in output, output
    assert double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf'] == before   # restored exactly
    assert double.store.get('nodes', None, 'lab-node-2')['status']['nodeInfo'].get('bootID') == 'rebooted-lab-node-2', output
    assert not denied(double)
    assert {e['user'] for e in double.audit} >= {'system:serviceaccount:netmedic:netmedic-ipvs-scheduler-change'}


def test_ipam_gc_fleet_runs_with_its_role(audited, as_identity, tmp_path):
    double = audited()
    sa = as_identity(double, RBAC_DIR / 'ipam_gc_fleet.yml')
    bindir = _fleet(tmp_path)
    rc, _results, output = run_ipam_gc_fleet(sa, tmp_path, bindir)
    assert rc == 0, (output, denied(double))
    assert not denied(double)
    for index, node in enumerate(NODES, 1):
        assert '10.0.%d.3' % index not in _files(tmp_path, node)      # the leaked one was collected
        assert not double.store.get('nodes', None, node)['spec'].get('unschedulable')


def test_network_audit_runs_with_the_read_only_role(audited, as_identity, playbook):
    double = audited()
    sa = as_identity(double, RBAC_DIR / 'read-only.yml')
    rc, results, output = playbook(sa, """
        - name: audit
          netmedic.k8s.network_audit: {}
        - name: gate
          netmedic.k8s.health_gate:
            daemonsets: [kube-proxy-worker]
    """, extra_env={'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections')})
    assert rc == 0, (output, denied(double))
    assert 'findings' in results['audit']
    assert not denied(double)


def test_read_only_role_cannot_run_a_writing_playbook(audited, as_identity, playbook_file, playbook):
    """A writing playbook with the read-only role: 403, nothing changed - also in check mode, whose
    server-side dry run needs the write verbs (docs/rbac.md says so)."""
    double = audited()
    sa = as_identity(double, RBAC_DIR / 'read-only.yml')
    before = _snapshot(double)
    for check in (True, False):
        rc, _tasks, output = playbook_file(sa, PLAYBOOKS / 'conntrack_tuning.yml', '-e', 'netmedic_conntrack_fix=cluster',
                                           check=check)
        assert rc != 0, output
        assert 'HTTP 403 Forbidden' in output and 'system:serviceaccount:netmedic:netmedic-read-only' in output, output
        assert _snapshot(double) == before
    assert {(e['verb'], e['resource']) for e in denied(double)} >= {('get', 'leases')}
    # The module alone in check mode: its server-side dry run is authorized as the write, so it is refused too.
    rc, results, output = playbook(sa, """
        - name: plan only
          netmedic.k8s.kube_proxy_config:
            settings: {conntrack.maxPerCore: 65536}
          check_mode: true
    """, extra_env={'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections')})
    msg = results['plan only']['msg']
    assert rc != 0 and 'dry run' in msg and 'HTTP 403' in msg and 'cannot update resource "configmaps"' in msg, output
    assert _snapshot(double) == before


# The fix playbooks (issue 9) with exactly their grants: check mode, then the change (W-1 in check mode only: an
# apply rotates nodes), with the one answer each needs (as tests/lab/test_awx_surveys.py gives it). The seed's
# ip-masq-agent is 2.10 (allow_old_agent) and its DaemonSets are OnDelete or RollingUpdate as the double seeds them.
FIX_PLAYBOOKS = {
    'flannel_config': (['-e', 'netmedic_flannel_cni_version=0.3.1'], True),
    'terway_config': (['-e', 'netmedic_terway_disable_network_policy=true'], True),
    'ip_masq_agent': (['-e', 'netmedic_masq_allow_old_agent=true'], True),
    'node_rotation': (['-e', '{"netmedic_rotation_nodes": ["lab-node-1"], "netmedic_rotation_external_replacement": true}'], False),
}


@pytest.mark.parametrize('name', sorted(FIX_PLAYBOOKS))
def test_fix_playbook_runs_with_its_role(name, audited, as_identity, playbook_file):
    extra, apply = FIX_PLAYBOOKS[name]
    double = audited()
    sa = as_identity(double, RBAC_DIR / ('%s.yml' % name))
    rc, _tasks, output = playbook_file(sa, PLAYBOOKS / ('%s.yml' % name), *extra, check=True)
    assert rc == 0, (output, denied(double))
    if apply:
        rc, tasks, output = playbook_file(sa, PLAYBOOKS / ('%s.yml' % name), *extra)
        failed = {task: r.get('msg') for task, r in tasks.items() if r.get('failed')}
        assert rc == 0, (failed, denied(double))
    assert not denied(double)
    user = 'system:serviceaccount:netmedic:netmedic-%s' % name.replace('_', '-')
    assert {e['user'] for e in double.audit if e['verb'] not in ('get', 'list', 'watch')} == {user}


def test_arp_flush_runs_with_its_role(audited, as_identity, tmp_path):
    """W-6 with exactly its grants: the lock and the health gate run from the node play on the controller
    (tests/lab/test_w6_spine.py's runner: three local 'nodes', a VIP no neighbor table here holds)."""
    w6 = _sibling('test_w6_spine')
    double = audited()
    sa = as_identity(double, RBAC_DIR / 'arp_flush.yml')
    rc, _results, output = w6.run(sa, tmp_path, check=True, job=301)
    assert rc == 0, (output, denied(double))
    rc, _results, output = w6.run(sa, tmp_path, job=302)
    assert rc == 0, (output, denied(double))
    assert not denied(double) and double.store.find('leases', *w6.LEASE) is None
    writes = {e['user'] for e in double.audit if e['verb'] not in ('get', 'list', 'watch')}
    assert writes == {'system:serviceaccount:netmedic:netmedic-arp-flush'}
