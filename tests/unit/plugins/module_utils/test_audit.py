from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.netmedic.k8s.plugins.module_utils import audit as au

SEED = Path(__file__).resolve().parents[4] / 'lab' / 'seed' / 'cluster.yaml'


def seed_objects(kind):
    return [o for o in yaml.safe_load(SEED.read_text())['objects'] if o['kind'] == kind]


def anetd_pod(name='anetd-x7k2p', node='n1', state='Running'):
    status = {'phase': 'Running', 'conditions': [{'type': 'Ready', 'status': 'True'}]}
    if state == 'CrashLoopBackOff':
        status = {'phase': 'Running', 'conditions': [{'type': 'Ready', 'status': 'False'}],
                  'containerStatuses': [{'name': 'cilium-agent', 'state': {'waiting': {'reason': 'CrashLoopBackOff'}}}]}
    elif state == 'Pending':
        status = {'phase': 'Pending'}
    return {'metadata': {'name': name, 'namespace': 'kube-system', 'labels': {'k8s-app': 'cilium'}},
            'spec': {'nodeName': node, 'containers': [{'name': 'cilium-agent'}]}, 'status': status}


def node(name='n1', ready=True, message='kubelet is posting ready status', taint=False, cidrs=('10.0.0.0/24',)):
    obj = {'metadata': {'name': name}, 'spec': {'podCIDRs': list(cidrs)},
           'status': {'conditions': [{'type': 'Ready', 'status': 'True' if ready else 'False',
                                      'reason': 'KubeletReady' if ready else 'KubeletNotReady', 'message': message}]}}
    if taint:
        obj['spec']['taints'] = [{'key': 'node.kubernetes.io/network-unavailable', 'effect': 'NoSchedule'}]
    return obj


def snapshot(version='v1.24.9-gke.3200', **extra):
    base = {'version': version, 'nodes': [node()], 'pods': [anetd_pod()],
            'services': seed_objects('Service'), 'networkpolicies': seed_objects('NetworkPolicy'), 'events': [], 'logs': {}}
    base.update(extra)
    return base


def ids(findings):
    return sorted({f['id'] for f in findings})


@pytest.mark.parametrize('version, d3, d4', [
    ('v1.24.9-gke.3200', False, False),
    ('1.27.11-gke.1096999', False, False),
    ('1.27.11-gke.1097000', False, True),      # D-4 is fixed on the 1.27 line, D-3 only from 1.28.3
    ('1.28.3-gke.1089999', False, False),
    ('1.28.3-gke.1090000', True, True),
    ('1.29.1-gke.1589000', True, True),
])
def test_gke_version_gates_use_the_seed_builds(version, d3, d4):
    assert au.gke_fix_state(version, au.D3_FIXED) == (d3, None)
    assert au.gke_fix_state(version, au.D4_FIXED) == (d4, None)


def test_non_gke_and_unreadable_versions():
    assert au.gke_fix_state('v1.24.6-aliyun.1', au.D3_FIXED)[0] is None
    fixed, note = au.gke_fix_state('weird', au.D3_FIXED)
    assert fixed is None and 'cannot parse' in note
    findings, _facts = au.audit(snapshot(version='weird'), {'D-3', 'D-4'})
    assert [f['severity'] for f in findings] == ['unknown', 'unknown']
    assert au.audit(snapshot(version='v1.24.6-aliyun.1'), {'D-3', 'D-4'})[0] == []


def test_lab_seed_on_old_gke_with_dataplane_v2():
    findings, facts = au.audit(snapshot())
    assert facts == {'cluster_version': 'v1.24.9-gke.3200', 'dataplane_v2': True, 'dual_stack': False,
                     'fixed': {'D-3': False, 'D-4': False}}
    assert ids(findings) == ['D-1', 'D-2', 'D-3', 'D-4']
    d2 = [f for f in findings if f['id'] == 'D-2']
    assert d2[0]['evidence'] == {'networkpolicy': 'default/web-allow-port-range', 'ports': ['ingress[0]: TCP 32000-32768']}
    d3 = {f['evidence']['service']: f['evidence']['ports'] for f in findings if f['id'] == 'D-3'}
    assert d3 == {'default/web': ['port 8080 -> targetPort 80'], 'default/kubernetes': ['port 443 -> targetPort 6443']}


