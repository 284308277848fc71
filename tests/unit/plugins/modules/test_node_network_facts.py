"""node_network_facts: the gathering function over a fixture node, and the module entry point."""

from __future__ import annotations

import json

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import node_facts

from ..conftest import STANDARD_BINARIES, NodeTree, fixture_reply, fixture_text, standard_replies


def gather(node, runner, **params):
    return node_facts.gather(runner, params, root=str(node.root), kernel_release='6.1.0-56-amd64')


def ids(facts):
    return sorted((f['id'], f['severity']) for f in facts['findings'])


def ack_flannel(node, migrated=False, leftover=False):
    node.copy('cni/10-flannel.conflist.ack-after' if migrated else 'cni/10-flannel.conflist.ack-before',
              '/etc/cni/net.d/10-flannel.conflist')
    node.copy('flannel/subnet.env', '/run/flannel/subnet.env')
    if migrated:
        node.host_local('cb0', '/run/cni/networks/cb0')
    if leftover or not migrated:
        node.host_local('cb0', '/var/lib/cni/networks/cb0')


def test_ack_flannel_node_before_migration(node, make_runner):
    ack_flannel(node)
    node.socket('/run/containerd/containerd.sock')
    node.copy('resolv/stub-resolv.conf', '/etc/resolv.conf')
    node.copy('resolv/systemd-upstream.conf', '/run/systemd/resolve/resolv.conf')
    runner = make_runner()
    facts = gather(node, runner)

    assert facts['errors'] == []
    assert facts['probes'] == list(node_facts.PROBES)
    ct = facts['conntrack']
    assert (ct['available'], ct['count'], ct['max'], ct['usage_percent'], ct['buckets'], ct['hashsize']) == (True, 16, 16, 100.0, 4096, 4096)
    events = ct['table_full_events']
    assert (events['source'], events['count']) == ('dmesg', 10)
    assert events['last'] == '[    4.512457] nf_conntrack: nf_conntrack: table full, dropping packet'

    assert facts['ports']['conflict'] is False
    assert facts['ports']['ip_local_port_range'] == '32768 60999'

    iv = facts['ipvs']
    assert (iv['available'], iv['version'], iv['table_size'], iv['services'], iv['real_servers']) == (True, '1.2.1', 4096, 3, 4)
    assert iv['schedulers_in_use'] == ['lc', 'rr', 'wrr']
    assert iv['modules_loaded'] == ['ip_vs', 'ip_vs_lc', 'ip_vs_rr', 'ip_vs_sh', 'ip_vs_wrr']
    assert iv['timeouts'] == {'available': True, 'tcp': 900, 'tcpfin': 120, 'udp': 300}

    assert facts['cni']['default'] == '10-flannel.conflist'
    ip = facts['ipam']
    (cb0,) = ip['networks']
    assert (cb0['name'], cb0['data_dir'], cb0['allocated'], cb0['size'], cb0['free']) == ('cb0', '/var/lib/cni/networks', 5, 5, 0)
    assert cb0['exhausted'] is True
    assert cb0['range_source'] == 'flannel:/run/flannel/subnet.env'
    assert cb0['tmpfs'] is False
    assert [(d['path'], d['exists'], d['fstype']) for d in ip['data_dirs']] == [
        ('/var/lib/cni/networks', True, 'rootfs'), ('/var/run/cni/networks', False, 'tmpfs')]
    fl = ip['flannel']
    assert (fl['detected'], fl['network'], fl['tmpfs'], fl['legacy_dir_exists'], fl['run_dir_exists']) == (True, 'cb0', False, True, False)

    cbr0, cni0 = facts['bridges']['bridges']
    assert (cbr0['name'], cbr0['admin_up'], cbr0['port_mtus'], cbr0['mtu_mismatch']) == ('cbr0', False, [1460, 1500], True)
    assert (cni0['name'], cni0['admin_up'], cni0['ports']) == ('cni0', False, [])
    assert facts['neighbors']['counts'] == {'FAILED': 2, 'PERMANENT': 1, 'DELAY': 2, 'STALE': 2}
    assert facts['neighbors']['unresolved'] == 2
    assert facts['dns']['stub'] is True and facts['dns']['agree'] is False
    assert facts['runtime']['name'] == 'containerd' and facts['runtime']['source'] == 'socket'

    assert ids(facts) == [
        ('D-11', 'info'), ('N-1', 'critical'), ('N-2', 'critical'), ('N-5', 'info'), ('N-6', 'warning'),
        ('N-7', 'info'), ('N-8', 'critical'), ('N-8', 'critical'), ('N-8', 'warning'),
    ]
    assert facts['summary'] == {'critical': 4, 'warning': 2, 'info': 3}
    assert [f['severity'] for f in facts['findings']][:4] == ['critical'] * 4
    by_id = {f['id']: f for f in facts['findings']}
    assert by_id['N-1']['remediation'] == 'netmedic.k8s.cni_ipam_gc'
    assert by_id['N-1']['evidence']['path'] == '/var/lib/cni/networks/cb0'
    assert by_id['N-2']['remediation'] == 'netmedic.k8s.conntrack_limit'
    assert by_id['N-2']['evidence']['table_full_events'] == 10
    assert by_id['N-7']['remediation'] == 'netmedic.k8s.flannel_config'
    assert all(f['remediation'] for f in facts['findings'])
    # Read-only: exactly these commands, nothing else.
    assert sorted(runner.fake.calls) == sorted(standard_replies())


