"""playbooks/ipvs_scheduler_change.yml (catalog W-3) stopping on a Lease held by another run (issue 9 finding 4), on
the double and on the real kube-apiserver (issue 15).

Ported from tests/lab/test_w3_spine.py (issue 15 item 4; its held-Lease case: it stops before anything is changed, so
no restart is verified by kube-proxy's log lines, which the simulated nodes do not serve; the other cases need those
and stay there). The playbook runs as there (tests/lab/w3_run.py ``run_playbook``: stub nodes answer the node play)
on the seed's own ``kube-system/kube-proxy-worker``; the other run's Lease ``kube-system/netmedic-kube-proxy`` is
planted through the API (``spine_leases``: no ``kube-system/netmedic-*`` Lease before or after). "Nothing changed" is
read back through the API: the ConfigMap's bytes, no backup ConfigMap, the DaemonSet's pods (the same UIDs, none
Terminating: a real pod DELETE is graceful), the Lease not even renewed.
"""

from __future__ import annotations

from tests.cluster.conftest import hold_lease
from tests.lab.w3_run import CM, LEASE, NS, run_playbook


def _pods(cluster):
    """The kube-proxy DaemonSet's pods: ``{node: (uid, deletionTimestamp)}``."""
    return {p['spec']['nodeName']: (p['metadata']['uid'], p['metadata'].get('deletionTimestamp'))
            for p in cluster.items('Pod', NS, label_selector='k8s-app=%s' % CM)}


def _text(cluster):
    return cluster.get('ConfigMap', NS, CM)['data']['config.conf']


def test_issue9_f4_w3_lock_held_by_another_run_stops_with_nothing_changed(spine_leases, tmp_path):
    """Issue 9 finding 4 (W-3 had no lock): a live holder of the kube-proxy Lease (W-4/W-5 or a second W-3 job, an
    AWX slice) stops W-3 before anything is changed; the other run's Lease is left as it was."""
    cluster = spine_leases
    held = hold_lease(cluster, *LEASE, 'awx-job-41')
    text, pods = _text(cluster), _pods(cluster)
    assert len(pods) == 3 and not any(ts for _uid, ts in pods.values()), pods
    rc, output = run_playbook(cluster, tmp_path, 'held', env={'AWX_JOB_ID': '42'})
    assert rc != 0 and "held by 'awx-job-41'" in output, output
    assert _text(cluster) == text and _pods(cluster) == pods
    assert cluster.items('ConfigMap', NS, label_selector='netmedic.k8s/backup-of') == []      # no backup either
    lease = cluster.get('Lease', *LEASE)
    assert lease['spec']['holderIdentity'] == 'awx-job-41'
    assert lease['metadata']['resourceVersion'] == held['metadata']['resourceVersion']      # not even renewed
