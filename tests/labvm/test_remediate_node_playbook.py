"""playbooks/remediate_node.yml on the VM lab: planted faults, check mode, then apply (issue 12 item 4).

Until this test only ``make demo`` ran the playbook, and ``make demo`` is not in ``make test``. ``labctl inject``
plants with the real tools: N-2 (nf_conntrack_max 64, table 87 % full) and N-8 (pod bridge cbr0 down) on the first two
nodes, N-3 (ephemeral ports over the NodePort range) and N-4 (ip_vs_lc not loaded) on the second; the third node is
clean and not targeted. remediate_node.yml runs four fixes (conntrack_limit, port_range, ipvs_modules with
schedulers [lc], pod_bridge) on the first two nodes with ``--check --diff`` and then for real. Every claim is read back
over ssh with the kernel's own tools and files, never from the modules' reports: check mode changes nothing; the apply
fixes exactly the planted faults, persists them for the next boot, and leaves the untargeted node as it was.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.labvm.vm_playbook import labctl, run_vm_playbook, ssh_kv  # noqa: E402

FIXES = ['conntrack_limit', 'port_range', 'ipvs_modules', 'pod_bridge']

# The node's state as the kernel and the files show it (key=value lines; files as JSON strings, none when absent).
READ = r"""
f() { if [ -e "$1" ]; then python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"; else echo none; fi; }
kv() { printf '%s=%s\n' "$1" "$2"; }   # not echo: dash's echo expands the backslashes of the JSON
kv mem "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
kv ct_max "$(cat /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null || echo none)"
kv ct_file "$(f /etc/sysctl.d/90-netmedic-conntrack.conf)"
kv ct_load "$(f /etc/modules-load.d/netmedic-nf_conntrack.conf)"
kv range "$(sysctl -n net.ipv4.ip_local_port_range | tr '\t' ' ')"
kv reserved "$(sysctl -n net.ipv4.ip_local_reserved_ports)"
kv ports_file "$(f /etc/sysctl.d/90-netmedic-ports.conf)"
kv ipvs "$(grep -o '^ip_vs[a-z_]* ' /proc/modules | sort | tr -d ' ' | tr '\n' ' ')"
kv ipvs_file "$(f /etc/modules-load.d/netmedic-ipvs.conf)"
kv cbr0 "$(ip -j link show dev cbr0 2>/dev/null || echo none)"
"""


def read_state(ssh, node):
    raw = ssh_kv(ssh, node, READ)
    state = {k: (None if v == 'none' else v) for k, v in raw.items()}
    for key in ('ct_file', 'ct_load', 'ports_file', 'ipvs_file'):
        if state[key] is not None:
            state[key] = json.loads(state[key])
    cbr0 = json.loads(state['cbr0'])[0] if state['cbr0'] else None
    state['cbr0_up'] = None if cbr0 is None else 'UP' in cbr0['flags']
    state['ipvs'] = state['ipvs'].split()
    return state


def settings(text, key):
    """Values a sysctl drop-in gives ``key`` (``key = value`` lines)."""
    return [line.split('=', 1)[1].strip() for line in (text or '').splitlines()
            if line.split('=', 1)[0].strip() == key and '=' in line]


def _run(lab, tmp_path_factory, name, *extra):
    return run_vm_playbook(
        lab, tmp_path_factory.mktemp(name), None, 'remediate_node.yml', *extra,
        '-e', 'netmedic_targets=%s:%s' % tuple(lab['nodes'][:2]),
        '-e', json.dumps({'netmedic_fixes': FIXES, 'netmedic_ipvs_schedulers': ['lc']}))


@pytest.fixture(scope='module')
def remediated(lab, ssh, lab_reset, tmp_path_factory):
    nodes = lab['nodes'][:3]
    lab_reset()
    try:
        labctl('inject', '--nodes', '1,2', 'N-2', 'N-8')
        labctl('inject', '--nodes', '2', 'N-3', 'N-4')
        planted = {n: read_state(ssh, n) for n in nodes}
        checked = _run(lab, tmp_path_factory, 'check', '--check', '--diff')
        after_check = {n: read_state(ssh, n) for n in nodes}
        applied = _run(lab, tmp_path_factory, 'apply')
        after_apply = {n: read_state(ssh, n) for n in nodes}
    finally:
        lab_reset()
    return {'nodes': nodes, 'planted': planted, 'checked': checked, 'after_check': after_check,
            'applied': applied, 'after_apply': after_apply}


def test_the_faults_are_planted(remediated):
    first, second, third = remediated['nodes']
    planted = remediated['planted']
    for node in (first, second):
        assert planted[node]['ct_max'] == '64' and planted[node]['cbr0_up'] is False, planted[node]     # N-2, N-8
        assert planted[node]['ct_file'] is None and planted[node]['ports_file'] is None and planted[node]['ipvs_file'] is None
    assert planted[second]['range'] == '30000 60999' and planted[second]['reserved'] == '', planted[second]  # N-3
    assert 'ip_vs' in planted[second]['ipvs'] and 'ip_vs_lc' not in planted[second]['ipvs'], planted[second]  # N-4
    assert planted[first]['range'] == '32768 60999' and planted[first]['ipvs'] == [], planted[first]
    assert planted[third]['ct_max'] is None and planted[third]['cbr0_up'] is None and planted[third]['ipvs'] == []


def test_check_mode_changes_nothing_but_says_what_would_change(remediated):
    """Issue 12 item 4: remediate_node.yml --check --diff on planted faults: nothing on any node changes."""
    first, second, _third = remediated['nodes']
    checked = remediated['checked']
    assert checked.rc == 0, checked.tail()
    assert remediated['after_check'] == remediated['planted']
    for node in (first, second):
        assert checked.stats[node]['changed'] > 0 and checked.stats[node]['failures'] == 0, checked.stats
    would = checked.results('N-2 | size the conntrack table (netmedic.k8s.conntrack_limit)')
    assert {n: (r['changed'], r['before']['max']) for n, r in would.items()} == {first: (True, 64), second: (True, 64)}
    summary = checked.results('Remediation summary')
    text = json.dumps(summary)
    assert 'CHECK MODE: nothing was changed' in text and 'nodes that would change: 2 of 2' in text, text


def test_apply_fixes_exactly_the_planted_faults(remediated):
    """Issue 12 item 4: the applied fixes read back with the kernel's tools, persisted for the next boot."""
    first, second, _third = remediated['nodes']
    applied, planted, after = remediated['applied'], remediated['planted'], remediated['after_apply']
    assert applied.rc == 0, applied.tail()
    for node in (first, second):
        state = after[node]
        target = int(state['mem']) // 32                                     # auto: MemTotal kB / 32
        assert target > 64
        assert state['ct_max'] == str(target), state                         # N-2 fixed now ...
        assert settings(state['ct_file'], 'net.netfilter.nf_conntrack_max') == [str(target)], state['ct_file']  # ... and at boot
        assert 'nf_conntrack' in (state['ct_load'] or '').split(), state['ct_load']  # loaded before systemd-sysctl
        assert state['cbr0_up'] is True, state                               # N-8
        assert {'ip_vs', 'ip_vs_lc'} <= set(state['ipvs']), state            # N-4: the scheduler's module loaded ...
        assert 'ip_vs_lc' in (state['ipvs_file'] or '').split(), state['ipvs_file']   # ... and at boot
    # N-3 (method reserve): the ephemeral range stays, the NodePorts are reserved, now and in the drop-in. Reserve adds
    # the NodePort range whether or not the range overlaps it today (documented, as kubespray does): node 1 too.
    for node in (first, second):
        assert after[node]['range'] == planted[node]['range'] and after[node]['reserved'] == '30000-32767', after[node]
        assert settings(after[node]['ports_file'], 'net.ipv4.ip_local_reserved_ports') == ['30000-32767'], after[node]['ports_file']


def test_apply_leaves_the_untargeted_node_alone(remediated):
    _first, _second, third = remediated['nodes']
    assert remediated['after_apply'][third] == remediated['planted'][third]
    assert third not in remediated['applied'].stats
