"""Bad input to the node modules fails clearly and changes nothing, on a fake node.

Each case runs the module's ``main()`` in-process with the given arguments, on a node
that exists only in this file (issue 12, finding 4a: no host binary, no host ``/proc``,
no real process is ever involved, whatever machine runs the suite):

- binaries: ``Runner.which`` answers from ``BINARIES`` (no container runtime CLI), never
  from the host's PATH; ``AnsibleModule.get_bin_path`` is never reached;
- commands: ``Runner.run`` answers read-only commands (``ip -j``, ``modprobe -n``,
  ``ipvsadm -L``, ``systemctl is-enabled``, ``bpftool -j``, ``ctr ... containers ls -q``)
  from ``REPLIES`` (recorded output, tests/unit/fixtures); any other command is recorded
  as a change and refused; ``subprocess.Popen`` and ``AnsibleModule.run_command`` are
  refused outright (nothing may bypass the runner);
- kernel values and files: ``sysctl.read_value`` / ``files.read_text`` answer from
  ``SYSCTL`` / ``FILES``; ``sysctl.boot_order`` lists no boot files; writes
  (``sysctl.write_value``, ``files.write_file_atomic``, ``open()`` for writing,
  ``os.replace``/``rename``/``unlink``/``remove``/``mkdir``/``makedirs``/``symlink``/``chmod``,
  ``shutil.move``/``copy*``, ``AnsibleModule.atomic_move``) are recorded;
- processes: ``podproc`` reads a fake ``/proc`` holding one process of pod ``POD``
  (pid 4242, its container unknown to the runtime) and containerd's socket, through a
  HostFS rooted in a temporary directory; ``os.pidfd_open``, ``signal.pidfd_send_signal``,
  ``os.kill``, ``os.killpg`` and ``signal.pthread_kill`` are recorded and refused.

A case passes when the module fails, says ``changed: false``, its message names the
problem, and the record is empty. The controls at the end prove that each interception
does record (so an empty record means something); their expectations are literals.

The same inputs run through Ansible against sandboxed or namespaced real state in
tests/integration/test_<module>.py.
"""

import builtins
import json
import os
import shutil
import signal
import subprocess

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.netmedic.k8s.plugins.module_utils import podproc
from ansible_collections.netmedic.k8s.plugins.module_utils.node import files as node_files
from ansible_collections.netmedic.k8s.plugins.module_utils.node import sysctl
from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandError, CommandNotFound, CommandResult, Runner
from ansible_collections.netmedic.k8s.plugins.modules import (
    cilium_lb_maps,
    conntrack_limit,
    ipvs_modules,
    ipvs_timeouts,
    neighbor_flush,
    node_network_facts,
    pod_bridge,
    port_range,
    stale_pod_process,
)

from ..conftest import FakeModule, NodeTree, fixture_reply, fixture_text

MODULES = {
    'conntrack_limit': conntrack_limit,
    'port_range': port_range,
    'ipvs_modules': ipvs_modules,
    'ipvs_timeouts': ipvs_timeouts,
    'neighbor_flush': neighbor_flush,
    'pod_bridge': pod_bridge,
    'cilium_lb_maps': cilium_lb_maps,
    'stale_pod_process': stale_pod_process,
    'node_network_facts': node_network_facts,
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
    ('pod_bridge', {'name': 'cbr0', 'port_mtu': True}, 'port_mtu needs mtu'),
    ('pod_bridge', {'name': 'cbr0', 'verify_learned': 601}, 'verify_learned must be 0 to 600'),
    ('pod_bridge', {'name': 'cbr0', 'mtu': 1460, 'verify_learned': 5}, 'needs the bridge command'),
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
    # node_network_facts (read-only; D-5, D-9, D-11 inputs)
    ('node_network_facts', {'ipv6_ports': [0]}, 'ipv6_ports'),
    ('node_network_facts', {'ipv6_ports': [65536]}, 'ipv6_ports'),
    ('node_network_facts', {'dns_servers': ['kube-dns.kube-system']}, 'not an IP address'),
    ('node_network_facts', {'dns_servers': ['10.96.0.10:53']}, 'not an IP address'),
    ('node_network_facts', {'dns_names': ['bad..name']}, 'not a valid DNS name'),
    ('node_network_facts', {'dns_timeout': 0}, 'dns_timeout'),
    ('node_network_facts', {'dns_timeout': 60}, 'dns_timeout'),
    ('node_network_facts', {'nat_port_capacity': 0}, 'nat_port_capacity'),
    ('node_network_facts', {'nat_warn_percent': 150}, 'nat_warn_percent'),
]

