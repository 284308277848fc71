"""C-1, C-2/W-3 and C-3 decided by a REAL kube-proxy (v1.37.2, IPVS mode) on two lab VMs that are real nodes (issue 15).

Each workflow runs as an operator runs it - ``ansible-playbook`` with the lab inventory (the VMs as the nodes, root over
ssh) plus localhost (the cluster plays) and the real control plane's kubeconfig - and what it did is read back from
the real components, never from the playbook's own results alone: the ConfigMap through the API, the new kube-proxy
pods and their own log lines through the apiserver and the kubelet, and the nodes' kernels over ssh (IPVS virtual
servers and their scheduler, IPVS timeouts, nf_conntrack_max, loaded modules).

The tests run in file order from one reset (conftest.py ``start``) and each asserts what its own run changed relative to
what it read first (``before``), so none depends on another having passed.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.labvm.vm_playbook import run_vm_playbook  # noqa: E402
from tests.realnode.conftest import TEST_MODPROBE_BLOCK  # noqa: E402


class _Kube:
    """What vm_playbook needs of a cluster: the kubeconfig path (K8S_AUTH_KUBECONFIG)."""

    def __init__(self, path):
        self.kubeconfig_path = path


def _play(real, lab, tmp_path, playbook, *extra):
    return run_vm_playbook(lab, tmp_path, _Kube(real.kubeconfig), playbook, *extra, timeout=1200)


def _new_backups(real, before):
    return [b for b in real.backups() if b.metadata.name not in before['backups']]


def _unchanged_except(real, before, section, value):
    """The ConfigMap differs from ``before`` in ``section`` only, which now is ``value``."""
    conf = real.config()
    assert conf[section] == value, conf
    assert {k: v for k, v in conf.items() if k != section} == {k: v for k, v in before['config'].items() if k != section}
    return conf


def test_c3_udp_timeout_reaches_the_real_ipvs_timeouts(start, before, lab, tmp_path):
    """W-4 on a >= 1.18 cluster takes C-3: ipvs.udpTimeout 10s; each node's IPVS UDP timeout becomes 10 s (from the
    kernel's 300), set by the new kube-proxy pod; the TCP timeouts and the rest of the configuration stay."""
    real = start
    nodes = real.nodes
    timeouts = {n: real.ipvs_timeouts(n) for n in nodes}
    assert all(t[2] == 300 for t in timeouts.values()), timeouts
    run = _play(real, lab, tmp_path, 'udp_timeout.yml', '-e', 'netmedic_udp_timeout=10', '-e', 'netmedic_targets=' + ':'.join(nodes))
    assert run.rc == 0, run.tail()
    _unchanged_except(real, before, 'ipvs', dict(before['config']['ipvs'], udpTimeout='10s'))
    real.wait_running(before['uids'], timeout=180)
    for node in nodes:
        real.wait_value('%s IPVS timeouts' % node, lambda node=node: real.ipvs_timeouts(node), timeouts[node][:2] + (10,))
    assert [b.data['config.conf'] for b in _new_backups(real, before)] == [before['text']]
    assert real.netmedic_leases() == []


def test_c1_max_per_core_sets_the_real_nf_conntrack_max(start, before, lab, tmp_path):
    """W-5 Fix B (C-1): conntrack.maxPerCore 327680 (above the lab's 262144); the new kube-proxy pods set
    nf_conntrack_max = 327680 x CPUs in each node's kernel and say so in their own log."""
    real = start
    assert before['config']['conntrack']['maxPerCore'] < 327680
    run = _play(real, lab, tmp_path, 'conntrack_tuning.yml', '-e', 'netmedic_conntrack_fix=cluster',
                '-e', 'netmedic_conntrack_max_per_core=327680', '-e', 'netmedic_targets=' + ':'.join(real.nodes))
    assert run.rc == 0, run.tail()
    _unchanged_except(real, before, 'conntrack', dict(before['config']['conntrack'], maxPerCore=327680))
    running = real.wait_running(before['uids'], timeout=180)
    for node in real.nodes:
        want = 327680 * real.cpus(node)
        assert 'entry="net/netfilter/nf_conntrack_max" value=%d' % want in running[node][1], running[node][1][-2000:]
        real.wait_value('%s nf_conntrack_max' % node, lambda node=node: real.conntrack_max(node), want)
    assert [b.data['config.conf'] for b in _new_backups(real, before)] == [before['text']]
    assert real.netmedic_leases() == []


