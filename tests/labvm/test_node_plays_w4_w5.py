"""The node plays of playbooks/udp_timeout.yml (W-4, N-5) and playbooks/conntrack_tuning.yml (W-5, Fix A) on the VM
lab, with the API double as the cluster (issue 12 item 4).

The API-double tests of these playbooks pass ``netmedic_targets=no_nodes_here``: their node plays never ran in a test.
Here the lab VMs are the nodes and an in-process API double (lab/kubedouble) the cluster, as in
test_ipvs_scheduler_e2e.py. ``labctl inject N-2 N-5`` plants on every node: nf_conntrack_max 64 with the table 87 %
full, and an IPVS UDP service with ``ipvsadm --set 900 120 300``.

- W-4: a double that reports Kubernetes v1.16.9 makes the playbook pick N-5 (``ipvsadm --set`` on every node, persisted
  as a systemd unit). ``--check --diff`` first (nothing changes on any node), then the apply (every node reads
  ``900 120 10`` back from ``ipvsadm -L --timeout``, the unit is written and enabled), then a second run that changes
  nothing. The kube-proxy ConfigMaps stay byte for byte (N-5 is not C-3) and no Lease is left.
- W-5: Fix B (kube-proxy conntrack.maxPerCore, verified restart) against a current-version double and Fix A
  (nf_conntrack_max = MemTotal kB / 32 now and in /etc/sysctl.d) on the VMs, applied (its check mode is proved
  elsewhere: see the w5 fixture).

Every node value is read back over ssh with the kernel's tools and files, never from the modules' reports.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.kubedouble import KubeDouble, StaticNodeState  # noqa: E402
from tests.labvm.vm_playbook import labctl, run_vm_playbook, ssh_kv  # noqa: E402

SEED = ROOT / 'lab' / 'seed' / 'cluster.yaml'
NS = 'kube-system'
UNIT = '/etc/systemd/system/netmedic-ipvs-timeouts.service'
CT_FILE = '/etc/sysctl.d/90-netmedic-conntrack.conf'
KUBE_PROXY_CMS = ('kube-proxy-worker', 'kube-proxy-master', 'kube-proxy')
LEASES = ('netmedic-kube-proxy', 'netmedic-node-disruption')

READ = r"""
f() { if [ -e "$1" ]; then python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"; else echo none; fi; }
kv() { printf '%%s=%%s\n' "$1" "$2"; }   # not echo: dash's echo expands the backslashes of the JSON
kv timeout "$(ipvsadm -L --timeout)"
kv unit "$(f %(unit)s)"
kv enabled "$(systemctl is-enabled %(name)s 2>/dev/null || true)"
kv mem "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
kv ct_max "$(cat /proc/sys/net/netfilter/nf_conntrack_max)"
kv ct_file "$(f %(ct)s)"
""" % {'unit': UNIT, 'name': UNIT.rsplit('/', 1)[1], 'ct': CT_FILE}


def read_state(ssh, node):
    state = ssh_kv(ssh, node, READ)
    for key in ('unit', 'ct_file'):
        state[key] = None if state[key] == 'none' else json.loads(state[key])
    return state


def read_all(ssh, nodes):
    return {n: read_state(ssh, n) for n in nodes}


def cluster_state(double):
    """The kube-proxy ConfigMaps' data and the netmedic Leases, as the double stores them."""
    cms = {name: (double.store.find('configmaps', NS, name) or {}).get('data') for name in KUBE_PROXY_CMS}
    leases = {name: double.store.find('leases', NS, name) for name in LEASES}
    return cms, leases


def start_double(tmp_path_factory, **kwargs):
    double = KubeDouble(seed=SEED, tick=0.05, start_delay=0.05, **kwargs).start()
    double.kubeconfig_path = double.write_kubeconfig(tmp_path_factory.mktemp('kube') / 'kubeconfig')
    return double


@pytest.fixture(scope='module')
def planted(lab, ssh, lab_reset):
    nodes = lab['nodes'][:3]
    lab_reset()
    try:
        labctl('inject', '--nodes', '1,2,3', 'N-2', 'N-5')
        yield {'nodes': nodes, 'before': read_all(ssh, nodes)}
    finally:
        lab_reset()


def test_faults_planted_on_every_node(planted):
    for node, state in planted['before'].items():
        assert state['timeout'].endswith('900 120 300') and state['unit'] is None, (node, state)   # N-5
        assert state['ct_max'] == '64' and state['ct_file'] is None, (node, state)                 # N-2


@pytest.fixture(scope='module')
def w4(planted, lab, ssh, tmp_path_factory):
    """W-4 on a Kubernetes 1.16 double: check, apply, again; node and cluster state read after each run."""
    nodes = planted['nodes']
    double = start_double(tmp_path_factory, version='v1.16.9-aliyun.1')
    phases = {}
    try:
        cluster_before = cluster_state(double)
        for phase, extra in (('check', ('--check', '--diff')), ('apply', ()), ('again', ())):
            run = run_vm_playbook(lab, tmp_path_factory.mktemp('w4-' + phase), double, 'udp_timeout.yml',
                                  '-e', 'netmedic_targets=lab_nodes', *extra)
            phases[phase] = {'run': run, 'nodes': read_all(ssh, nodes), 'cluster': cluster_state(double)}
    finally:
        double.stop()
    assert not double.failures, double.failures
    return {'nodes': nodes, 'cluster_before': cluster_before, **phases}


def test_w4_old_cluster_check_mode_changes_no_node(planted, w4):
    """Issue 12 item 4: udp_timeout.yml's node play (N-5) in check mode: every node says it would change, none does."""
    run = w4['check']['run']
    assert run.rc == 0, run.tail()
    plan = run.results('Choose the fix')['localhost']['ansible_facts']['netmedic_udp_timeout_plan']
    assert (plan['method'], plan['version'], int(plan['seconds'])) == ('node', 'v1.16.9-aliyun.1', 10), plan
    node_task = run.results('Set and persist the IPVS UDP timeout')
    assert sorted(node_task) == sorted(w4['nodes']), node_task
    assert all(r['changed'] and r['before']['udp'] == 300 and r['after']['udp'] == 10 for r in node_task.values()), node_task
    assert w4['check']['nodes'] == planted['before']                                  # nothing changed on any VM
    assert w4['check']['cluster'] == w4['cluster_before']


def test_w4_old_cluster_apply_sets_every_node_and_persists(w4):
    """Issue 12 item 4: after the apply every VM's kernel says 900 120 10 and the boot unit re-applies it."""
    run = w4['apply']['run']
    assert run.rc == 0, run.tail()
    for node, state in w4['apply']['nodes'].items():
        assert state['timeout'] == 'Timeout (tcp tcpfin udp): 900 120 10', (node, state)
        assert state['unit'] is not None and state['unit'].startswith('# Managed by netmedic.k8s (ipvs_timeouts)'), state
        execs = [line for line in state['unit'].splitlines() if line.startswith('ExecStart=')]
        # The node play asks for udp only: 0 keeps tcp and tcpfin at boot, as ipvsadm --set documents.
        assert len(execs) == 1 and execs[0].endswith('/ipvsadm --set 0 0 10'), state['unit']
        assert state['enabled'] == 'enabled', (node, state)
        assert state['ct_max'] == '64', 'W-4 touched conntrack on %s' % node
    cms, leases = w4['apply']['cluster']
    assert cms == w4['cluster_before'][0]                 # N-5, not C-3: no kube-proxy ConfigMap changed
    assert leases == dict.fromkeys(LEASES), leases        # the Lease taken for the run is released


def test_w4_second_run_changes_nothing(w4):
    run = w4['again']['run']
    assert run.rc == 0, run.tail()
    node_task = run.results('Set and persist the IPVS UDP timeout')
    assert sorted(node_task) == sorted(w4['nodes']) and not any(r['changed'] for r in node_task.values()), node_task
    assert all(run.stats[n]['changed'] == 0 for n in w4['nodes']), run.stats
    assert w4['again']['nodes'] == w4['apply']['nodes']


def _all_pods_running(store):
    pods = store.list('pods')[0]
    return bool(pods) and all(p['status'].get('phase') == 'Running' for p in pods)


@pytest.fixture(scope='module')
def w5(planted, w4, lab, ssh, tmp_path_factory):
    """W-5 (both fixes) on a current-version double, applied (after W-4, so the IPVS state is W-4's).

    No check-mode run here (CI's VM-lab time is the budget): W-5's check mode is proved on the API double for the
    cluster half (tests/lab/test_conntrack_tuning_playbook.py) and on the VMs for its node module
    (tests/labvm/test_conntrack_limit.py); the W-4 phases above prove the node play's --check on these VMs."""
    nodes = planted['nodes']
    node_state = StaticNodeState()
    double = start_double(tmp_path_factory, node_state=node_state)
    phases = {}
    try:
        double.wait_for(_all_pods_running)
        cluster_before = cluster_state(double)
        before = read_all(ssh, nodes)
        for phase, extra in (('apply', ()),):
            node_state.conntrack_max.clear()
            run = run_vm_playbook(lab, tmp_path_factory.mktemp('w5-' + phase), double, 'conntrack_tuning.yml',
                                  '-e', 'netmedic_targets=lab_nodes', *extra)
            phases[phase] = {'run': run, 'nodes': read_all(ssh, nodes), 'cluster': cluster_state(double),
                             'kube_proxy_set': dict(node_state.conntrack_max)}
    finally:
        double.stop()
    assert not double.failures, double.failures
    return {'nodes': nodes, 'before': before, 'cluster_before': cluster_before, **phases}


def _max_per_core(cms):
    return yaml.safe_load(cms['kube-proxy-worker']['config.conf'])['conntrack']['maxPerCore']


def test_w5_apply_sizes_every_node_and_persists(w5):
    """Issue 12 item 4: Fix A read back on every VM (MemTotal kB / 32, now and in the drop-in), Fix B in the cluster."""
    run = w5['apply']['run']
    assert run.rc == 0, run.tail()
    for node, state in w5['apply']['nodes'].items():
        target = int(state['mem']) // 32
        assert target > 64
        assert state['ct_max'] == str(target), (node, state)
        values = [line.split('=', 1)[1].strip() for line in (state['ct_file'] or '').splitlines()
                  if line.split('=', 1)[0].strip() == 'net.netfilter.nf_conntrack_max']
        assert values == [str(target)], state['ct_file']
        assert state['timeout'] == w5['before'][node]['timeout'], 'W-5 touched IPVS on %s' % node
    cms, leases = w5['apply']['cluster']
    assert _max_per_core(w5['cluster_before'][0]) == 32768 and _max_per_core(cms) == 65536
    assert sorted(w5['apply']['kube_proxy_set']) == sorted(w5['nodes'])   # each node's kube-proxy restarted with it
    assert leases == dict.fromkeys(LEASES), leases
