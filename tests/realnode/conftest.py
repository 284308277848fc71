"""Fixtures for the workflows against a REAL kube-proxy on lab VMs that are real Kubernetes nodes (issue 15 item 3).

``make realnode-test`` brings them up: two lab VMs joined as Nodes of the lab's real control plane (lab/k8s/vmnode.py:
kubelet against containerd, bridge + host-local CNI) and the DaemonSet ``kube-system/kube-proxy`` in IPVS mode on both
(the real kube-proxy v1.37.2 in the lab's image localhost/netmedic/kube-proxy:lab, its ConfigMap ``kube-proxy``, key
``config.conf``). What the tests assert is read
from the real components: kube-proxy's own log through the apiserver and the kubelet, and each node's kernel
(``ipvsadm -Ln``, ``ipvsadm -L --timeout``, ``/proc/sys/net/netfilter/nf_conntrack_max``, ``/proc/modules``) over ssh.

Needs ``NETMEDIC_TEST_KUBECONFIG`` (the real control plane's admin kubeconfig) and ``NETMEDIC_LAB_INVENTORY``; without
them, or with fewer than two Ready real nodes, every test fails (never skips).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import waiter  # noqa: E402
from tests.labvm import conftest as labvm  # noqa: E402

# tests/labvm's fixtures, shared: the lab lock (autouse), the inventory, ssh to the nodes over one connection each, one
# module run on a node (ad hoc `ansible`).
lab_lock = labvm.lab_lock
lab = labvm.lab
ssh = labvm.ssh
ansible_env = labvm.ansible_env
run_module = labvm.run_module

NS = 'kube-system'
CONFIGMAP = 'kube-proxy'
LABEL = 'k8s-app=kube-proxy'
REAL_NODE_LABEL = 'netmedic.lab/real-node'
BACKUP_LABEL = 'netmedic.k8s/backup-of'
# Modules a test blocks or loads: the baseline removes the block and unloads them (unused once kube-proxy runs rr).
TEST_MODPROBE_BLOCK = '/etc/modprobe.d/netmedic-realnode-test.conf'
# Where N-4 (netmedic.k8s.ipvs_modules) persists the modules by default: removed by the reset, so that the W-3 test
# sees N-4's own write (the kernel loads a scheduler's module by itself when kube-proxy asks for it).
N4_PERSIST_FILE = '/etc/modules-load.d/netmedic-ipvs.conf'
# What every test starts from: IPVS mode, scheduler rr, the lab's maxPerCore, no UDP timeout (kube-proxy's default 300 s).
BASELINE = {'scheduler': 'rr', 'maxPerCore': 262144}


def _poll(probe, done, timeout, interval=3):
    """The collection's own poll loop (module_utils/k8s/waiter): ``probe()`` until ``done(value)``, else WaitTimeout."""
    return waiter.wait_until(probe, done, waiter.deadline(timeout), interval)


def baseline_text(current):
    """The ConfigMap's ``config.conf`` with the baseline values, every other key as vmnode.py wrote it."""
    conf = yaml.safe_load(current)
    conf['mode'] = 'ipvs'
    conf['ipvs'] = {'scheduler': BASELINE['scheduler']}
    conf['conntrack'] = {'maxPerCore': BASELINE['maxPerCore']}
    return yaml.safe_dump(conf, sort_keys=False)