def test_without_dataplane_v2_the_dpv2_checks_are_silent():
    findings, facts = au.audit(snapshot(pods=[]))
    assert findings == [] and facts['dataplane_v2'] is False
    renamed = anetd_pod(name='cilium-abcde')            # Cilium, but not GKE's anetd
    assert au.audit(snapshot(pods=[renamed]), {'D-1'})[0] == []


def test_d5_dual_stack():
    svc = seed_objects('Service')
    dual = copy.deepcopy(svc[0])
    dual['spec']['ipFamilyPolicy'] = 'PreferDualStack'
    pod = {'metadata': {'name': 'p', 'namespace': 'default'}, 'spec': {}, 'status': {'phase': 'Running', 'podIPs': [{'ip': '10.0.0.5'}]}}
    findings, facts = au.audit(snapshot(nodes=[node(cidrs=('10.0.0.0/24', 'fd00::/64'))], services=svc[1:] + [dual],
                                        pods=[pod]), {'D-5'})
    assert facts['dual_stack'] is True
    by_title = {f['severity']: f['evidence'] for f in findings}
    assert set(by_title['info']['services']) == {'kube-system/kube-dns', 'default/kubernetes', 'default/web'} - {
        '%s/%s' % (dual['metadata']['namespace'], dual['metadata']['name'])}
    assert by_title['warning'] == {'pods': ['default/p'], 'count': 1}
    assert au.audit(snapshot(), {'D-5'})[0] == []


def test_d6_taint_with_node_events():
    events = [{'involvedObject': {'kind': 'Node', 'name': 'n2'}, 'reason': 'CreateRouteFailed',
               'message': 'route table full'}]
    findings, _facts = au.audit(snapshot(nodes=[node(), node('n2', taint=True)], events=events), {'D-6'})
    assert len(findings) == 1
    assert findings[0]['evidence']['node'] == 'n2'
    assert findings[0]['evidence']['events'] == ['CreateRouteFailed: route table full']


def test_d7_node_not_ready_with_the_documented_message_and_agent_states():
    # Seed 004: kubelet's message when the CNI agent did not install the plugin.
    message = ('container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin '
               'returns error: cni plugin not initialized')
    pods = [anetd_pod('anetd-aaaaa', 'n1', 'CrashLoopBackOff'), anetd_pod('anetd-bbbbb', 'n2', 'Pending')]
    events = [{'involvedObject': {'kind': 'Pod', 'name': 'anetd-bbbbb', 'namespace': 'kube-system'},
               'reason': 'FailedMount', 'message': 'configmap "x" not found'}]
    findings, _facts = au.audit(snapshot(nodes=[node('n1', ready=False, message=message), node('n2')], pods=pods, events=events,
                                         logs={'kube-system/anetd-aaaaa': 'level=fatal msg="bad config"\n'}), {'D-7'})
    node_finding = [f for f in findings if 'node' in f['evidence'] and 'condition' in f['evidence']]
    assert len(node_finding) == 1 and node_finding[0]['severity'] == 'critical'
    assert node_finding[0]['evidence']['agents'] == [{'pod': 'kube-system/anetd-aaaaa', 'state': 'CrashLoopBackOff'}]
    agents = {f['evidence']['pod']: f for f in findings if 'state' in f['evidence']}
    assert agents['kube-system/anetd-aaaaa']['evidence']['log_tail'] == ['level=fatal msg="bad config"']
    assert agents['kube-system/anetd-bbbbb']['evidence']['events'] == ['FailedMount: configmap "x" not found']
    assert agents['kube-system/anetd-bbbbb']['severity'] == 'warning'
    assert [p['metadata']['name'] for p in au.crashlooping_agents(pods)] == ['anetd-aaaaa']


def test_d7_a_not_ready_node_for_another_reason_is_not_a_cni_finding():
    findings, _facts = au.audit(snapshot(nodes=[node(ready=False, message='PLEG is not healthy')]), {'D-7'})
    assert findings == []


# --- N-1 versions, D-7 custom-cni-conf, C-6 Terway (issue 10, partial entries) --------------

@pytest.mark.parametrize('version,affected', [
    ('v1.22.17-gke.3000', True), ('v1.22.17-gke.3100', False), ('v1.23.16-gke.100', True), ('v1.23.16-gke.200', False),
    ('v1.24.9-gke.3199', True), ('v1.24.9-gke.3200', False), ('v1.25.6-gke.100', True), ('v1.25.6-gke.200', False),
    ('v1.26.1-gke.100', False), ('v1.21.14-gke.100', True),
    ('v1.18.8-aliyun.1', True), ('v1.19.6-aliyun.1', True), ('v1.20.4-aliyun.1', False),
])
def test_n1_cluster_versions_the_seeds_name(version, affected):
    findings, _facts = au.audit(snapshot(version), ['N-1'])
    assert [f['id'] for f in findings] == (['N-1'] if affected else [])
    if affected:
        assert findings[0]['severity'] == 'warning' and findings[0]['evidence']['cluster_version'] == version


