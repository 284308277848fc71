"""playbooks/flannel_config.yml (catalog C-5) against the API double: cni-conf.json edit, verified Flannel restart,
the pods the user selects recreated after a hairpinMode change (and only those, only once)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.kubedouble.logs import CrashLoop, make_log_provider
from tests.lab.playbook_run import run_playbook

DOUBLE_ONLY = ('portable: C-5 with Flannel restarted and verified by Ready only (patterns auto = none for Flannel) and the web pods recreated by the'
               ' real ReplicaSet controller')

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


def hairpin(double):
    plugins = json.loads(conf(double))['plugins']
    return next(p for p in plugins if p['type'] == 'flannel')['delegate'].get('hairpinMode')


def test_c5_check_apply_recreate_selected_pods_then_idempotent(double, run):
    before, flannel, web = conf(double), uids(double, NS, 'app=flannel'), uids(double, 'default', 'app=web')
    rc, _tasks, output = run(double, *HAIRPIN, check=True)
    assert rc == 0, output
    assert conf(double) == before and uids(double, NS, 'app=flannel') == flannel
    assert uids(double, 'default', 'app=web') == web
    assert '3 pod(s) would be recreated in default (app=web)' in output, output

    rc, _tasks, output = run(double, *HAIRPIN)
    assert rc == 0, output
    assert hairpin(double) is True
    assert uids(double, NS, 'app=flannel').isdisjoint(flannel)                 # Flannel restarted on every node
    recreated = uids(double, 'default', 'app=web')
    assert len(recreated) == 3 and recreated.isdisjoint(web)                    # every selected pod, once
    others = uids(double, NS, 'k8s-app=kube-proxy-worker')

    rc, tasks, output = run(double, *HAIRPIN)
    assert rc == 0, output
    assert not any(t.get('changed') for t in tasks.values()), [n for n, t in tasks.items() if t.get('changed')]
    assert uids(double, 'default', 'app=web') == recreated                     # nothing recreated twice
    assert uids(double, NS, 'k8s-app=kube-proxy-worker') == others             # pods not selected: never touched


@pytest.mark.parametrize('extra, words', [
    (['-e', 'netmedic_flannel_hairpin_mode=true', '-e', 'netmedic_hairpin_pod_selector=app=web'],
     'needs netmedic_hairpin_pod_namespace'),
    (['-e', 'netmedic_flannel_cni_version=0.3.1', '-e', 'netmedic_hairpin_pod_namespace=default',
      '-e', 'netmedic_hairpin_pod_selector=app=web'], 'netmedic_flannel_hairpin_mode=true'),
    (['-e', 'netmedic_flannel_hairpin_mode=yes-please'], 'netmedic_flannel_hairpin_mode'),
    ([], 'Give netmedic_flannel_cni_version'),
])
def test_c5_bad_input_refused_before_any_change(double, run, extra, words):
    before, web = conf(double), uids(double, 'default', 'app=web')
    rc, _tasks, output = run(double, *extra)
    assert rc != 0 and words in output, output
    assert conf(double) == before and uids(double, 'default', 'app=web') == web
    assert double.store.find('leases', NS, 'netmedic-flannel') is None


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
