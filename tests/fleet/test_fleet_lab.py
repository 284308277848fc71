"""The fleet lab's tooling works (issue 14 item 1): lab/fleet/fleetctl up/down, nodes reached
by Ansible over both connection plugins, each node's namespaces its own.

Not part of ``make test`` (tests/fleet is outside pytest's testpaths): it needs root, builds
network namespaces and conflicts with a fleet that is up (the benchmark); ~15 s here. Run it by hand::

    .venv/bin/pytest -q tests/fleet

It fails (never skips) when a fleet is already up: the fleet is one per machine
(``lab/fleet/fleetctl down`` first, or wait for the benchmark that holds it).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLEETCTL = ROOT / 'lab' / 'fleet' / 'fleetctl'
STATE = Path('/run/netmedic-fleet')
VENV_BIN = ROOT / '.venv' / 'bin'


def sh(argv, timeout=180, env=None, check=True):
    proc = subprocess.run([str(a) for a in argv], check=False, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError('%s failed rc=%d\n%s\n%s' % (argv, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc


def node_ssh(addr, command):
    return sh(['ssh', '-i', STATE / 'id_ed25519', '-o', 'UserKnownHostsFile=%s' % (STATE / 'known_hosts'),
               '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20',
               'root@%s' % addr, command]).stdout


def fleet_netns():
    return sorted(n for n in os.listdir('/run/netns') if n.startswith('nmf')) if os.path.isdir('/run/netns') else []


@pytest.fixture
def fleet():
    assert os.geteuid() == 0, 'the fleet lab needs root'
    assert not STATE.exists() and not fleet_netns(), 'a fleet is already up on this machine: lab/fleet/fleetctl down first'
    try:
        yield
    finally:
        sh([FLEETCTL, 'down'], check=False)


def ping(plugin):
    """``ansible fleet -m ping -c plugin``: {host: status word} from the default output."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_DEPRECATION_WARNINGS='False')
    bindir = VENV_BIN
    if plugin == 'paramiko_ssh':
        bindir = Path(sh([FLEETCTL, 'paramiko-venv'], timeout=900).stdout.strip().splitlines()[-1])
        env['HOME'] = str(STATE / 'home')     # its known_hosts: host keys stay checked
    env['PATH'] = '%s:%s' % (bindir, env['PATH'])
    out = sh([bindir / 'ansible', '-i', STATE / 'inventory.yml', 'fleet', '-m', 'ansible.builtin.ping', '-c', plugin], env=env).stdout
    return {line.split(' | ')[0]: line.split(' | ')[1].split()[0] for line in out.split('\n') if ' | ' in line}


def test_fleet_up_ping_both_plugins_down(fleet):
    """Issue 14 item 1: three nodes, each with its own address, host name, neighbor table and
    node directories; ansible ping answers over ssh and paramiko_ssh with host keys checked;
    shrinking removes a node; down leaves no namespace, bridge, sshd or state behind."""
    sh([FLEETCTL, 'up', '--nodes', '3'])
    status = json.loads(sh([FLEETCTL, 'status']).stdout)
    assert status['nodes'] == 3 and status['sshd_running'] == 3
    assert fleet_netns() == ['nmf0', 'nmf1', 'nmf2']
    hosts = json.loads((STATE / 'fleet.json').read_text())['hosts']
    assert hosts == {'fleet-000': '10.250.0.10', 'fleet-001': '10.250.0.11', 'fleet-002': '10.250.0.12'}

    # each node is its own: host name, address, neighbor table, CNI data, /etc/sysctl.d
    out = node_ssh('10.250.0.11', 'hostname; ip -o -4 addr show dev eth0; ip neigh show 10.250.255.250; '
                   'cat /var/lib/cni/networks/cbr0/last_reserved_ip.0; echo; '
                   'echo x > /etc/sysctl.d/99-fleet-test.conf; ls /sys/class/net')
    lines = out.split('\n')
    assert lines[0] == 'fleet-001'
    assert '10.250.0.11/16' in lines[1]
    assert '02:00:0a:fa:ff:fa' in lines[2] and 'STALE' in lines[2]
    assert lines[3] == '10.8.1.9'
    assert set(lines[4:]) - {''} == {'cbr0', 'eth0', 'lo'}
    assert (STATE / 'nodes/fleet-001/root/etc/sysctl.d/99-fleet-test.conf').read_text() == 'x\n'
    assert not Path('/etc/sysctl.d/99-fleet-test.conf').exists()
    assert node_ssh('10.250.0.10', 'ls /etc/sysctl.d; hostname').split() == ['fleet-000']

    for plugin in ('ssh', 'paramiko_ssh'):
        assert ping(plugin) == {'fleet-000': 'SUCCESS', 'fleet-001': 'SUCCESS', 'fleet-002': 'SUCCESS'}, plugin

    sh([FLEETCTL, 'up', '--nodes', '2'])
    assert fleet_netns() == ['nmf0', 'nmf1']
    assert 'fleet-002' not in (STATE / 'inventory.yml').read_text()

    pids = [int((STATE / 'nodes' / n / 'sshd.pid').read_text()) for n in ('fleet-000', 'fleet-001')]
    sh([FLEETCTL, 'down'])
    assert fleet_netns() == []
    assert not STATE.exists()
    assert not Path('/sys/class/net/nmfbr0').exists()
    assert not [p for p in pids if alive(p)]


def alive(pid, wait=5.0):
    """True while pid runs (a zombie waiting for PID 1 to reap it is dead); SIGKILL is asynchronous."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            state = Path('/proc/%d/stat' % pid).read_text().rsplit(')', 1)[1].split()[0]
        except OSError:
            return False
        if state in ('Z', 'X'):
            return False
        time.sleep(0.1)
    return True