def test_n1_upstream_version_is_not_judged_and_garbage_is_unknown():
    assert au.audit(snapshot('v1.24.3'), ['N-1'])[0] == []
    (f,) = au.audit(snapshot('not-a-version'), ['N-1'])[0]
    assert (f['id'], f['severity']) == ('N-1', 'unknown')


def test_d7_custom_cni_conf_true_is_critical_while_a_node_waits_for_the_cni():
    sick = node('n2', ready=False, message='container runtime network not ready: NetworkReady=false '
                'reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized')
    cfg = {'kube-system/cilium-config': {'custom-cni-conf': 'true'}}
    findings, _facts = au.audit(snapshot(nodes=[node(), sick], cni_agent_configs=cfg), ['D-7'])
    (custom,) = [f for f in findings if 'custom-cni-conf' in f['title']]
    assert custom['severity'] == 'critical' and custom['evidence']['nodes_cni_not_ready'] == ['n2']
    # All nodes Ready: still reported, as information.
    findings, _facts = au.audit(snapshot(cni_agent_configs=cfg), ['D-7'])
    assert [(f['id'], f['severity']) for f in findings] == [('D-7', 'info')]
    # false, absent key or absent ConfigMap: nothing.
    for configs in ({'kube-system/cilium-config': {'custom-cni-conf': 'false'}}, {'kube-system/cilium-config': {}},
                    {'kube-system/cilium-config': None}):
        assert au.audit(snapshot(cni_agent_configs=configs), ['D-7'])[0] == []


SEED_IP_NOT_ENOUGH = ('time="2020-03-17T07:03:40Z" level=warning msg="Assign private ip address failed: Aliyun API Error: '
                      'RequestId: 2095E971-E473-4BA0-853F-0C41CF52651D Status Code: 403 Code: InvalidVSwitchId.IpNotEnough '
                      'Message: The specified VSwitch \\"vsw-AAA\\" has not enough IpAddress., retrying"')


def terway_pod(name, node_name, ip):
    return {'metadata': {'name': name, 'namespace': 'default'}, 'spec': {'nodeName': node_name, 'containers': [{'name': 'app'}]},
            'status': {'phase': 'Running', 'podIP': ip, 'podIPs': [{'ip': ip}]}}


def test_c6_ip_not_enough_in_the_terway_log_names_the_vswitch():
    logs = {'kube-system/terway-eniip-abcde': 'level=info msg="started"\n' + SEED_IP_NOT_ENOUGH + '\n'}
    (f,) = au.audit(snapshot(terway_logs=logs), ['C-6'])[0]
    assert (f['id'], f['severity'], f['evidence']['vswitches'], f['evidence']['count']) == ('C-6', 'critical', ['vsw-AAA'], 1)
    assert au.audit(snapshot(terway_logs={'kube-system/terway-eniip-abcde': 'level=info msg="started"'}), ['C-6'])[0] == []


def test_c6_pods_outside_the_vswitch_cidrs_name_the_nodes_to_rotate():
    pods = [terway_pod('a', 'n1', '192.168.1.10'), terway_pod('b', 'n2', '172.16.5.9'), terway_pod('c', 'n2', 'fd00::5')]
    host = terway_pod('h', 'n3', '10.9.9.9')
    host['spec']['hostNetwork'] = True
    nets = au.parse_cidrs(['192.168.0.0/16'])
    (f,) = au.audit(snapshot(pods=pods + [host], vswitch_cidrs=nets), ['C-6'])[0]
    assert f['evidence']['pods'] == [{'pod': 'default/b', 'node': 'n2', 'ip': '172.16.5.9'}]
    assert f['evidence']['nodes'] == ['n2']  # the IPv6 pod has no IPv6 vSwitch to compare with; hostNetwork is skipped


@pytest.mark.parametrize('bad', ['192.168.0.1/16', '300.0.0.0/8', 'vsw-AAA', ''])
def test_c6_bad_cidrs_refused(bad):
    with pytest.raises(ValueError, match='vswitch_cidrs'):
        au.parse_cidrs([bad])
