from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import drain as du
from ansible_collections.netmedic.k8s.plugins.module_utils import health

DS_UID = 'ds-1'


def node(name, ready='True', cordoned=None):
    meta = {'name': name}
    spec = {}
    if cordoned:
        spec['unschedulable'] = True
        if cordoned != 'other':
            meta['annotations'] = {du.CORDON_ANNOTATION: cordoned}
    return {'metadata': meta, 'spec': spec, 'status': {'conditions': [{'type': 'Ready', 'status': ready}]}}


def ds(desired):
    return {'metadata': {'name': 'kube-flannel-ds', 'namespace': 'kube-system', 'uid': DS_UID},
            'status': {'desiredNumberScheduled': desired}}


def pod(name, node_name, ready=True):
    return {'metadata': {'name': name, 'uid': name, 'ownerReferences': [{'kind': 'DaemonSet', 'uid': DS_UID}]},
            'spec': {'nodeName': node_name},
            'status': {'phase': 'Running', 'conditions': [{'type': 'Ready', 'status': 'True' if ready else 'False'}]}}


@pytest.mark.parametrize('value, parsed', [(0, ('count', 0)), (3, ('count', 3)), ('3', ('count', 3)),
                                           ('30%', ('percent', 30)), ('0%', ('percent', 0)), ('100%', ('percent', 100))])
def test_max_unhealthy_count_or_percentage(value, parsed):
    assert health.parse_max_unhealthy(value) == parsed


@pytest.mark.parametrize('value', [-1, '-1', '3.0', '30 %', ' 3', '150%', '%', '', True, 2.5, None, '\uff13', '30%%', [3]])
def test_max_unhealthy_refuses_anything_else(value):
    with pytest.raises(health.HealthError, match='max_unhealthy'):
        health.parse_max_unhealthy(value)


def test_percentage_rounds_down_like_machinehealthcheck():
    assert health.allowed(('percent', 30), 10) == 3
    assert health.allowed(('percent', 30), 3) == 0
    assert health.allowed(('count', 2), 3) == 2


def test_notready_and_foreign_cordon_count_netmedic_cordon_does_not():
    nodes = [node('a'), node('b', ready='False'), node('c', cordoned='other'), node('d', cordoned='job-7')]
    verdict = health.evaluate(nodes, [], 2, required=['d'])
    assert verdict['passed'] is True and verdict['unhealthy_count'] == 2 and verdict['total'] == 4
    assert [(e['name'], e['reason']) for e in verdict['unhealthy']] == [
        ('b', 'NotReady (False)'), ('c', 'cordoned by someone else')]
    assert verdict['netmedic_cordoned'] == [{'node': 'd', 'by': 'job-7'}]
    stopped = health.evaluate(nodes, [], '25%')
    assert stopped['passed'] is False and stopped['allowed'] == 1
    assert health.summary(stopped, '25%') == (
        '2 unhealthy, more than max_unhealthy=25% (1 of 4 Nodes): Node b: NotReady (False); Node c: cordoned by someone else')


def test_daemonset_pods_not_ready_and_missing_count():
    nodes = [node('a'), node('b'), node('c')]
    verdict = health.evaluate(nodes, [(ds(3), [pod('f-a', 'a'), pod('f-b', 'b', ready=False)])], 1)
    assert verdict['unhealthy_count'] == 2 and verdict['passed'] is False
    assert [e['kind'] for e in verdict['unhealthy']] == ['Pod', 'DaemonSet']
    assert verdict['unhealthy'][0] == {'kind': 'Pod', 'name': 'kube-system/f-b', 'node': 'b',
                                       'reason': 'kube-system/kube-flannel-ds pod Running, not Ready'}


def test_unknown_required_node_fails_the_gate():
    verdict = health.evaluate([node('a')], [], 5, required=['ghost'])
    assert verdict['passed'] is False and verdict['missing_nodes'] == ['ghost']
    assert health.summary(verdict, 5) == 'Node(s) unknown to the API: ghost'


@pytest.mark.parametrize('ref', ['Kube-Flannel', 'a/b/c', '', 'ns/'])
def test_daemonset_refs_are_validated(ref):
    with pytest.raises(health.HealthError, match='daemonsets entries'):
        health.parse_daemonset(ref)