class RealCluster:
    """The kubernetes client on the real control plane plus the helpers the tests read state with."""

    def __init__(self, kubeconfig, ssh_fn, nodes):
        from kubernetes import client, config
        self.api_client = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api_client)
        self.coord = client.CoordinationV1Api(self.api_client)
        self.kubeconfig = kubeconfig
        self.ssh = ssh_fn
        self.nodes = nodes

    # --- the cluster -----------------------------------------------------------------------------------------------
    def config_text(self):
        return self.core.read_namespaced_config_map(CONFIGMAP, NS, _request_timeout=30).data['config.conf']

    def config(self):
        return yaml.safe_load(self.config_text())

    def pods(self):
        """``{node: pod}`` of the kube-proxy pods that are not being deleted."""
        items = self.core.list_namespaced_pod(NS, label_selector=LABEL, _request_timeout=30).items
        return {p.spec.node_name: p for p in items if p.metadata.deletion_timestamp is None and p.spec.node_name}

    def log(self, pod):
        return self.core.read_namespaced_pod_log(pod.metadata.name, NS, _request_timeout=30)

    def backups(self):
        return self.core.list_namespaced_config_map(NS, label_selector='%s=%s' % (BACKUP_LABEL, CONFIGMAP), _request_timeout=30).items

    def netmedic_leases(self):
        return [lease.metadata.name for lease in self.coord.list_namespaced_lease(NS, _request_timeout=30).items
                if lease.metadata.name.startswith('netmedic-')]

    def wait_running(self, old_uids=None, timeout=300):
        """Every real node runs a kube-proxy pod (a new one where ``old_uids`` names the old) that logged "Using ipvs
        Proxier"; ``{node: (pod, log)}``. Fails with the last logs after ``timeout``."""
        def probe():
            pods = self.pods()
            seen = {}
            for node in self.nodes:
                pod = pods.get(node)
                if pod is None or (old_uids and pod.metadata.uid == old_uids.get(node)) or pod.status.phase != 'Running':
                    continue
                try:
                    text = self.log(pod)
                except Exception as exc:  # the kubelet not answering yet: poll again
                    text = '(log not readable: %s)' % exc
                seen[node] = (pod, text)
            return seen

        def done(seen):
            return all(node in seen and 'Using ipvs Proxier' in seen[node][1] for node in self.nodes)

        try:
            return _poll(probe, done, timeout)
        except waiter.WaitTimeout as exc:
            raise AssertionError('kube-proxy not running with "Using ipvs Proxier" on every node after %ss: %r'
                                 % (timeout, {n: t[-1500:] for n, (_p, t) in exc.last.items()})) from None

    def restart_all(self):
        old = {n: p.metadata.uid for n, p in self.pods().items()}
        for pod in self.pods().values():
            self.core.delete_namespaced_pod(pod.metadata.name, NS, _request_timeout=30)
        return self.wait_running(old)

    # --- the nodes' kernels ----------------------------------------------------------------------------------------
    def virtual_servers(self, node):
        """``[(proto, address, scheduler)]`` from the node's ``ipvsadm -Ln``."""
        out = self.ssh(node, 'ipvsadm -Ln', timeout=60).stdout
        return [tuple(line.split()[:3]) for line in out.splitlines() if line.split()[:1] in (['TCP'], ['UDP'], ['SCTP'])]

    def wait_schedulers(self, node, scheduler, timeout=120):
        """The node's virtual servers exist and all use ``scheduler`` (kube-proxy syncs them after it starts)."""
        try:
            return _poll(lambda: self.virtual_servers(node), lambda vss: vss and {vs[2] for vs in vss} == {scheduler}, timeout)
        except waiter.WaitTimeout as exc:
            raise AssertionError('%s: virtual servers %r, not all %s after %ss' % (node, exc.last, scheduler, timeout)) from None

    def ipvs_timeouts(self, node):
        """``(tcp, tcpfin, udp)`` from ``ipvsadm -L --timeout`` ("Timeout (tcp tcpfin udp): 900 120 300")."""
        out = self.ssh(node, 'ipvsadm -L --timeout', timeout=60).stdout
        return tuple(int(x) for x in out.rsplit(':', 1)[1].split())

    def conntrack_max(self, node):
        return int(self.ssh(node, 'cat /proc/sys/net/netfilter/nf_conntrack_max', timeout=60).stdout)

    def wait_value(self, what, read, wanted, timeout=60):
        """Poll ``read()`` until it equals ``wanted`` (kube-proxy writes the kernel a moment after its log line)."""
        try:
            return _poll(read, lambda value: value == wanted, timeout, interval=2)
        except waiter.WaitTimeout as exc:
            raise AssertionError('%s is %r, not %r after %ss' % (what, exc.last, wanted, timeout)) from None

    def persisted_modules(self, node):
        """The module names N-4's modules-load.d file lists on the node (empty when it has none)."""
        out = self.ssh(node, 'cat %s 2>/dev/null; true' % N4_PERSIST_FILE, timeout=60).stdout
        return {line.strip() for line in out.splitlines() if line.strip() and not line.startswith('#')}

    def cpus(self, node):
        return int(self.ssh(node, 'nproc', timeout=60).stdout)

    def modules(self, node):
        return {line.split()[0] for line in self.ssh(node, 'cat /proc/modules', timeout=60).stdout.splitlines()}


