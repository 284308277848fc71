"""`labctl reset` restores the nodes something reached since their last restore and leaves the others running.

A restore costs about 2 s of the TCG guest's CPU per node (state load, the new shared SSH connection): most tests use
one node, and a test file's closing reset is usually followed by the next file's opening one. A node counts as used
when an SSH session reached it - labctl's, Ansible's, the tests' ``ssh`` fixture's, a read-only one too (the guest's
/etc/ssh/sshrc, lab/vm/recipe/customize.sh) - or when its neighbour table on the L2 interface learned a new entry
(another node's ping or arping teaches it the sender without a session); the clock reset after a restore records it
clean.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

DIRT = '/root/netmedic-reset-used-only-test'


def _qemu_pids(lab):
    state = Path(os.environ['NETMEDIC_LAB_INVENTORY']).parent
    pids = {}
    for path in state.glob('node-*.json'):
        node = json.loads(path.read_text())
        pids[node['name']] = node['pid']
    assert set(pids) == set(lab['nodes']), pids
    return pids


def test_reset_restores_only_the_nodes_something_reached(lab, lab_reset, ssh):
    assert len(lab['nodes']) >= 3, 'needs three lab nodes (make lab-test starts three): %s' % lab['nodes']
    first, middle, last = lab['nodes'][0], lab['nodes'][1], lab['nodes'][-1]
    lab_reset()
    before = _qemu_pids(lab)
    ssh(first, 'touch %s' % DIRT)
    proc = lab_reset()
    out = proc.stdout + proc.stderr
    after = _qemu_pids(lab)
    assert after[first] != before[first], 'the node a session reached was not restored:\n' + out
    assert after[last] == before[last] and after[middle] == before[middle], \
        'a node nothing reached was restored anyway:\n' + out
    assert ssh(first, 'test -e %s && echo dirty || echo clean' % DIRT).stdout.strip() == 'clean'

    # a read-only session counts as a use too (the ssh call above reached `first` again)
    ssh(last, 'true')
    lab_reset()
    again = _qemu_pids(lab)
    assert again[last] != after[last] and again[first] != after[first] and again[middle] == after[middle]


def test_reset_restores_a_node_that_only_received_packets(lab, lab_reset, ssh):
    first, last = lab['nodes'][0], lab['nodes'][-1]
    target = lab['hostvars'][last]['lab_l2_ip']
    lab_reset()
    before = _qemu_pids(lab)
    # no session to `last`: first's pings reach it over the L2 segment (and its neighbour table learns first)
    ssh(first, 'ping -c 2 -W 2 %s >/dev/null' % target)
    proc = lab_reset()
    after = _qemu_pids(lab)
    assert after[last] != before[last], 'a node whose neighbour table learned the pinging node was left running:\n' + proc.stdout + proc.stderr
