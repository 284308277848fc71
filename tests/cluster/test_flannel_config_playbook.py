"""playbooks/flannel_config.yml (catalog C-5) on the double and on the real kube-apiserver (issue 15): cni-conf.json
edit, Flannel restarted node by node (verified by Ready: patterns ``auto`` is none for Flannel), the pods the user
selects recreated after a hairpinMode change by their ReplicaSet (and only those, only once); bad input refused.

Ported from tests/lab/test_flannel_config_playbook.py (where only the crash-looping Flannel stays). Each test works
in a namespace of its own holding copies of the seed's kube-system ConfigMaps and DaemonSets (with the
ServiceAccounts their pods run as) and of the seed's ``web`` Deployment: the playbook is pointed there with
``netmedic_flannel_namespace`` and ``netmedic_hairpin_pod_namespace``, and its cluster lock with
``change_guard_lock_namespace`` (role change_guard's argument; an extra var wins over its ``kube-system`` default),
so kube-system and the seed's ``default`` pods stay as the seed made them. On the real server the restarts and the
replacements are the real DaemonSet and ReplicaSet controllers' (pods placed by the scheduler, run and ended by
nodesim). What is asserted is read back through the API.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import waiter
from tests.cluster.conftest import copy_accounts, copy_seed, daemonset_settled, pod_ready, seed_objects
from tests.lab.playbook_run import run_playbook

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'flannel_config.yml'


@pytest.fixture
def flannel(writable, scratch):
    """``scratch`` with the seed's kube-system ConfigMaps, DaemonSets and their ServiceAccounts and the seed's web
    Deployment, every DaemonSet with pods rolled out and the three web pods Ready; the namespace."""
    cluster, ns = writable, scratch
    copy_accounts(cluster, ns)
    copy_seed(cluster, ns)
    [web] = seed_objects(namespace='default', kinds=['Deployment'], names=['web'])
    body = copy.deepcopy(web)
    body['metadata'] = {'name': 'web', 'labels': body['metadata'].get('labels') or {}}
    cluster.create(body, namespace=ns)
    for name in ('kube-flannel-ds', 'kube-proxy-worker'):
        _ds, pods = daemonset_settled(cluster, ns, name)
        assert len(pods) == 3, (name, pods)
    try:
        waiter.wait_until(lambda: cluster.items('Pod', ns, label_selector='app=web'),
                          lambda pods: len(pods) == 3 and all(pod_ready(p) for p in pods), waiter.deadline(120), 0.5)
    except waiter.WaitTimeout as exc:
        pytest.fail('the web pods in %s are not three and Ready after 120 s: %s' % (ns, exc.last))
    return ns


def where(ns):
    return ['-e', 'netmedic_flannel_namespace=%s' % ns, '-e', 'change_guard_lock_namespace=%s' % ns]


def hairpin_args(ns):
    return ['-e', 'netmedic_flannel_hairpin_mode=true', '-e', 'netmedic_hairpin_pod_namespace=%s' % ns,
            '-e', 'netmedic_hairpin_pod_selector=app=web']


@pytest.fixture
def run(tmp_path):
    return lambda cluster, *extra, check=False: run_playbook(cluster, tmp_path, PLAYBOOK, *extra, check=check)


def conf(cluster, ns):
    return cluster.get('ConfigMap', ns, 'kube-flannel-cfg')['data']['cni-conf.json']


def uids(cluster, ns, selector):
    """The UIDs of the live pods (a Terminating one is not counted: it is going)."""
    return {p['metadata']['uid'] for p in cluster.items('Pod', ns, label_selector=selector)
            if not p['metadata'].get('deletionTimestamp')}


def hairpin(cluster, ns):
    plugins = json.loads(conf(cluster, ns))['plugins']
    return next(p for p in plugins if p['type'] == 'flannel')['delegate'].get('hairpinMode')


def test_c5_check_apply_recreate_selected_pods_then_idempotent(writable, flannel, run):
    cluster, ns = writable, flannel
    before, pods, web = conf(cluster, ns), uids(cluster, ns, 'app=flannel'), uids(cluster, ns, 'app=web')
    assert len(pods) == 3 and len(web) == 3
    rc, _tasks, output = run(cluster, *where(ns), *hairpin_args(ns), check=True)
    assert rc == 0, output
    assert conf(cluster, ns) == before and uids(cluster, ns, 'app=flannel') == pods
    assert uids(cluster, ns, 'app=web') == web
    assert '3 pod(s) would be recreated in %s (app=web)' % ns in output, output

    rc, tasks, output = run(cluster, *where(ns), *hairpin_args(ns))
    assert rc == 0, output
    assert hairpin(cluster, ns) is True
    # The cluster lock was taken and released in the test's namespace, not in kube-system.
    assert sorted((t['lock']['namespace'], t['lock']['action']) for t in tasks.values() if isinstance(t.get('lock'), dict)) == [
        (ns, 'created'), (ns, 'released')], output
    flannel_after = uids(cluster, ns, 'app=flannel')
    assert len(flannel_after) == 3 and flannel_after.isdisjoint(pods)                  # Flannel restarted on every node
    recreated = uids(cluster, ns, 'app=web')
    assert len(recreated) == 3 and recreated.isdisjoint(web)                            # every selected pod, once
    assert all(pod_ready(p) for p in cluster.items('Pod', ns, label_selector='app=web')
               if p['metadata']['uid'] in recreated)
    others = uids(cluster, ns, 'k8s-app=kube-proxy-worker')
    assert len(others) == 3
    assert cluster.find('Lease', ns, 'netmedic-flannel') is None                         # the lock released

    rc, tasks, output = run(cluster, *where(ns), *hairpin_args(ns))
    assert rc == 0, output
    assert not any(t.get('changed') for t in tasks.values()), [n for n, t in tasks.items() if t.get('changed')]
    assert uids(cluster, ns, 'app=web') == recreated                                   # nothing recreated twice
    assert uids(cluster, ns, 'app=flannel') == flannel_after                           # nothing restarted again
    assert uids(cluster, ns, 'k8s-app=kube-proxy-worker') == others                    # pods not selected: never touched


@pytest.mark.parametrize('extra, words', [
    (['-e', 'netmedic_flannel_hairpin_mode=true', '-e', 'netmedic_hairpin_pod_selector=app=web'],
     'needs netmedic_hairpin_pod_namespace'),
    (['-e', 'netmedic_flannel_cni_version=0.3.1', '-e', 'netmedic_hairpin_pod_namespace={ns}',
      '-e', 'netmedic_hairpin_pod_selector=app=web'], 'netmedic_flannel_hairpin_mode=true'),
    (['-e', 'netmedic_flannel_hairpin_mode=yes-please'], 'netmedic_flannel_hairpin_mode'),
    ([], 'Give netmedic_flannel_cni_version'),
])
def test_c5_bad_input_refused_before_any_change(writable, flannel, run, extra, words):
    cluster, ns = writable, flannel
    before, web = conf(cluster, ns), uids(cluster, ns, 'app=web')
    rc, _tasks, output = run(cluster, *where(ns), *[a.format(ns=ns) for a in extra])
    assert rc != 0 and words in output, output
    assert conf(cluster, ns) == before and uids(cluster, ns, 'app=web') == web
    assert cluster.find('Lease', ns, 'netmedic-flannel') is None