def test_ack_flannel_node_after_migration(node, make_runner):
    ack_flannel(node, migrated=True)
    facts = gather(node, make_runner())
    (cb0,) = facts['ipam']['networks']
    assert cb0['data_dir'] == '/var/run/cni/networks'
    assert cb0['tmpfs'] is True
    assert cb0['config_match'] == 'exact'
    assert facts['ipam']['flannel']['tmpfs'] is True
    assert facts['ipam']['flannel']['config_data_dir_tmpfs'] is True
    # The option and the config name the same directory: scanned once.
    assert [d['path'] for d in facts['ipam']['data_dirs']] == ['/var/lib/cni/networks', '/var/run/cni/networks']
    assert facts['ipam']['data_dirs'][1]['configured_by'] == ['option', '/etc/cni/net.d/10-flannel.conflist']
    assert 'N-7' not in [f['id'] for f in facts['findings']]


def test_migration_with_leftover_legacy_directory_is_not_done(node, make_runner):
    ack_flannel(node, migrated=True, leftover=True)
    facts = gather(node, make_runner())
    fl = facts['ipam']['flannel']
    assert fl['run_dir_exists'] and fl['legacy_dir_exists']
    assert fl['tmpfs'] is False
    assert ('N-7', 'info') in ids(facts)
    # Both directories are reported; the leftover matches the config by name only.
    matches = {(n['data_dir'], n['config_match']) for n in facts['ipam']['networks']}
    assert matches == {('/var/lib/cni/networks', 'name'), ('/var/run/cni/networks', 'exact')}


def test_gke_node_with_kubelet_endpoint(node, make_runner):
    node.copy('cni/10-containerd-net.conflist.gke', '/etc/cni/net.d/10-containerd-net.conflist')
    node.host_local('gke-pod-network', '/var/lib/cni/networks/gke-pod-network')
    node.write('/proc/4242/comm', 'kubelet\n')
    node.write('/proc/4242/cmdline', '/home/kubernetes/bin/kubelet\0--container-runtime-endpoint=unix:///run/containerd/containerd.sock\0')
    facts = gather(node, make_runner())
    (net,) = facts['ipam']['networks']
    assert (net['allocated'], net['containers'], net['size'], net['free'], net['used_percent']) == (4, 2, 65787, 65783, 0.8)
    assert [s['ranges'] for s in net['range_sets']] == [['10.8.3.1-10.8.3.254'], ['fd00:10:8:3::1-fd00:10:8:3::ffff']]
    assert 'N-1' not in [f['id'] for f in facts['findings']]
    assert facts['ipam']['flannel'] == {'detected': False, 'tmpfs': None}
    rt = facts['runtime']
    assert (rt['name'], rt['source'], rt['endpoint_source']) == ('containerd', 'kubelet', 'kubelet command line (pid 4242)')


