"""Issue 15 item 5: kube-proxy's IPVS mode is deprecated since Kubernetes 1.35.

Right after ``Using ipvs Proxier`` a 1.35+ kube-proxy logs a deprecation message at error level (and records a
Warning event, reason ``IPVSDeprecation``, on its Node) and keeps running in IPVS mode. The C-2/C-7 log verification
must read that start-up as a success, and network_audit reports IPVS-mode clusters on >= 1.35 with the way off it.

The messages are the ones in k8s.io/kubernetes cmd/kube-proxy/app/server_linux.go (createProxier): v1.35.0 and
v1.36.0 carry the first, v1.37.2 the second (read from the Go module cache). ``real-v1.37.2-ipvs-start.log`` is the
unedited start of the real kube-proxy v1.37.2 in IPVS mode on a VM lab node (tests/unit/fixtures/kube_proxy_logs/README.md).
"""

from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import audit as au
from ansible_collections.netmedic.k8s.plugins.module_utils import daemonset as dsu
from ansible_collections.netmedic.k8s.plugins.module_utils import kube_proxy as kp

MSG_135 = "The ipvs proxier is now deprecated and may be removed in a future release. Please use 'nftables' instead."
MSG_137 = ("The ipvs proxier has been deprecated and will be disabled by default in Kubernetes 1.40 and removed in "
           "Kubernetes 1.43. Migrate to the 'nftables' proxier instead.")


def start_log(message, version_line='I1202 10:31:07.512093     912 server.go:530] "Version info" version="v1.37.2"'):
    """The start of a kube-proxy log in IPVS mode (klog text format), with the deprecation line."""
    return '\n'.join([
        version_line,
        'I1202 10:31:07.914340     912 server.go:282] "Successfully retrieved NodeIPs" NodeIPs=["10.77.0.11"]',
        'I1202 10:31:08.208127     912 server_linux.go:191] "Using ipvs Proxier"',
        'E1202 10:31:08.208232     912 server_linux.go:193] "%s"' % message,
        'I1202 10:31:08.301655     912 proxier.go:332] "IPVS scheduler not specified, use rr by default" ipFamily="IPv4"',
    ])


def test_issue15_item5_real_kube_proxy_137_ipvs_start_is_success(fixture_text):
    """The captured log: the deprecation line follows 'Using ipvs Proxier' and must not fail the C-2/C-7 check."""
    text = fixture_text('kube_proxy_logs/real-v1.37.2-ipvs-start.log')
    assert 'E1202 10:24:07.119935     403 server_linux.go:193] "%s"' % MSG_137 in text.splitlines()
    preset = dsu.PRESETS['kube-proxy-ipvs']
    verdict, line = dsu.check_log(text, dsu.compile_patterns(preset['success'], 'success'),
                                  dsu.compile_patterns(preset['failure'], 'failure'))
    assert (verdict, line) == ('ok', 'I1202 10:24:07.049810     403 server_linux.go:191] "Using ipvs Proxier"')


def test_the_module_knows_both_real_messages():
    assert kp.IPVS_DEPRECATION_MESSAGES == {'1.35': MSG_135, '1.37': MSG_137}


@pytest.mark.parametrize('message', [MSG_135, MSG_137], ids=['1.35-1.36', '1.37'])
def test_issue15_item5_ipvs_start_with_deprecation_is_success(message):
    """C-2/C-7: the deprecation line is not a failure; 'Using ipvs Proxier' is the success line."""
    preset = dsu.PRESETS[dsu.preset_for('auto', 'kube-proxy', 'ipvs')]
    verdict, line = dsu.check_log(start_log(message), dsu.compile_patterns(preset['success'], 'success'),
                                  dsu.compile_patterns(preset['failure'], 'failure'))
    assert verdict == 'ok'
    assert line.endswith('"Using ipvs Proxier"')


@pytest.mark.parametrize('message', [MSG_135, MSG_137], ids=['1.35-1.36', '1.37'])
def test_deprecation_line_is_recognised(message):
    import re
    assert re.search(kp.IPVS_DEPRECATION_RE, 'E1202 10:31:08.208232     912 server_linux.go:193] "%s"' % message)


def test_issue15_item5_missing_scheduler_module_still_fails():
    """1.37 no longer falls back to iptables: it exits with the error, which C-2 must still catch."""
    log = ('E1202 10:40:01.100000     977 run.go:72] "command failed" err="can\'t use the IPVS proxier: '
           'IPVS proxier will not be used because the following required kernel modules are not loaded: [ip_vs_lc]"')
    preset = dsu.PRESETS['kube-proxy-ipvs']
    verdict, line = dsu.check_log(log, dsu.compile_patterns(preset['success'], 'success'),
                                  dsu.compile_patterns(preset['failure'], 'failure'))
    assert verdict == 'failed' and 'ip_vs_lc' in line


