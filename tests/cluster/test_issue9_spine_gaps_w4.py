"""Issue 9 spine gap (finding 4, W-4) on the double and on the real kube-apiserver (issue 15): the kube-proxy Lease
must cover the node play of playbooks/udp_timeout.yml.

The node path (N-5, forced here with ``netmedic_udp_timeout_method=node``) used to release the Lease at the end of the
cluster play, so the node-level changes ran unlocked. The inventory has one "node" on the local connection whose
Python interpreter is a wrapper: when the node play's first module starts there, the wrapper writes a marker and
waits; the test reads the Lease ``kube-system/netmedic-kube-proxy`` through the API at that moment, then lets the module
go on. The module itself (ipvs_timeouts, ipvsadm) fails on this machine - the failure path: the Lease must be released
at the end all the same.

Ported from tests/lab/test_issue9_spine_gaps_w4.py; the Lease is the playbook's own in ``kube-system``
(``spine_leases``: no ``netmedic-*`` Lease there before or after).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from tests.lab.playbook_run import run_playbook

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'udp_timeout.yml'
NS = 'kube-system'
LEASE = 'netmedic-kube-proxy'


def _inventory(tmp_path):
    marker, go = tmp_path / 'node-play-started', tmp_path / 'go'
    wrapper = tmp_path / 'python-wrapper.sh'
    wrapper.write_text('#!/bin/sh\n: > %s\ni=0\nwhile [ ! -e %s ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n'
                       'exec %s "$@"\n' % (marker, go, sys.executable))
    wrapper.chmod(0o755)
    inv = tmp_path / 'inventory.ini'
    inv.write_text('localhost ansible_connection=local ansible_python_interpreter=%s\n'
                   '[nodes]\nnode-a ansible_connection=local ansible_python_interpreter=%s\n' % (sys.executable, wrapper))
    return inv, marker, go


def _run_watching_the_node_play(cluster, tmp_path, check=False):
    """Run W-4's node path; return (rc, output, Lease seen when the node play's module started)."""
    inv, marker, go = _inventory(tmp_path)
    seen = {}

    def watch():
        try:
            deadline = time.monotonic() + 600
            while not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            seen['started'] = marker.exists()
            seen['lease'] = cluster.find('Lease', NS, LEASE)
        finally:
            go.write_text('')

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    tmp = tmp_path / 'tmp'
    tmp.mkdir(exist_ok=True)
    rc, _results, output = run_playbook(cluster, tmp_path, PLAYBOOK, inventory=inv, check=check, callback=None,
                                        timeout=900, extra_vars={'netmedic_targets': 'nodes',
                                                                 'netmedic_udp_timeout_method': 'node',
                                                                 'netmedic_change_id': 'CHG-9'},
                                        env={'AWX_JOB_ID': '77', 'TMPDIR': str(tmp)})
    go.write_text('')
    watcher.join(5)
    return rc, output, seen


def test_issue9_f4_w4_lock_is_held_while_the_node_play_runs_and_released_after(spine_leases, tmp_path):
    """Issue 9 finding 4 (W-4 node path): a second run started while N-5 runs on the nodes must see the Lease held;
    it is released at the end, also when the node play fails."""
    cluster = spine_leases
    rc, output, seen = _run_watching_the_node_play(cluster, tmp_path)
    assert seen.get('started'), output                                          # the node play did run
    lease = seen['lease']
    assert lease is not None, 'the Lease was released before the node play:\n' + output
    assert lease['spec']['holderIdentity'] == 'awx-job-77', lease
    assert rc != 0, output                                                      # ipvsadm cannot run here
    assert cluster.find('Lease', NS, LEASE) is None, output                   # released at the end, on failure too


def test_issue9_f4_w4_check_mode_takes_no_lock(spine_leases, tmp_path):
    """Check mode (node path): no Lease is written at any point, the node play included."""
    cluster = spine_leases
    _rc, output, seen = _run_watching_the_node_play(cluster, tmp_path, check=True)
    assert seen.get('started'), output
    assert seen['lease'] is None, seen['lease']
    assert cluster.find('Lease', NS, LEASE) is None, output
