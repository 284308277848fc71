"""Issue 11 item 1 on the double and on the real kube-apiserver (issue 15): an apply run needs its change ticket
(``netmedic_change_id``); role change_guard's ``acquire`` refuses one without it before anything is read or written,
unless ``netmedic_change_id_required: false`` (labs; recorded in the change report and the output). Check mode never
needs a ticket.

Ported from tests/lab/test_change_id_required.py (all five cases; "no Lease request at all" is read from the request
record, the double's or the real server's audit log). One guarded "workflow" (acquire, a kube_proxy_config edit, release in always) runs
through ``ansible-playbook`` on a copy of the seed's ``kube-proxy-worker`` ConfigMap in a namespace of its own
(``seeded``); its Lease is the role's default ``kube-system/netmedic-ticket-test`` (``spine_leases`` removes it
before and after). The ConfigMap and the Lease are read back through the API.
"""

from __future__ import annotations

import json

import yaml

from tests.cluster.conftest import Audit
from tests.lab.playbook_run import run_playbook

NS = 'kube-system'                      # the lock's namespace (change_guard's default)
LEASE = 'netmedic-ticket-test'


def _play(ns):
    """One guarded "workflow": acquire, a change of a ConfigMap in ``ns``, release in always."""
    return [{
        'name': 'guarded change',
        'hosts': 'localhost',
        'gather_facts': False,
        'vars': {'change_guard_family': 'ticket-test'},
        'tasks': [
            {'name': 'Acquire', 'ansible.builtin.include_role': {'name': 'netmedic.k8s.change_guard', 'tasks_from': 'acquire'}},
            {'name': 'Work', 'block': [
                {'name': 'The change', 'netmedic.k8s.kube_proxy_config': {
                    'namespace': ns, 'names': ['kube-proxy-worker'], 'settings': {'conntrack.maxPerCore': 65536}}},
            ], 'always': [
                {'name': 'Release', 'ansible.builtin.include_role': {'name': 'netmedic.k8s.change_guard', 'tasks_from': 'release'}},
            ]},
        ],
    }]


def _run(cluster, ns, tmp_path, *extra, check=False, report=False):
    path = tmp_path / 'guarded.yml'
    path.write_text(json.dumps(_play(ns)))
    tmp = tmp_path / 'tmp'
    tmp.mkdir(exist_ok=True)
    env = {'TMPDIR': str(tmp)}
    if report:
        env['ANSIBLE_CALLBACKS_ENABLED'] = 'netmedic.k8s.change_report'
    # The shared runner passes a test change id; '-e netmedic_change_id=' (later wins) takes it away again.
    return run_playbook(cluster, tmp_path, path, *extra, check=check, env=env, timeout=600)


def _worker(cluster, ns):
    """``(resourceVersion, conntrack.maxPerCore)`` of the ConfigMap, as the server has it."""
    cm = cluster.get('ConfigMap', ns, 'kube-proxy-worker')
    conf = yaml.safe_load(cm['data']['config.conf'])
    return cm['metadata']['resourceVersion'], conf.get('conntrack', {}).get('maxPerCore')


def test_issue11_blank_change_id_is_refused(spine_leases, seeded, tmp_path):
    """A ticket of blanks is no ticket."""
    cluster, ns = spine_leases, seeded
    before = _worker(cluster, ns)
    rc, results, output = _run(cluster, ns, tmp_path, '-e', '{"netmedic_change_id": "   "}')
    assert rc != 0 and 'The change' not in results, output
    assert _worker(cluster, ns) == before and cluster.find('Lease', NS, LEASE) is None


def test_issue11_check_mode_needs_no_change_id(spine_leases, seeded, tmp_path):
    cluster, ns = spine_leases, seeded
    before = _worker(cluster, ns)
    rc, results, output = _run(cluster, ns, tmp_path, '-e', 'netmedic_change_id=', check=True)
    assert rc == 0, output
    assert results['The change']['changed'] is True and _worker(cluster, ns) == before
    assert cluster.find('Lease', NS, LEASE) is None


def test_issue11_apply_with_change_id_runs(spine_leases, seeded, tmp_path):
    cluster, ns = spine_leases, seeded
    rc, _results, output = _run(cluster, ns, tmp_path, '-e', 'netmedic_change_id=CHG-4711')
    assert rc == 0, output
    assert _worker(cluster, ns)[1] == 65536
    assert cluster.find('Lease', NS, LEASE) is None      # released


def test_issue11_lab_opt_out_is_explicit_and_recorded(spine_leases, seeded, tmp_path):
    """netmedic_change_id_required=false lets a lab apply without a ticket; the change report records it (extra vars)
    and the run's output says so."""
    cluster, ns = spine_leases, seeded
    rc, results, output = _run(cluster, ns, tmp_path, '-e', 'netmedic_change_id=', '-e', 'netmedic_change_id_required=false',
                               report=True)
    assert rc == 0, output
    assert _worker(cluster, ns)[1] == 65536
    notes = [r for task, r in results.items() if task.endswith('Change ticket not required (netmedic_change_id_required=false)')]
    assert notes, sorted(results)
    note = notes[0]
    assert 'without a change ticket' in note['msg']
    (report,) = [p for p in (tmp_path / 'report').glob('change-report-*.json') if not p.is_symlink()]
    header = json.loads(report.read_text())['header']
    assert header['extra_vars']['netmedic_change_id_required'] in (False, 'false')
    assert header['change_id_missing'] is True
    assert cluster.find('Lease', NS, LEASE) is None      # released


def test_issue11_apply_without_change_id_is_refused_before_any_change(spine_leases, seeded, tmp_path):
    """Issue 11 item 1 (change ticket): apply without netmedic_change_id fails in acquire, clear message, nothing read
    or written - no Lease request at all (the request record: the double's, or the real server's audit log), the
    ConfigMap unchanged. Ported from tests/lab (it was double-only, kind `audit`)."""
    cluster, ns = spine_leases, seeded
    before = _worker(cluster, ns)
    audit = Audit(cluster)
    rc, results, output = _run(cluster, ns, tmp_path, '-e', 'netmedic_change_id=')
    assert rc != 0, output
    failed = [r for r in results.values() if r.get('failed')]
    assert failed and 'netmedic_change_id' in failed[0]['msg'] and 'Nothing was changed' in failed[0]['msg'], output
    assert 'netmedic_change_id_required' in failed[0]['msg']
    assert _worker(cluster, ns) == before
    assert [e for e in audit.entries() if e['resource'] == 'leases'] == []        # not even read
    assert cluster.find('Lease', NS, LEASE) is None
    assert 'The change' not in results