def test_issue13_one_kubelet_endpoint_lookup_survives_an_unreadable_kubelet_config(node, make_runner):
    """Issue 13: node_facts had its own copy of the kubelet endpoint lookup, which broke the runtime
    probe when /var/lib/kubelet/config.yaml could not be read; runtime.kubelet_endpoint (also used by
    cni_ipam_gc and stale_pod_process) goes on to the sockets.  The probe now answers as that one lookup."""
    from ansible_collections.netmedic.k8s.plugins.module_utils import runtime
    from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS

    node.socket('/run/containerd/containerd.sock')
    (node.root / 'var/lib/kubelet/config.yaml').mkdir(parents=True)  # read -> EISDIR, not "missing"
    facts = gather(node, make_runner(), probes=['runtime'])
    assert facts['errors'] == []
    rt = facts['runtime']
    assert (rt['available'], rt['name'], rt['source'], rt['endpoint_source']) == (True, 'containerd', 'socket', None)
    assert runtime.kubelet_endpoint(HostFS(str(node.root))) == (rt['endpoint'], rt['endpoint_source']) == (None, None)
    # The kubelet's command line still decides, through the same lookup.
    node.write('/proc/4242/comm', 'kubelet\n')
    node.write('/proc/4242/cmdline', 'kubelet\0--container-runtime-endpoint=unix:///var/run/crio/crio.sock\0')
    rt = gather(node, make_runner(), probes=['runtime'])['runtime']
    assert (rt['name'], rt['source'], rt['endpoint_source']) == ('crio', 'kubelet', 'kubelet command line (pid 4242)')
    assert runtime.kubelet_endpoint(HostFS(str(node.root))) == (rt['endpoint'], rt['endpoint_source'])


def test_bare_node_reports_unavailable_and_never_runs_ipvsadm(tmp_path, make_runner):
    bare = NodeTree(tmp_path / 'bare')
    bare.copy('proc/mounts-host.txt', '/proc/mounts')
    runner = make_runner(binaries={'ipvsadm': '/usr/sbin/ipvsadm'}, replies={})
    facts = gather(bare, runner)
    assert facts['errors'] == []
    assert facts['findings'] == []
    assert runner.fake.calls == []  # no dmesg/journalctl/ip, and ipvsadm not without IPVS
    assert facts['conntrack']['available'] is False
    assert 'nf_conntrack kernel module is not loaded' in facts['conntrack']['reason']
    assert facts['conntrack']['table_full_events']['reason'] == 'dmesg is not installed; journalctl is not installed'
    assert facts['ports']['available'] is False
    assert facts['ipvs']['available'] is False
    assert facts['ipvs']['modules_available'] is False
    assert 'would try to load ip_vs' in facts['ipvs']['timeouts']['reason']
    assert facts['cni']['available'] is False
    assert facts['ipam']['networks'] == []
    assert facts['bridges'] == {'available': False, 'reason': 'ip (iproute2) is not installed', 'bridges': []}
    assert facts['neighbors']['available'] is False
    assert facts['runtime']['available'] is False and facts['runtime']['name'] is None
    assert facts['dns']['files'][0]['exists'] is False


def test_ipvs_without_ipvsadm(node, make_runner):
    binaries = {k: v for k, v in STANDARD_BINARIES.items() if k != 'ipvsadm'}
    facts = gather(node, make_runner(binaries=binaries), probes=['ipvs'])
    assert facts['ipvs']['available'] is True
    assert facts['ipvs']['timeouts'] == {'available': False, 'reason': 'ipvsadm is not installed'}
    assert facts['probes'] == ['ipvs']
    assert 'conntrack' not in facts


