"""roles/node_rotation/examples/provider_reboot.yml, W-3's default reboot hook after an iptables fallback (catalog C-2).

Reproduced on the VM lab (tests/labvm/test_w3_fallback_reboot_e2e.py): delegated from W-3's cluster play, whose
play-level ``connection: local`` won over the node's own, ``ansible.builtin.reboot`` refused ("would reboot the
control node") and the node was never restarted. Here, without a VM: the hook runs from such a play, the Node's host
(found by netmedic_node_name through the shared filter netmedic.k8s.node_hosts) is an SSH host on a closed port
(no ansible_connection of its own, like the lab's and most inventories), so
the reboot must fail *unreachable over ssh* on that host - proof it went to the node's host over the node's
connection, not to the controller. A Node with no inventory host fails before any reboot, naming it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / 'roles' / 'node_rotation' / 'examples' / 'provider_reboot.yml'


def _closed_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]          # closed again once the socket is gone: connections are refused


def _run(tmp_path, node):
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(
        'all:\n  hosts:\n    localhost: {ansible_connection: local}\n'
        '    vm-a: {ansible_host: 127.0.0.1, ansible_port: %d, netmedic_node_name: node-a,\n'
        '           ansible_ssh_common_args: "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5"}\n'
        % _closed_port())
    play = tmp_path / 'play.yml'
    play.write_text(
        '- name: a cluster play like W-3\n  hosts: localhost\n  connection: local\n  gather_facts: false\n'
        '  tasks:\n    - ansible.builtin.include_tasks: %s\n      vars: {node_rotation_node: %s, node_rotation_provider_timeout: 30}\n'
        % (HOOK, node))
    env = {k: v for k, v in os.environ.items() if not k.startswith(('NETMEDIC_', 'ANSIBLE_'))}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'), ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'),
               ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0')
    proc = subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), '-i', str(inventory), str(play)],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_w3_reboot_hook_goes_to_the_nodes_host_over_its_own_connection(tmp_path):
    rc, output = _run(tmp_path, 'node-a')
    assert rc != 0, output
    assert 'UNREACHABLE' in output and '-> vm-a' in output, output          # delegated to the Node's host ...
    assert 'ssh' in output.lower() and 'Connection refused' in output, output   # ... over ssh, which refused
    assert 'control node' not in output, output                              # not the controller


def test_w3_reboot_hook_without_an_inventory_host_reboots_nothing(tmp_path):
    rc, output = _run(tmp_path, 'node-z')
    assert rc != 0, output
    assert 'No inventory host is Node node-z' in output and 'Nothing was rebooted' in output, output
    assert 'UNREACHABLE' not in output, output
