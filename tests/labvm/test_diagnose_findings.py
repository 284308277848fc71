"""playbooks/diagnose.yml's findings on the VM lab match the faults planted there, node by node (issue 12 item 4).

Until this test the playbook was only smoke-checked (it runs, it writes a report): a diagnosis that reported nothing,
or the right finding on the wrong node, passed. Here ``labctl inject`` plants distinct faults on distinct nodes with
the real tools - N-3 (ephemeral ports over the NodePort range) on the first node, N-8 (pod bridge down) and N-5 (IPVS
UDP timeout 300 s) on the second - and leaves the third clean. One diagnose run must report exactly those catalog IDs
on exactly those nodes, none on the clean node, with evidence equal to what an independent ssh reading shows, and
change nothing on any node.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.labvm.vm_playbook import labctl, run_vm_playbook, ssh_kv  # noqa: E402

# What an independent reading shows of every planted fault (and of its absence on the clean node).
READ = r"""
echo "range=$(sysctl -n net.ipv4.ip_local_port_range | tr '\t' ' ')"
echo "reserved=$(sysctl -n net.ipv4.ip_local_reserved_ports)"
echo "cbr0=$(ip -br link show cbr0 2>/dev/null | awk '{print $2}')"
echo "ipvs=$(if [ -e /proc/net/ip_vs ]; then ipvsadm -L --timeout; else echo none; fi)"
echo "ct=$(cat /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null || echo none)"
"""


def reads(ssh, node):
    return ssh_kv(ssh, node, READ)


@pytest.fixture(scope='module')
def diagnosed(lab, ssh, lab_reset, tmp_path_factory):
    """Plant, read back, run diagnose.yml once over the three nodes, read back again."""
    first, second, third = lab['nodes'][:3]
    lab_reset()
    try:
        labctl('inject', '--nodes', '1', 'N-3')
        labctl('inject', '--nodes', '2', 'N-5', 'N-8')
        before = {n: reads(ssh, n) for n in (first, second, third)}
        tmp = tmp_path_factory.mktemp('diagnose')
        run = run_vm_playbook(lab, tmp, None, 'diagnose.yml', '-e', 'netmedic_targets=lab_nodes',
                              '-e', 'netmedic_report_dir=%s' % (tmp / 'report'))
        after = {n: reads(ssh, n) for n in (first, second, third)}
    finally:
        lab_reset()
    return {'nodes': (first, second, third), 'run': run, 'before': before, 'after': after, 'report': tmp / 'report'}


def test_planted_faults_are_real(diagnosed):
    """The independent reading shows each fault where it was planted and nowhere else (so the next test is not vacuous)."""
    first, second, third = diagnosed['nodes']
    before = diagnosed['before']
    assert before[first]['range'] == '30000 60999' and before[first]['reserved'] == '', before[first]   # N-3
    assert before[second]['cbr0'] == 'DOWN', before[second]                                              # N-8
    assert before[second]['ipvs'].endswith('900 120 300'), before[second]                                # N-5
    for node in (second, third):
        assert before[node]['range'] == '32768 60999', before[node]
    for node in (first, third):
        assert before[node]['cbr0'] == '' and before[node]['ipvs'] == 'none', before[node]


def test_diagnose_reports_exactly_the_planted_findings_per_node(diagnosed):
    """Issue 12 item 4: the findings (catalog IDs) of diagnose.yml per node equal the planted faults; none on the clean node."""
    first, second, third = diagnosed['nodes']
    run = diagnosed['run']
    assert run.rc == 0, run.tail()
    planted = {first: ['N-3'], second: ['N-5', 'N-8'], third: []}
    # What each node's facts module returned ...
    facts = run.results('Gather netmedic node network facts')
    assert {n: sorted(f['id'] for f in facts[n]['ansible_facts']['netmedic']['findings']) for n in facts} == planted, \
        json.dumps({n: facts[n]['ansible_facts']['netmedic']['findings'] for n in facts}, indent=1)
    # ... and what the report written on the controller says.
    report = json.loads((diagnosed['report'] / 'diagnose.json').read_text())
    assert sorted(report) == sorted([first, second, third]), sorted(report)      # the nodes, not localhost
    found = {node: sorted(f['id'] for f in report[node]['findings']) for node in report}
    assert found == planted, json.dumps({n: report[n]['findings'] for n in report}, indent=1)


def test_findings_carry_the_evidence_read_independently(diagnosed):
    first, second, _third = diagnosed['nodes']
    report = json.loads((diagnosed['report'] / 'diagnose.json').read_text())
    before = diagnosed['before']
    by_id = {node: {f['id']: f for f in report[node]['findings']} for node in (first, second)}
    n3 = by_id[first]['N-3']
    assert n3['evidence']['ip_local_port_range'] == before[first]['range'] == '30000 60999', n3
    assert n3['evidence']['uncovered'] == ['30000-32767'] and n3['severity'] == 'warning', n3
    n8 = by_id[second]['N-8']
    assert n8['evidence']['bridge'] == 'cbr0' and n8['evidence']['admin_up'] is False, n8
    assert n8['evidence']['operstate'] == before[second]['cbr0'] == 'DOWN' and n8['severity'] == 'critical', n8
    n5 = by_id[second]['N-5']
    assert (n5['evidence']['tcp'], n5['evidence']['tcpfin'], n5['evidence']['udp']) == (900, 120, 300), n5
    assert n5['evidence']['services'] == 1, n5   # the planted UDP service 10.96.0.10:53


def test_diagnose_changes_nothing_and_writes_private_reports(diagnosed):
    run = diagnosed['run']
    assert diagnosed['after'] == diagnosed['before']
    facts = run.results('Gather netmedic node network facts')
    assert sorted(facts) == sorted(diagnosed['nodes']) and not any(r.get('changed') for r in facts.values()), facts
    assert all(run.stats[n]['failures'] == 0 and run.stats[n]['unreachable'] == 0 for n in diagnosed['nodes']), run.stats
    for ext in ('md', 'json', 'html'):
        path = (diagnosed['report'] / ('diagnose.' + ext)).resolve()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