def test_a_broken_probe_never_stops_the_others(node, make_runner):
    replies = standard_replies()
    replies[('ip', '-j', 'neigh', 'show')] = (0, 'Object "neigh" is unknown, try "ip help".\n', '')
    replies[('ip', '-j', '-d', 'link', 'show')] = (1, '', 'RTNETLINK answers: Operation not permitted\n')
    replies[('ipvsadm', '-L', '--timeout')] = fixture_reply('ipvsadm/no-kernel-support')
    facts = gather(node, make_runner(replies=replies))
    errors = {e['probe']: e['error'] for e in facts['errors']}
    assert set(errors) == {'neighbors', 'bridges', 'ipvs'}
    assert 'invalid JSON' in errors['neighbors']
    assert 'Operation not permitted' in errors['bridges']
    assert 'Protocol not available' in errors['ipvs']
    assert facts['neighbors']['available'] is False and 'invalid JSON' in facts['neighbors']['reason']
    assert facts['bridges']['available'] is False
    assert facts['ipvs']['available'] is True and facts['ipvs']['timeouts']['available'] is False
    # Everything else was still gathered.
    assert facts['conntrack']['count'] == 16
    assert facts['ports']['available'] is True


def test_kernel_log_falls_back_to_the_journal(node, make_runner):
    replies = standard_replies()
    replies[('dmesg',)] = fixture_reply('dmesg/unprivileged')
    journal = '[    4.429214] node-1 kernel: nf_conntrack: table full, dropping packet\n'
    replies[('journalctl', '-k', '-o', 'short-monotonic', '--no-pager')] = (0, journal, '')
    events = gather(node, make_runner(replies=replies), probes=['conntrack'])['conntrack']['table_full_events']
    assert (events['available'], events['source'], events['count']) == (True, 'journalctl', 1)
    assert 'Operation not permitted' in events['fallback_reason']

    replies[('journalctl', '-k', '-o', 'short-monotonic', '--no-pager')] = fixture_reply('dmesg/journalctl-no-journal')
    events = gather(node, make_runner(replies=replies), probes=['conntrack'])['conntrack']['table_full_events']
    assert events['available'] is False
    assert events['source'] is None
    assert 'dmesg failed' in events['reason'] and 'no journal files' in events['reason']


def test_conntrack_thresholds(node, make_runner):
    node.sysctl('net.netfilter.nf_conntrack_count', 13)  # 81.2 %
    facts = gather(node, make_runner(), probes=['conntrack'], kernel_log=False)
    assert facts['conntrack']['table_full_events'] == {'available': False, 'reason': 'kernel_log=false'}
    assert ids(facts) == [('N-2', 'warning')]
    assert gather(node, make_runner(), probes=['conntrack'], kernel_log=False, conntrack_warn_percent=85)['findings'] == []
    assert ids(gather(node, make_runner(), probes=['conntrack'], kernel_log=False, conntrack_critical_percent=81)) == [('N-2', 'critical')]


def test_nodeport_overlap(node, make_runner):
    node.sysctl('net.ipv4.ip_local_port_range', '30000\t40000')
    facts = gather(node, make_runner(), probes=['ports'])
    (finding,) = facts['findings']
    assert (finding['id'], finding['severity'], finding['remediation']) == ('N-3', 'warning', 'netmedic.k8s.port_range')
    assert finding['evidence']['uncovered'] == ['30000-32767']
    node.sysctl('net.ipv4.ip_local_reserved_ports', '30000-32767')
    facts = gather(node, make_runner(), probes=['ports'])
    assert facts['ports']['covered_by_reserved'] is True
    assert facts['findings'] == []
    # Another cluster's NodePort range.
    facts = gather(node, make_runner(), probes=['ports'], nodeport_range='35000-36000')
    assert facts['ports']['uncovered'] == ['35000-36000'] and facts['findings'][0]['id'] == 'N-3'


