"""playbooks/udp_timeout.yml (catalog W-4) refusing before anything is written, on the double and on the real
kube-apiserver (issue 15): bad input, a proxy mode that is not IPVS, a ``--limit`` that leaves out the cluster play,
a Lease held by another run, a closed change window.

Ported from tests/lab/test_udp_timeout_playbook.py (where the cases that verify kube-proxy's restart by its log line,
a node losing ip_vs_rr, and the v1.16/v1.17 servers stay). The playbook edits the seed's kube-proxy ConfigMaps in
``kube-system`` and takes the Lease ``kube-system/netmedic-kube-proxy`` (it has no namespace variable); a refusal writes
nothing, so these run on the seed's objects; ``kube_proxy_restored`` (tests/cluster/conftest.py) puts the ConfigMaps'
data back after each test and removes a backup a run made (the test that plants an iptables mode, and any regression
that writes, touch no later test), and the Lease is gone before and after (``spine_leases``). Nothing on either
server reads the ConfigMaps: no real kube-proxy runs. "Nothing written" is each ConfigMap's resourceVersion and data, the kube-proxy pods (names, UIDs,
none Terminating) and the backup ConfigMaps, read back through the API.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.conftest import KUBE_PROXY_CONFIGMAPS, hold_lease, kube_proxy_configmaps, kube_system_backups

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'udp_timeout.yml'
NS = 'kube-system'
LEASE = 'netmedic-kube-proxy'
C3 = 'Set ipvs.udpTimeout in the kube-proxy ConfigMaps (C-3)'


@pytest.fixture
def run(playbook_file):
    return lambda cluster, *extra, check=False: playbook_file(cluster, PLAYBOOK, *extra, check=check)


_configmaps = kube_proxy_configmaps


def _proxy_pods(cluster):
    return sorted((p['metadata']['name'], p['metadata']['uid'], p['metadata'].get('deletionTimestamp'))
                  for p in cluster.items('Pod', NS, label_selector='k8s-app=kube-proxy-worker'))


def test_bad_input_stops_before_the_api_is_touched(kube_proxy_restored, run):
    cluster = kube_proxy_restored
    before = _configmaps(cluster)
    for extra in (['-e', 'netmedic_udp_timeout_method=sometimes'], ['-e', 'netmedic_udp_timeout=0']):
        rc, tasks, output = run(cluster, *extra)
        # playbooks/specs/udp_timeout.yml: the choices (validate_argument_spec) and minimum 1 (issue 11 item 5)
        checks = ('Check the variables (nothing is read or changed before this passes)',
                  "Check the variables' ranges and forms (minimum, maximum, pattern)")
        assert rc != 0 and [name for name in checks if tasks.get(name, {}).get('failed')], output
        assert 'Read the cluster version' not in tasks
    assert _configmaps(cluster) == before and cluster.find('Lease', NS, LEASE) is None


def _set_mode(cluster, mode):
    for name in KUBE_PROXY_CONFIGMAPS:
        cm = cluster.get('ConfigMap', NS, name)
        cm['data']['config.conf'] = cm['data']['config.conf'].replace('mode: ipvs\n', 'mode: %s\n' % mode)
        cluster.replace(cm)


def test_issue9_f1_udp_timeout_never_switches_an_iptables_cluster_to_ipvs(kube_proxy_restored, run):
    cluster = kube_proxy_restored
    _set_mode(cluster, 'iptables')
    before, pods = _configmaps(cluster), _proxy_pods(cluster)
    assert all('mode: iptables\n' in data['config.conf'] for _rv, data in before.values())
    rc, tasks, output = run(cluster)
    assert rc != 0, output
    failed = tasks[C3]
    assert failed['failed'] is True and 'proxy mode is iptables' in failed['msg'], failed
    assert _configmaps(cluster) == before                           # ConfigMap bytes unchanged, not even rewritten
    assert _proxy_pods(cluster) == pods                              # no restart
    assert kube_system_backups(cluster) == []
    assert cluster.find('Lease', NS, LEASE) is None                  # released on the failure path


def test_issue9_f9_limit_to_a_node_fails_before_the_node_play(kube_proxy_restored, run):
    """AWX job template with `--limit NODE`: the cluster play on localhost would be skipped silently."""
    cluster = kube_proxy_restored
    before = _configmaps(cluster)
    rc, _tasks, output = run(cluster, '-i', 'lab-node-1,', '-e', 'netmedic_targets=lab-node-1', '--limit', 'lab-node-1',
                             check=True)
    assert rc != 0, output
    assert "leaves out this playbook's cluster play" in output and "--limit 'lab-node-1,localhost'" in output, output
    assert 'Set and persist the IPVS UDP timeout' not in output
    assert _configmaps(cluster) == before and cluster.find('Lease', NS, LEASE) is None


def test_issue9_f4_w4_stops_when_another_run_holds_the_kube_proxy_lock(kube_proxy_restored, run):
    """W-4 takes the spine's Lease (family kube-proxy, shared with W-3 and W-5): a live holder stops it unchanged."""
    cluster = kube_proxy_restored
    held = hold_lease(cluster, NS, LEASE, 'awx-job-41')
    before, pods = _configmaps(cluster), _proxy_pods(cluster)
    rc, _tasks, output = run(cluster)
    assert rc != 0 and "held by 'awx-job-41'" in output, output
    assert _configmaps(cluster) == before and _proxy_pods(cluster) == pods
    lease = cluster.get('Lease', NS, LEASE)
    assert lease['spec']['holderIdentity'] == 'awx-job-41'
    assert lease['metadata']['resourceVersion'] == held['metadata']['resourceVersion']


def test_issue9_f4_w4_outside_the_window_changes_nothing(kube_proxy_restored, run):
    cluster = kube_proxy_restored
    before = _configmaps(cluster)
    window = '{"netmedic_window": {"days": ["mon"], "start": "02:00", "end": "03:00", "timezone": "UTC"}}'
    rc, _tasks, output = run(cluster, '-e', window, '-e', 'change_guard_now=2026-12-01T12:00:00+00:00')
    assert rc != 0 and 'outside' in output, output
    assert _configmaps(cluster) == before
    assert cluster.find('Lease', NS, LEASE) is None
