"""playbooks/ipam_gc_fleet.yml (catalog W-7) on the double and on the real kube-apiserver (issue 15).

Ported from tests/lab/test_ipam_gc_fleet.py (issue 15 item 4; five of its six cases: the health gate refusing on a
NotReady Node stays there, the simulated nodes report Ready again). The fleet is tests/lab/fleet.py's: three local
"nodes" = the seed's Nodes ``lab-node-1..3``, each with one live and one leaked host-local allocation and a ``ctr``
stand-in listing the live containers. Check mode changes nothing (no file moved, no Node written: spec, labels,
annotations, non-status managedFields, and on the double the resourceVersion); an apply goes node by node and keeps a
node someone else cordoned cordoned; a failure stops the rollout and leaves that node cordoned, and the re-run
uncordons it; AWX's ``--become --limit`` reaches only the node steps of one node. Cordon and uncordon are real Node
writes: ``nodes_uncordoned`` finds every Node uncordoned before the test and leaves them so after it (netmedic's
annotation gone, on the real server the node lifecycle controller's unschedulable taint too); ``spine_leases``: no
``kube-system/netmedic-*`` Lease before or after. What is asserted is read back through the API and from the directories.
"""

from __future__ import annotations

import pytest

from tests.lab.fleet import GC, NODES, cid, files, make_fleet, run_playbook, write_runtime
from tests.lab.node_rotation_run import CORDON_ANNOTATION, NODE_RV_ON_DOUBLE, cordoned, node_writes

UNCORDON = 'Uncordon the Node (only if netmedic cordoned it)'


@pytest.mark.double_strict(NODE_RV_ON_DOUBLE)
def test_check_mode_changes_nothing(nodes_uncordoned, tmp_path):
    cluster = nodes_uncordoned
    bindir = make_fleet(tmp_path)
    before = {n: files(tmp_path, n) for n in NODES}
    writes = node_writes(cluster)
    rc, results, output = run_playbook(cluster, tmp_path, bindir, check=True)
    assert rc == 0, output
    for index, node in enumerate(NODES, 1):
        gc = results[GC][node]
        assert gc['changed'] is True and not gc.get('failed'), gc
        assert [i['ip'] for n in gc['networks'] for i in n['leaked']] == ['10.0.%d.3' % index]
        assert results['Cordon the Node'][node]['changed'] is True        # would cordon
    assert {n: files(tmp_path, n) for n in NODES} == before
    assert not any((tmp_path / n / 'backups').exists() for n in NODES)
    assert cordoned(cluster) == dict.fromkeys(NODES, False)
    assert node_writes(cluster) == writes


def test_apply_node_by_node_keeps_a_precordoned_node_cordoned(nodes_uncordoned, tmp_path):
    cluster = nodes_uncordoned
    bindir = make_fleet(tmp_path)
    cluster.core.patch_node('lab-node-3', {'spec': {'unschedulable': True}}, _content_type='application/merge-patch+json')
    assert cordoned(cluster)['lab-node-3'] is True
    # lab-node-3, cordoned by someone else, counts against the health gate: tolerate it.
    rc, results, output = run_playbook(cluster, tmp_path, bindir, extra_vars={'netmedic_max_unhealthy': 1})
    assert rc == 0, output
    for index, node in enumerate(NODES, 1):
        assert files(tmp_path, node) == ['10.0.%d.2' % index, 'last_reserved_ip.0', 'lock'], node
        moved = list((tmp_path / node / 'backups').rglob('10.0.%d.3' % index))
        assert len(moved) == 1 and moved[0].read_text().startswith(cid(index * 10 + 1))
    assert cordoned(cluster) == {'lab-node-1': False, 'lab-node-2': False, 'lab-node-3': True}
    assert CORDON_ANNOTATION not in (cluster.get('Node', None, 'lab-node-3')['metadata'].get('annotations') or {})
    left = results[UNCORDON]['lab-node-3']
    assert left['changed'] is False and left['cordon']['by_other'] is True
    rc, results, output = run_playbook(cluster, tmp_path, bindir, extra_vars={'netmedic_max_unhealthy': 1})
    assert rc == 0, output
    assert not any(results[GC][n]['changed'] for n in NODES)                  # nothing left to collect
    assert cordoned(cluster) == {'lab-node-1': False, 'lab-node-2': False, 'lab-node-3': True}