def test_expected_neighbors_schedulers_and_pod_mtu(node, make_runner):
    facts = gather(node, make_runner(), probes=['neighbors', 'ipvs', 'bridges'],
                   expected_neighbors={'10.99.0.3': '52:54:00:12:34:22'}, ipvs_schedulers=['rr', 'wlc'],
                   bridges=['cbr0'], pod_mtu=1460)
    found = {(f['id'], f['severity']): f for f in facts['findings']}
    assert found[('N-6', 'critical')]['evidence']['lladdr'] == '0a:d2:2f:cf:41:bc'
    assert found[('N-4', 'warning')]['evidence']['missing'] == ['wlc']
    assert 'ip_vs_wlc' in found[('N-4', 'warning')]['summary']
    assert facts['bridges']['bridges'][0]['expected_mtu'] == 1460


def test_invalid_and_versionless_cni_configs(node, make_runner):
    node.copy('cni/10-flannel.conflist.pasted-with-comment', '/etc/cni/net.d/10-flannel.conflist')
    node.copy('cni/10-flannel.conf.no-cniversion', '/etc/cni/net.d/20-flannel.conf')
    node.write('/etc/cni/net.d/README', 'not a config')
    facts = gather(node, make_runner(), probes=['cni'])
    assert [f['file'] for f in facts['cni']['files']] == ['10-flannel.conflist', '20-flannel.conf']
    assert facts['cni']['default'] == '20-flannel.conf'
    assert ids(facts) == [('C-5', 'warning'), ('D-7', 'warning')]


@pytest.mark.parametrize('params, message', [
    ({'nodeport_range': '30000-31000,32000'}, 'nodeport_range'),
    ({'nodeport_range': '32767-30000'}, 'nodeport_range'),
    ({'ipvs_schedulers': ['least-conn']}, 'unknown IPVS scheduler'),
    ({'expected_neighbors': {'10.0.0.1': 'zz'}}, 'not a MAC'),
    ({'expected_neighbors': {'vip': '00:11:22:33:44:55'}}, 'not an IP'),
    ({'conntrack_warn_percent': 0}, 'conntrack_warn_percent'),
    ({'conntrack_warn_percent': 96}, 'above conntrack_critical_percent'),
    ({'ipam_warn_percent': 101}, 'ipam_warn_percent'),
    ({'pod_mtu': 10}, 'pod_mtu'),
    ({'probes': ['arp']}, 'unknown probe'),
    ({'cni_conf_dir': 'etc/cni'}, 'absolute'),
    ({'ipam_data_dirs': ['relative']}, 'absolute'),
])
def test_bad_input_fails_before_reading(params, message, make_runner, tmp_path):
    runner = make_runner(replies={})
    with pytest.raises(node_facts.ParamError) as e:
        node_facts.gather(runner, params, root=str(tmp_path / 'never-read'))
    assert message in str(e.value)
    assert runner.fake.calls == []


# --- the module entry point ------------------------------------------------------

def _run_main(args, capsys):
    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.netmedic.k8s.plugins.modules import node_network_facts

    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        node_network_facts.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def test_main_returns_facts_twice_and_changes_nothing(capsys):
    rc, result = _run_main({'probes': ['ports', 'dns'], '_ansible_check_mode': True}, capsys)
    assert rc == 0
    assert result['changed'] is False
    assert result['ansible_facts']['netmedic'] == result['netmedic']
    facts = result['netmedic']
    assert facts['probes'] == ['ports', 'dns']
    with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
        assert facts['ports']['ip_local_port_range'] == ' '.join(f.read().split())
    assert facts['dns']['files'][0]['path'] == '/etc/resolv.conf'


def test_main_fails_on_bad_input(capsys):
    rc, result = _run_main({'nodeport_range': 'all'}, capsys)
    assert rc == 1
    assert result['failed'] is True
    assert 'nodeport_range' in result['msg']
    assert 'ansible_facts' not in result


def test_unreadable_network_directory_is_an_error_not_a_crash(node, make_runner):
    node.host_local('cb0', '/var/lib/cni/networks/cb0')
    node.host_local('gke-pod-network', '/var/lib/cni/networks/gke-pod-network')
    (node.root / 'var/lib/cni/networks/cb0/172.20.5.7').mkdir()  # named as an IP, cannot be read as a file
    facts = gather(node, make_runner(), probes=['ipam'])
    assert [e['probe'] for e in facts['errors']] == ['ipam']
    cb0, gke = facts['ipam']['networks']
    assert cb0['name'] == 'cb0' and 'cannot read /var/lib/cni/networks/cb0' in cb0['error']
    assert gke['name'] == 'gke-pod-network' and gke['allocated'] == 4  # the other network is still read
    assert facts['findings'] == []


