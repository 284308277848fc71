from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import ipvs


def test_proc_ip_vs_without_services(fixture_text):
    parsed = ipvs.parse_proc_ip_vs(fixture_text('proc/net-ip_vs-empty.txt'))
    assert parsed == {'version': '1.2.1', 'table_size': 4096, 'services': []}


def test_proc_ip_vs_with_services_decodes_hex_endpoints(fixture_text):
    parsed = ipvs.parse_proc_ip_vs(fixture_text('proc/net-ip_vs-services.txt'))
    assert parsed['version'] == '1.2.1'
    assert parsed['table_size'] == 4096
    services = {(s['protocol'], s['address']): s for s in parsed['services']}
    assert set(services) == {('TCP', '10.96.0.10:53'), ('UDP', '10.96.0.10:53'), ('TCP', '10.96.0.1:443')}
    dns = services[('TCP', '10.96.0.10:53')]
    assert dns['scheduler'] == 'rr'
    assert [r['address'] for r in dns['real_servers']] == ['10.244.2.7:53', '10.244.1.5:53']
    assert dns['real_servers'][0]['forward'] == 'Masq'
    assert dns['real_servers'][0]['weight'] == 1
    assert services[('UDP', '10.96.0.10:53')]['scheduler'] == 'lc'
    api = services[('TCP', '10.96.0.1:443')]
    assert api['scheduler'] == 'wrr'
    assert api['real_servers'][0]['address'] == '192.168.0.10:6443'


def test_proc_ip_vs_ipv6_and_fwmark_lines():
    text = ('IP Virtual Server version 1.2.1 (size=4096)\n'
            'Prot LocalAddress:Port Scheduler Flags\n'
            '  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n'
            'TCP  [fd00:0000:0000:0000:0000:0000:0000:000a]:0050 rr persistent 360\n'
            '  -> [fd00:0000:0000:0000:0000:0000:0000:0014]:1F90      Masq    1      0          0\n'
            'FWM  00000001 wlc\n')
    parsed = ipvs.parse_proc_ip_vs(text)
    assert parsed['services'][0]['address'] == '[fd00:0000:0000:0000:0000:0000:0000:000a]:80'
    assert parsed['services'][0]['flags'] == 'persistent 360'
    assert parsed['services'][0]['real_servers'][0]['address'].endswith(']:8080')
    assert parsed['services'][1] == {'protocol': 'FWM', 'address': '00000001', 'scheduler': 'wlc', 'flags': '', 'real_servers': []}


def test_proc_modules(fixture_text):
    modules = ipvs.parse_modules(fixture_text('proc/modules-ipvs-in-use.txt'))
    by_name = {m['name']: m for m in modules}
    assert len(modules) == 14
    assert by_name['ip_vs']['used_by'] == ['ip_vs_sh', 'ip_vs_lc', 'ip_vs_wrr', 'ip_vs_rr']
    assert by_name['ip_vs']['refcount'] == 11
    assert by_name['ip_vs_rr']['refcount'] == 1
    assert by_name['ip_vs_sh']['used_by'] == []
    assert by_name['nf_conntrack']['state'] == 'Live'
    names = [m['name'] for m in modules]
    assert ipvs.ipvs_module_names(names) == ['ip_vs', 'ip_vs_lc', 'ip_vs_rr', 'ip_vs_sh', 'ip_vs_wrr']
    assert ipvs.schedulers_of(ipvs.ipvs_module_names(names)) == ['lc', 'rr', 'sh', 'wrr']


def test_modules_builtin():
    text = 'kernel/net/unix/unix.ko\nkernel/net/netfilter/ipvs/ip_vs.ko\nkernel/net/netfilter/ipvs/ip_vs_rr.ko.xz\n\n'
    assert ipvs.parse_modules_builtin(text) == ['unix', 'ip_vs', 'ip_vs_rr']


def test_scheduler_validation_and_missing(fixture_text):
    assert ipvs.scheduler_module('lc') == 'ip_vs_lc'
    assert ipvs.scheduler_module('mh') == 'ip_vs_mh'
    for bad in ('least', '', None, 'ip_vs_lc', 'LC'):
        with pytest.raises(ipvs.SchedulerError, match='unknown IPVS scheduler'):
            ipvs.scheduler_module(bad)
    loaded = [m['name'] for m in ipvs.parse_modules(fixture_text('proc/modules-ipvs-in-use.txt'))]
    assert ipvs.missing_schedulers(['rr', 'lc', 'wlc', 'sed'], loaded) == ['wlc', 'sed']
    assert ipvs.missing_schedulers(['wlc'], loaded, builtin_modules=['ip_vs_wlc']) == []


def test_timeouts_as_ipvsadm_prints_them(fixture_text):
    assert ipvs.parse_timeout(fixture_text('ipvsadm/timeout-default.txt')) == {'tcp': 900, 'tcpfin': 120, 'udp': 300}
    assert ipvs.parse_timeout(fixture_text('ipvsadm/timeout-after-set-900-120-10.txt')) == {'tcp': 900, 'tcpfin': 120, 'udp': 10}
    # Lab facts give the same strings.
    assert ipvs.parse_timeout('Timeout (tcp tcpfin udp): 900 120 300') == {'tcp': 900, 'tcpfin': 120, 'udp': 300}
    assert ipvs.parse_timeout(fixture_text('ipvsadm/no-kernel-support.stderr')) is None
    assert ipvs.parse_timeout('') is None
