"""playbooks/ipam_gc_fleet.yml (catalog W-7) against the API double.

The three inventory hosts are the double's Nodes ``lab-node-1..3``; their "node side" runs on this
machine (connection local): each has its own host-local data directory under tmp_path, holding one
live and one leaked allocation, and the container runtime is the ``ctr`` stand-in of
tests/integration/test_cni_ipam_gc.py (a script first on PATH printing the live container IDs).
Cordon, uncordon and the health gate go through kubernetes.core to the double; what is asserted is
read back from the double's store and from the directories.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from tests.lab import playbook_run

DOUBLE_ONLY = "portable: cordon, uncordon and the health gate on the seed's Nodes; the node half is this machine"

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'ipam_gc_fleet.yml'
NODES = ('lab-node-1', 'lab-node-2', 'lab-node-3')
OLD = 3 * 3600


def cid(n):
    return '%064x' % (0xC0FFEE00 + n)


def _fleet(tmp_path, empty_runtime_on=()):
    """Per node: cb0 with 10.0.N.2 (live, container 10N) and 10.0.N.3 (leaked); the stand-in lists the live ones."""
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
    (bindir / 'ctr').write_text('#!/bin/sh\nprintf "%%s\\n" %s\n' % ' '.join(live))
    (bindir / 'ctr').chmod(0o755)
    return bindir


def _files(tmp_path, node):
    return sorted(os.listdir(tmp_path / node / 'networks' / 'cb0'))


def _inventory(tmp_path, **extra):
    hosts = {n: {'ansible_connection': 'local', 'ansible_python_interpreter': playbook_run.module_python()[0],
                 'netmedic_ipam_data_dir': [str(tmp_path / n / 'networks')],
                 'netmedic_ipam_backup_dir': str(tmp_path / n / 'backups'),
                 'netmedic_ipam_runtime': 'containerd'} for n in NODES}
    path = tmp_path / 'inventory.yml'
    path.write_text(yaml.safe_dump({'all': {'hosts': hosts, 'vars': extra}}))
    return path


def run_playbook(double, tmp_path, bindir, check=False, extra_vars=None, args=(), env_extra=None):
    """The playbook over the three local "nodes" (the ``ctr`` stand-in first on PATH); results per task and host."""
    extra = []
    for key, value in (extra_vars or {}).items():
        extra += ['-e', json.dumps({key: value})]
    env = dict({'PATH': '%s:%s' % (bindir, os.environ.get('PATH', '/usr/bin:/bin'))}, **(env_extra or {}))
    return playbook_run.run_playbook(double, tmp_path, PLAYBOOK, *extra, *args, inventory=_inventory(tmp_path), diff=True,
                                     check=check, env=env, by_host=True, timeout=900)


def _cordoned(double):
    return {n: bool(double.store.get('nodes', None, n)['spec'].get('unschedulable')) for n in NODES}


GC = 'Collect leaked host-local allocations (N-1)'


def test_check_mode_changes_nothing(double, tmp_path):
    bindir = _fleet(tmp_path)
    before = {n: _files(tmp_path, n) for n in NODES}
    rv = {n: double.store.get('nodes', None, n)['metadata']['resourceVersion'] for n in NODES}
    rc, results, output = run_playbook(double, tmp_path, bindir, check=True)
    assert rc == 0, output
    for index, node in enumerate(NODES, 1):
        gc = results[GC][node]
        assert gc['changed'] is True and not gc.get('failed'), gc
        assert [i['ip'] for n in gc['networks'] for i in n['leaked']] == ['10.0.%d.3' % index]
        assert results['Cordon the Node'][node]['changed'] is True        # would cordon
    assert {n: _files(tmp_path, n) for n in NODES} == before
    assert not any((tmp_path / n / 'backups').exists() for n in NODES)
    assert _cordoned(double) == dict.fromkeys(NODES, False)
    assert {n: double.store.get('nodes', None, n)['metadata']['resourceVersion'] for n in NODES} == rv


def test_apply_node_by_node_keeps_a_precordoned_node_cordoned(double, raw, tmp_path):
    bindir = _fleet(tmp_path)
    status, _ctype, body = raw('PATCH', '/api/v1/nodes/lab-node-3', {'spec': {'unschedulable': True}},
                               content_type='application/merge-patch+json')
    assert status == 200, body
    # lab-node-3, cordoned by someone else, counts against the health gate: tolerate it.
    rc, results, output = run_playbook(double, tmp_path, bindir, extra_vars={'netmedic_max_unhealthy': 1})
    assert rc == 0, output
    for index, node in enumerate(NODES, 1):
        assert _files(tmp_path, node) == ['10.0.%d.2' % index, 'last_reserved_ip.0', 'lock'], node
        moved = list((tmp_path / node / 'backups').rglob('10.0.%d.3' % index))
        assert len(moved) == 1 and moved[0].read_text().startswith(cid(index * 10 + 1))
    assert _cordoned(double) == {'lab-node-1': False, 'lab-node-2': False, 'lab-node-3': True}
    left = results['Uncordon the Node (only if netmedic cordoned it)']['lab-node-3']
    assert left['changed'] is False and left['cordon']['by_other'] is True
    rc, results, output = run_playbook(double, tmp_path, bindir, extra_vars={'netmedic_max_unhealthy': 1})
    assert rc == 0, output
    assert not any(results[GC][n]['changed'] for n in NODES)                  # nothing left to collect


def test_failure_stops_the_rollout_and_leaves_the_node_cordoned(double, tmp_path):
    # On lab-node-2 nothing is live (what a wrong runtime listing looks like): cni_ipam_gc refuses.
    bindir = _fleet(tmp_path, empty_runtime_on=('lab-node-2',))
    node3 = _files(tmp_path, 'lab-node-3')
    rc, results, output = run_playbook(double, tmp_path, bindir)
    assert rc != 0, output
    assert results[GC]['lab-node-1']['changed'] is True
    assert results[GC]['lab-node-2']['failed'] is True and 'refusing' in results[GC]['lab-node-2']['msg']
    stop = results['Stop the rollout, the node stays cordoned']['lab-node-2']
    assert stop['failed'] is True and 'lab-node-2 is LEFT CORDONED' in stop['msg'], stop
    assert 'lab-node-3' not in results[GC]                                     # never reached
    assert _files(tmp_path, 'lab-node-2') == ['10.0.2.2', '10.0.2.3', 'last_reserved_ip.0', 'lock']
    assert _files(tmp_path, 'lab-node-3') == node3
    assert _cordoned(double) == {'lab-node-1': False, 'lab-node-2': True, 'lab-node-3': False}


@pytest.mark.double_only("kubelet: a Node made NotReady on demand (its DaemonSet pods going unready with it); the simulated node's heartbeat "
                         'reports Ready again within 60 s')
def test_health_gate_refuses_before_any_change(double, raw, tmp_path):
    bindir = _fleet(tmp_path)
    status, _ctype, body = raw('PATCH', '/api/v1/nodes/lab-node-3/status',
                               {'status': {'conditions': [{'type': 'Ready', 'status': 'False', 'reason': 'KubeletNotReady'}]}},
                               content_type='application/strategic-merge-patch+json')
    assert status == 200, body
    before = {n: _files(tmp_path, n) for n in NODES}
    rc, results, output = run_playbook(double, tmp_path, bindir)
    assert rc != 0, output
    gate = results['Health gate before lab-node-1']['lab-node-1']
    assert gate['failed'] is True and 'Node lab-node-3: NotReady (False, KubeletNotReady)' in gate['msg'], gate
    assert GC not in results
    assert {n: _files(tmp_path, n) for n in NODES} == before
    assert _cordoned(double) == dict.fromkeys(NODES, False)
    # Tolerating one NotReady Node lets the rollout go on (lab-node-3 itself included).
    rc, results, output = run_playbook(double, tmp_path, bindir, extra_vars={'netmedic_max_unhealthy': 1})
    assert rc == 0, output
    assert all(results[GC][n]['changed'] for n in NODES)


def test_issue9_f8_rerun_after_failure_uncordons_the_node_it_left_cordoned(double, tmp_path):
    bindir = _fleet(tmp_path, empty_runtime_on=('lab-node-2',))
    rc, results, output = run_playbook(double, tmp_path, bindir)
    assert rc != 0, output
    assert _cordoned(double) == {'lab-node-1': False, 'lab-node-2': True, 'lab-node-3': False}
    # The cause is fixed (the runtime lists lab-node-2's live container again) and the job is simply re-run.
    (bindir / 'ctr').write_text('#!/bin/sh\nprintf "%%s\\n" %s\n' % ' '.join(cid(i * 10) for i in (1, 2, 3)))
    rc, results, output = run_playbook(double, tmp_path, bindir)
    assert rc == 0, output
    assert _cordoned(double) == dict.fromkeys(NODES, False)                   # lab-node-2 uncordoned by the re-run
    assert results['Uncordon the Node (only if netmedic cordoned it)']['lab-node-2']['changed'] is True
    assert _files(tmp_path, 'lab-node-2') == ['10.0.2.2', 'last_reserved_ip.0', 'lock']
    annotations = double.store.get('nodes', None, 'lab-node-2')['metadata'].get('annotations') or {}
    assert 'netmedic.io/cordoned-by' not in annotations


def test_issue9_f9_awx_style_become_and_limit(double, tmp_path):
    """AWX runs ``ansible-playbook --become --limit <node>``: --become must reach the node tasks, --limit one node."""
    bindir = _fleet(tmp_path)
    log = tmp_path / 'sudo.log'
    sudo = tmp_path / 'fake-sudo'          # records each escalation, then runs the command as this user
    sudo.write_text('#!/bin/sh\necho "$@" >> %s\nwhile [ $# -gt 0 ]; do case "$1" in -u|-p) shift 2;; -*) shift;; '
                    '*) break;; esac; done\nexec "$@"\n' % log)
    sudo.chmod(0o755)
    before = {n: _files(tmp_path, n) for n in NODES}
    # The tests run as root: Ansible skips a same-user escalation unless told to allow it. No pipelining here (the
    # shared runner's default): the escalated command then names the module's AnsiballZ file, asserted below.
    rc, results, output = run_playbook(double, tmp_path, bindir, extra_vars={'ansible_become_exe': str(sudo)},
                                       args=('--become', '--limit', 'lab-node-2'),
                                       env_extra={'ANSIBLE_BECOME_ALLOW_SAME_USER': '1', 'ANSIBLE_PIPELINING': '0'})
    assert rc == 0, output
    assert set(results[GC]) == {'lab-node-2'}
    assert _files(tmp_path, 'lab-node-2') == ['10.0.2.2', 'last_reserved_ip.0', 'lock']
    assert {n: _files(tmp_path, n) for n in ('lab-node-1', 'lab-node-3')} == {n: before[n] for n in ('lab-node-1', 'lab-node-3')}
    escalations = log.read_text().splitlines()
    assert escalations and any('AnsiballZ_cni_ipam_gc' in line for line in escalations), escalations   # --become was honoured
    assert not any('AnsiballZ_node_drain' in line or 'AnsiballZ_health_gate' in line for line in escalations)  # API steps: no root
    assert _cordoned(double) == dict.fromkeys(NODES, False)