POD = '3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8'
STALE_PID = 4242
NOSUCH_MAP = '/sys/fs/bpf/netmedic-no-such-map'
CONTAINERD_SOCKET = '/run/containerd/containerd.sock'
CTR_LIST = ('ctr', '--address', CONTAINERD_SOCKET, '--timeout', '30s', '--namespace', 'k8s.io', 'containers', 'ls', '-q')

# The fake node. Every binary a case may look up is here; no container runtime CLI
# (stale_pod_process's runtime cannot be listed unless a case adds ctr).
BINARIES = {
    'ip': '/usr/sbin/ip',
    'arping': '/usr/sbin/arping',
    'bpftool': '/usr/sbin/bpftool',
    'ipvsadm': '/usr/sbin/ipvsadm',
    'modprobe': '/usr/sbin/modprobe',
    'systemctl': '/usr/bin/systemctl',
}

# (rc, stdout, stderr) of the read-only commands the cases run, keyed like FakeModule's.
REPLIES = {
    ('ip', '-j', '-d', 'link', 'show'): (0, fixture_text('ip/link-host.json'), ''),
    ('ip', '-j', 'link', 'show', 'dev', 'nm-nosuch0'): (1, '', 'Device "nm-nosuch0" does not exist.\n'),
    ('bpftool', '-j', 'map', 'show', 'pinned', NOSUCH_MAP): fixture_reply('bpftool/map-show-nosuch'),
}

SYSCTL = {
    'net.ipv4.ip_local_port_range': '32768 60999',
    'net.ipv4.ip_local_reserved_ports': '8080',
    'net.ipv4.ip_unprivileged_port_start': '1024',
    'net.netfilter.nf_conntrack_max': '65536',
    'net.netfilter.nf_conntrack_count': '100',
}

# Files the modules read (anything else reads as absent).
FILES = {
    '/proc/meminfo': 'MemTotal:        8131564 kB\n',
    '/proc/modules': 'ip_vs 188416 0 - Live 0x0000000000000000\n',
}

READ_ONLY = (('ip', '-j'), ('modprobe', '-n'), ('ipvsadm', '-L'), ('systemctl', 'is-enabled'), ('bpftool', '-j'))


def _proc_stat(pid, comm, starttime):
    # Fields 3..22 of /proc/<pid>/stat: state S, ..., starttime last.
    return '%d (%s) S 1 %d %d 0 -1 4194560 10 0 0 0 0 0 0 0 20 0 1 0 %d 100000 10 0\n' % (pid, comm, pid, pid, starttime)


SANDBOX_ID = '4d1f7e2c9b3a58607f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778'  # listed by ctr (fixture)


def _process(root, pid, comm, cgroup, starttime):
    base = root / 'proc' / str(pid)
    base.mkdir(parents=True)
    (base / 'stat').write_text(_proc_stat(pid, comm, starttime))
    (base / 'cgroup').write_text(cgroup)
    (base / 'comm').write_text(comm + '\n')
    (base / 'cmdline').write_text(comm + '\0')


def make_node(root):
    """The node's file system: containerd's socket, and a /proc with two processes of pod
    POD: its sandbox (container listed by the runtime) and pid 4242, whose container
    (deadbeefcafe) the runtime does not list."""
    tree = NodeTree(root)
    tree.socket(CONTAINERD_SOCKET)
    _process(root, 4100, 'pause', '0::/kubepods/besteffort/pod%s/%s\n' % (POD, SANDBOX_ID), 123000)
    _process(root, STALE_PID, 'nginx', fixture_text('podproc/cgroup-stale-cgroupfs.txt'), 123456)
    return tree


class Host(object):
    """The fake node of one test, and the record of every attempt to change it."""

    def __init__(self, tree):
        self.binaries = dict(BINARIES)
        self.replies = dict(REPLIES)
        self.sysctl = dict(SYSCTL)
        self.files = dict(FILES)
        self.root = str(tree.root)
        self.proc_root = str(tree.root / 'proc')
        self.changes = []

    def refuse(self, *what):
        self.changes.append(what)
        raise AssertionError('the module tried to change the node: %r' % (what,))


