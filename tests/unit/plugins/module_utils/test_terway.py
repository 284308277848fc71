from __future__ import annotations

import json
import re

import pytest
import yaml

from ansible_collections.netmedic.k8s.plugins.module_utils import terway as tw

CNI_IPVLAN = '{\n  "cniVersion": "0.3.1",\n  "name": "terway",\n  "eniip_virtual_type": "IPVlan",\n  "type": "terway"\n}\n'


@pytest.fixture
def eni_config(fixture_text):
    return {'eni_conf': fixture_text('terway/lab-seed-eni_conf.json'), '10-terway.conf': CNI_IPVLAN,
            'disable_network_policy': 'false'}


def test_in_cluster_loadbalance_beside_eni_conf(eni_config):
    new, changes = tw.plan(eni_config, {'in_cluster_loadbalance': True})
    assert changes == [{'path': 'in_cluster_loadbalance', 'before': None, 'after': 'true'}]
    assert new['in_cluster_loadbalance'] == 'true'
    assert new['eni_conf'] is eni_config['eni_conf']          # the JSON document is not rewritten
    assert 'in_cluster_loadbalance' not in json.loads(new['eni_conf'])
    assert tw.warnings(new, {'in_cluster_loadbalance': True}) == []
    assert tw.verify_hint({'in_cluster_loadbalance': True}) == {
        'container': 'policy', 'success_patterns': ['enable-in-cluster-loadbalance=true']}
    again, more = tw.plan(new, {'in_cluster_loadbalance': True})
    assert again is new and more == []


def test_disable_network_policy_as_documented(eni_config):
    # Seed 002: `disable_network_policy: "true"` added to the ConfigMap's data.
    new, changes = tw.plan(eni_config, {'disable_network_policy': True})
    assert changes == [{'path': 'disable_network_policy', 'before': 'false', 'after': 'true'}]
    assert new['disable_network_policy'] == 'true' and eni_config['disable_network_policy'] == 'false'
    assert tw.verify_hint({'disable_network_policy': True}) is None    # the catalog gives no log line for it
    assert tw.plan(dict(eni_config, disable_network_policy='True'), {'disable_network_policy': True})[1] == []


def test_fixed_config_from_the_seed_gets_a_second_vswitch_keeping_order(fixture_text):
    data = yaml.safe_load(fixture_text('terway/eni-config-fixed.yaml'))['data']
    vswitches = {'cn-beijing-h': ['vsw-2zem796p76viir02c****', 'vsw-2zeadded00000000001']}
    new, changes = tw.plan(data, {'eni_conf': {'vswitches': vswitches}})
    assert changes == [{'path': 'eni_conf.vswitches', 'before': {'cn-beijing-h': ['vsw-2zem796p76viir02c****']},
                        'after': vswitches}]
    conf = json.loads(new['eni_conf'], object_pairs_hook=list)
    assert [k for k, _v in conf] == ['vswitches', 'security_group', 'security_groups']
    assert json.loads(new['eni_conf'])['security_groups'] == ['sg-bp1b39sjf3v49c33****', 'sg-bp1bpdfg35tg****']
    assert tw.summary(new)['vswitches'] == vswitches


def test_warning_when_not_ipvlan(eni_config):
    data = dict(eni_config, **{'10-terway.conf': CNI_IPVLAN.replace('IPVlan', 'Veth')})
    assert 'eniip_virtual_type=Veth' in tw.warnings(data, {'in_cluster_loadbalance': True})[0]


def test_broken_eni_conf_is_refused(eni_config):
    with pytest.raises(tw.TerwayError, match='eni_conf is not valid JSON'):
        tw.plan(dict(eni_config, eni_conf='{"vswitches": {,}'), {'in_cluster_loadbalance': True})


def test_not_an_eni_config():
    with pytest.raises(tw.TerwayError, match='no eni_conf key'):
        tw.plan({'config': 'x'}, {'disable_network_policy': True})


def test_create_from_nothing():
    new, changes = tw.plan({}, {'eni_conf': {'vswitches': {'cn-beijing-h': ['vsw-1']}}})
    assert json.loads(new['eni_conf']) == {'vswitches': {'cn-beijing-h': ['vsw-1']}}
    assert len(changes) == 1


