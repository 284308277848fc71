"""Bad input to the node modules fails clearly and changes nothing.

Each case runs the module's ``main()`` in-process with the given arguments. Every way a
module can change a node is intercepted and recorded: kernel values
(``sysctl.write_value``), files (``sysctl.write_file_atomic``, which all of them use for
drop-ins, boot files and units) and commands (``Runner.run``: only read-only commands are
let through - ``ip -j``, ``modprobe -n``, ``ipvsadm -L``, ``systemctl is-enabled``,
``bpftool -j``, ``ctr ... containers ls -q``). A case
passes when the module fails, says ``changed: false``, its message names the problem, and
nothing was written or run that could change the node.

The same inputs run through Ansible against sandboxed or namespaced real state in
tests/integration/test_<module>.py.
"""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.netmedic.k8s.plugins.module_utils import ports, sysctl
from ansible_collections.netmedic.k8s.plugins.module_utils.runner import Runner
from ansible_collections.netmedic.k8s.plugins.modules import (
    cilium_lb_maps,
    conntrack_limit,
    ipvs_modules,
    ipvs_timeouts,
    neighbor_flush,
    pod_bridge,
    port_range,
    stale_pod_process,
)

MODULES = {
    'conntrack_limit': conntrack_limit,
    'port_range': port_range,
    'ipvs_modules': ipvs_modules,
    'ipvs_timeouts': ipvs_timeouts,
    'neighbor_flush': neighbor_flush,
    'pod_bridge': pod_bridge,
    'cilium_lb_maps': cilium_lb_maps,
    'stale_pod_process': stale_pod_process,
}

