"""`labctl inject`: every planted node fault is real and netmedic's facts module finds it.

The faults are planted with the real tools (host-local CNI plugin, containerd, sysctl,
modprobe/rmmod, ipvsadm, ip) by ``lab/vm/labctl inject``; this checks each one with an
independent command and with netmedic.k8s.node_network_facts, and that planting twice
changes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.labvm.vm_playbook import labctl, ssh_kv  # noqa: E402

CHECK = r"""
echo "alloc=$(ls /var/lib/cni/networks/lab-pod-network | grep -v -e '^lock$' -e '^last_reserved_ip' | wc -l)"
echo "live=$(for f in /var/lib/cni/networks/lab-pod-network/10.*; do head -n 1 "$f" | tr -d '\r'; echo; done | \
   while read -r id; do ctr -n k8s.io t ls | awk -v id="$id" '$1 == id && $3 == "RUNNING"'; done | wc -l)"
echo "old=$(find /var/lib/cni/networks/lab-pod-network -name '10.*' -mmin +30 | wc -l)"
echo "ct=$(cat /proc/sys/net/netfilter/nf_conntrack_max) $(cat /proc/sys/net/netfilter/nf_conntrack_count)"
echo "range=$(sysctl -n net.ipv4.ip_local_port_range | tr '\t' ' ')"
echo "lc=$(grep -c '^ip_vs_lc ' /proc/modules)"
echo "timeout=$(ipvsadm -L --timeout)"
echo "cbr0=$(ip -br link show cbr0 | awk '{print $2}')"
echo "cb0fs=$(stat -f -c %T /var/lib/cni/networks/cb0)"
"""


def reads(ssh, node):
    return ssh_kv(ssh, node, CHECK)


@pytest.fixture(scope='module')
def injected(lab, lab_reset):
    lab_reset()
    nodes = lab['nodes'][:2]
    out = labctl('inject', '--nodes', ','.join(nodes), 'all')
    yield {'nodes': nodes, 'output': out}
    lab_reset()


def test_list_names_every_node_fault():
    out = labctl('inject', '--list')
    ids = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert ids == ['N-1', 'N-2', 'N-3', 'N-4', 'N-5', 'N-6', 'N-7', 'N-8']


def test_faults_are_real(injected, ssh):
    nodes, out = injected['nodes'], injected['output']
    assert 'no IP addresses available in range set' in out, out
    for node in nodes:
        r = reads(ssh, node)
        assert r['alloc'] == '8' and r['live'] == '2' and r['old'] == '8', r  # N-1: 2 live + 6 leaked, all older than 30 min
        ct_max, ct_count = (int(x) for x in r['ct'].split())
        assert ct_max == 64 and ct_count >= 56, r  # N-2
        assert r['range'] == '30000 60999', r  # N-3
        assert r['lc'] == '0', r  # N-4
        assert r['timeout'].endswith('900 120 300'), r  # N-5
        assert r['cbr0'] == 'DOWN', r  # N-8
        assert r['cb0fs'] != 'tmpfs', r  # N-7


def test_every_fault_is_found_by_node_network_facts(injected, lab, run_module):
    nodes = injected['nodes']
    first, second = nodes
    peer = lab['hostvars'][second]
    res = run_module(first, 'node_network_facts', {
        'expected_neighbors': {peer['lab_l2_ip']: peer['lab_l2_mac']},
        'ipvs_schedulers': ['lc'],
    })
    assert not res.failed, res.output
    facts = res['ansible_facts']['netmedic']
    found = {f['id'] for f in facts['findings']}
    assert {'N-1', 'N-2', 'N-3', 'N-4', 'N-5', 'N-6', 'N-7', 'N-8'} <= found, facts['findings']
    n1 = [f for f in facts['findings'] if f['id'] == 'N-1' and f['evidence']['path'].endswith('/lab-pod-network')]
    assert n1 and n1[0]['severity'] == 'critical', facts['findings']


def test_planting_twice_changes_nothing(injected, ssh):
    nodes = injected['nodes']
    before = {node: reads(ssh, node) for node in nodes}
    labctl('inject', '--nodes', ','.join(nodes), 'all')
    after = {node: reads(ssh, node) for node in nodes}
    assert after == before