VERSIONS = [('v1.34.3', False), ('v1.35.0', True), ('1.37.2', True), ('v1.36.2-gke.1200', True),
            ('v1.33.1-aliyun.1', False), ('weird', None)]


@pytest.mark.parametrize('version, deprecated', VERSIONS)
def test_ipvs_deprecated_by_version(version, deprecated):
    assert kp.ipvs_deprecated(version) is deprecated


def test_way_off_is_nftables_on_current_kernels_and_iptables_on_old_ones():
    assert kp.ipvs_way_off({'a': '6.1.0-56-amd64', 'b': '5.15.0-1071-gke'})['mode'] == 'nftables'
    way = kp.ipvs_way_off({'a': '6.1.0-56-amd64', 'b': '4.19.91-26.al7.x86_64', 'c': '5.10.0-35-amd64'})
    assert way == {'mode': 'iptables', 'kernels_older_than_5_13': ['b', 'c'], 'kernel_unknown': []}
    way = kp.ipvs_way_off({'a': '6.1.0', 'b': ''})
    assert way['mode'] is None and way['kernel_unknown'] == ['b']


IPVS_CONF = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  scheduler: lc\n'
IPT_CONF = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ""\n'


def nodes(*kernels):
    return [{'metadata': {'name': 'n%d' % i}, 'status': {'nodeInfo': {'kernelVersion': k}}} for i, k in enumerate(kernels, 1)]


def c0(version, conf, kernels=('6.1.0-56-amd64',), events=()):
    findings, facts = au.audit({'version': version, 'nodes': nodes(*kernels), 'events': list(events),
                                'kube_proxy_configs': {'kube-system/kube-proxy': conf}}, ['C-0'])
    return [f for f in findings if f['id'] == 'C-0'], facts


def test_issue15_item5_audit_reports_ipvs_on_137_with_nftables_as_the_way_off():
    found, facts = c0('v1.37.2', IPVS_CONF)
    assert facts['kube_proxy_modes'] == {'kube-system/kube-proxy': 'ipvs'}
    assert [f['severity'] for f in found] == ['warning']
    assert found[0]['evidence']['way_off']['mode'] == 'nftables'
    assert 'mode: nftables' in found[0]['remediation'] and 'kube-proxy-nftables' in found[0]['remediation']


def test_issue15_item5_audit_old_kernel_means_iptables_and_cleanup():
    found = c0('v1.35.1', IPVS_CONF, kernels=('6.1.0-56-amd64', '4.19.91-26.al7.x86_64'))[0]
    assert found[0]['evidence']['way_off'] == {'mode': 'iptables', 'kernels_older_than_5_13': ['n2'], 'kernel_unknown': []}
    assert 'mode: iptables' in found[0]['remediation'] and '--cleanup' in found[0]['remediation']


@pytest.mark.parametrize('version, conf', [('v1.34.2', IPVS_CONF), ('v1.37.2', IPT_CONF), ('v1.37.2', None)])
def test_no_finding_before_135_or_outside_ipvs(version, conf):
    assert c0(version, conf)[0] == []


def test_unreadable_version_or_config_is_unknown_not_silence():
    assert [f['severity'] for f in c0('nonsense', IPVS_CONF)[0]] == ['unknown']
    assert [f['severity'] for f in c0('v1.37.2', 'mode: [ipvs')[0]] == ['unknown']


def test_events_decide_only_when_no_configmap_was_found():
    event = {'reason': 'IPVSDeprecation', 'type': 'Warning', 'involvedObject': {'kind': 'Node', 'name': 'n1'},
             'message': MSG_137}
    for configs in ({}, {'kube-system/kube-proxy': None}):  # none found, or one without config.conf
        findings = au.audit({'version': 'v1.37.2', 'nodes': nodes('6.1.0'), 'events': [event],
                             'kube_proxy_configs': configs}, ['C-0'])[0]
        assert [f['severity'] for f in findings] == ['warning']
        assert findings[0]['evidence']['nodes_with_deprecation_event'] == ['n1']
    # a switched cluster: the ConfigMap says iptables, an old event does not count
    assert c0('v1.37.2', IPT_CONF, events=[event])[0] == []


def test_c0_is_a_default_check():
    assert 'C-0' in au.DEFAULT_CHECKS
