"""The W-3 runners (catalog W-3: playbooks/ipvs_scheduler_change.yml and its cluster half, role ipvs_scheduler), for
tests/lab (the API double) and tests/cluster (the double or the real kube-apiserver) alike (issue 15 item 4: moved here
from tests/lab/test_w3_spine.py and tests/lab/test_w3_fallback_reboot.py, so both suites run W-3 the same way; no copy).

``run_playbook(target, tmp_path, label, *args, check=False, env=None, **variables)`` -> ``(rc, output)``: the playbook on
localhost with stub nodes (``stub_nodes``) and the change report. ``run_role(target, tmp_path, label, env=None,
check=False, **variables)`` -> ``(rc, output)``: the role alone, as the playbook's cluster play runs it (under its own
kube-proxy Lease). ``reboot_vars(target, tmp_path, **extra)``: the variables of the reboot after an iptables fallback
with the provider stand-in ``HOOK`` (a new boot ID through ``test_api``/``test_token``: the double's URL and token,
passed only when the target has them, so a hook run against another target fails, never passes). ``target`` is anything
with a ``kubeconfig_path`` (a tests/lab double or identity, a tests/cluster ``Cluster``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.lab.playbook_run import module_python
from tests.lab.playbook_run import run_playbook as _run
from tests.lab.provider_hooks import boot_id_hook

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'ipvs_scheduler_change.yml'
NS = 'kube-system'
NODES = ('lab-node-1', 'lab-node-2', 'lab-node-3')
LEASE = (NS, 'netmedic-kube-proxy')
# W-3's Leases: its own (the kube-proxy family), and the reboot's after a fallback (role node_rotation).
LEASES = ('netmedic-kube-proxy', 'netmedic-node-rotation', 'netmedic-node-disruption')
CM = 'kube-proxy-worker'
CORDON_ANNOTATION = 'netmedic.io/cordoned-by'

HOOK = boot_id_hook('rebooted', 'the machine reboots (a new boot ID)')


def stub_nodes(tmp_path):
    """An inventory whose nodes are the seed's Nodes, reached on the local connection through a Python interpreter
    stub that answers the node play's one module (N-4 ipvs_modules) with "nothing to change": the spine under test is
    the cluster side; loading the modules on real kernels is proved on the VM lab (tests/labvm). A real node is
    needed since W-3 refuses a netmedic_targets that matches no node (tasks/require_targets.yml, issue 11)."""
    stub = tmp_path / 'node-python-stub.sh'
    stub.write_text('#!/bin/sh\ncat >/dev/null 2>&1\n'
                    'echo \'{"changed": false, "msg": "stub node of tests/lab/w3_run.py"}\'\n')
    stub.chmod(0o755)
    inv = tmp_path / 'inventory.ini'
    inv.write_text('localhost ansible_connection=local ansible_python_interpreter=%s\n[nodes]\n' % module_python()[0]
                   + ''.join('%s ansible_connection=local ansible_python_interpreter=%s\n' % (n, stub) for n in NODES))
    return inv


def run_playbook(target, tmp_path, label, *args, check=False, env=None, **variables):
    """The playbook on localhost against ``target`` (nodes: ``stub_nodes``), with the change report; ``(rc, output)``.

    The reboot after an iptables fallback is off here (``netmedic_reboot_on_fallback=false``): the playbook's tests prove
    the rollback and the lock; the reboot is proved with ``run_role`` (test_w3_fallback_reboot.py)."""
    play = tmp_path / ('play-%s.yml' % label)
    play.write_text(PLAYBOOK.read_text())
    # The playbook imports tasks/*.yml and reads specs/*.yml relative to itself.
    for folder in ('tasks', 'specs'):
        shutil.copytree(ROOT / 'playbooks' / folder, tmp_path / folder, dirs_exist_ok=True)
    rc, _results, output = _run(
        target, tmp_path, play, *args, check=check, timeout=900, callback=None, inventory=stub_nodes(tmp_path),
        extra_vars=dict({'ipvs_scheduler_name': 'lc', 'ipvs_scheduler_timeout': 60, 'netmedic_targets': 'nodes',
                         'netmedic_reboot_on_fallback': False}, **variables),
        env=dict({'ANSIBLE_CALLBACKS_ENABLED': 'netmedic.k8s.change_report'}, **(env or {})))
    return rc, output


def run_role(target, tmp_path, label, env=None, check=False, **variables):
    """Role ipvs_scheduler (scheduler lc) on localhost against ``target``; ``(rc, output)``."""
    play = tmp_path / ('play-%s.yml' % label)
    play.write_text(yaml.safe_dump([{'name': 'W-3 cluster half', 'hosts': 'localhost', 'connection': 'local',
                                     'gather_facts': False, 'tasks': [{
                                         'name': 'W-3', 'ansible.builtin.include_role': {'name': 'netmedic.k8s.ipvs_scheduler'}}]}]))
    rc, _results, output = _run(
        target, tmp_path, play, timeout=900, callback=None, check=check,
        extra_vars=dict({'ipvs_scheduler_name': 'lc', 'ipvs_scheduler_timeout': 60}, **variables),
        env=dict({'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections')}, **(env or {})))
    return rc, output


def reboot_vars(target, tmp_path, **extra):
    """The reboot after a fallback: the ``HOOK`` stand-in and short waits (``extra`` last)."""
    hook = tmp_path / 'reboot.yml'
    hook.write_text(HOOK)
    variables = {'netmedic_reboot_provider_tasks': str(hook), 'node_rotation_poll_interval': 1,
                 'node_rotation_ready_timeout': 60, 'node_rotation_health_timeout': 60, 'node_rotation_drain_timeout': 60}
    if getattr(target, 'url', None) and getattr(target, 'token', None):
        variables.update(test_api=target.url, test_token=target.token)
    variables.update(extra)
    return variables
