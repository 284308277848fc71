"""node_network_facts through Ansible, for real, on this machine.

1. On the host: every value the module reports is compared with an independent read
   of the same kernel file or tool.
2. In a scratch network namespace (``ip netns exec``) built for the test: a pod bridge
   that is down with ports of two MTUs, neighbor entries in every bad state, an
   ephemeral port range reaching into the NodePort range, and a host-local network
   filled by the real ``host-local`` CNI plugin until it refuses.  The module must
   report exactly that, with the catalog findings.  Nothing on the host is changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

HOST_LOCAL = '/usr/lib/cni/host-local'


def _read(path):
    with open(path) as f:
        return f.read()


def _neighbors():
    out = subprocess.run(['ip', '-j', 'neigh', 'show'], capture_output=True, text=True, check=True).stdout
    return {e['dst'] for e in json.loads(out or '[]')}


def test_host_facts_match_independent_reads(run):
    before = _neighbors()
    result = run('node_network_facts', {'nodeport_range': '30000-32767'})  # ad hoc -a '{}' is refused
    after = _neighbors()
    assert not result.failed, result.output
    assert result['changed'] is False
    facts = result['ansible_facts']['netmedic']
    assert facts == result['netmedic']
    assert facts['errors'] == []

    ct = facts['conntrack']
    if os.path.exists('/proc/sys/net/netfilter/nf_conntrack_max'):
        assert ct['available'] is True
        assert ct['max'] == int(_read('/proc/sys/net/netfilter/nf_conntrack_max'))
        assert ct['buckets'] == int(_read('/proc/sys/net/netfilter/nf_conntrack_buckets'))
        assert 0 <= ct['count'] <= ct['max']
    else:
        assert ct['available'] is False and 'not loaded' in ct['reason']
    dmesg = subprocess.run(['dmesg'], capture_output=True, text=True, check=False)
    if dmesg.returncode == 0:
        events = ct['table_full_events']
        assert events['source'] == 'dmesg'
        assert events['count'] == sum('table full, dropping packet' in line for line in dmesg.stdout.splitlines())

    pr = facts['ports']
    assert pr['ip_local_port_range'] == ' '.join(_read('/proc/sys/net/ipv4/ip_local_port_range').split())
    assert pr['ip_local_reserved_ports'] == _read('/proc/sys/net/ipv4/ip_local_reserved_ports').strip()
    start, end = (int(x) for x in pr['ip_local_port_range'].split())
    assert pr['ephemeral'] == {'start': start, 'end': end}
    assert pr['conflict'] is (bool(pr['uncovered']))

    iv = facts['ipvs']
    assert iv['available'] is os.path.exists('/proc/net/ip_vs')
    assert iv['modules_available'] is os.path.exists('/proc/modules')
    if not iv['available']:
        assert iv['timeouts']['available'] is False

    for bridge in facts['bridges']['bridges']:
        assert bridge['exists'] is os.path.exists('/sys/class/net/%s' % bridge['name'])

    # The table can change while the test runs: the module read it between two reads.
    reported = {e['dst'] for e in facts['neighbors']['entries']}
    assert reported <= (before | after)
    assert len(before & after) <= facts['neighbors']['total'] <= len(before | after)
    assert sum(facts['neighbors']['counts'].values()) >= facts['neighbors']['total']

    nameservers = [line.split()[1] for line in _read('/etc/resolv.conf').splitlines()
                   if line.startswith('nameserver') and len(line.split()) > 1]
    assert facts['dns']['files'][0]['nameservers'] == nameservers
    assert facts['dns']['files'][1]['exists'] is os.path.exists('/run/systemd/resolve/resolv.conf')

    rt = facts['runtime']
    sockets = ['/run/containerd/containerd.sock', '/var/run/crio/crio.sock', '/var/run/docker.sock']
    assert (rt['name'] is None) is (not any(os.path.exists(s) for s in sockets))
    docker = next(r for r in rt['runtimes'] if r['name'] == 'docker')
    assert docker['clis']['docker'] == shutil.which('docker')

    assert facts['cni']['available'] is os.path.isdir('/etc/cni/net.d')
    # Check mode returns the same facts (the module only reads).
    checked = run('node_network_facts', {'probes': ['ports', 'ipvs', 'dns']}, check=True)
    assert not checked.failed, checked.output
    assert checked['netmedic']['ports'] == pr
    assert checked['netmedic']['ipvs']['available'] is iv['available']


# --- a controlled node in a network namespace ------------------------------------

def _sh(*args, **kwargs):
    return subprocess.run(list(args), capture_output=True, text=True, check=True, **kwargs)


class Netns(object):
    def __init__(self, name):
        self.name = name

    def run(self, *args):
        return _sh('ip', 'netns', 'exec', self.name, *args)

    def write(self, path, value):
        self.run('sh', '-c', 'printf "%s" "$1" > "$2"', 'w', value, path)

    @property
    def wrapper(self):
        return ['ip', 'netns', 'exec', self.name]


@pytest.fixture
def netns():
    if os.geteuid() != 0 or not shutil.which('ip'):
        pytest.fail('this test needs root and iproute2 (it builds a network namespace)')
    name = 'nmit%d' % os.getpid()
    _sh('ip', 'netns', 'add', name)
    ns = Netns(name)
    try:
        yield ns
    finally:
        subprocess.run(['ip', 'netns', 'del', name], check=False)


def _host_local(command, container_id, netns_name, config):
    env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID=container_id, CNI_NETNS='/var/run/netns/%s' % netns_name,
               CNI_IFNAME='eth0', CNI_PATH=os.path.dirname(HOST_LOCAL))
    return subprocess.run([HOST_LOCAL], input=json.dumps(config), env=env, capture_output=True, text=True, check=False)


def test_node_in_a_network_namespace(run, netns, tmp_path):
    if not os.access(HOST_LOCAL, os.X_OK):
        pytest.fail('%s is missing: apt-get install containernetworking-plugins' % HOST_LOCAL)
    # Pod bridge cbr0, admin down, with ports of MTU 1460 and 1500; cni0 up and empty.
    netns.run('ip', 'link', 'add', 'cbr0', 'type', 'bridge')
    netns.run('ip', 'link', 'set', 'cbr0', 'mtu', '1460')
    for port, mtu in (('veth0aaa', '1460'), ('veth0bbb', '1500')):
        netns.run('ip', 'link', 'add', port, 'type', 'veth', 'peer', 'name', port + 'p')
        netns.run('ip', 'link', 'set', port, 'master', 'cbr0', 'mtu', mtu, 'up')
    netns.run('ip', 'link', 'add', 'cni0', 'type', 'bridge')
    netns.run('ip', 'link', 'set', 'cni0', 'up')
    # Neighbor entries in each state.
    netns.run('ip', 'link', 'add', 'vx', 'type', 'veth', 'peer', 'name', 'vy')
    netns.run('ip', 'link', 'set', 'vx', 'up')
    netns.run('ip', 'link', 'set', 'vy', 'up')
    netns.run('ip', 'addr', 'add', '10.77.0.1/24', 'dev', 'vx')
    netns.run('ip', 'neigh', 'add', '10.77.0.9', 'lladdr', '02:00:00:00:00:09', 'dev', 'vx', 'nud', 'stale')
    netns.run('ip', 'neigh', 'add', '10.77.0.10', 'dev', 'vx', 'nud', 'incomplete')
    netns.run('ip', 'neigh', 'add', '10.77.0.11', 'dev', 'vx', 'nud', 'failed')
    netns.run('ip', 'neigh', 'add', '10.77.0.12', 'lladdr', '02:00:00:00:00:12', 'dev', 'vx', 'nud', 'permanent')
    # Ephemeral ports reaching into the NodePort range (per-namespace sysctls).
    netns.write('/proc/sys/net/ipv4/ip_local_port_range', '30000 40000')
    netns.write('/proc/sys/net/ipv4/ip_local_reserved_ports', '')
    # A host-local network filled by the real plugin.
    conf_dir = tmp_path / 'net.d'
    conf_dir.mkdir()
    data_dir = tmp_path / 'ipam'
    netconf = {'cniVersion': '1.0.0', 'name': 'nm-it', 'type': 'bridge', 'bridge': 'cni0',
               'ipam': {'type': 'host-local', 'dataDir': str(data_dir), 'ranges': [[{'subnet': '10.88.0.0/29'}]]}}
    (conf_dir / '10-nm-it.conf').write_text(json.dumps(netconf))
    allocated = {}
    for i in range(5):
        cid = '%064x' % (0xC0FFEE + i)
        added = _host_local('ADD', cid, netns.name, netconf)
        assert added.returncode == 0, added.stdout + added.stderr
        allocated[json.loads(added.stdout)['ips'][0]['address'].split('/')[0]] = cid
    refused = _host_local('ADD', '%064x' % 0xDEAD, netns.name, netconf)
    assert refused.returncode != 0
    resolv = tmp_path / 'resolv.conf'
    resolv.write_text('nameserver 10.0.0.10\nsearch cluster.local\n')
    upstream = tmp_path / 'upstream.conf'
    upstream.write_text('nameserver 10.0.0.10\nsearch cluster.local\n')

    args = {'cni_conf_dir': str(conf_dir), 'ipam_data_dirs': [], 'resolv_conf_files': [str(resolv), str(upstream)],
            'expected_neighbors': {'10.77.0.12': '02:00:00:00:00:13'}, 'flannel_subnet_env': str(tmp_path / 'none.env')}
    result = run('node_network_facts', args, wrapper=netns.wrapper)
    assert not result.failed, result.output
    facts = result['netmedic']
    assert facts['errors'] == []

    pr = facts['ports']
    assert pr['ip_local_port_range'] == '30000 40000'
    assert (pr['overlap'], pr['uncovered'], pr['conflict']) == (['30000-32767'], ['30000-32767'], True)

    cbr0, cni0 = facts['bridges']['bridges']
    assert (cbr0['exists'], cbr0['is_bridge'], cbr0['admin_up'], cbr0['mtu']) == (True, True, False, 1460)
    assert [(p['name'], p['mtu']) for p in cbr0['ports']] == [('veth0aaa', 1460), ('veth0bbb', 1500)]
    assert cbr0['problems'] == ['admin_down', 'mtu_mismatch']
    assert (cni0['exists'], cni0['admin_up'], cni0['ports']) == (True, True, [])

    nb = facts['neighbors']
    assert nb['counts'] == {'STALE': 1, 'INCOMPLETE': 1, 'FAILED': 1, 'PERMANENT': 1}
    assert sorted(e['dst'] for e in nb['entries']) == ['10.77.0.10', '10.77.0.11', '10.77.0.9']
    assert nb['mismatches'] == [{'dst': '10.77.0.12', 'dev': 'vx', 'lladdr': '02:00:00:00:00:12',
                                 'expected': '02:00:00:00:00:13', 'state': 'PERMANENT'}]

    (net,) = facts['ipam']['networks']
    assert (net['name'], net['data_dir'], net['allocated'], net['size'], net['free'], net['exhausted']) == \
        ('nm-it', str(data_dir), 5, 5, 0, True)
    assert {a['ip']: a['container_id'] for a in net['allocations']} == allocated
    assert all(a['ifname'] == 'eth0' for a in net['allocations'])
    # The range the module computed is the one the plugin names when it refuses.
    assert net['range_sets'][0]['ranges'] == ['10.88.0.1-10.88.0.6']
    assert 'no IP addresses available in range set: 10.88.0.1-10.88.0.6' in refused.stdout
    assert facts['cni']['default'] == '10-nm-it.conf'
    assert facts['dns']['agree'] is True

    found = sorted((f['id'], f['severity']) for f in facts['findings'])
    assert ('N-1', 'critical') in found
    assert ('N-3', 'warning') in found
    assert ('N-6', 'critical') in found and ('N-6', 'warning') in found
    assert ('N-8', 'critical') in found and ('N-8', 'warning') in found
    assert 'D-11' not in {f[0] for f in found}

    # Release one address (real DEL) and reserve the NodePort range: both findings go away.
    released = next(ip for ip, cid in allocated.items() if cid.endswith('0'))
    deleted = _host_local('DEL', allocated[released], netns.name, netconf)
    assert deleted.returncode == 0, deleted.stderr
    netns.write('/proc/sys/net/ipv4/ip_local_reserved_ports', '30000-32767')
    again = run('node_network_facts', dict(args, probes=['ports', 'ipam']), wrapper=netns.wrapper)
    assert not again.failed, again.output
    (net,) = again['netmedic']['ipam']['networks']
    assert (net['allocated'], net['free'], net['used_percent']) == (4, 1, 80.0)
    assert released not in [a['ip'] for a in net['allocations']]
    assert again['netmedic']['ports']['covered_by_reserved'] is True
    assert again['netmedic']['findings'] == []


# A DNS server of the test's own inside the namespace: NOERROR (one A record) for the cluster name,
# NXDOMAIN for anything else, REFUSED from a second address; the third address has no server.
_DNS_SERVER = r'''
import socket, struct, sys, threading
def serve(addr, refuse):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    while True:
        data, peer = s.recvfrom(512)
        qid, = struct.unpack('!H', data[:2])
        end = data.index(b'\0', 12) + 5
        question = data[12:end]
        name = []
        i = 0
        while question[i]:
            name.append(question[i + 1:i + 1 + question[i]].decode()); i += question[i] + 1
        if refuse:
            s.sendto(struct.pack('!HHHHHH', qid, 0x8185, 1, 0, 0, 0) + question, peer)
        elif '.'.join(name) == 'kubernetes.default.svc.cluster.local':
            answer = b'\xc0\x0c' + struct.pack('!HHIH', 1, 1, 30, 4) + socket.inet_aton('10.96.0.1')
            s.sendto(struct.pack('!HHHHHH', qid, 0x8180, 1, 1, 0, 0) + question + answer, peer)
        else:
            s.sendto(struct.pack('!HHHHHH', qid, 0x8183, 1, 0, 0, 0) + question, peer)
threading.Thread(target=serve, args=('127.0.0.1', False), daemon=True).start()
threading.Thread(target=serve, args=('127.0.0.2', True), daemon=True).start()
l6 = socket.socket(socket.AF_INET6); l6.bind(('::', 8080)); l6.listen()
l4 = socket.socket(); l4.bind(('0.0.0.0', 7070)); l4.listen()
print('ready', flush=True)
sys.stdin.read()
'''


def test_d5_d11_listeners_and_real_dns_queries_in_a_namespace(run, netns):
    """D-5 and D-11 for real: the kernel's socket tables and UDP queries answered by a live server."""
    netns.run('ip', 'link', 'set', 'lo', 'up')
    netns.run('ip', 'addr', 'add', '127.0.0.2/8', 'dev', 'lo')
    server = subprocess.Popen(['ip', 'netns', 'exec', netns.name, 'python3', '-c', _DNS_SERVER],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == 'ready'
        result = run('node_network_facts', {
            'probes': ['dns', 'listeners'], 'ipv6_ports': [7070, 8080], 'dns_timeout': 1,
            'dns_servers': ['127.0.0.1', '127.0.0.2', '127.0.0.3'],
            'dns_names': ['kubernetes.default.svc.cluster.local', 'nope.default.svc.cluster.local'],
        }, wrapper=netns.wrapper)
    finally:
        server.stdin.close()
        server.kill()
        server.wait(10)
    assert not result.failed, result.output
    facts = result['netmedic']
    got = {(q['server'], q['name'].split('.')[0]): q['result'] for q in facts['dns']['queries']}
    assert got == {
        ('127.0.0.1', 'kubernetes'): 'noerror', ('127.0.0.1', 'nope'): 'nxdomain',
        ('127.0.0.2', 'kubernetes'): 'refused', ('127.0.0.2', 'nope'): 'refused',
        ('127.0.0.3', 'kubernetes'): 'unreachable', ('127.0.0.3', 'nope'): 'unreachable',
    }
    assert [q['answers'] for q in facts['dns']['queries'] if q['result'] == 'noerror'] == [1]
    ls = facts['listeners']
    assert (ls['ipv4_only'], ls['ipv6'], ls['ipv6_ports_ipv4_only']) == ([7070], [8080], [7070])
    found = {(f['id'], f['severity']) for f in facts['findings']}
    assert found == {('D-5', 'warning'), ('D-11', 'critical')}