def test_scheduler_check_is_unknown_without_module_lists(node, make_runner):
    (node.root / 'proc/modules').unlink()
    facts = gather(node, make_runner(), probes=['ipvs'], ipvs_schedulers=['lc'])
    assert facts['ipvs']['modules_available'] is False
    assert facts['ipvs']['schedulers_missing'] is None
    assert [f['id'] for f in facts['findings']] == ['N-5']  # no N-4: unknown is not missing
    # With the kernel's modules.builtin listing it, lc is available.
    node.write('/lib/modules/6.1.0-56-amd64/modules.builtin', 'kernel/net/netfilter/ipvs/ip_vs.ko\nkernel/net/netfilter/ipvs/ip_vs_lc.ko\n')
    facts = gather(node, make_runner(), probes=['ipvs'], ipvs_schedulers=['lc', 'sh'])
    assert facts['ipvs']['modules_builtin'] == ['ip_vs', 'ip_vs_lc']
    assert facts['ipvs']['schedulers_missing'] == ['sh']
    assert [f['id'] for f in facts['findings']] == ['N-4', 'N-5']


def test_conntrack_breakdown_opt_in(node, make_runner):
    ack_flannel(node)
    replies = standard_replies()
    replies[('conntrack', '-L')] = (0, fixture_text('conntrack/conntrack-L.txt'), '')
    runner = make_runner(binaries=dict(STANDARD_BINARIES, conntrack='/usr/sbin/conntrack'), replies=replies)
    facts = gather(node, runner, conntrack_breakdown=True)
    bd = facts['conntrack']['breakdown']
    assert (bd['available'], bd['total'], bd['by_protocol'], bd['dns']) == (True, 16, {'tcp': 10, 'udp': 6}, 4)
    n2 = next(f for f in facts['findings'] if f['id'] == 'N-2')
    assert 'keep-alive' in n2['summary'] and n2['evidence']['by_protocol'] == {'tcp': 10, 'udp': 6}

    # Off by default: no listing is run at all.
    runner = make_runner(binaries=dict(STANDARD_BINARIES, conntrack='/usr/sbin/conntrack'), replies=replies)
    assert 'breakdown' not in gather(node, runner)['conntrack']

    # Missing tool: reported, the rest of the probe still works.
    runner = make_runner()
    ct = gather(node, runner, conntrack_breakdown=True)['conntrack']
    assert ct['breakdown']['available'] is False and 'conntrack-tools' in ct['breakdown']['reason']
    assert ct['max'] == 16


def test_d9_nat_port_usage_per_destination(node, make_runner):
    """D-9: a destination using 80 of 100 NAT ports warns; at the capacity it is critical."""
    replies = standard_replies()
    replies[('conntrack', '-L')] = (0, fixture_text('conntrack/conntrack-L-snat.txt'), '')

    def run(**params):
        runner = make_runner(binaries=dict(STANDARD_BINARIES, conntrack='/usr/sbin/conntrack'), replies=replies)
        return gather(node, runner, probes=['conntrack'], kernel_log=False, conntrack_breakdown=True, **params)

    facts = run()
    assert facts['conntrack']['breakdown']['nat']['max_per_destination'] == 80
    assert 'D-9' not in [f['id'] for f in facts['findings']]  # 80 of 32767
    (d9,) = [f for f in run(nat_port_capacity=100)['findings'] if f['id'] == 'D-9']
    assert d9['severity'] == 'warning' and d9['evidence']['usage_percent'] == 80.0
    assert '10.98.0.2:8443' in d9['summary'] and '10.98.0.1' in d9['summary']
    assert [f['severity'] for f in run(nat_port_capacity=80)['findings'] if f['id'] == 'D-9'] == ['critical']
    assert 'D-9' not in [f['id'] for f in run(nat_port_capacity=100, nat_warn_percent=81)['findings']]


