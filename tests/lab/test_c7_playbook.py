"""playbooks/daemonset_restart.yml (catalog C-7, issue 9: every cluster fix is one AWX job template) against the API
double: the spine (change ticket, window, Lease, health gate) around netmedic.k8s.daemonset_restart; check mode
changes nothing and lists the plan, apply restarts every pod verified, a re-run with the same restart time is
changed=false. Bad input, a held lock and a closed window (stopping before any pod is deleted) are
tests/cluster/test_c7_playbook.py, on the double and on the real kube-apiserver (ported from here, issue 15)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

DOUBLE_ONLY = ("kubelet: the restart is verified by kube-proxy's log line ('Using ipvs Proxier.', or the fallback when a node lacks the scheduler's "
               "kernel module), written by the double's simulated kube-proxy; the simulated nodes serve no pod logs")

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'daemonset_restart.yml'
NS = 'kube-system'
DS = 'kube-proxy-worker'
LEASE = 'netmedic-kube-proxy'      # the family of a kube-proxy DaemonSet: shared with W-3, W-4, W-5
RESTART = 'Restart node by node, verifying each new pod (C-7)'


@pytest.fixture
def run(playbook_file):
    return lambda double, *extra, check=False: playbook_file(double, PLAYBOOK, '-e', 'netmedic_ds_name=%s' % DS, *extra,
                                                             check=check)


def _uids(double):
    pods, _rv = double.store.list('pods', NS, label_selector='k8s-app=%s' % DS)
    return {p['spec']['nodeName']: p['metadata']['uid'] for p in pods}


def _since():
    # The next whole second: the double's pods were created this second (creationTimestamp has second resolution).
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
    return t.strftime('%Y-%m-%dT%H:%M:%SZ')


def test_c7_check_apply_and_rerun(double, run):
    before = _uids(double)
    assert len(before) == 3
    since = ['-e', 'netmedic_ds_restarted_since=%s' % _since()]

    rc, tasks, output = run(double, *since, check=True)
    assert rc == 0, output
    assert tasks[RESTART]['changed'] is True and sorted(n for batch in tasks[RESTART]['plan'] for n in batch) == sorted(before), output
    assert 'would restart' in tasks['Summary']['msg']
    assert _uids(double) == before                                   # check mode deleted nothing
    assert double.store.find('leases', NS, LEASE) is None

    rc, tasks, output = run(double, *since)
    assert rc == 0, output
    after = _uids(double)
    assert tasks[RESTART]['changed'] is True
    assert sorted(r['node'] for r in tasks[RESTART]['restarted']) == sorted(before)
    assert set(after) == set(before) and all(after[n] != before[n] for n in before), (before, after)
    assert all(r['matched'] for r in tasks[RESTART]['restarted'])     # kube-proxy's log line verified
    assert double.store.find('leases', NS, LEASE) is None             # released

    rc, tasks, output = run(double, *since)                          # re-run with the same restart time
    assert rc == 0, output
    assert not [name for name, r in tasks.items() if r.get('changed')], output
    assert _uids(double) == after
