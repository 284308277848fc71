"""playbooks/flannel_config.yml (catalog C-5) against the API double: the double-only case, a Flannel that crash-loops
on the new configuration (rolled back exactly, no pod recreated).

The portable cases (check, apply, the selected pods recreated once, idempotence, bad input) run on both servers in
tests/cluster/test_flannel_config_playbook.py (issue 15).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.kubedouble.logs import CrashLoop, make_log_provider
from tests.lab.playbook_run import run_playbook

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'flannel_config.yml'
NS = 'kube-system'
HAIRPIN = ['-e', 'netmedic_flannel_hairpin_mode=true', '-e', 'netmedic_hairpin_pod_namespace=default',
           '-e', 'netmedic_hairpin_pod_selector=app=web']


@pytest.fixture
def run(tmp_path):
    return lambda double, *extra, check=False: run_playbook(double, tmp_path, PLAYBOOK, *extra, check=check)


def conf(double):
    return double.store.get('configmaps', NS, 'kube-flannel-cfg')['data']['cni-conf.json']


def uids(double, ns, selector):
    pods, _rv = double.store.list('pods', ns, label_selector=selector)
    return {p['metadata']['uid'] for p in pods if not p['metadata'].get('deletionTimestamp')}


@pytest.mark.double_only("kubelet: the new agent pod crash-loops on the new configuration (the double's log provider raises CrashLoop); simulated "
                         'nodes start every pod Running and Ready')
def test_c5_failed_flannel_restart_rolls_back_exactly_and_recreates_nothing(make_double, run):
    """A Flannel that crash-loops on the new config: the exact previous bytes come back, the pods stay."""
    default = make_log_provider()

    def provider(pod, store):
        if (pod['metadata'].get('labels') or {}).get('app') == 'flannel':
            data = store.find('configmaps', NS, 'kube-flannel-cfg')['data']['cni-conf.json']
            if '"hairpinMode": true' in data:
                raise CrashLoop('E1202 flanneld: hairpin test fault\n')
        return default(pod, store)

    double = make_double(log_provider=provider)
    before, web = conf(double), uids(double, 'default', 'app=web')
    rc, _tasks, output = run(double, *HAIRPIN, '-e', 'netmedic_flannel_restart_timeout=20')
    assert rc != 0, output
    assert conf(double) == before                                              # the exact backed-up bytes
    assert uids(double, 'default', 'app=web') == web                           # no pod recreated after a failure
    assert 'rolled back' in output
    assert double.store.find('leases', NS, 'netmedic-flannel') is None         # released on failure too
