"""playbooks/daemonset_restart.yml (catalog C-7) refusing before any pod is deleted, on the double and on the real
kube-apiserver (issue 15): bad input, a Lease held by another run, a closed change window.

Ported from tests/lab/test_c7_playbook.py (where the check/apply/re-run case stays: it verifies each restart by
kube-proxy's log line, which the simulated nodes do not serve). A refusal writes nothing, so these run on the seed's
own ``kube-system/kube-proxy-worker`` and the playbook's own Lease ``kube-system/netmedic-kube-proxy``
(``spine_leases``: gone before and after). "Nothing deleted" is the DaemonSet's pods read back through the API
before and after: the same names and UIDs, none Terminating (a real pod DELETE is graceful, the pod stays a while).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster.conftest import hold_lease

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'daemonset_restart.yml'
NS = 'kube-system'
DS = 'kube-proxy-worker'
LEASE = 'netmedic-kube-proxy'      # the family of a kube-proxy DaemonSet: shared with W-3, W-4, W-5


@pytest.fixture
def run(playbook_file):
    return lambda cluster, *extra, check=False: playbook_file(cluster, PLAYBOOK, '-e', 'netmedic_ds_name=%s' % DS, *extra,
                                                              check=check)


def _pods(cluster):
    """The DaemonSet's pods: ``{name: (node, uid, deletionTimestamp)}``."""
    return {p['metadata']['name']: (p['spec'].get('nodeName'), p['metadata']['uid'], p['metadata'].get('deletionTimestamp'))
            for p in cluster.items('Pod', NS, label_selector='k8s-app=%s' % DS)}


def _settled_pods(cluster):
    pods = _pods(cluster)
    assert len(pods) == 3 and not any(ts for _n, _u, ts in pods.values()), pods
    return pods


@pytest.mark.parametrize('extra, message', [
    (['-e', 'netmedic_ds_restarted_since=yesterday'], 'netmedic_ds_restarted_since'),
    (['-e', 'netmedic_ds_name=Kube_Proxy'], 'DNS-1123'),
])
def test_c7_bad_input_fails_before_any_change(spine_leases, run, extra, message):
    cluster = spine_leases
    before = _settled_pods(cluster)
    rc, _tasks, output = run(cluster, *extra)
    assert rc != 0 and message in output and 'Nothing was changed' in output, output
    assert _pods(cluster) == before and cluster.find('Lease', NS, LEASE) is None


def test_c7_refuses_while_another_run_holds_the_lock(spine_leases, run):
    cluster = spine_leases
    held = hold_lease(cluster, NS, LEASE, 'awx-job-41')
    before = _settled_pods(cluster)
    rc, _tasks, output = run(cluster)
    assert rc != 0 and "held by 'awx-job-41'" in output, output
    assert _pods(cluster) == before
    lease = cluster.get('Lease', NS, LEASE)
    assert lease['spec']['holderIdentity'] == 'awx-job-41'
    assert lease['metadata']['resourceVersion'] == held['metadata']['resourceVersion']      # not even renewed


def test_c7_refuses_outside_the_window(spine_leases, run):
    cluster = spine_leases
    before = _settled_pods(cluster)
    window = json.dumps({'netmedic_window': {'days': ['mon'], 'start': '02:00', 'end': '03:00', 'timezone': 'UTC'}})
    rc, _tasks, output = run(cluster, '-e', window, '-e', 'netmedic_now=2026-12-01T12:00:00+00:00')
    assert rc != 0 and 'outside' in output, output
    assert _pods(cluster) == before and cluster.find('Lease', NS, LEASE) is None