@pytest.fixture(scope='session')
def real(lab, ssh):
    """The real cluster with at least two lab VMs as Ready real nodes running kube-proxy."""
    kubeconfig = os.environ.get('NETMEDIC_TEST_KUBECONFIG')
    if not kubeconfig or not Path(kubeconfig).is_file():
        pytest.fail('NETMEDIC_TEST_KUBECONFIG must name the real control plane\'s kubeconfig (make realnode-test sets it)')
    cluster = RealCluster(kubeconfig, ssh, [])
    ready = []
    for node in cluster.core.list_node(label_selector='%s=true' % REAL_NODE_LABEL, _request_timeout=30).items:
        conds = {c.type: c.status for c in node.status.conditions or []}
        if conds.get('Ready') == 'True' and node.metadata.name in lab['nodes']:
            ready.append(node.metadata.name)
    if len(ready) < 2:
        pytest.fail('need two lab VMs joined as Ready real nodes with kube-proxy (lab/k8s/vmnode.py join/kube-proxy; '
                    'make realnode-test does it); found %r' % ready)
    cluster.nodes = sorted(ready)[:2]
    return cluster


@pytest.fixture(scope='session')
def start(real):
    """The state the file's tests start from, set once per session: no netmedic Lease or backup, no blocked module,
    the ConfigMap at BASELINE (restarting kube-proxy only when it had to change), every node's virtual servers on rr and
    its IPVS UDP timeout at the kernel's default. The tests then run in file order, each asserting what its own run
    changed relative to what it read first (one reset instead of one per test: a kube-proxy restart on both TCG
    guests takes about a minute)."""
    for name in real.netmedic_leases():
        real.coord.delete_namespaced_lease(name, NS, _request_timeout=30)
    for cm in real.backups():
        real.core.delete_namespaced_config_map(cm.metadata.name, NS, _request_timeout=30)
    for node in real.nodes:
        real.ssh(node, 'rm -f %s %s' % (TEST_MODPROBE_BLOCK, N4_PERSIST_FILE), timeout=60)
    text = real.config_text()
    wanted = baseline_text(text)
    if yaml.safe_load(text) != yaml.safe_load(wanted):
        real.core.patch_namespaced_config_map(CONFIGMAP, NS, {'data': {'config.conf': wanted}}, _request_timeout=30)
        real.restart_all()
    else:
        real.wait_running()
    for node in real.nodes:
        real.wait_schedulers(node, BASELINE['scheduler'])
        # Unused once every virtual server is rr: unloaded so that a test sees what it loads itself.
        real.ssh(node, 'modprobe -r ip_vs_lc ip_vs_sed 2>/dev/null; ! grep -Eq "^ip_vs_(lc|sed) " /proc/modules', timeout=60)
        # kube-proxy sets the IPVS timeouts only when its configuration names them, never back to the default:
        # the kernel's UDP timeout back to 300 s (0 leaves tcp and tcpfin as they are).
        real.ssh(node, 'ipvsadm --set 0 0 300', timeout=60)
    return real


@pytest.fixture
def before(start):
    """What a test starts from: the ConfigMap's text and parsed config, the kube-proxy pods' UIDs, the backups' names;
    no netmedic Lease may be held (a test that left one fails the next)."""
    real = start
    assert real.netmedic_leases() == [], 'a netmedic Lease is held before the test'
    running = real.wait_running()
    return {'text': real.config_text(), 'config': real.config(), 'backups': {b.metadata.name for b in real.backups()},
            'uids': {n: p.metadata.uid for n, (p, _t) in running.items()}}
