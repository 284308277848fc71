from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import daemonset as dsu

DS_UID = 'ds-uid-1'


def ds(desired=3):
    return {'metadata': {'name': 'kube-proxy-worker', 'namespace': 'kube-system', 'uid': DS_UID},
            'spec': {'selector': {'matchLabels': {'k8s-app': 'kube-proxy-worker'}}},
            'status': {'desiredNumberScheduled': desired}}


def pod(name, node, ready=True, uid=None, created='2026-11-25T19:00:00Z', owner=DS_UID, waiting=None):
    status = {'phase': 'Running', 'conditions': [{'type': 'Ready', 'status': 'True' if ready else 'False'}]}
    if waiting:
        status['containerStatuses'] = [{'name': 'c', 'state': {'waiting': {'reason': waiting}}}]
    return {'metadata': {'name': name, 'uid': uid or name + '-uid', 'creationTimestamp': created,
                         'ownerReferences': [{'kind': 'DaemonSet', 'uid': owner, 'name': 'kube-proxy-worker'}]},
            'spec': {'nodeName': node}, 'status': status}


def kube_proxy_patterns():
    preset = dsu.PRESETS['kube-proxy-ipvs']
    return dsu.compile_patterns(preset['success'], 's'), dsu.compile_patterns(preset['failure'], 'f')


def test_documented_success_line_passes(fixture_text):
    success, failure = kube_proxy_patterns()
    verdict, line = dsu.check_log(fixture_text('kube_proxy_logs/ipvs-ok.log'), success, failure)
    assert verdict == 'ok' and line.endswith('] Using ipvs Proxier.')


def test_documented_missing_module_line_fails_with_that_line(fixture_text):
    success, failure = kube_proxy_patterns()
    verdict, line = dsu.check_log(fixture_text('kube_proxy_logs/module-missing.log'), success, failure)
    assert verdict == 'failed'
    assert "Can't use the IPVS proxier" in line and line.endswith('not loaded: [ip_vs_lc]')


def test_documented_iptables_fallback_fails(fixture_text):
    success, failure = kube_proxy_patterns()
    verdict, line = dsu.check_log(fixture_text('kube_proxy_logs/iptables-fallback.log'), success, failure)
    assert verdict == 'failed' and line.endswith('Using iptables Proxier.')


def test_success_required_but_not_yet_logged_is_pending():
    success, failure = kube_proxy_patterns()
    assert dsu.check_log('I1125 server.go:230] Version: v1.24.6\n', success, failure) == ('pending', None)
    assert dsu.check_log('', [], []) == ('ok', None)


def test_failure_wins_over_success():
    success = dsu.compile_patterns(['ready'], 's')
    failure = dsu.compile_patterns(['error'], 'f')
    assert dsu.check_log('ready\nerror later\n', success, failure) == ('failed', 'error later')


def test_presets():
    assert dsu.preset_for('auto', 'kube-proxy-worker', proxy_mode='ipvs') == 'kube-proxy-ipvs'
    assert dsu.preset_for('auto', 'kube-proxy', proxy_mode='ipvs') == 'kube-proxy-ipvs'
    assert dsu.preset_for('auto', 'kube-flannel-ds') == 'none'
    assert dsu.preset_for('terway-in-cluster-lb', 'x') == 'terway-in-cluster-lb'
    assert dsu.PRESETS['terway-in-cluster-lb']['container'] == 'policy'
    with pytest.raises(dsu.RestartError):
        dsu.preset_for('bogus', 'x')


@pytest.mark.parametrize('bad', ['(unclosed', '', None, 5])
def test_bad_patterns_refused(bad):
    with pytest.raises(dsu.RestartError):
        dsu.compile_patterns([bad], 'failure_patterns')


def test_selector_string():
    assert dsu.selector_string({'matchLabels': {'b': '2', 'a': '1'}}) == 'a=1,b=2'
    assert dsu.selector_string({'matchExpressions': [
        {'key': 'tier', 'operator': 'In', 'values': ['node', 'x']},
        {'key': 'gone', 'operator': 'DoesNotExist'},
        {'key': 'env', 'operator': 'NotIn', 'values': ['dev']},
        {'key': 'app', 'operator': 'Exists'}]}) == 'tier in (node,x),!gone,env notin (dev),app'
    with pytest.raises(dsu.RestartError, match='empty selector'):
        dsu.selector_string({})


def test_unhealthy_counts_not_ready_and_missing_pods():
    pods = [pod('p1', 'n1'), pod('p2', 'n2', ready=False, waiting='CrashLoopBackOff'), pod('other', 'n3', owner='x')]
    count, bad = dsu.unhealthy(ds(desired=3), dsu.daemonset_pods(ds(), pods))
    assert count == 2
    assert bad[0] == {'node': 'n2', 'pod': 'p2', 'state': 'Running (CrashLoopBackOff)'}
    assert bad[1]['state'] == '1 desired pod(s) do not exist'


def test_plan_orders_batches_and_limits():
    pods = [pod('p%d' % i, 'n%d' % i) for i in (3, 1, 2, 4)]
    full = dsu.plan(ds(4), pods, batch_size=3)
    assert full['batches'] == [['n1', 'n2', 'n3'], ['n4']]
    ordered = dsu.plan(ds(4), pods, node_order=['n4', 'n2'])
    assert ordered['batches'] == [['n4'], ['n2'], ['n1'], ['n3']]
    limited = dsu.plan(ds(4), pods, nodes=['n2', 'n3'], node_labels_ok={'n3', 'n4'})
    assert limited['batches'] == [['n3']]
    assert limited['pods']['n3']['metadata']['name'] == 'p3'