def test_d5_ipv4_only_listener_for_a_dual_stack_port(node, make_runner):
    node.copy('proc/net-tcp-listeners.txt', '/proc/net/tcp')
    node.copy('proc/net-tcp6-listeners.txt', '/proc/net/tcp6')
    facts = gather(node, make_runner(), probes=['listeners'], ipv6_ports=[7070, 8080, 1234])
    ls = facts['listeners']
    assert (ls['ipv4_only'], ls['ipv6'], ls['loopback_only']) == ([7070], [8080, 9090], [5050, 6060])
    assert (ls['ipv6_ports_ipv4_only'], ls['ipv6_ports_not_listening']) == ([7070], [1234])
    (d5,) = facts['findings']
    assert (d5['id'], d5['severity'], d5['evidence']['ipv4_only']) == ('D-5', 'warning', [7070])
    # Without ports to check: facts only, no finding.
    assert gather(node, make_runner(), probes=['listeners'])['findings'] == []


def test_d5_without_proc_net_tcp_is_unavailable_not_empty(node, make_runner):
    facts = gather(node, make_runner(), probes=['listeners'], ipv6_ports=[80])
    assert facts['listeners']['available'] is False and '/proc/net/tcp' in facts['listeners']['reason']
    assert facts['findings'] == []


def test_d11_queries_each_server_and_classifies(node, make_runner):
    asked = []
    answers = {'10.96.0.10': 'noerror', '10.244.1.5': 'nxdomain', '10.244.2.7': 'timeout'}

    def fake_query(server, name, qtype, timeout):
        asked.append((server, name, qtype, timeout))
        return {'server': server, 'name': name, 'type': qtype, 'result': answers[server], 'rcode': None,
                'answers': 0, 'truncated': False, 'ms': 1}

    facts = node_facts.gather(make_runner(), {'probes': ['dns'], 'dns_servers': list(answers), 'dns_timeout': 1.5},
                              root=str(node.root), kernel_release='6.1.0-56-amd64', dns_query=fake_query)
    assert asked == [(s, 'kubernetes.default.svc.cluster.local', 'A', 1.5) for s in answers]
    assert [q['result'] for q in facts['dns']['queries']] == ['noerror', 'nxdomain', 'timeout']
    (d11,) = [f for f in facts['findings'] if f['id'] == 'D-11' and 'queries' in f['evidence']]
    assert d11['severity'] == 'critical'
    assert '10.244.2.7: TIMEOUT' in d11['summary'] and '10.244.1.5: NXDOMAIN' in d11['summary']
    # No servers given: no query is sent at all.
    asked.clear()
    facts = node_facts.gather(make_runner(), {'probes': ['dns']}, root=str(node.root), dns_query=fake_query)
    assert asked == [] and 'queries' not in facts['dns']


@pytest.mark.parametrize('params,match', [
    ({'ipv6_ports': [0]}, 'ipv6_ports'),
    ({'ipv6_ports': [70000]}, 'ipv6_ports'),
    ({'dns_servers': ['kube-dns']}, 'not an IP address'),
    ({'dns_servers': ['10.0.0.1'] * 33}, 'at most 32'),
    ({'dns_names': []}, 'dns_names'),
    ({'dns_names': ['a..b']}, 'not a valid DNS name'),
    ({'dns_query_type': 'TXT'}, 'query type'),
    ({'dns_timeout': 0}, 'dns_timeout'),
    ({'nat_port_capacity': 0}, 'nat_port_capacity'),
    ({'nat_port_capacity': 70000}, 'nat_port_capacity'),
    ({'nat_warn_percent': 0}, 'nat_warn_percent'),
])
def test_new_inputs_refused_before_any_probe(params, match, make_runner):
    runner = make_runner(binaries={}, replies={})
    with pytest.raises(node_facts.ParamError, match=match):
        node_facts.gather(runner, params, root='/nonexistent')
    assert runner.fake.calls == []
