"""playbooks/conntrack_tuning.yml (catalog W-5) refusing before anything is written, on the double and on the real
kube-apiserver (issue 15): bad input, and a ``--limit`` that would leave out the cluster play (fix B).

Ported from tests/lab/test_conntrack_tuning_playbook.py (where the cases that need the double's simulated kube-proxy
stay: the nf_conntrack_max it sets, its log line, a node losing ip_vs_rr). The playbook edits the seed's kube-proxy
ConfigMaps in ``kube-system`` (it has no namespace variable); a refusal writes nothing, so these run on the seed's
objects, and ``kube_proxy_restored`` puts their data back after each test (a regression that writes fails here, not in
a later file). "Nothing written" is the ConfigMaps' resourceVersion and data and the kube-proxy Lease, read back through
the API (no ``kube-system/netmedic-*`` Lease before or after).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.conftest import kube_proxy_configmaps, kube_system_backups

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'conntrack_tuning.yml'
NS = 'kube-system'
LEASE = 'netmedic-kube-proxy'


@pytest.fixture
def run(playbook_file):
    return lambda cluster, *extra, check=False: playbook_file(cluster, PLAYBOOK, *extra, check=check)


_configmaps = kube_proxy_configmaps


def test_bad_input_stops_everything(kube_proxy_restored, run):
    cluster = kube_proxy_restored
    before = _configmaps(cluster)
    for extra in (['-e', 'netmedic_conntrack_fix=sometimes'], ['-e', 'netmedic_conntrack_max_per_core=lots'],
                  ['-e', 'netmedic_conntrack_max_per_core=1000']):
        rc, tasks, output = run(cluster, *extra)
        assert rc != 0, output
        # playbooks/specs/conntrack_tuning.yml (choices, int) or the floor rule the spec cannot say (issue 11 item 5)
        checks = ('Check the variables (nothing is read or changed before this passes)',
                  "Keep netmedic_conntrack_max_per_core at the catalog's floor unless lowering is allowed")
        assert [name for name in checks if tasks.get(name, {}).get('failed')], output
        assert 'Set conntrack.maxPerCore in the kube-proxy ConfigMaps' not in tasks
    assert _configmaps(cluster) == before and cluster.find('Lease', NS, LEASE) is None
    assert kube_system_backups(cluster) == []


def test_issue9_f9_limit_to_a_node_fails_before_any_node_task(kube_proxy_restored, run):
    """AWX job template with `--limit NODE`: fix B (cluster) would be skipped and fix A run alone, exit 0."""
    cluster = kube_proxy_restored
    before = _configmaps(cluster)
    rc, _tasks, output = run(cluster, '-i', 'lab-node-1,', '-e', 'netmedic_targets=lab-node-1', '--limit', 'lab-node-1',
                             check=True)
    assert rc != 0, output
    assert "leaves out this playbook's cluster play" in output and "--limit 'lab-node-1,localhost'" in output, output
    assert 'Gather conntrack facts' not in output and 'Apply role conntrack_tuning' not in output
    assert _configmaps(cluster) == before and cluster.find('Lease', NS, LEASE) is None
