"""The controller thread skips ticks while nothing changed (it spent most of an idle double's CPU), without missing work:
a change in the store, or a pod waiting out ``start_delay`` with no other writes, still gets its passes."""

from __future__ import annotations

import time

KUBE_PROXY = 'k8s-app=kube-proxy-worker'


def count_passes(double, monkeypatch):
    """Record the time of every pass the controller thread runs from now on."""
    passes = []
    reconcile = double.controllers.reconcile

    def counted():
        passes.append(time.monotonic())
        reconcile()

    monkeypatch.setattr(double.controllers, 'reconcile', counted)
    return passes


def test_idle_double_runs_no_passes_until_the_store_changes(make_double, monkeypatch):
    double = make_double()
    time.sleep(0.3)                       # the statuses of the fresh pods settle
    passes = count_passes(double, monkeypatch)
    rv = double.store.resource_version
    time.sleep(0.5)                       # 25 ticks of 0.02 s
    assert not passes
    assert double.store.resource_version == rv

    old = {p['metadata']['name'] for p in double.store.list('pods', 'kube-system', label_selector=KUBE_PROXY)[0]}
    victim = sorted(old)[0]
    double.store.delete('pods', 'kube-system', victim)

    def replaced(store):
        pods, _rv = store.list('pods', 'kube-system', label_selector=KUBE_PROXY)
        return len(pods) == len(old) and victim not in {p['metadata']['name'] for p in pods} and all(
            p['status'].get('phase') == 'Running' for p in pods)

    double.wait_for(replaced, timeout=5)
    assert passes
    assert not double.failures


def test_pod_starts_after_start_delay_with_no_other_writes(make_double, monkeypatch):
    double = make_double(start_delay=0.4)
    time.sleep(0.6)
    passes = count_passes(double, monkeypatch)
    created = time.monotonic()
    double.store.create('pods', 'default', {'metadata': {'name': 'solo'},
                                            'spec': {'containers': [{'name': 'main', 'image': 'busybox:1.36'}]}})

    def running(store):
        pod = store.find('pods', 'default', 'solo')
        return pod['status'].get('phase') == 'Running' and pod

    pod = double.wait_for(running, timeout=5)
    assert pod['spec']['nodeName']
    assert passes[-1] - created >= 0.4
    assert not double.failures