# (module, arguments, words the failure message must contain)
CASES = [
    # conntrack_limit (N-2)
    ('conntrack_limit', {'max': -5}, 'max'),
    ('conntrack_limit', {'max': 0}, 'max'),
    ('conntrack_limit', {'max': 'lots'}, 'max'),
    ('conntrack_limit', {'max': '12k'}, 'max'),
    ('conntrack_limit', {'max': '1.5'}, 'max'),
    ('conntrack_limit', {'max': True}, 'max'),
    ('conntrack_limit', {'max': 2 ** 31}, 'max'),
    ('conntrack_limit', {'max': 100000, 'persist_file': '/etc/sysctl.d/netmedic.txt'}, '.conf'),
    # port_range (N-3)
    ('port_range', {'nodeport_range': '30000'}, 'start-end'),
    ('port_range', {'nodeport_range': '32767-30000'}, 'greater than'),
    ('port_range', {'nodeport_range': '0-100'}, 'outside 1-65535'),
    ('port_range', {'nodeport_range': '30000-70000'}, 'outside 1-65535'),
    ('port_range', {'nodeport_range': '30000-32767,40000'}, 'start-end'),
    ('port_range', {'nodeport_range': 'thirty-thousand'}, 'start-end'),
    ('port_range', {'method': 'shift'}, 'method'),
    ('port_range', {'method': 'move', 'move_to': '31000-40000'}, 'overlaps the NodePort range'),
    ('port_range', {'method': 'move', 'move_to': '100-20000'}, 'ip_unprivileged_port_start'),
    ('port_range', {'method': 'move', 'move_to': '40000-40100'}, 'usable ports'),
    ('port_range', {'persist_file': '/etc/sysctl.d/ports'}, '.conf'),
    # ipvs_modules (N-4)
    ('ipvs_modules', {'schedulers': ['roundrobin']}, 'unknown IPVS scheduler'),
    ('ipvs_modules', {'schedulers': []}, 'at least one'),
    ('ipvs_modules', {'schedulers': ['RR']}, 'unknown IPVS scheduler'),
    ('ipvs_modules', {'schedulers': ['rr', 'ip_vs_lc']}, 'unknown IPVS scheduler'),
    ('ipvs_modules', {'schedulers': ['rr'], 'persist_file': '/etc/modules-load.d/ipvs'}, '.conf'),
    # ipvs_timeouts (N-5)
    ('ipvs_timeouts', {'udp': -1}, 'between 0'),
    ('ipvs_timeouts', {'udp': 'ten'}, 'udp'),
    ('ipvs_timeouts', {'tcp': 0}, 'at least one'),
    ('ipvs_timeouts', {'tcpfin': 10 ** 8}, 'between 0'),
    ('ipvs_timeouts', {'udp': 10, 'cluster_version': 'one.sixteen'}, 'cluster_version'),
    ('ipvs_timeouts', {'udp': 10, 'unit_file': '/etc/systemd/system/ipvs.timer'}, '.service'),
    # neighbor_flush (N-6)
    ('neighbor_flush', {'address': '10.0.0.2'}, 'exactly one of expected_mac, state=absent or probe=true'),
    ('neighbor_flush', {'address': '10.0.0.2', 'expected_mac': '02:00:00:00:00:02', 'state': 'absent'}, 'exactly one of'),
    ('neighbor_flush', {'address': '10.0.0.2', 'all': True, 'state': 'absent'}, 'mutually exclusive'),
    ('neighbor_flush', {'all': True, 'probe': True}, 'apply to address only'),
    ('neighbor_flush', {'probe': True}, 'give address'),
    ('neighbor_flush', {'address': '10.0.0.300', 'state': 'absent'}, 'not an IP address'),
    ('neighbor_flush', {'address': '10.0.0.2', 'expected_mac': '02:00:00:00:00'}, 'not a MAC address'),
    ('neighbor_flush', {'address': '10.0.0.2', 'expected_mac': 'ff:ff:ff:ff:ff:ff'}, 'not a unicast MAC'),
    ('neighbor_flush', {'address': '10.0.0.2', 'expected_mac': '01:00:5e:00:00:01'}, 'not a unicast MAC'),
    ('neighbor_flush', {'address': 'fd00::2', 'probe': True, 'device': 'eth0'}, 'IPv4 only'),
    ('neighbor_flush', {'address': '10.0.0.2', 'state': 'absent', 'device': 'eth/1'}, 'not a network interface name'),
    ('neighbor_flush', {'address': '10.0.0.2', 'state': 'absent', 'device': 'nm-nosuch0'}, 'does not exist'),
    ('neighbor_flush', {'address': '10.0.0.2', 'state': 'present'}, 'state'),
    # pod_bridge (N-8)
    ('pod_bridge', {'name': 'cbr0', 'mtu': 10}, 'between 68 and 65535'),
    ('pod_bridge', {'name': 'cbr0', 'mtu': 70000}, 'between 68 and 65535'),
    ('pod_bridge', {'name': 'cbr0/x'}, 'not a network interface name'),
    ('pod_bridge', {'name': 'a-very-long-bridge-name'}, 'not a network interface name'),
    ('pod_bridge', {'name': 'cbr0', 'mtu': 'big'}, 'mtu'),
    ('pod_bridge', {'name': 'nm-nosuch0'}, 'does not exist'),
    # cilium_lb_maps (N-10)
    ('cilium_lb_maps', {'threshold': 0}, 'between 1 and 100'),
    ('cilium_lb_maps', {'threshold': 150, 'state': 'cleared'}, 'between 1 and 100'),
    ('cilium_lb_maps', {'maps': ['relative/map'], 'state': 'cleared'}, 'not a pinned map path'),
    ('cilium_lb_maps', {'maps': [], 'state': 'cleared'}, 'at least one'),
    ('cilium_lb_maps', {'maps': ['/sys/fs/bpf/a', '/sys/fs/bpf/a']}, 'twice'),
    ('cilium_lb_maps', {'state': 'flushed'}, 'state'),
    ('cilium_lb_maps', {'maps': ['/sys/fs/bpf/netmedic-no-such-map'], 'state': 'cleared'}, 'is not a pinned eBPF map'),
    # stale_pod_process (N-9)
    ('stale_pod_process', {'pod_uid': 'my-pod'}, 'pod_uid must be a pod UID'),
    ('stale_pod_process', {'pod_uid': '3F1A2B3C-4D5E-6F70-8192-A3B4C5D6E7F8'}, 'pod_uid must be a pod UID'),
    ('stale_pod_process', {'pod_uid': '3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8', 'port': 0}, 'port must be between 1 and 65535'),
    ('stale_pod_process', {'pod_uid': '3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8', 'wait': 3600}, 'wait must be between 0 and 300'),
    ('stale_pod_process', {'pod_uid': '3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8', 'runtime_endpoint': 'tcp://10.0.0.1:2375'}, 'unix socket'),
    ('stale_pod_process', {'pod_uid': '3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8', 'signal': 'HUP'}, 'signal'),
    ('stale_pod_process', {'pod_uid': '3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8', 'state': 'killed'}, 'nothing was changed'),
    # cni_ipam_gc (N-1): its owner adds its cases here when the module lands.
]

