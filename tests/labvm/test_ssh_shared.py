"""One SSH connection per lab node, shared by labctl, Ansible and the tests' ``ssh`` fixture.

A new connection to a TCG guest costs ~1.1 s of the guest's CPU and 2-4 s of wall time (measured 2026-12-04: 5 new
connections 5.6 s of the qemu process's CPU, 5 sessions over a master 0.7 s). Before, every reset opened three per
node: labctl's clock reset (no master), the fixture's master in a directory of its own and Ansible's in ~/.ansible/cp.
Now the inventory names labctl's ControlPath (lab/vm/vmlab/ssh.py) and all three go over the one connection.
"""

from __future__ import annotations


def _sshd_connections(ssh, node):
    """The node's established TCP connections to its sshd (port 22), counted in the guest."""
    out = ssh(node, "ss -Htn state established '( sport = :22 )'").stdout
    return [line for line in out.splitlines() if line.strip()]


def test_labctl_ansible_and_the_fixture_share_one_connection_per_node(lab, lab_reset, ssh, run_module):
    lab_reset()
    node = lab['nodes'][0]
    result = run_module(node, 'ansible.builtin.ping', {'data': 'shared'})
    assert not result.failed and result.get('ping') == 'shared', result.output
    assert ssh(node, 'echo up').stdout.strip() == 'up'
    connections = _sshd_connections(ssh, node)
    assert len(connections) == 1, 'the clock reset, Ansible and the fixture opened %d connections:\n%s' % (
        len(connections), '\n'.join(connections))