def test_plan_refuses_unknown_nodes_and_doubled_pods():
    pods = [pod('p1', 'n1'), pod('p2', 'n2')]
    with pytest.raises(dsu.RestartError, match=r'on node\(s\): n9'):
        dsu.plan(ds(2), pods, nodes=['n9'])
    with pytest.raises(dsu.RestartError, match='node_order names'):
        dsu.plan(ds(2), pods, node_order=['n9'])
    with pytest.raises(dsu.RestartError, match='has 2 pods'):
        dsu.plan(ds(2), pods + [pod('p1b', 'n1')])
    with pytest.raises(dsu.RestartError):
        dsu.plan(ds(2), pods, batch_size=0)


def test_restarted_since_skips_new_pods():
    pods = [pod('p1', 'n1', created='2026-11-25T20:01:00Z'), pod('p2', 'n2', created='2026-11-25T19:59:59Z')]
    result = dsu.plan(ds(2), pods, node_order=['n1', 'n2'], restarted_since='2026-11-25T20:00:00Z')
    assert result['batches'] == [['n2']]
    assert result['skipped'] == [{'node': 'n1', 'pod': 'p1', 'created': '2026-11-25T20:01:00Z'}]
    assert dsu.check_since(None) is None
    with pytest.raises(dsu.RestartError):
        dsu.check_since('2026-11-25 20:00')


def test_node_order_parsing():
    assert dsu.parse_node_order('name') == 'name'
    assert dsu.parse_node_order(['a', 'b']) == ['a', 'b']
    for bad in ('random', ['a', 'a'], ['a', 3], 7):
        with pytest.raises(dsu.RestartError):
            dsu.parse_node_order(bad)


def test_replacement_ignores_the_deleted_pod_and_other_owners():
    old = pod('p1', 'n1', uid='old')
    new = pod('p1x', 'n1', uid='new', created='2026-11-25T20:00:00Z')
    other = pod('q', 'n1', uid='q', owner='someone-else')
    assert dsu.replacement([old, other], DS_UID, 'n1', 'old') is None
    assert dsu.replacement([old, new, other], DS_UID, 'n1', 'old')['metadata']['name'] == 'p1x'
    assert dsu.is_ready(new) and not dsu.is_ready(pod('x', 'n1', ready=False))


def test_names_by_pod_label_uses_the_template_labels():
    def daemonset(name, labels):
        return {'metadata': {'name': name, 'labels': {'app': 'decoy'}}, 'spec': {'template': {'metadata': {'labels': labels}}}}

    found = [daemonset('kube-flannel-ds', {'app': 'flannel', 'tier': 'node'}), daemonset('terway-eniip', {'app': 'terway-eniip'}),
             daemonset('other', {'k8s-app': 'flannel'}), {'metadata': {'name': 'bare'}, 'spec': {}}]
    assert dsu.names_by_pod_label(found, 'app', ('flannel',)) == ['kube-flannel-ds']
    assert dsu.names_by_pod_label(found, 'app', ('terway-eniip', 'terway-eni')) == ['terway-eniip']
    assert dsu.names_by_pod_label(found, 'app', ('decoy',)) == []


# -- issue #9 finding 6: the auto preset follows kube-proxy's configured mode; DaemonSets are discovered ---

IPTABLES_LOG = 'I1125 20:01:02.000000 1 server_others.go:212] Using iptables Proxier.\n'
IPVS_LOG = 'I1125 20:01:02.000000 1 server_others.go:259] Using ipvs Proxier.\n'


@pytest.mark.parametrize('mode, log, verdict', [
    ('iptables', IPTABLES_LOG, 'ok'), ('iptables', IPVS_LOG, 'failed'),
    ('ipvs', IPVS_LOG, 'ok'), ('ipvs', IPTABLES_LOG, 'failed'),
])
def test_issue9_f6_auto_preset_follows_the_configured_mode(mode, log, verdict):
    name = dsu.preset_for('auto', 'kube-proxy-worker', proxy_mode=mode)
    assert name == 'kube-proxy-%s' % mode
    preset = dsu.PRESETS[name]
    result, _line = dsu.check_log(log, dsu.compile_patterns(preset['success'], 's'),
                                  dsu.compile_patterns(preset['failure'], 'f'))
    assert result == verdict


def test_issue9_f6_auto_preset_without_a_known_mode_is_refused():
    with pytest.raises(dsu.RestartError, match='proxy mode'):
        dsu.preset_for('auto', 'kube-proxy', proxy_mode=None)
    assert dsu.preset_for('auto', 'kube-flannel-ds') == 'none'


def _ds_mounting(name, *configmaps):
    return {'metadata': {'name': name, 'namespace': 'kube-system'},
            'spec': {'template': {'spec': {'volumes': [{'name': 'v%d' % i, 'configMap': {'name': cm}}
                                                       for i, cm in enumerate(configmaps)]
                                           + [{'name': 'lib', 'hostPath': {'path': '/lib/modules'}}]}}}}


def test_issue9_f6_daemonsets_are_found_by_the_configmap_they_mount():
    daemonsets = [_ds_mounting('kube-proxy-worker', 'kube-proxy-worker'), _ds_mounting('kube-proxy-master', 'kube-proxy-master'),
                  _ds_mounting('kube-flannel-ds', 'kube-flannel-cfg'), {'metadata': {'name': 'bare'}, 'spec': {}}]
    assert dsu.mounting(daemonsets, ['kube-proxy-worker', 'kube-proxy-master', 'kube-proxy']) == {
        'kube-proxy-worker': ['kube-proxy-worker'], 'kube-proxy-master': ['kube-proxy-master'], 'kube-proxy': []}
    assert dsu.configmap_volumes(_ds_mounting('x', 'a', 'b')) == ['a', 'b']
