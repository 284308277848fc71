"""netmedic.k8s.node_network_facts on a real lab VM, checked against independent commands.

One node is put into a known state over SSH (conntrack limit, port range, IPVS modules
and timeouts, neighbor entries on eth1, a downed bridge, a host-local allocation made by
the real CNI plugin), the module runs once, and one batched SSH call reads the same
things with the usual tools (sysctl, /proc/modules, ipvsadm, ip -j, ls). TCG guests are
slow, so everything is asserted from those two runs.
"""

from __future__ import annotations

import json

import pytest

FAKE_IP = '10.77.0.99'  # nobody has it: a PERMANENT entry with a made-up MAC
FAKE_MAC = '52:54:00:77:00:99'
UNANSWERED_IP = '10.77.0.98'  # probed once, never answers: FAILED
CT_MAX = 7777
PORTS = (30500, 60999)
UDP_TIMEOUT = 77
NETCONF = {
    'cniVersion': '0.4.0', 'name': 'facts-net', 'type': 'bridge', 'bridge': 'cbr0',
    'ipam': {'type': 'host-local', 'ranges': [[{'subnet': '10.250.0.0/24', 'rangeStart': '10.250.0.10', 'rangeEnd': '10.250.0.29'}]]},
}
CONTAINER_ID = 'f' * 64


def setup_script(peer_ip, peer_mac, dev):
    plugin = {k: v for k, v in NETCONF.items() if k not in ('cniVersion', 'name')}
    conflist = {'cniVersion': '0.4.0', 'name': 'facts-net', 'plugins': [plugin]}
    return f"""set -e
modprobe nf_conntrack
sysctl -qw net.netfilter.nf_conntrack_max={CT_MAX}
sysctl -qw net.ipv4.ip_local_port_range="{PORTS[0]} {PORTS[1]}"
modprobe -a ip_vs ip_vs_rr ip_vs_lc
ipvsadm --set 900 120 {UDP_TIMEOUT}
ip neigh replace {peer_ip} lladdr {peer_mac} dev {dev} nud permanent
ip neigh replace {FAKE_IP} lladdr {FAKE_MAC} dev {dev} nud permanent
ping -c 1 -W 1 -I {dev} {UNANSWERED_IP} >/dev/null 2>&1 || true
i=0; until ip neigh show {UNANSWERED_IP} dev {dev} | grep -q FAILED || [ $i -ge 20 ]; do sleep 1; i=$((i + 1)); done
ip link add cbr0 type bridge
mkdir -p /etc/cni/net.d
printf '%s' '{json.dumps(conflist)}' > /etc/cni/net.d/10-facts-net.conflist
printf '%s' '{json.dumps(NETCONF)}' | CNI_COMMAND=ADD CNI_CONTAINERID={CONTAINER_ID} CNI_NETNS=/var/run/netns/x \\
  CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni /usr/lib/cni/host-local >/dev/null
"""


READ_SCRIPT = """
echo "ct_max=$(sysctl -n net.netfilter.nf_conntrack_max)"
echo "range=$(sysctl -n net.ipv4.ip_local_port_range)"
echo "mods=$(awk '$1 ~ /^ip_vs/ {print $1}' /proc/modules | sort | tr '\\n' ' ')"
echo "timeout=$(ipvsadm -L --timeout)"
echo "neigh=$(ip -j neigh show)"
echo "link=$(ip -j link show cbr0)"
echo "sock=$(test -S /run/containerd/containerd.sock && echo yes || echo no)"
echo "alloc=$(ls /var/lib/cni/networks/facts-net | grep -v -e '^lock$' -e '^last_reserved_ip' | tr '\\n' ' ')"
"""


@pytest.fixture(scope='module')
def observed(lab, lab_reset, run_module, ssh):
    """{'facts': from the module, 'reads': independent reads, 'ctx': nodes and addresses} on a prepared node."""
    lab_reset()
    node, peer = lab['nodes'][0], lab['nodes'][1]
    hv, peer_hv = lab['hostvars'][node], lab['hostvars'][peer]
    ssh(node, setup_script(peer_hv['lab_l2_ip'], peer_hv['lab_l2_mac'], hv['lab_l2_dev']))
    res = run_module(node, 'node_network_facts', {
        'expected_neighbors': {peer_hv['lab_l2_ip']: peer_hv['lab_l2_mac'], FAKE_IP: '52:54:00:77:00:0f'},
        'ipvs_schedulers': ['lc', 'sh'],
    })
    assert not res.failed, res.output
    reads = dict(line.split('=', 1) for line in ssh(node, READ_SCRIPT).stdout.splitlines() if '=' in line)
    yield {
        'facts': res['ansible_facts']['netmedic'],
        'reads': reads,
        'ctx': {'node': node, 'peer': peer, 'dev': hv['lab_l2_dev'], 'peer_ip': peer_hv['lab_l2_ip'], 'peer_mac': peer_hv['lab_l2_mac']},
    }
    lab_reset()