@pytest.fixture
def host(monkeypatch, tmp_path):
    """Install the fake node; ``host.changes`` is the record (see the module docstring)."""
    h = Host(make_node(tmp_path / 'node'))

    def which(self, name):
        return h.binaries.get(name)

    def run(self, args, check=True, data=None, timeout=None, **_kwargs):
        words = [str(a) for a in args]
        path = h.binaries.get(words[0])
        if path is None:
            raise CommandNotFound(words[0])
        read_only = tuple(words[:2]) in READ_ONLY or (words[0] == 'ctr' and words[-3:] == ['containers', 'ls', '-q'])
        if not read_only:
            h.refuse('command', words)
        fake = FakeModule(h.binaries, h.replies)
        rc, out, err = fake.run_command([path] + words[1:], check_rc=False, data=data, use_unsafe_shell=False)
        if check and rc != 0:
            raise CommandError([path] + words[1:], rc, out, err)
        return CommandResult([path] + words[1:], rc, out, err)

    monkeypatch.setattr(Runner, 'which', which)
    monkeypatch.setattr(Runner, 'run', run)
    monkeypatch.setattr(AnsibleModule, 'get_bin_path', lambda self, name, *a, **k: h.refuse('host binary lookup', name))
    monkeypatch.setattr(AnsibleModule, 'run_command', lambda self, cmd, *a, **k: h.refuse('run_command', list(cmd)))
    monkeypatch.setattr(AnsibleModule, 'atomic_move', lambda self, src, dest, *a, **k: h.refuse('file', dest))
    monkeypatch.setattr(subprocess, 'Popen', lambda cmd, *a, **k: h.refuse('process', list(cmd)))

    # kernel values and files
    monkeypatch.setattr(sysctl, 'read_value', lambda key, root=None: h.sysctl.get(key))
    monkeypatch.setattr(node_files, 'read_text', h.files.get)
    monkeypatch.setattr(sysctl, 'boot_order', lambda dirs=None, conf=None: [])
    monkeypatch.setattr(sysctl, 'write_value', lambda key, value, root=None: h.changes.append(('sysctl', key, value)))
    monkeypatch.setattr(node_files, 'write_file_atomic', lambda module, path, content, mode=0o644: h.changes.append(('file', path)))
    real_open = builtins.open

    def guarded_open(file, mode='r', *args, **kwargs):
        if any(c in mode for c in 'wax+'):
            h.refuse('file', str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, 'open', guarded_open)
    for name in ('replace', 'rename', 'unlink', 'remove', 'rmdir', 'mkdir', 'makedirs', 'symlink', 'chmod', 'chown'):
        monkeypatch.setattr(os, name, lambda path, *a, _n=name, **k: h.refuse('file', _n, str(path)))
    for name in ('move', 'copy', 'copy2', 'copyfile', 'rmtree'):
        monkeypatch.setattr(shutil, name, lambda path, *a, _n=name, **k: h.refuse('file', _n, str(path)))

    # processes (and the runtime's socket: the module looks at the node through a HostFS)
    monkeypatch.setattr(stale_pod_process, 'HostFS', lambda root='/': HostFS(h.root))
    real_scan, real_process, real_sockets = podproc.scan, podproc.process, podproc.sockets_of
    monkeypatch.setattr(podproc, 'scan', lambda uid, root=None: real_scan(uid, h.proc_root))
    monkeypatch.setattr(podproc, 'process', lambda pid, root=None: real_process(pid, h.proc_root))
    monkeypatch.setattr(podproc, 'sockets_of', lambda pid, root=None: real_sockets(pid, h.proc_root))
    monkeypatch.setattr(os, 'kill', lambda pid, sig: h.refuse('signal', pid, sig))
    # stale_pod_process signals through a pidfd: opening one is the first step of a signal
    monkeypatch.setattr(os, 'pidfd_open', lambda pid, *a: h.refuse('signal', pid, 'pidfd_open'), raising=False)
    monkeypatch.setattr(signal, 'pidfd_send_signal', lambda fd, sig, *a: h.refuse('signal', fd, sig), raising=False)
    monkeypatch.setattr(os, 'killpg', lambda pgid, sig: h.refuse('signal group', pgid, sig))
    monkeypatch.setattr(signal, 'pthread_kill', lambda tid, sig: h.refuse('signal thread', tid, sig))
    return h


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
def test_bad_input_fails_clearly_and_changes_nothing(name, args, words, host, capsys):
    code, result = run_main(name, args, capsys)
    assert code == 1, result
    assert result.get('failed') is True, result
    # AnsibleModule's own argument checks (type, choices) exit before main() runs and leave
    # out `changed` (Ansible reports it as false); the modules' checks say changed=false.
    assert result.get('changed', False) is False, result
    assert words in result['msg'], result['msg']
    assert host.changes == [], 'the module tried to change the node: %r' % host.changes


