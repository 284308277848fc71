"""Issue 9 spine gap (finding 4, lock families) on the double and on the real kube-apiserver (issue 15): C-5
(playbooks/flannel_config.yml) and W-2 (playbooks/flannel_datadir_migration.yml) both edit kube-system/kube-flannel-cfg,
so they take the same Lease. Held by a foreign W-2 run, it stops C-5 with nothing changed; C-5 in check mode takes no
Lease.

Ported from tests/lab/test_issue9_spine_gaps_flannel.py (where the static check that every kube-flannel-cfg editor
shares one family stays: it reads the playbooks only). The Lease each playbook takes is read from the playbook itself
(its change_guard_family). These run on the seed's own kube-system objects (a refusal and a check run write nothing)
and the playbooks' Lease namespace ``kube-system`` (``spine_leases``: no ``netmedic-*`` Lease before or after); the
ConfigMap, Flannel's pods and the Lease are read back through the API.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.cluster.conftest import hold_lease

ROOT = Path(__file__).resolve().parents[2]
C5 = ROOT / 'playbooks' / 'flannel_config.yml'
W2 = ROOT / 'playbooks' / 'flannel_datadir_migration.yml'
NS = 'kube-system'


def _families(path):
    return set(re.findall(r'^\s*change_guard_family:\s*([\w-]+)\s*$', path.read_text(), re.M))


def _lease_of(path):
    families = _families(path)
    assert len(families) == 1, (path, families)
    return 'netmedic-%s' % families.pop()


def _flannel_pods(cluster):
    return sorted((p['metadata']['name'], p['metadata']['uid'], p['metadata'].get('deletionTimestamp'))
                  for p in cluster.items('Pod', NS, label_selector='app=flannel'))


def test_issue9_f4_c5_refuses_while_w2_holds_the_flannel_lock(spine_leases, playbook_file):
    """W-2's Lease held by a live W-2 run: C-5 stops before the ConfigMap or any pod is touched."""
    cluster = spine_leases
    held = hold_lease(cluster, NS, _lease_of(W2), 'awx-job-41', age=0)
    before, pods = cluster.get('ConfigMap', NS, 'kube-flannel-cfg'), _flannel_pods(cluster)
    rc, _results, output = playbook_file(cluster, C5, '-e', 'netmedic_flannel_cni_version=0.3.1')
    assert rc != 0 and "held by 'awx-job-41'" in output, output
    assert cluster.get('ConfigMap', NS, 'kube-flannel-cfg') == before
    assert _flannel_pods(cluster) == pods
    lease = cluster.get('Lease', NS, _lease_of(W2))
    assert lease['spec']['holderIdentity'] == 'awx-job-41'
    assert lease['metadata']['resourceVersion'] == held['metadata']['resourceVersion']


def test_issue9_f4_c5_check_mode_takes_no_lock(spine_leases, playbook_file):
    """C-5 in check mode writes no Lease (and changes nothing: the ConfigMap, Flannel's pods)."""
    cluster = spine_leases
    before, pods = cluster.get('ConfigMap', NS, 'kube-flannel-cfg'), _flannel_pods(cluster)
    assert len(pods) == 3 and not any(ts for _n, _u, ts in pods), pods
    rc, _results, output = playbook_file(cluster, C5, '-e', 'netmedic_flannel_cni_version=0.3.1', check=True)
    assert rc == 0, output
    assert cluster.find('Lease', NS, _lease_of(C5)) is None
    assert cluster.get('ConfigMap', NS, 'kube-flannel-cfg') == before
    assert _flannel_pods(cluster) == pods