def test_w3_scheduler_change_reaches_the_real_kube_proxy_and_the_kernel(start, before, lab, tmp_path):
    """W-3 (N-4 -> C-2 -> C-7): lc in the ConfigMap, every node's new kube-proxy logs "Using ipvs Proxier", the kernel's
    virtual servers all use lc; the old bytes are in one backup; a second run changes nothing and restarts no pod."""
    real = start
    assert before['config']['ipvs']['scheduler'] != 'lc'
    assert all('ip_vs_lc' not in real.persisted_modules(n) for n in real.nodes)
    args = ('-e', 'ipvs_scheduler_name=lc', '-e', 'ipvs_scheduler_timeout=300', '-e', 'netmedic_targets=' + ':'.join(real.nodes))
    run = _play(real, lab, tmp_path, 'ipvs_scheduler_change.yml', *args)
    assert run.rc == 0, run.tail()
    _unchanged_except(real, before, 'ipvs', dict(before['config']['ipvs'], scheduler='lc'))
    running = real.wait_running(before['uids'], timeout=180)
    for node in real.nodes:
        assert "can't use the ipvs proxier" not in running[node][1].lower()
        assert 'ip_vs_lc' in real.persisted_modules(node)                           # N-4 persisted it
        assert 'ip_vs_lc' in real.modules(node)
        real.wait_schedulers(node, 'lc')                                           # the real kernel state
    assert [b.data['config.conf'] for b in _new_backups(real, before)] == [before['text']]
    assert real.netmedic_leases() == []                                              # the lock was released
    uids = {n: p.metadata.uid for n, (p, _t) in running.items()}

    again = _play(real, lab, tmp_path, 'ipvs_scheduler_change.yml', *args)
    assert again.rc == 0, again.tail()
    assert again.stats['localhost']['changed'] == 0, again.stats
    assert {n: p.metadata.uid for n, p in real.pods().items() if n in real.nodes} == uids      # no pod restarted
    assert len(_new_backups(real, before)) == 1


def test_w3_rolls_back_when_the_real_kube_proxy_cannot_use_the_scheduler(start, before, lab, ssh, tmp_path):
    """The catalog's C-2 failure on the second node, for real: its kernel cannot load ip_vs_sed (N-4 ran on the first
    node only, as when a node is missing from the inventory). kube-proxy v1.37 has no iptables fallback any more: it
    exits with "can't use the IPVS proxier" and the pod crash-loops. The workflow must see that line in the new pod's
    own log, restore the ConfigMap's exact bytes and restart the nodes that ran sed, so both run the old scheduler."""
    real = start
    first, second = real.nodes
    old = before['config']['ipvs']['scheduler']
    ssh(second, "echo 'install ip_vs_sed /bin/false' > %s && ! modprobe ip_vs_sed" % TEST_MODPROBE_BLOCK, timeout=60)
    try:
        run = _play(real, lab, tmp_path, 'ipvs_scheduler_change.yml', '-e', 'ipvs_scheduler_name=sed',
                    '-e', 'ipvs_scheduler_timeout=300', '-e', 'netmedic_targets=%s' % first,
                    '-e', 'netmedic_reboot_on_fallback=false')
        assert run.rc != 0, run.tail()
        steps = [r for name, hosts in ((t['task']['name'], t['hosts']) for p in run.data['plays'] for t in p['tasks'])
                 if name.split(' : ')[-1].startswith('Restart and verify (C-7) - kube-proxy on ')
                 for r in [hosts.get('localhost')] if r]
        failed = [r for r in steps if r.get('failed')]
        assert len(failed) == 1, steps
        assert failed[0]['failed_node']['node'] == second, {k: failed[0].get(k) for k in ('msg', 'failed_node', 'restarted')}
        assert "can't use the ipvs proxier" in failed[0]['failed_node']['line'].lower(), failed[0]['failed_node']
        assert 'ip_vs_sed' not in real.modules(second)
        assert real.config_text() == before['text']                                  # rolled back, byte for byte
        running = real.wait_running(timeout=240)
        for node in (first, second):
            real.wait_schedulers(node, old)                                          # both kernels on the old one
        # the failed node was restarted by the rollback: its crash-looping pod would also heal by itself once the kubelet
        # syncs the restored ConfigMap, so the pod must be a new one, not the one the forward step created
        assert running[second][0].metadata.name != failed[0]['failed_node']['pod'], failed[0]['failed_node']
        assert running[second][0].metadata.uid != before['uids'][second]
        assert 'rolled back' in str(run.results('Stop the workflow')), run.tail()
        assert real.netmedic_leases() == []
    finally:
        ssh(second, 'rm -f %s' % TEST_MODPROBE_BLOCK, timeout=60)
