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


# -- issue #10 hole 5: validate with kube-proxy's real Go types ------------------------------------

@pytest.mark.parametrize('settings, message', [
    ({'ipvs': {'udpTimeout': '\uff11\uff10s'}}, 'ASCII'),                       # full-width digits one, zero
    ({'ipvs': {'udpTimeout': '\u0661\u0660s'}}, 'ASCII'),                       # Arabic-Indic digits
    ({'ipvs': {'udpTimeout': '99999999999h'}}, 'out of range'),                 # beyond int64 nanoseconds
    ({'ipvs': {'tcpTimeout': '2562048h'}}, 'out of range'),
    ({'conntrack': {'tcpEstablishedTimeout': '9223372036854775808ns'}}, 'out of range'),
    ({'conntrack': {'maxPerCore': 2147483648}}, 'int32'),
    ({'conntrack': {'min': '99999999999'}}, 'int32'),
    ({'conntrack': {'maxPerCore': '\uff16\uff15\uff15\uff13\uff16'}}, 'integer'),
    ({'ipvs': {'excludeCIDRs': ['not-a-cidr']}}, 'not a CIDR'),
    ({'ipvs': {'excludeCIDRs': ['10.0.0.0']}}, 'not a CIDR'),                   # Go needs the prefix
    ({'ipvs': {'excludeCIDRs': ['10.0.0.0/255.0.0.0']}}, 'not a CIDR'),         # no netmask form in Go
    ({'ipvs': {'excludeCIDRs': ['10.0.0.0/33']}}, 'not a CIDR'),
    ({'ipvs': {'excludeCIDRs': ['fe80::/64%eth0']}}, 'not a CIDR'),
    ({'ipvs': {'excludeCIDRs': ['fe80::1%eth0/64']}}, 'not a CIDR'),            # zones refused by ParseCIDR
    ({'ipvs': {'excludeCIDRs': ['\uff11\uff10.0.0.0/8']}}, 'not a CIDR'),
    ({'ipvs': {'excludeCIDRs': ['10.0.0.0/\uff18']}}, 'not a CIDR'),
    ({'ipvs': {'excludeCIDRs': [' 10.0.0.0/8']}}, 'not a CIDR'),
    ({'ipvs': {'excludeCIDRs': [8]}}, 'not a CIDR'),
    ({'ipvs': {'excludeCIDRs': '10.0.0.0/8'}}, 'list'),
    ({'mode': 'kernelspace'}, 'unknown proxy mode'),                            # Windows only; these are Linux DaemonSets
    ({'mode': 'IPVS'}, 'unknown proxy mode'),
])
def test_issue10_h5_values_kube_proxy_rejects_are_refused(fixture_text, settings, message):
    text = fixture_text('kube_proxy/ack-scheduler.conf')
    with pytest.raises(kp.ConfigError, match=message):
        kp.plan(text, settings)


@pytest.mark.parametrize('text, nanoseconds', [
    ('2562047h47m16.854775807s', 9223372036854775807),                          # Go's maxDuration, exactly
    ('9223372036854775807ns', 9223372036854775807),
    ('1.5h', 5400 * 10 ** 9), ('10\u00b5s', 10000), ('10\u03bcs', 10000), ('+10s', 10 * 10 ** 9),
    ('.5s', 500 * 10 ** 6), ('1.s', 10 ** 9), ('0', 0), ('1h0m0s', 3600 * 10 ** 9),
])
def test_issue10_h5_go_duration_grammar_and_bounds(text, nanoseconds):
    assert kp.parse_duration_ns(text) == nanoseconds


def test_issue10_h5_valid_values_pass_and_are_written_as_given(fixture_text):
    text = fixture_text('kube_proxy/ack-scheduler.conf')
    new, changes = kp.plan(text, {'conntrack': {'maxPerCore': 2147483647},
                                  'ipvs': {'excludeCIDRs': ['10.0.0.1/8', 'fd00::/64'], 'udpTimeout': '2562047h'}})
    assert {c['path'] for c in changes} == {'conntrack.maxPerCore', 'ipvs.excludeCIDRs', 'ipvs.udpTimeout'}
    doc = kp.load(new)
    assert doc['conntrack']['maxPerCore'] == 2147483647
    assert list(doc['ipvs']['excludeCIDRs']) == ['10.0.0.1/8', 'fd00::/64']   # host bits allowed, as in Go
    assert doc['ipvs']['udpTimeout'] == '2562047h'


# -- issue #9 finding 2: never lower conntrack.maxPerCore / conntrack.min unless allow_lower -----------

