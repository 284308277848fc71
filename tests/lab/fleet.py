"""The W-7 fleet: playbooks/ipam_gc_fleet.yml over three local "nodes", for tests/lab (the API double) and
tests/cluster (the double or the real kube-apiserver) alike (issue 15 item 4: moved here from
tests/lab/test_ipam_gc_fleet.py, so both suites and tests/lab/test_rbac_playbooks.py run it the same way; no copy).

The three inventory hosts are the seed's Nodes ``lab-node-1..3``; their "node side" runs on this machine (connection
local): each has its own host-local data directory under ``tmp_path``, holding one live and one leaked allocation, and
the container runtime is the ``ctr`` stand-in of tests/integration/test_cni_ipam_gc.py (a script first on PATH printing
the live container IDs). ``target`` is anything with a ``kubeconfig_path`` (a tests/lab double or identity, a
tests/cluster ``Cluster``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import yaml

from tests.lab import playbook_run

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'ipam_gc_fleet.yml'
NODES = ('lab-node-1', 'lab-node-2', 'lab-node-3')
OLD = 3 * 3600
GC = 'Collect leaked host-local allocations (N-1)'


def cid(n):
    return '%064x' % (0xC0FFEE00 + n)


def make_fleet(tmp_path, empty_runtime_on=()):
    """Per node: cb0 with 10.0.N.2 (live, container 10N) and 10.0.N.3 (leaked); the stand-in lists the live ones.
    Returns the directory of the ``ctr`` stand-in."""
    live = []
    for index, node in enumerate(NODES, 1):
        net = tmp_path / node / 'networks' / 'cb0'
        net.mkdir(parents=True)
        (net / 'lock').write_text('')
        (net / 'last_reserved_ip.0').write_text('10.0.%d.3' % index)
        for last, owner in ((2, cid(index * 10)), (3, cid(index * 10 + 1))):
            path = net / ('10.0.%d.%d' % (index, last))
            path.write_text('%s\r\neth0' % owner)
            os.utime(path, (time.time() - OLD, time.time() - OLD))
        if node not in empty_runtime_on:
            live.append(cid(index * 10))
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    write_runtime(bindir, live)
    return bindir


def write_runtime(bindir, live):
    """The ``ctr`` stand-in listing the container IDs ``live``."""
    (bindir / 'ctr').write_text('#!/bin/sh\nprintf "%%s\\n" %s\n' % ' '.join(live))
    (bindir / 'ctr').chmod(0o755)


def files(tmp_path, node):
    return sorted(os.listdir(tmp_path / node / 'networks' / 'cb0'))


def inventory(tmp_path, **extra):
    hosts = {n: {'ansible_connection': 'local', 'ansible_python_interpreter': playbook_run.module_python()[0],
                 'netmedic_ipam_data_dir': [str(tmp_path / n / 'networks')],
                 'netmedic_ipam_backup_dir': str(tmp_path / n / 'backups'),
                 'netmedic_ipam_runtime': 'containerd'} for n in NODES}
    path = tmp_path / 'inventory.yml'
    path.write_text(yaml.safe_dump({'all': {'hosts': hosts, 'vars': extra}}))
    return path


def run_playbook(target, tmp_path, bindir, check=False, extra_vars=None, args=(), env_extra=None):
    """The playbook over the three local "nodes" (the ``ctr`` stand-in first on PATH); ``(rc, {task: {host: result}},
    output)``."""
    extra = []
    for key, value in (extra_vars or {}).items():
        extra += ['-e', json.dumps({key: value})]
    env = dict({'PATH': '%s:%s' % (bindir, os.environ.get('PATH', '/usr/bin:/bin'))}, **(env_extra or {}))
    return playbook_run.run_playbook(target, tmp_path, PLAYBOOK, *extra, *args, inventory=inventory(tmp_path), diff=True,
                                     check=check, env=env, by_host=True, timeout=900)