def test_failure_stops_the_rollout_and_leaves_the_node_cordoned(nodes_uncordoned, tmp_path):
    cluster = nodes_uncordoned
    # On lab-node-2 nothing is live (what a wrong runtime listing looks like): cni_ipam_gc refuses.
    bindir = make_fleet(tmp_path, empty_runtime_on=('lab-node-2',))
    node3 = files(tmp_path, 'lab-node-3')
    rc, results, output = run_playbook(cluster, tmp_path, bindir)
    assert rc != 0, output
    assert results[GC]['lab-node-1']['changed'] is True
    assert results[GC]['lab-node-2']['failed'] is True and 'refusing' in results[GC]['lab-node-2']['msg']
    stop = results['Stop the rollout, the node stays cordoned']['lab-node-2']
    assert stop['failed'] is True and 'lab-node-2 is LEFT CORDONED' in stop['msg'], stop
    assert 'lab-node-3' not in results[GC]                                     # never reached
    assert files(tmp_path, 'lab-node-2') == ['10.0.2.2', '10.0.2.3', 'last_reserved_ip.0', 'lock']
    assert files(tmp_path, 'lab-node-3') == node3
    assert cordoned(cluster) == {'lab-node-1': False, 'lab-node-2': True, 'lab-node-3': False}


def test_issue9_f8_rerun_after_failure_uncordons_the_node_it_left_cordoned(nodes_uncordoned, tmp_path):
    cluster = nodes_uncordoned
    bindir = make_fleet(tmp_path, empty_runtime_on=('lab-node-2',))
    rc, results, output = run_playbook(cluster, tmp_path, bindir)
    assert rc != 0, output
    assert cordoned(cluster) == {'lab-node-1': False, 'lab-node-2': True, 'lab-node-3': False}
    assert (cluster.get('Node', None, 'lab-node-2')['metadata'].get('annotations') or {}).get(CORDON_ANNOTATION)
    # The cause is fixed (the runtime lists lab-node-2's live container again) and the job is simply re-run.
    write_runtime(bindir, [cid(i * 10) for i in (1, 2, 3)])
    rc, results, output = run_playbook(cluster, tmp_path, bindir)
    assert rc == 0, output
    assert cordoned(cluster) == dict.fromkeys(NODES, False)                   # lab-node-2 uncordoned by the re-run
    assert results[UNCORDON]['lab-node-2']['changed'] is True
    assert files(tmp_path, 'lab-node-2') == ['10.0.2.2', 'last_reserved_ip.0', 'lock']
    annotations = cluster.get('Node', None, 'lab-node-2')['metadata'].get('annotations') or {}
    assert CORDON_ANNOTATION not in annotations


def test_issue9_f9_awx_style_become_and_limit(nodes_uncordoned, tmp_path):
    """AWX runs ``ansible-playbook --become --limit <node>``: --become must reach the node tasks, --limit one node."""
    cluster = nodes_uncordoned
    bindir = make_fleet(tmp_path)
    log = tmp_path / 'sudo.log'
    sudo = tmp_path / 'fake-sudo'          # records each escalation, then runs the command as this user
    sudo.write_text('#!/bin/sh\necho "$@" >> %s\nwhile [ $# -gt 0 ]; do case "$1" in -u|-p) shift 2;; -*) shift;; '
                    '*) break;; esac; done\nexec "$@"\n' % log)
    sudo.chmod(0o755)
    before = {n: files(tmp_path, n) for n in NODES}
    # The tests run as root: Ansible skips a same-user escalation unless told to allow it. No pipelining here (the
    # shared runner's default): the escalated command then names the module's AnsiballZ file, asserted below.
    rc, results, output = run_playbook(cluster, tmp_path, bindir, extra_vars={'ansible_become_exe': str(sudo)},
                                       args=('--become', '--limit', 'lab-node-2'),
                                       env_extra={'ANSIBLE_BECOME_ALLOW_SAME_USER': '1', 'ANSIBLE_PIPELINING': '0'})
    assert rc == 0, output
    assert set(results[GC]) == {'lab-node-2'}
    assert files(tmp_path, 'lab-node-2') == ['10.0.2.2', 'last_reserved_ip.0', 'lock']
    assert {n: files(tmp_path, n) for n in ('lab-node-1', 'lab-node-3')} == {n: before[n] for n in ('lab-node-1', 'lab-node-3')}
    escalations = log.read_text().splitlines()
    assert escalations and any('AnsiballZ_cni_ipam_gc' in line for line in escalations), escalations   # --become was honoured
    assert not any('AnsiballZ_node_drain' in line or 'AnsiballZ_health_gate' in line for line in escalations)  # API steps: no root
    assert cordoned(cluster) == dict.fromkeys(NODES, False)