def _conntrack_doc(max_per_core, minimum='null'):
    return ('apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n'
            'conntrack:\n  maxPerCore: %s\n  min: %s\nmode: ipvs\n' % (max_per_core, minimum))


def test_issue9_f2_lower_max_per_core_is_kept_not_written():
    text = _conntrack_doc(131072)
    result = kp.plan_edit(text, {'conntrack': {'maxPerCore': 65536}})
    assert result['text'] is text and result['changes'] == []
    assert result['kept'] == [{'path': 'conntrack.maxPerCore', 'current': 131072, 'requested': 65536,
                               'reason': 'lower than the current value (allow_lower=true lowers it)'}]
    assert kp.plan(text, {'conntrack': {'maxPerCore': 65536}}) == (text, [])


@pytest.mark.parametrize('settings, current', [
    ({'conntrack.min': 65536}, 131072),            # unset min: kube-proxy's default 131072 is the current value
    ({'conntrack.maxPerCore': 16384}, 32768),      # unset maxPerCore: default 32768
    ({'conntrack.maxPerCore': 0}, 32768),          # 0 is lower too
])
def test_issue9_f2_unset_fields_compare_with_kube_proxy_defaults(settings, current):
    text = ('apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n'
            'conntrack:\n  maxPerCore: null\n')
    result = kp.plan_edit(text, settings)
    assert result['changes'] == [] and result['text'] is text
    assert [(k['path'], k['current']) for k in result['kept']] == [(next(iter(settings)), current)]


def test_issue9_f2_allow_lower_lowers_and_raising_needs_nothing():
    text = _conntrack_doc(131072, 262144)
    result = kp.plan_edit(text, {'conntrack': {'maxPerCore': 65536, 'min': 131072}}, allow_lower=True)
    assert result['kept'] == []
    assert kp.load(result['text'])['conntrack']['maxPerCore'] == 65536
    assert kp.load(result['text'])['conntrack']['min'] == 131072
    raised = kp.plan_edit(text, {'conntrack': {'maxPerCore': 262144}})
    assert raised['kept'] == [] and kp.load(raised['text'])['conntrack']['maxPerCore'] == 262144


def test_issue9_f2_a_current_value_that_is_not_an_integer_is_not_guessed():
    with pytest.raises(kp.ConfigError, match='not an integer'):
        kp.plan_edit(_conntrack_doc('"lots"'), {'conntrack': {'maxPerCore': 65536}})


# -- issue #9 finding 1: require_mode (W-4 must never switch the proxy mode) ----------------------------

@pytest.mark.parametrize('mode_line, shown', [('mode: iptables\n', 'iptables'), ('mode: ""\n', 'iptables'),
                                              ('', 'iptables'), ('mode: nftables\n', 'nftables')])
def test_issue9_f1_require_mode_refuses_other_modes(mode_line, shown):
    text = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n' + mode_line
    with pytest.raises(kp.ConfigError, match='proxy mode is %s' % shown):
        kp.plan_edit(text, {'ipvs': {'udpTimeout': '10s'}}, require_mode=['ipvs'])


def test_issue9_f1_require_mode_passes_where_the_mode_already_is_ipvs(fixture_text):
    text = fixture_text('kube_proxy/ack-scheduler.conf')
    result = kp.plan_edit(text, {'ipvs': {'udpTimeout': '10s'}}, require_mode=['ipvs'])
    assert [c['path'] for c in result['changes']] == ['ipvs.udpTimeout']
    assert kp.load(result['text'])['mode'] == 'ipvs'
    assert kp.effective_mode('apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n') == 'iptables'


# -- issue #10 hole 5 (continued): fields and modes older kube-proxy rejects ----------------------------

@pytest.mark.parametrize('settings, version, gaps', [
    ({'conntrack': {'udpTimeout': '30s'}}, 'v1.28.5', [('conntrack.udpTimeout', '1.29')]),
    ({'conntrack': {'udpStreamTimeout': '120s'}}, 'v1.24.9-gke.3200', [('conntrack.udpStreamTimeout', '1.29')]),
    ({'mode': 'nftables'}, 'v1.28.0', [('mode', '1.29')]),
    ({'ipvs': {'udpTimeout': '10s'}}, 'v1.17.3', [('ipvs.udpTimeout', '1.18')]),
    ({'mode': 'nftables', 'conntrack': {'udpTimeout': '30s'}}, 'v1.29.0', []),
    ({'mode': 'ipvs', 'ipvs': {'udpTimeout': '10s'}}, 'v1.18.0', []),
])
def test_issue10_h5_fields_older_kube_proxy_rejects(settings, version, gaps):
    found = kp.unsupported(kp.validate_settings(settings), version)
    assert [(g['path'], g['needs']) for g in found] == gaps