def test_nothing_broke(observed):
    facts = observed['facts']
    assert facts['errors'] == []
    assert set(facts['probes']) >= {'conntrack', 'ports', 'ipvs', 'ipam', 'bridges', 'neighbors', 'runtime'}


def test_conntrack_max(observed):
    facts, reads = observed['facts'], observed['reads']
    assert int(reads['ct_max']) == CT_MAX
    assert facts['conntrack']['available'] is True
    assert facts['conntrack']['max'] == CT_MAX


def test_port_range_and_nodeport_overlap(observed):
    facts, reads = observed['facts'], observed['reads']
    start, end = (int(x) for x in reads['range'].split())
    assert (start, end) == PORTS
    ports = facts['ports']
    assert ports['ephemeral'] == {'start': start, 'end': end}
    assert ports['conflict'] is True
    assert ports['uncovered_ports'] == 32767 - start + 1
    assert 'N-3' in {f['id'] for f in facts['findings']}


def test_ipvs_modules_and_timeouts(observed):
    facts, reads = observed['facts'], observed['reads']
    loaded = reads['mods'].split()
    assert 'ip_vs_lc' in loaded and 'ip_vs_sh' not in loaded, loaded
    ipvs = facts['ipvs']
    assert ipvs['available'] is True
    assert sorted(ipvs['modules_loaded']) == sorted(loaded)
    assert ipvs['schedulers_missing'] == ['sh']
    tcp, tcpfin, udp = (int(x) for x in reads['timeout'].rsplit(':', 1)[1].split())
    assert (tcp, tcpfin, udp) == (900, 120, UDP_TIMEOUT)
    assert {k: ipvs['timeouts'][k] for k in ('tcp', 'tcpfin', 'udp')} == {'tcp': tcp, 'tcpfin': tcpfin, 'udp': udp}
    n4 = [f for f in facts['findings'] if f['id'] == 'N-4']
    assert n4 and n4[0]['evidence']['missing'] == ['sh'], facts['findings']


def test_neighbors_on_the_l2_segment(observed):
    facts, reads, ctx = observed['facts'], observed['reads'], observed['ctx']
    entries = [e for e in json.loads(reads['neigh']) if e.get('dev') == ctx['dev']]
    by_dst = {e['dst']: e for e in entries}
    assert by_dst[FAKE_IP]['state'] == ['PERMANENT'] and by_dst[FAKE_IP]['lladdr'] == FAKE_MAC
    assert by_dst[ctx['peer_ip']]['lladdr'] == ctx['peer_mac']
    assert by_dst[UNANSWERED_IP]['state'] == ['FAILED'], by_dst.get(UNANSWERED_IP)

    nb = facts['neighbors']
    permanent = sum(1 for e in json.loads(reads['neigh']) if 'PERMANENT' in e.get('state', []))
    assert nb['counts'].get('PERMANENT') == permanent == 2
    assert {'dst': UNANSWERED_IP, 'dev': ctx['dev'], 'lladdr': None, 'state': 'FAILED'} in nb['entries']
    # the wrong MAC for FAKE_IP is a mismatch; the peer's correct entry is not
    assert [(m['dst'], m['lladdr'].lower()) for m in nb['mismatches']] == [(FAKE_IP, FAKE_MAC)]
    assert any(f['id'] == 'N-6' and f['severity'] == 'critical' for f in facts['findings'])


def test_pod_bridge_down(observed):
    facts, reads = observed['facts'], observed['reads']
    link = json.loads(reads['link'])[0]
    assert 'UP' not in link['flags']
    cbr0 = next(b for b in facts['bridges']['bridges'] if b['name'] == 'cbr0')
    assert cbr0['exists'] is True and cbr0['admin_up'] is False
    assert cbr0['mtu'] == link['mtu']
    assert any(f['id'] == 'N-8' and f['severity'] == 'critical' for f in facts['findings'])


def test_host_local_allocation(observed):
    facts, reads = observed['facts'], observed['reads']
    files = reads['alloc'].split()
    assert files == ['10.250.0.10'], files
    net = next(n for n in facts['ipam']['networks'] if n['name'] == 'facts-net')
    assert net['allocated'] == len(files)
    assert [a['ip'] for a in net['allocations']] == files
    assert net['allocations'][0]['container_id'] == CONTAINER_ID
    assert net['size'] == 20


def test_containerd_detected(observed):
    facts, reads = observed['facts'], observed['reads']
    assert reads['sock'] == 'yes'
    rt = facts['runtime']
    assert rt['name'] == 'containerd'
    containerd = next(r for r in rt['runtimes'] if r['name'] == 'containerd')
    assert containerd['socket_present'] is True
    assert containerd['clis']['ctr'] == '/usr/bin/ctr'
