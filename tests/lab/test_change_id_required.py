"""Issue 11 item 1: an apply run needs its change ticket (``netmedic_change_id``). Before, an apply run without it was
only marked NO CHANGE TICKET in the change report and went on; AWX apply templates ask for it, a CLI run did not.
Now role change_guard's ``acquire`` refuses such a run before anything is read or written (no Lease taken), unless
``netmedic_change_id_required: false`` (labs; recorded in the change report's extra vars and in the task output).
Check mode never needs a ticket."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lab.playbook_run import run_playbook

DOUBLE_ONLY = "portable: change_guard and a kube_proxy_config edit of the seed's ConfigMap; nothing the real server does differently"

ROOT = Path(__file__).resolve().parents[2]
NS = 'kube-system'
LEASE = 'netmedic-ticket-test'

# One guarded "workflow": acquire, a change of a ConfigMap, release in always.
PLAY = [{
    'name': 'guarded change',
    'hosts': 'localhost',
    'gather_facts': False,
    'vars': {'change_guard_family': 'ticket-test'},
    'tasks': [
        {'name': 'Acquire', 'ansible.builtin.include_role': {'name': 'netmedic.k8s.change_guard', 'tasks_from': 'acquire'}},
        {'name': 'Work', 'block': [
            {'name': 'The change', 'netmedic.k8s.kube_proxy_config': {
                'names': ['kube-proxy-worker'], 'settings': {'conntrack.maxPerCore': 65536}}},
        ], 'always': [
            {'name': 'Release', 'ansible.builtin.include_role': {'name': 'netmedic.k8s.change_guard', 'tasks_from': 'release'}},
        ]},
    ],
}]


def _run(double, tmp_path, *extra, check=False, report=False):
    path = tmp_path / 'guarded.yml'
    path.write_text(json.dumps(PLAY))
    env = {'ANSIBLE_CALLBACKS_ENABLED': 'netmedic.k8s.change_report'} if report else None
    # The shared runner passes a test change id; '-e netmedic_change_id=' (later wins) takes it away again.
    return run_playbook(double, tmp_path, path, *extra, check=check, env=env, timeout=300)


def _max_per_core(double):
    import yaml
    conf = yaml.safe_load(double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf'])
    return conf.get('conntrack', {}).get('maxPerCore')


def _lease_writes(double):
    return [e for e in double.audit if e['resource'] == 'leases' and e['verb'] not in ('get', 'list', 'watch')]


@pytest.mark.double_only("audit: 'no Lease write at all' is read from the double's request record; "
                         "the real one's audit log (k8sctl NETMEDIC_K8S_AUDIT_POLICY, off by default) is read by no test yet")
def test_issue11_apply_without_change_id_is_refused_before_any_change(make_double, tmp_path):
    """Issue 11 item 1 (change ticket): apply without netmedic_change_id fails in acquire, clear message, nothing read
    or written - no Lease touched, the ConfigMap unchanged."""
    double = make_double(audit=True)
    before = _max_per_core(double)
    rc, results, output = _run(double, tmp_path, '-e', 'netmedic_change_id=')
    assert rc != 0, output
    failed = [r for r in results.values() if r.get('failed')]
    assert failed and 'netmedic_change_id' in failed[0]['msg'] and 'Nothing was changed' in failed[0]['msg'], output
    assert 'netmedic_change_id_required' in failed[0]['msg']
    assert _max_per_core(double) == before
    assert not _lease_writes(double) and double.store.find('leases', NS, LEASE) is None
    assert 'The change' not in results


def test_issue11_blank_change_id_is_refused(make_double, tmp_path):
    """A ticket of blanks is no ticket."""
    double = make_double()
    rc, results, output = _run(double, tmp_path, '-e', '{"netmedic_change_id": "   "}')
    assert rc != 0 and 'The change' not in results, output


def test_issue11_check_mode_needs_no_change_id(make_double, tmp_path):
    double = make_double()
    before = _max_per_core(double)
    rc, results, output = _run(double, tmp_path, '-e', 'netmedic_change_id=', check=True)
    assert rc == 0, output
    assert results['The change']['changed'] is True and _max_per_core(double) == before


def test_issue11_apply_with_change_id_runs(make_double, tmp_path):
    double = make_double()
    rc, _results, output = _run(double, tmp_path, '-e', 'netmedic_change_id=CHG-4711')
    assert rc == 0, output
    assert _max_per_core(double) == 65536
    assert double.store.find('leases', NS, LEASE) is None      # released


def test_issue11_lab_opt_out_is_explicit_and_recorded(make_double, tmp_path):
    """netmedic_change_id_required=false lets a lab apply without a ticket; the change report records it (extra vars)
    and the run's output says so."""
    double = make_double()
    rc, results, output = _run(double, tmp_path, '-e', 'netmedic_change_id=', '-e', 'netmedic_change_id_required=false',
                               report=True)
    assert rc == 0, output
    assert _max_per_core(double) == 65536
    notes = [r for task, r in results.items() if task.endswith('Change ticket not required (netmedic_change_id_required=false)')]
    assert notes, sorted(results)
    note = notes[0]
    assert 'without a change ticket' in note['msg']
    (report,) = [p for p in (tmp_path / 'report').glob('change-report-*.json') if not p.is_symlink()]
    header = json.loads(report.read_text())['header']
    assert header['extra_vars']['netmedic_change_id_required'] in (False, 'false')
    assert header['change_id_missing'] is True
