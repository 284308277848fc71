"""Smoke tests of the VM lab (lab/vm/labctl): the nodes are real and usable.

Run explicitly, against a lab that is up:

    lab/vm/labctl up
    NETMEDIC_LAB_INVENTORY=/run/netmedic-lab/inventory.yml .venv/bin/pytest tests/labvm

Without NETMEDIC_LAB_INVENTORY every test fails (it does not skip): a CI job
that asked for the VM lab must not pass silently without one.

TCG guests cost seconds per command, so each node is probed with one batched
SSH call (all nodes in parallel) and the tests assert on the collected output;
one Ansible ad-hoc command checks that the inventory itself works for Ansible.
"""

import concurrent.futures
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = 'NETMEDIC_LAB_INVENTORY'
SSH_TIMEOUT = 180


def _tool(name):
    for candidate in (REPO / '.venv' / 'bin' / name, Path(sys.executable).parent / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f'{name} not found (expected in {REPO / ".venv" / "bin"} or on PATH)')
    return found


def _require(lab):
    """Fail (not error, not skip) the calling test when there is no lab."""
    if 'error' in lab:
        pytest.fail(lab['error'], pytrace=False)
    return lab


@pytest.fixture(scope='module')
def inventory():
    path = os.environ.get(ENV)
    if not path:
        return {
            'error': f'{ENV} is not set: start the lab with `lab/vm/labctl up` and point {ENV} at the '
            'inventory it prints (default /run/netmedic-lab/inventory.yml)'
        }
    if not Path(path).is_file():
        return {'error': f'{ENV}={path}: no such file (is the lab up? `lab/vm/labctl status`)'}
    proc = subprocess.run([_tool('ansible-inventory'), '-i', path, '--list'], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f'ansible-inventory cannot read {path}: {proc.stderr}'
    data = json.loads(proc.stdout)
    hostvars = data.get('_meta', {}).get('hostvars', {})
    assert hostvars, f'{path} lists no hosts'
    for name, hv in hostvars.items():
        for var in ('ansible_host', 'ansible_port', 'ansible_user', 'ansible_ssh_private_key_file', 'lab_l2_ip', 'lab_l2_dev'):
            assert var in hv, f'{name}: {var} missing from the inventory'
    return {'path': path, 'hosts': dict(sorted(hostvars.items()))}


def _probe_script(hv, peers, run_container):
    dev = shlex.quote(hv['lab_l2_dev'])
    image = shlex.quote(hv.get('lab_container_image', 'localhost/netmedic/busybox:lab'))
    # pings run in the background while the other checks run
    lines = [f'(ping -c 2 -i 0.2 -W 3 -I {dev} {shlex.quote(ip)} >/dev/null 2>&1 && echo ping={shlex.quote(ip)}) &' for ip in peers]
    lines += [
        'echo "hostname=$(hostname)"',
        'modprobe ip_vs_lc && lsmod | grep -q "^ip_vs_lc " && echo ipvs=ok',
        'ctr -n k8s.io c ls >/tmp/smoke-ctr.out 2>&1 && head -n1 /tmp/smoke-ctr.out | grep -q "^CONTAINER" && echo ctr=ok',
        f'ctr -n k8s.io images ls -q | grep -qx {image} && echo image=ok',
        'test -x /usr/lib/cni/host-local && echo hostlocal=ok',
    ]
    if run_container:
        lines.append(f'ctr -n k8s.io run --rm {image} smoke-$$ echo container-ran | sed "s/^/run=/"')
    lines += ['wait', f'ip -o neigh show dev {dev} | sed "s/^/neigh=/"']
    return '\n'.join(lines)


def _ssh(hv, script):
    cmd = ['ssh', '-p', str(hv['ansible_port']), '-i', hv['ansible_ssh_private_key_file'], '-o', 'BatchMode=yes']
    cmd += shlex.split(hv.get('ansible_ssh_common_args', ''))
    cmd += [f'{hv["ansible_user"]}@{hv["ansible_host"]}', script]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=SSH_TIMEOUT, check=False)


@pytest.fixture(scope='module')
def probes(inventory):
    """One batched SSH call per node, all nodes at once: {host: {key: [values]}}."""
    if 'error' in inventory:
        return inventory
    hosts = inventory['hosts']
    first = next(iter(hosts))

    def probe(name):
        hv = hosts[name]
        peers = [other['lab_l2_ip'] for other_name, other in hosts.items() if other_name != name]
        proc = _ssh(hv, _probe_script(hv, peers, run_container=name == first))
        result = {'_rc': [proc.returncode], '_stderr': [proc.stderr.strip()]}
        for line in proc.stdout.splitlines():
            key, sep, value = line.partition('=')
            if sep:
                result.setdefault(key, []).append(value)
        return name, result

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        return dict(pool.map(probe, hosts))


def test_inventory_works_with_ansible(inventory):
    _require(inventory)
    proc = subprocess.run(
        [_tool('ansible'), '-i', inventory['path'], 'all', '-m', 'ansible.builtin.command', '-a', 'cat /etc/hostname', '-o'],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=dict(os.environ, ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_NOCOLOR='1'),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in inventory['hosts']:
        assert f'{name} | CHANGED | rc=0 | (stdout) {name}' in proc.stdout, proc.stdout


def test_every_node_answers(inventory, probes):
    _require(probes)
    for name in inventory['hosts']:
        assert probes[name]['_rc'] != [255], f'{name}: ssh failed: {probes[name]["_stderr"]}'
        assert probes[name].get('hostname') == [name], probes[name]


def test_ipvs_scheduler_module_loads(probes):
    for name, p in _require(probes).items():
        assert p.get('ipvs') == ['ok'], f'{name}: modprobe ip_vs_lc / lsmod failed: {p}'


def test_containerd_lists_containers_and_has_the_lab_image(probes):
    for name, p in _require(probes).items():
        assert p.get('ctr') == ['ok'], f'{name}: `ctr -n k8s.io c ls` failed: {p}'
        assert p.get('image') == ['ok'], f'{name}: lab container image missing from containerd k8s.io: {p}'


def test_a_real_container_runs(inventory, probes):
    _require(probes)
    first = next(iter(inventory['hosts']))
    assert probes[first].get('run') == ['container-ran'], f'{first}: ctr run failed: {probes[first]}'


def test_cni_host_local_present(probes):
    for name, p in _require(probes).items():
        assert p.get('hostlocal') == ['ok'], f'{name}: /usr/lib/cni/host-local missing: {p}'


def test_nodes_share_an_l2_segment(inventory, probes):
    _require(probes)
    hosts = inventory['hosts']
    if len(hosts) < 2:
        pytest.skip('the L2 check needs at least 2 nodes (`labctl up --nodes 2`)')
    for name, p in probes.items():
        peers = {other['lab_l2_ip']: other for other_name, other in hosts.items() if other_name != name}
        assert sorted(p.get('ping', [])) == sorted(peers), f'{name}: ping over {hosts[name]["lab_l2_dev"]} failed: {p}'
        neigh = {line.split()[0]: line for line in p.get('neigh', [])}
        for ip, other in peers.items():
            assert ip in neigh, f'{name}: `ip neigh` has no entry for {ip}: {p.get("neigh")}'
            mac = other.get('lab_l2_mac')
            if mac:
                assert f'lladdr {mac}' in neigh[ip], f'{name}: {ip} resolved to the wrong MAC: {neigh[ip]}'