def test_issue12_4a_no_case_looks_up_a_host_binary(host, capsys, monkeypatch):
    """Every case on the fake node: no host binary is looked up, nothing recorded."""
    for name, args, _words in CASES:
        run_main(name, args, capsys)
    assert host.changes == []


@pytest.mark.parametrize('binaries, replies, words', [
    # the runtime's CLI is missing
    ({}, {}, 'no CLI for containerd is installed (ctr, crictl)'),
    # ctr is there but containerd does not answer (recorded on a lab node)
    ({'ctr': '/usr/bin/ctr'}, {CTR_LIST: fixture_reply('ctr/containers-ls-q-containerd-stopped')}, 'context deadline exceeded'),
])
def test_issue12_4a_unlistable_runtime_signals_nothing(host, capsys, binaries, replies, words):
    """A stale-looking process exists (fake /proc); without the runtime's list nothing is signalled."""
    host.binaries.update(binaries)
    host.replies.update(replies)
    code, result = run_main('stale_pod_process', {'pod_uid': POD, 'state': 'killed', 'wait': 0}, capsys)
    assert code == 1 and result['failed'] is True and result['changed'] is False, result
    assert words in result['msg'] and 'nothing was changed' in result['msg'], result['msg']
    assert host.changes == []


# ---- controls: valid input that changes the node is caught (so an empty record means something)


def test_issue12_4a_control_sysctl_write_is_recorded(host, capsys):
    code, result = run_main('port_range', {'nodeport_range': '30000-32767', 'persist': False}, capsys)
    assert host.changes == [('sysctl', 'net.ipv4.ip_local_reserved_ports', '8080,30000-32767')]
    # the recorded write did not reach the (fake) kernel, and the module's read-back noticed
    assert code == 1 and 'but the kernel reports' in result['msg'], result


def test_issue12_4a_os_kill_is_intercepted(host, capsys):
    host.binaries['ctr'] = '/usr/bin/ctr'
    host.replies[CTR_LIST] = fixture_reply('ctr/containers-ls-q-module-args')  # the sandbox, not deadbeefcafe
    with pytest.raises(AssertionError, match='tried to change the node'):
        run_main('stale_pod_process', {'pod_uid': POD, 'state': 'killed', 'wait': 0}, capsys)
    assert host.changes == [('signal', STALE_PID, 'pidfd_open')]


def test_issue12_4a_changing_command_is_intercepted(host, capsys):
    host.replies[('ip', '-j', 'neigh', 'show', 'nud', 'all')] = (0, fixture_text('ip/neigh-vm-permanent.json'), '')
    with pytest.raises(AssertionError, match='tried to change the node'):
        run_main('neighbor_flush', {'all': True}, capsys)
    assert host.changes == [('command', ['ip', 'neigh', 'flush', 'all'])]


def test_issue12_4a_file_writes_and_processes_are_intercepted(host, tmp_path):
    target = tmp_path / 'written'
    with pytest.raises(AssertionError, match='tried to change the node'), open(str(target), 'w'):
        pass
    with pytest.raises(AssertionError, match='tried to change the node'):
        subprocess.Popen(['true'])
    with pytest.raises(AssertionError, match='tried to change the node'):
        os.replace(str(target), str(target) + '.new')
    assert not target.exists()
    assert host.changes == [('file', str(target)), ('process', ['true']), ('file', 'replace', str(target))]
