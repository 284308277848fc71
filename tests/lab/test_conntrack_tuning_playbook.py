"""playbooks/conntrack_tuning.yml (catalog W-5), cluster side (Fix B, C-1), against the API double.

The node side (Fix A, role conntrack_tuning) runs on the VM lab; here the node plays match no host.
The double's simulated kube-proxy records the nf_conntrack_max it would set at start-up
(maxPerCore x the Node's CPUs, at least conntrack.min) in ``node_state.conntrack_max``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'conntrack_tuning.yml'
NS = 'kube-system'


@pytest.fixture
def run(playbook_file):
    return lambda double, *extra, check=False: playbook_file(double, PLAYBOOK, *extra, check=check)


def _max_per_core(double):
    conf = yaml.safe_load(double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf'])
    return conf['conntrack']['maxPerCore']


def test_fix_b_check_apply_idempotent(double, node_state, run):
    rc, tasks, output = run(double, '-e', 'netmedic_conntrack_fix=cluster', check=True)
    assert rc == 0, output
    assert tasks['Set conntrack.maxPerCore in the kube-proxy ConfigMaps']['changed'] is True
    assert _max_per_core(double) == 32768                                       # check mode wrote nothing
    node_state.conntrack_max.clear()

    rc, tasks, output = run(double, '-e', 'netmedic_conntrack_fix=cluster')
    assert rc == 0, output
    assert _max_per_core(double) == 65536
    restart = tasks['Restart kube-proxy node by node, verifying each new pod (C-7)']['results'][0]
    assert [r['node'] for r in restart['restarted']] == ['lab-node-1', 'lab-node-2', 'lab-node-3']
    # What each restarted kube-proxy set on its node: maxPerCore x 2 CPUs.
    assert node_state.conntrack_max == {'lab-node-1': 131072, 'lab-node-2': 131072, 'lab-node-3': 131072}

    rc, tasks, output = run(double, '-e', 'netmedic_conntrack_fix=cluster')
    assert rc == 0, output
    assert not any(t.get('changed') for t in tasks.values()), output


def test_bad_input_stops_everything(double, run):
    rv = double.store.get('configmaps', NS, 'kube-proxy-worker')['metadata']['resourceVersion']
    for extra in (['-e', 'netmedic_conntrack_fix=sometimes'], ['-e', 'netmedic_conntrack_max_per_core=lots'],
                  ['-e', 'netmedic_conntrack_max_per_core=1000']):
        rc, tasks, output = run(double, *extra)
        assert rc != 0, output
        assert tasks['Validate netmedic_conntrack_fix and netmedic_conntrack_max_per_core']['failed'] is True
        assert 'Set conntrack.maxPerCore in the kube-proxy ConfigMaps' not in tasks
    assert double.store.get('configmaps', NS, 'kube-proxy-worker')['metadata']['resourceVersion'] == rv
