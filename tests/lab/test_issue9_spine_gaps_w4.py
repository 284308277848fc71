"""Issue 9 spine gap (finding 4, W-4): the kube-proxy Lease must cover the node play of playbooks/udp_timeout.yml.

The node path (N-5, Kubernetes <= 1.16 or netmedic_udp_timeout_method=node) used to release the Lease at the end of
the cluster play, so the node-level changes ran unlocked. The inventory here has one "node" on the local
connection whose Python interpreter is a wrapper: when the node play's first module starts there, the wrapper
writes a marker and waits; the test reads the double's Lease at that moment (held by this run or not), then lets the
module go on. The module itself (ipvs_timeouts, ipvsadm) fails on this machine - the failure path: the Lease must be
released at the end all the same.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from tests.lab.playbook_run import run_playbook

DOUBLE_ONLY = "portable: the kube-proxy Lease read while W-4's node play runs on this machine; nothing the real server does differently"

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'udp_timeout.yml'
NS = 'kube-system'
LEASE = (NS, 'netmedic-kube-proxy')


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


def _run_watching_the_node_play(double, tmp_path, check=False):
    """Run W-4's node path; return (rc, output, Lease seen when the node play's module started)."""
    inv, marker, go = _inventory(tmp_path)
    seen = {}

    def watch():
        deadline = time.monotonic() + 600
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        seen['started'] = marker.exists()
        seen['lease'] = double.store.find('leases', *LEASE)
        go.write_text('')

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    rc, _results, output = run_playbook(double, tmp_path, PLAYBOOK, inventory=inv, check=check, callback=None,
                                        timeout=900, extra_vars={'netmedic_targets': 'nodes',
                                                                 'netmedic_udp_timeout_method': 'node',
                                                                 'netmedic_change_id': 'CHG-9'},
                                        env={'AWX_JOB_ID': '77'})
    go.write_text('')
    watcher.join(5)
    return rc, output, seen


def test_issue9_f4_w4_lock_is_held_while_the_node_play_runs_and_released_after(double, tmp_path):
    """Issue 9 finding 4 (W-4 node path): a second run started while N-5 runs on the nodes must see the Lease held;
    it is released at the end, also when the node play fails."""
    rc, output, seen = _run_watching_the_node_play(double, tmp_path)
    assert seen.get('started'), output                                          # the node play did run
    lease = seen['lease']
    assert lease is not None, 'the Lease was released before the node play:\n' + output
    assert lease['spec']['holderIdentity'] == 'awx-job-77', lease
    assert rc != 0, output                                                      # ipvsadm cannot run here
    assert double.store.find('leases', *LEASE) is None, output                # released at the end, on failure too


def test_issue9_f4_w4_check_mode_takes_no_lock(double, tmp_path):
    """Check mode (node path): no Lease is written at any point, the node play included."""
    _rc, output, seen = _run_watching_the_node_play(double, tmp_path, check=True)
    assert seen.get('started'), output
    assert seen['lease'] is None, seen['lease']
    assert double.store.find('leases', *LEASE) is None, output