@pytest.mark.parametrize('settings, words', [
    ({}, 'nothing to set: give disable_network_policy, in_cluster_loadbalance or eni_conf'),
    ({'in_cluster_loadbalance': 'yes'}, "in_cluster_loadbalance must be true or false, got 'yes'"),
    ({'eni_conf': {}}, 'eni_conf must be a non-empty dictionary'),
    ({'eni_conf': {'vswitches': {'zone': []}}}, 'eni_conf.vswitches.zone must be a non-empty list of vSwitch IDs'),
    ({'eni_conf': {'vswitches': {'zone': ['subnet-1']}}}, 'eni_conf.vswitches.zone must be a non-empty list of vSwitch IDs'),
    ({'eni_conf': {'max_pool_size': 'five'}}, "eni_conf.max_pool_size must be a int, got 'five'"),
    ({'eni_conf': {'max_pool_size': True}}, 'eni_conf.max_pool_size must be a int, got True'),
])
def test_bad_settings(settings, words):
    with pytest.raises(tw.TerwayError, match=re.escape(words)):
        tw.validate(settings)


def test_issue10_c6_partial_vswitches_map_keeps_the_other_zones(eni_config):
    """Issue 10, C-6 partial: an eni_conf key used to replace the whole value, so adding one zone's vSwitch
    dropped every other zone (pods there got no IP). eni_conf maps are deep-merged; a zone's list is replaced."""
    two_zones = json.loads(eni_config['eni_conf'])
    two_zones['vswitches']['cn-hangzhou-j'] = ['vsw-lab00000000000000002']
    data = dict(eni_config, eni_conf=json.dumps(two_zones, indent=2) + '\n')
    zone_i = ['vsw-lab00000000000000001', 'vsw-lab00000000000000003']
    new, changes = tw.plan(data, {'eni_conf': {'vswitches': {'cn-hangzhou-i': zone_i}}})
    conf = json.loads(new['eni_conf'])
    assert conf['vswitches'] == {'cn-hangzhou-i': ['vsw-lab00000000000000001', 'vsw-lab00000000000000003'],
                                 'cn-hangzhou-j': ['vsw-lab00000000000000002']}
    assert conf['eni_tags'] == two_zones['eni_tags'] and conf['security_group'] == two_zones['security_group']
    assert changes == [{'path': 'eni_conf.vswitches', 'before': two_zones['vswitches'], 'after': conf['vswitches']}]
    # A nested map the user names partly is merged too; idempotent.
    again, more = tw.plan(new, {'eni_conf': {'vswitches': {'cn-hangzhou-i': zone_i}}})
    assert again is new and more == []
    tagged, _c = tw.plan(new, {'eni_conf': {'eni_tags': {'team': 'net'}}})
    assert json.loads(tagged['eni_conf'])['eni_tags'] == {'ack.aliyun.com': 'c0ffee0000000000000000000000000', 'team': 'net'}


@pytest.mark.parametrize('images, expected', [
    (['registry/acs/terway:v1.2.0'], 'v1.2.0'),
    (['registry/acs/terway:v1.5.5.1-g2c3ad8a-aliyun', 'registry/acs/terway:v1.2.1'], 'v1.2.1'),   # the lowest one counts
])
def test_issue10_c6_terway_version_from_the_daemonset_image(images, expected):
    daemonsets = [{'metadata': {'name': 'terway-%d' % i},
                   'spec': {'template': {'spec': {'containers': [{'name': 'terway', 'image': image},
                                                                 {'name': 'policy', 'image': 'calico/node:v3.2.0'}]}}}}
                  for i, image in enumerate(images)]
    assert str(tw.terway_version(daemonsets)) == expected


@pytest.mark.parametrize('version, problem', [
    ('v1.2.0', None),
    ('v1.10.3-gabc-aliyun', None),
    ('v1.1.9', 'Terway v1.1.9 is older than v1.2.0'),
    (None, 'cannot read the Terway version'),
])
def test_issue10_c6_in_cluster_loadbalance_gated_on_terway_1_2(version, problem):
    """Issue 10, C-6 partial: in_cluster_loadbalance exists from Terway v1.2.0; older or unknown: refuse."""
    found = tw.lb_version_problem(tw.Version(version) if version else None)
    if problem is None:
        assert found is None
    else:
        assert problem in found


def test_issue10_c6_unknown_version_when_no_terway_container():
    daemonsets = [{'metadata': {'name': 'terway-eniip'},
                   'spec': {'template': {'spec': {'containers': [{'name': 'terway', 'image': 'r/terway@sha256:ab'}]}}}}]
    assert tw.terway_version(daemonsets) is None
    assert tw.terway_version([]) is None
