"""Pure functions of the double: patch semantics, selectors, budgets, seeds, kube-proxy decoding."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.kubedouble import ApiError, CrashLoop, StaticNodeState, Store, kube_proxy_log, load_seed
from lab.kubedouble.controllers import daemonset_pod_spec, fits
from lab.kubedouble.patching import merge_patch, strategic_merge
from lab.kubedouble.policy import budget_state
from lab.kubedouble.seed import populate
from lab.kubedouble.selectors import match_labels, selector_matches
from lab.kubedouble.validation import schema_version

SEED = Path(__file__).resolve().parents[2] / 'lab' / 'seed' / 'cluster.yaml'
POD_SPEC = {'containers': [
    {'name': 'a', 'image': 'a:1', 'args': ['--x'], 'env': [{'name': 'E1', 'value': '1'}, {'name': 'E2', 'value': '2'}],
     'ports': [{'containerPort': 80, 'protocol': 'TCP'}],
     'volumeMounts': [{'name': 'cfg', 'mountPath': '/etc/cfg'}, {'name': 'run', 'mountPath': '/run'}]},
    {'name': 'b', 'image': 'b:1'}],
    'volumes': [{'name': 'cfg', 'configMap': {'name': 'c1'}}, {'name': 'run', 'emptyDir': {}}],
    'tolerations': [{'operator': 'Exists'}]}


def smp(patch, original=None, kind='DaemonSet'):
    return strategic_merge({'spec': {'template': {'spec': original or POD_SPEC}}},
                           {'spec': {'template': {'spec': patch}}}, kind)['spec']['template']['spec']


def test_strategic_merge_keys():
    out = smp({'containers': [{'name': 'a', 'env': [{'name': 'E2', 'value': 'two'}, {'name': 'E3', 'value': '3'}],
                               'ports': [{'containerPort': 81}],
                               'volumeMounts': [{'mountPath': '/etc/cfg', 'readOnly': True}]}]})
    a = out['containers'][0]
    assert [c['name'] for c in out['containers']] == ['a', 'b']
    assert a['env'] == [{'name': 'E1', 'value': '1'}, {'name': 'E2', 'value': 'two'}, {'name': 'E3', 'value': '3'}]
    assert [p['containerPort'] for p in a['ports']] == [80, 81]
    assert a['volumeMounts'][0] == {'name': 'cfg', 'mountPath': '/etc/cfg', 'readOnly': True}
    assert a['args'] == ['--x'] and a['image'] == 'a:1'


def test_strategic_merge_replaces_lists_without_merge_key():
    out = smp({'containers': [{'name': 'a', 'args': ['--y']}], 'tolerations': [{'key': 'k', 'operator': 'Exists'}]})
    assert out['containers'][0]['args'] == ['--y']
    assert out['tolerations'] == [{'key': 'k', 'operator': 'Exists'}]


def test_strategic_merge_directives():
    out = smp({'containers': [{'name': 'b', '$patch': 'delete'}],
               'volumes': [{'name': 'cfg', 'configMap': {'$patch': 'replace', 'name': 'c2'}},
                           {'name': 'run', 'emptyDir': {'$patch': 'delete'}}]})
    assert [c['name'] for c in out['containers']] == ['a']
    assert out['volumes'][0] == {'name': 'cfg', 'configMap': {'name': 'c2'}}
    assert out['volumes'][1] == {'name': 'run'}
    replaced = smp({'containers': [{'name': 'z', 'image': 'z:1'}, {'$patch': 'replace'}]})
    assert replaced['containers'] == [{'name': 'z', 'image': 'z:1'}]
    whole = smp({'$patch': 'replace', 'containers': [{'name': 'only', 'image': 'o'}]})
    assert whole == {'containers': [{'name': 'only', 'image': 'o'}]}
    gone = strategic_merge({'metadata': {'name': 'x'}, 'spec': {'a': 1}}, {'spec': {'$patch': 'delete'}}, 'ConfigMap')
    assert gone == {'metadata': {'name': 'x'}}


def test_strategic_merge_metadata_conditions_and_service_ports():
    meta = strategic_merge({'metadata': {'finalizers': ['a', 'b'], 'labels': {'x': '1', 'y': '2'}}},
                           {'metadata': {'finalizers': ['c'], '$deleteFromPrimitiveList/finalizers': ['a'],
                                         'labels': {'x': None}}}, 'ConfigMap')['metadata']
    assert meta == {'finalizers': ['b', 'c'], 'labels': {'y': '2'}}
    status = strategic_merge({'status': {'conditions': [{'type': 'Ready', 'status': 'True'},
                                                        {'type': 'PIDPressure', 'status': 'False'}]}},
                             {'status': {'conditions': [{'type': 'Ready', 'status': 'False'}]}}, 'Node')
    assert status['status']['conditions'] == [{'type': 'Ready', 'status': 'False'},
                                              {'type': 'PIDPressure', 'status': 'False'}]
    svc = strategic_merge({'spec': {'ports': [{'port': 80, 'targetPort': 8080}, {'port': 443}]}},
                          {'spec': {'ports': [{'port': 80, 'targetPort': 80}]}}, 'Service')
    assert svc['spec']['ports'] == [{'port': 80, 'targetPort': 80}, {'port': 443}]
    with pytest.raises(ApiError) as err:
        smp({'containers': [{'image': 'no-name'}]})
    assert err.value.code == 400 and 'merge key: name' in err.value.message


def test_merge_patch_is_rfc7386():
    assert merge_patch({'a': {'b': 1, 'c': [1, 2]}, 'd': 1}, {'a': {'b': None, 'c': [3]}, 'e': {'f': None}}) == \
        {'a': {'c': [3]}, 'd': 1, 'e': {}}


def test_selector_forms():
    labels = {'app': 'web', 'tier': 'fe'}
    assert match_labels('app=web,tier in (fe, be),!canary', labels)
    assert not match_labels('app notin (web)', labels)
    assert match_labels('', labels)
    assert selector_matches({}, labels) and not selector_matches(None, labels)
    assert selector_matches({'matchExpressions': [{'key': 'tier', 'operator': 'In', 'values': ['fe']},
                                                  {'key': 'canary', 'operator': 'DoesNotExist'}]}, labels)
    with pytest.raises(ApiError) as err:
        match_labels('app=web=x', labels)
    assert err.value.code == 400


@pytest.mark.parametrize(('spec', 'ready', 'expected'), [
    ({'minAvailable': 2}, 3, (3, 2, 1)),
    ({'minAvailable': '50%'}, 3, (3, 2, 1)),        # ceil(1.5)
    ({'maxUnavailable': 1}, 3, (3, 2, 1)),
    ({'maxUnavailable': '0%'}, 3, (3, 3, 0)),
    ({'maxUnavailable': '34%'}, 3, (3, 1, 2)),      # ceil(1.02) = 2 may be unavailable
    ({'minAvailable': 2}, 2, (2, 2, 0)),
])
def test_budget_arithmetic(spec, ready, expected):
    store = Store(validate=False)
    populate(store, [{'apiVersion': 'policy/v1', 'kind': 'PodDisruptionBudget',
                      'metadata': {'name': 'b', 'namespace': 'default'},
                      'spec': dict(spec, selector={'matchLabels': {'app': 'x'}})}])
    for i in range(3):
        store.create('pods', 'default', {'metadata': {'name': 'p%d' % i, 'labels': {'app': 'x'}},
                                         'spec': {'containers': [{'name': 'c', 'image': 'i'}]},
                                         'status': {}}, system=True)
        pod = store.get('pods', 'default', 'p%d' % i)
        pod['status'] = {'phase': 'Running', 'conditions': [{'type': 'Ready', 'status':
                                                             'True' if i < ready else 'False'}]}
        store.put('pods', pod)
    state = budget_state(store, store.get('poddisruptionbudgets', 'default', 'b'))
    assert (state['currentHealthy'], state['desiredHealthy'], state['disruptionsAllowed']) == expected
    assert state['expectedPods'] == 3


def test_seed_shapes(tmp_path):
    seed = load_seed(SEED)
    assert seed.version == 'v1.24.9-gke.3200'
    assert seed.nodes == [('lab-node-1', '10.77.0.11'), ('lab-node-2', '10.77.0.12'), ('lab-node-3', '10.77.0.13')]
    kinds = {(o['kind'], o['metadata']['name']) for o in seed.objects}
    for expected in (('ConfigMap', 'kube-proxy-worker'), ('ConfigMap', 'kube-proxy-master'), ('ConfigMap', 'kube-proxy'),
                     ('ConfigMap', 'kube-flannel-cfg'), ('ConfigMap', 'eni-config'), ('ConfigMap', 'ip-masq-agent'),
                     ('DaemonSet', 'kube-proxy-worker'), ('DaemonSet', 'kube-flannel-ds'), ('DaemonSet', 'anetd'),
                     ('DaemonSet', 'terway-eniip'), ('DaemonSet', 'ip-masq-agent'), ('Deployment', 'web'),
                     ('PodDisruptionBudget', 'web'), ('NetworkPolicy', 'web-allow-port-range'), ('Service', 'web')):
        assert expected in kinds
    multi = tmp_path / 'multi.yaml'
    multi.write_text('version: v1.28.3\nnodes: [n1=10.0.0.1]\n---\napiVersion: v1\nkind: List\nitems:\n'
                     '- {apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: default}}\n---\n'
                     'apiVersion: v1\nkind: Namespace\nmetadata: {name: extra}\n')
    parsed = load_seed(multi)
    assert (parsed.version, parsed.nodes) == ('v1.28.3', [('n1', '10.0.0.1')])
    assert [o['kind'] for o in parsed.objects] == ['ConfigMap', 'Namespace']


def test_seed_documents_the_catalog_faults():
    objects = {(o['kind'], o['metadata']['name']): o for o in load_seed(SEED).objects}
    flannel = objects[('ConfigMap', 'kube-flannel-cfg')]['data']['cni-conf.json']
    for absent in ('cniVersion', 'hairpinMode', 'dataDir'):
        assert absent not in flannel
    eni = objects[('ConfigMap', 'eni-config')]['data']
    assert 'in_cluster_loadbalance' not in eni and eni['disable_network_policy'] == 'false'
    for name in ('kube-proxy-worker', 'kube-proxy-master', 'kube-proxy'):
        config = yaml.safe_load(objects[('ConfigMap', name)]['data']['config.conf'])
        assert (config['kind'], config['mode'], config['ipvs']['scheduler']) == ('KubeProxyConfiguration', 'ipvs', 'rr')
    args = objects[('DaemonSet', 'ip-masq-agent')]['spec']['template']['spec']['containers'][0]['args']
    assert not any(a.startswith('--random-fully') for a in args)
    policy = objects[('NetworkPolicy', 'web-allow-port-range')]['spec']['ingress'][0]['ports'][0]
    assert policy['endPort'] == 32768


def _proxy_store(config_text, nodes=(('n1', '10.0.0.1'),)):
    store = Store(validate=False)
    populate(store, [{'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'kp', 'namespace': 'kube-system'},
                      'data': {'config.conf': config_text}}], nodes=list(nodes))
    pod = {'metadata': {'name': 'kube-proxy-x', 'namespace': 'kube-system', 'labels': {'k8s-app': 'kube-proxy'}},
           'spec': {'nodeName': 'n1', 'volumes': [{'name': 'v', 'configMap': {'name': 'kp'}}],
                    'containers': [{'name': 'kube-proxy', 'image': 'kp'}]}}
    return store, pod


@pytest.mark.parametrize(('config', 'modules', 'expect', 'reject'), [
    ('mode: ipvs\nipvs: {scheduler: ""}', {'ip_vs', 'ip_vs_rr'}, 'Using ipvs Proxier.', "Can't use"),
    ('mode: ipvs\nipvs: {scheduler: wlc}', {'ip_vs', 'ip_vs_rr'}, 'not loaded: [ip_vs_wlc]', 'Using ipvs'),
    ('mode: ipvs', set(), 'not loaded: [ip_vs ip_vs_rr]', 'Using ipvs'),
    ('mode: ipvs', None, 'error getting installed ipvs required kernel modules', 'Using ipvs'),
    ('mode: ""', set(), 'Using iptables Proxier.', "Can't use"),
    ('mode: iptables\nconntrack: {maxPerCore: 0}', set(), 'Using iptables Proxier.', 'nf_conntrack_max'),
])
def test_kube_proxy_proxier_choice(config, modules, expect, reject):
    store, pod = _proxy_store('apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n' + config)
    log = kube_proxy_log(pod, store, StaticNodeState({'n1': modules} if modules is not None else {}, default=None))
    assert expect in log and reject not in log


# What the real kube-proxy does, by the version the double serves (issue 15 item 5). Measured on the lab's real nodes
# (kube-proxy v1.37.2, tests/realnode/README.md, tests/unit/fixtures/kube_proxy_logs/real-v1.37.2-ipvs-start.log); the
# fallback's removal is Kubernetes 1.26 (kubernetes/kubernetes#111806: "kube-proxy no longer falls back from ipvs mode
# to iptables mode ... it will just exit with an error"); the deprecation line is 1.35's (1.37 reworded it).
DEPRECATED_135 = "The ipvs proxier is now deprecated and may be removed in a future release. Please use 'nftables' instead."
DEPRECATED_137 = ("The ipvs proxier has been deprecated and will be disabled by default in Kubernetes 1.40 and removed in "
                  "Kubernetes 1.43. Migrate to the 'nftables' proxier instead.")


@pytest.mark.parametrize(('version', 'deprecation'), [
    ('v1.24.9-gke.3200', None), ('v1.34.2', None), ('v1.35.0', DEPRECATED_135), ('v1.36.1-gke.1', DEPRECATED_135),
    ('v1.37.2', DEPRECATED_137), ('v1.38.0', DEPRECATED_137)])
def test_issue15_kube_proxy_ipvs_start_logs_the_deprecation_of_its_version(version, deprecation):
    store, pod = _proxy_store('apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs')
    store.version = version
    log = kube_proxy_log(pod, store, StaticNodeState({'n1': {'ip_vs', 'ip_vs_rr'}}, default=None))
    lines = log.splitlines()
    using = [i for i, line in enumerate(lines) if 'Using ipvs Proxier' in line]
    assert len(using) == 1, log
    deprecated = [i for i, line in enumerate(lines) if 'ipvs proxier' in line.lower() and 'deprecated' in line]
    if deprecation is None:
        assert deprecated == [], log
    else:
        # right after "Using ipvs Proxier", at error level, and kube-proxy keeps running (no CrashLoop)
        assert deprecated == [using[0] + 1], log
        assert lines[deprecated[0]].startswith('E') and deprecation in lines[deprecated[0]]


@pytest.mark.parametrize('version', ['v1.26.0', 'v1.30.4', 'v1.37.2'])
def test_issue15_kube_proxy_without_the_scheduler_module_exits_since_1_26(version):
    """The catalog's C-2 fallback ("Using iptables Proxier.") is older kube-proxy's; since 1.26 it exits and the pod
    crash-loops, which the double played as a fallback for every version until 2026-12-04."""
    store, pod = _proxy_store('apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n'
                              'mode: ipvs\nipvs: {scheduler: sed}')
    store.version = version
    with pytest.raises(CrashLoop) as err:
        kube_proxy_log(pod, store, StaticNodeState({'n1': {'ip_vs', 'ip_vs_rr'}}, default=None))
    assert "can't use the IPVS proxier" in err.value.log
    # 1.26 checked the loaded modules; since 1.27 it creates a dummy virtual server with the scheduler (k8s#114669)
    assert ('not loaded: [ip_vs_sed]' if version == 'v1.26.0' else 'scheduler="sed"') in err.value.log
    assert 'Using iptables Proxier' not in err.value.log and 'Using ipvs Proxier' not in err.value.log


def test_kube_proxy_before_1_26_still_falls_back_to_iptables():
    store, pod = _proxy_store('apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n'
                              'mode: ipvs\nipvs: {scheduler: sed}')
    store.version = 'v1.25.16'
    log = kube_proxy_log(pod, store, StaticNodeState({'n1': {'ip_vs', 'ip_vs_rr'}}, default=None))
    assert 'not loaded: [ip_vs_sed]' in log and 'Using iptables Proxier.' in log and 'deprecated' not in log


@pytest.mark.parametrize(('config', 'message'), [
    ('kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: ipvs\nipvs: {scheduler: fast}',
     'Scheduler: Invalid value: "fast"'),
    ('kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nipvs: {udpTimeout: 10}',
     'time: invalid duration "10"'),
    ('kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nconntrack:\nmaxPerCore: 1',
     'unknown field "maxPerCore"'),
    ('kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: [ipvs',
     'error converting YAML to JSON'),
    ('kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1', 'no kind "KubeletConfiguration"'),
])
def test_kube_proxy_rejects_bad_config(config, message):
    store, pod = _proxy_store(config)
    with pytest.raises(CrashLoop) as err:
        kube_proxy_log(pod, store, StaticNodeState())
    assert message in err.value.log


def test_schema_version_is_clamped():
    assert schema_version('v1.24.9-gke.3200') == '1.25.0'
    assert schema_version('v1.30.2') == '1.30.0'
    assert schema_version('v1.99.0') == '1.37.0'


def test_taints_and_tolerations():
    node = {'metadata': {'labels': {'pool': 'fixed'}}, 'spec': {'taints': [
        {'key': 'fixed', 'value': 'true', 'effect': 'NoSchedule'}, {'key': 'soft', 'effect': 'PreferNoSchedule'}]}}
    assert not fits({}, node)
    assert fits({'tolerations': [{'key': 'fixed', 'operator': 'Equal', 'value': 'true', 'effect': 'NoSchedule'}]}, node)
    assert fits({'tolerations': [{'key': 'fixed', 'operator': 'Exists'}]}, node)     # any effect
    assert fits({'tolerations': [{'operator': 'Exists'}]}, node)                       # everything
    assert not fits({'tolerations': [{'key': 'fixed', 'value': 'false', 'effect': 'NoSchedule'}]}, node)
    assert not fits({'nodeSelector': {'pool': 'other'}, 'tolerations': [{'operator': 'Exists'}]}, node)
    cordoned = {'metadata': {}, 'spec': {'unschedulable': True}}
    assert not fits({}, cordoned) and fits({}, cordoned, respect_cordon=False)
    assert fits(daemonset_pod_spec({}), cordoned)                                     # DaemonSets tolerate it


def test_generated_name_taken_is_drawn_again(monkeypatch):
    """As kube-apiserver >= 1.32 (RetryGenerateName): a generateName collision is retried, not a 409.
    Found by bench/bench_cluster_scale.py: 6,000 DaemonSet pods in kube-system drew a taken name and the
    double's controller pass failed with AlreadyExists (issue 14)."""
    from lab.kubedouble import store as store_mod
    draws = iter(['aaaaa', 'aaaaa', 'bbbbb'])
    monkeypatch.setattr(store_mod, 'random_suffix', lambda length=5: next(draws))
    store = Store(validate=False)
    populate(store, [])
    pod = {'metadata': {'generateName': 'kube-proxy-'}, 'spec': {'containers': [{'name': 'c', 'image': 'i'}]}}
    first = store.create('pods', 'default', dict(pod, metadata=dict(pod['metadata'])), system=True)
    second = store.create('pods', 'default', dict(pod, metadata=dict(pod['metadata'])), system=True)
    assert (first['metadata']['name'], second['metadata']['name']) == ('kube-proxy-aaaaa', 'kube-proxy-bbbbb')
    with pytest.raises(ApiError, match='already exists'):
        store.create('pods', 'default', {'metadata': {'name': 'kube-proxy-aaaaa'},
                                         'spec': {'containers': [{'name': 'c', 'image': 'i'}]}}, system=True)
