"""Node state for the API double, read from the lab's real VMs.

The double's simulated kube-proxy decides what it logs from ``node_state.modules_loaded(node)``
(catalog C-2: ``Using ipvs Proxier.`` only when ``ip_vs`` and ``ip_vs_<scheduler>`` are loaded).
``VMNodeState`` answers that question from the VM of the same name, over SSH, by reading
``/proc/modules``: so a scheduler change verified through the double's pod logs is verified
against the real kernel of the lab node, and ``modprobe``/``modprobe -r`` on the VM (for instance
by ``netmedic.k8s.ipvs_modules``) changes what the next kube-proxy pod on that node logs.

``set_conntrack_max`` does what kube-proxy does at start-up (C-1): it writes
``net.netfilter.nf_conntrack_max`` on the node (when ``nf_conntrack`` is loaded there).

Use it with the double's CLI::

    python -m lab.kubedouble serve --seed lab/seed/cluster.yaml --node-state lab.vmstate:from_env

Nodes that are not lab VMs, or VMs that do not answer, are *unknown* (``None``): the simulated
kube-proxy then logs that it cannot check the modules and falls back to iptables, as the real one
does when it cannot read the module list. Nothing is cached: each pod start asks the node.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading

import yaml

DEFAULT_INVENTORY = '/run/netmedic-lab/inventory.yml'
SSH_TIMEOUT = 60


def _hosts(inventory):
    with open(inventory) as handle:
        data = yaml.safe_load(handle) or {}
    top = data.get('all') or {}
    common = dict(top.get('vars') or {})
    hosts = {}
    for group in (top.get('children') or {}).values():
        for name, hv in ((group or {}).get('hosts') or {}).items():
            hosts[name] = dict(common, **(hv or {}))
    for name, hv in (top.get('hosts') or {}).items():
        hosts[name] = dict(common, **(hv or {}))
    return hosts


class VMNodeState:
    """``modules_loaded``/``set_conntrack_max`` answered by the lab VMs (see the module docstring)."""

    def __init__(self, inventory=None, runner=None):
        self.inventory = inventory or os.environ.get('NETMEDIC_LAB_INVENTORY') or DEFAULT_INVENTORY
        self.hosts = _hosts(self.inventory)
        self._run = runner or subprocess.run
        self._lock = threading.Lock()
        self.conntrack_max = {}
        self.errors = []

    def _ssh(self, node, script):
        hv = self.hosts.get(node)
        if hv is None:
            return None
        cmd = ['ssh', '-p', str(hv.get('ansible_port', 22)), '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20']
        if hv.get('ansible_ssh_private_key_file'):
            cmd += ['-i', str(hv['ansible_ssh_private_key_file'])]
        cmd += shlex.split(hv.get('ansible_ssh_common_args', ''))
        cmd += ['%s@%s' % (hv.get('ansible_user', 'root'), hv.get('ansible_host', node)), script]
        try:
            proc = self._run(cmd, capture_output=True, text=True, timeout=SSH_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            with self._lock:
                self.errors.append('%s: %s' % (node, exc))
            return None
        if proc.returncode != 0:
            with self._lock:
                self.errors.append('%s: rc=%s %s' % (node, proc.returncode, (proc.stderr or '').strip()[:300]))
            return None
        return proc.stdout

    def modules_loaded(self, node_name):
        """Names of the modules in the node's ``/proc/modules``; ``None`` when it cannot be read."""
        out = self._ssh(node_name, 'cat /proc/modules')
        if out is None:
            return None
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    def set_conntrack_max(self, node_name, value):
        """kube-proxy's start-up write of nf_conntrack_max (only where nf_conntrack is loaded)."""
        value = int(value)
        script = ('test -e /proc/sys/net/netfilter/nf_conntrack_max || exit 0; '
                  'echo %d > /proc/sys/net/netfilter/nf_conntrack_max' % value)
        if self._ssh(node_name, script) is not None:
            with self._lock:
                self.conntrack_max[node_name] = value


def from_env():
    """Factory for ``--node-state lab.vmstate:from_env`` (inventory from NETMEDIC_LAB_INVENTORY)."""
    return VMNodeState()