READ_ONLY = (('ip', '-j'), ('modprobe', '-n'), ('ipvsadm', '-L'), ('systemctl', 'is-enabled'), ('bpftool', '-j'))


@pytest.fixture
def guarded(monkeypatch):
    """Record every attempt to change the node; let read-only commands run."""
    changes = []
    real_run = Runner.run

    def run(self, args, check=True, data=None):
        words = [str(a) for a in args]
        if tuple(words[:2]) in READ_ONLY or (words[0] == 'ctr' and words[-3:] == ['containers', 'ls', '-q']):
            return real_run(self, args, check=check, data=data)
        changes.append(('command', list(args)))
        raise AssertionError('a command that could change the node was run: %r' % (args,))

    def write_value(key, value, root=sysctl.PROC_SYS):
        changes.append(('sysctl', key, value))

    def write_file(module, path, content, mode=0o644):
        changes.append(('file', path))

    monkeypatch.setattr(Runner, 'run', run)
    monkeypatch.setattr(sysctl, 'write_value', write_value)
    monkeypatch.setattr(sysctl, 'write_file_atomic', write_file)
    return changes


def run_main(name, args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        MODULES[name].main()
    out = capsys.readouterr().out
    return exc.value.code, json.loads(out)


def test_there_are_at_least_30_distinct_cases_across_the_modules():
    distinct = {(name, json.dumps(args, sort_keys=True)) for name, args, words in CASES}
    assert len(distinct) == len(CASES) >= 30
    assert {name for name, args, words in CASES} == set(MODULES)


@pytest.mark.parametrize('name, args, words', CASES, ids=['%s-%d' % (c[0], i) for i, c in enumerate(CASES)])
def test_bad_input_fails_clearly_and_changes_nothing(name, args, words, guarded, capsys):
    code, result = run_main(name, args, capsys)
    assert code == 1, result
    assert result.get('failed') is True, result
    # AnsibleModule's own argument checks (type, choices) exit before main() runs and leave
    # out `changed` (Ansible reports it as false); the modules' checks say changed=false.
    assert result.get('changed', False) is False, result
    assert words in result['msg'], result['msg']
    assert guarded == [], 'the module tried to change the node: %r' % guarded


def test_the_guard_sees_a_change(guarded, capsys):
    """Control: valid input that changes the node is caught by the guard (so an empty record means something)."""
    assert sysctl.write_value.__name__ == 'write_value' and sysctl.write_value.__module__ == __name__
    current = sysctl.read_value('net.ipv4.ip_local_reserved_ports')
    code, result = run_main('port_range', {'nodeport_range': '30000-32767', 'persist': False}, capsys)
    if current and '30000-32767' in current:
        pytest.fail('this machine already reserves 30000-32767; the control needs a node without it')
    expected = ports.format_ranges(ports.union(ports.parse_port_ranges(current), [(30000, 32767)]))
    assert guarded == [('sysctl', 'net.ipv4.ip_local_reserved_ports', expected)]
    # the guarded write did not reach the kernel, and the module's read-back noticed
    assert code == 1 and 'but the kernel reports' in result['msg']
