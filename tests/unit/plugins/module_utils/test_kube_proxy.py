from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import kube_proxy as kp


@pytest.mark.parametrize('text, seconds', [
    ('10s', 10), ('300ms', 0.3), ('1m30s', 90), ('1h', 3600), ('0', 0), ('0s', 0), ('1.5s', 1.5), ('2h45m', 9900),
])
def test_parse_duration(text, seconds):
    assert kp.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize('bad', ['10', 'ten seconds', '10 s', '-10s', '10S', '', 's', '1d', 10, None, True])
def test_parse_duration_rejects(bad):
    with pytest.raises(kp.ConfigError):
        kp.parse_duration(bad)


def test_maxpercore_added_to_ack_config_keeps_comments_and_order(fixture_text):
    # The scheduler example minus its ipvs block: the fault state of C-2.
    text = fixture_text('kube_proxy/ack-maxpercore.conf')
    new, changes = kp.plan(text, {'ipvs': {'scheduler': 'lc'}})
    assert changes == [{'path': 'ipvs.scheduler', 'before': None, 'after': 'lc'}]
    # Everything before stays byte for byte, the new key is appended.
    assert new.startswith(text.rstrip('\n'))
    assert new.endswith('ipvs:\n  scheduler: lc\n')
    assert '# 需设置maxPerCore至合理值' in new
    assert kp.summary(new)['ipvs.scheduler'] == 'lc'


def test_edit_in_place_matches_the_documented_result(fixture_text):
    before = fixture_text('kube_proxy/ack-scheduler.conf').replace('scheduler: lc', 'scheduler: rr')
    new, changes = kp.plan(before, {'ipvs.scheduler': 'lc'})
    assert changes == [{'path': 'ipvs.scheduler', 'before': 'rr', 'after': 'lc'}]
    assert new == fixture_text('kube_proxy/ack-scheduler.conf')


def test_no_change_returns_the_same_text(fixture_text):
    text = fixture_text('kube_proxy/ack-scheduler.conf')
    new, changes = kp.plan(text, {'conntrack': {'maxPerCore': 65536}, 'ipvs': {'scheduler': 'lc'}, 'mode': 'ipvs'})
    assert changes == []
    assert new is text


def test_udp_timeout_equal_durations_are_no_change(fixture_text):
    text = fixture_text('kube_proxy/ack-udptimeout.conf')
    assert kp.plan(text, {'ipvs': {'udpTimeout': '10000ms'}}) == (text, [])
    new, changes = kp.plan(text, {'ipvs': {'udpTimeout': '5s'}})
    assert changes == [{'path': 'ipvs.udpTimeout', 'before': '10s', 'after': '5s'}]
    assert '# 如果ipvs键不存在,需要添加此键。' in new


def test_kubeadm_nulls_are_filled(fixture_text):
    text = fixture_text('kube_proxy/kubeadm-1.28.conf')
    new, changes = kp.plan(text, {'conntrack.maxPerCore': '65536', 'ipvs.scheduler': 'lc', 'mode': 'ipvs',
                                  'ipvs.udpTimeout': '10s'})
    assert [c['path'] for c in changes] == ['conntrack.maxPerCore', 'ipvs.scheduler', 'mode', 'ipvs.udpTimeout']
    assert changes[0] == {'path': 'conntrack.maxPerCore', 'before': None, 'after': 65536}
    assert '  maxPerCore: 65536\n' in new
    assert 'mode: ipvs\n' in new
    assert '  udpTimeout: 10s\n' in new
    # Untouched fields keep their exact form.
    assert '      infoBufferSize: "0"\n' in new
    assert new.count('\n') == text.count('\n')


@pytest.mark.parametrize('settings, message', [
    ({'ipvs': {'scheduler': 'leastconn'}}, 'unknown IPVS scheduler'),
    ({'ipvs': {'scheduler': 'LC'}}, 'unknown IPVS scheduler'),
    ({'ipvs': {'udpTimeout': '10'}}, 'malformed duration'),
    ({'ipvs': {'udpTimeout': 10}}, 'Go duration'),
    ({'conntrack': {'maxPerCore': -1}}, 'integer'),
    ({'conntrack': {'maxPerCore': 'lots'}}, 'integer'),
    ({'conntrack': {'maxPerCore': True}}, 'integer'),
    ({'mode': 'userspace'}, 'unknown proxy mode'),
    ({'ipvs': {'strictARP': 'yes'}}, 'true or false'),
    ({'ipvs': {'shceduler': 'lc'}}, 'unsupported KubeProxyConfiguration field'),
    ({}, 'non-empty'),
    ('ipvs.scheduler=lc', 'non-empty dictionary'),
])
def test_bad_settings_are_refused(fixture_text, settings, message):
    with pytest.raises(kp.ConfigError) as e:
        kp.plan(fixture_text('kube_proxy/ack-scheduler.conf'), settings)
    assert message in str(e.value)


@pytest.mark.parametrize('text, message', [
    ('kind: KubeProxyConfiguration\nmode ipvs\n  bad: [\n', 'not valid YAML'),
    ('- a\n- b\n', 'must be a YAML mapping'),
    ('apiVersion: v1\nkind: ConfigMap\n', 'expected KubeProxyConfiguration'),
    ('apiVersion: kubeproxy.config.k8s.io/v1beta9\nkind: KubeProxyConfiguration\n', 'expected kubeproxy.config.k8s.io/v1alpha1'),
    ('apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nipvs: 5\n', 'not a mapping'),
])
def test_broken_documents_are_refused(text, message):
    with pytest.raises(kp.ConfigError) as e:
        kp.plan(text, {'ipvs': {'scheduler': 'lc'}})
    assert message in str(e.value)


def test_values_that_need_quotes_keep_them(fixture_text):
    text = fixture_text('kube_proxy/kubeadm-1.28.conf').replace('mode: ""', 'mode: ipvs')
    new, changes = kp.plan(text, {'mode': ''})
    assert changes == [{'path': 'mode', 'before': 'ipvs', 'after': ''}]
    assert kp.summary(new)['mode'] == ''
    assert kp.load(new)['mode'] == ''
