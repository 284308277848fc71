"""One SSH connection per lab node, shared by labctl, Ansible and the tests' ``ssh`` fixture.

A new connection to a TCG guest costs ~1.1 s of the guest's CPU and 2-4 s of wall time (measured 2026-12-04: 5 new
connections 5.6 s of the qemu process's CPU, 5 sessions over a master 0.7 s). Before, every reset opened three per
node: labctl's clock reset (no master), the fixture's master in a directory of its own and Ansible's in ~/.ansible/cp.
Now the inventory names labctl's ControlPath (lab/vm/vmlab/ssh.py) and all three go over the one connection.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.labvm.conftest import ssh_argv  # noqa: E402


def _master_pid(lab, node):
    """The pid of the node's shared connection (``ssh -O check``), or None when none is running."""
    argv = ssh_argv(lab['hostvars'][node])
    proc = subprocess.run(argv[:-1] + ['-O', 'check', argv[-1]], capture_output=True, text=True, timeout=30, check=False)
    found = re.search(r'Master running \(pid=(\d+)\)', proc.stderr + proc.stdout)
    return int(found.group(1)) if found else None


def _sshd_connections(ssh, node):
    """The node's established TCP connections to its sshd (port 22), counted in the guest."""
    out = ssh(node, "ss -Htn state established '( sport = :22 )'").stdout
    return [line for line in out.splitlines() if line.strip()]


def test_labctl_ansible_and_the_fixture_share_one_connection_per_node(lab, lab_reset, ssh, run_module):
    node = lab['nodes'][0]
    ssh(node, 'true')                  # used: the reset below restores it
    lab_reset()
    master = _master_pid(lab, node)
    assert master, 'no shared connection after the reset: labctl\'s clock reset did not open it'
    result = run_module(node, 'ansible.builtin.ping', {'data': 'shared'})
    assert not result.failed and result.get('ping') == 'shared', result.output
    assert _master_pid(lab, node) == master, 'Ansible replaced the shared connection'
    assert ssh(node, 'echo up').stdout.strip() == 'up'
    assert _master_pid(lab, node) == master, 'the ssh fixture replaced the shared connection'
    connections = _sshd_connections(ssh, node)
    assert len(connections) == 1, 'the clock reset, Ansible and the fixture opened %d connections:\n%s' % (
        len(connections), '\n'.join(connections))
