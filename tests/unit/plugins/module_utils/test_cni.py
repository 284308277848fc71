from __future__ import annotations

from ansible_collections.netmedic.k8s.plugins.module_utils import cni


def test_conf_files_order_and_extensions():
    names = ['99-loopback.conf', '10-flannel.conflist', 'README', '.10-hidden.conf', '05-x.json', '10-flannel.conflist.bak']
    assert cni.conf_files(names) == ['05-x.json', '10-flannel.conflist', '99-loopback.conf']


def test_ack_flannel_conflist_before_migration(fixture_text):
    conf = cni.parse_conf(fixture_text('cni/10-flannel.conflist.ack-before'), '10-flannel.conflist')
    assert conf['valid'] is True and conf['error'] is None
    assert conf['format'] == 'conflist'
    assert conf['name'] == 'cb0'
    assert conf['cniVersion'] == '0.3.1'
    assert conf['types'] == ['flannel', 'portmap']
    assert conf['flannel'] is True
    assert conf['plugins'][0]['delegate'] == {'hairpinMode': True, 'isDefaultGateway': True}
    # Flannel delegates to host-local in the default dataDir, ranges from subnet.env.
    assert conf['ipam'] == [{'network': 'cb0', 'plugin': 'flannel', 'type': 'host-local',
                             'data_dir': '/var/lib/cni/networks', 'range_sets': None,
                             'ranges_from': 'flannel_subnet_env', 'subnet_file': None}]


def test_ack_flannel_conflist_after_migration(fixture_text):
    conf = cni.parse_conf(fixture_text('cni/10-flannel.conflist.ack-after'), '10-flannel.conflist')
    assert conf['valid'] is True
    assert conf['plugins'][0]['dataDir'] == '/var/run/cni/flannel'
    assert conf['plugins'][0]['ipam'] == {'type': 'host-local', 'dataDir': '/var/run/cni/networks'}
    assert conf['ipam'][0]['data_dir'] == '/var/run/cni/networks'


def test_documentation_pasted_with_comment_is_invalid_not_fatal(fixture_text):
    conf = cni.parse_conf(fixture_text('cni/10-flannel.conflist.pasted-with-comment'), '10-flannel.conflist')
    assert conf['valid'] is False
    assert conf['error'].startswith('invalid JSON')
    assert conf['types'] == [] and conf['ipam'] == []


def test_single_plugin_without_cniversion(fixture_text):
    conf = cni.parse_conf(fixture_text('cni/10-flannel.conf.no-cniversion'), '10-flannel.conf')
    assert conf['valid'] is True
    assert conf['format'] == 'conf'
    assert conf['cniVersion'] is None
    assert conf['types'] == ['flannel']


def test_gke_dual_stack_ranges(fixture_text):
    conf = cni.parse_conf(fixture_text('cni/10-containerd-net.conflist.gke'), '10-containerd-net.conflist')
    assert conf['types'] == ['ptp', 'portmap']
    assert conf['plugins'][0]['mtu'] == 1460
    (entry,) = conf['ipam']
    assert entry['network'] == 'gke-pod-network'
    assert entry['data_dir'] == '/var/lib/cni/networks'
    assert entry['range_sets'] == [
        [{'subnet': '10.8.3.0/24', 'rangeStart': None, 'rangeEnd': None, 'gateway': None}],
        [{'subnet': 'fd00:10:8:3::/112', 'rangeStart': None, 'rangeEnd': None, 'gateway': None}],
    ]


def test_configs_used_with_the_real_plugin(fixture_text):
    legacy = cni.parse_conf(fixture_text('host-local/config-small-legacy.json'), 'x.conf')
    assert legacy['ipam'][0]['range_sets'] == [[{'subnet': '172.20.5.0/29', 'rangeStart': None, 'rangeEnd': None, 'gateway': None}]]
    assert legacy['ipam'][0]['data_dir'] == '/tmp/hl/data'
    dual = cni.parse_conf(fixture_text('host-local/config-dual-stack.json'), 'x.json')
    assert len(dual['ipam'][0]['range_sets']) == 2


def test_structural_errors():
    assert cni.parse_conf('[]', 'a.conf')['error'] == 'expected a JSON object, got list'
    assert 'plugins' in cni.parse_conf('{"name": "x", "type": "bridge"}', 'a.conflist')['error']
    assert 'plugins' in cni.parse_conf('{"name": "x", "plugins": []}', 'a.conflist')['error']
    assert 'type' in cni.parse_conf('{"name": "x", "plugins": [{}]}', 'a.conflist')['error']
    assert 'name' in cni.parse_conf('{"type": "bridge"}', 'a.conf')['error']
    # A .conf that holds a list is read as a list (content decides).
    assert cni.parse_conf('{"name": "x", "plugins": [{"type": "bridge"}]}', 'a.conf')['format'] == 'conflist'


def test_mark_default_picks_first_valid():
    confs = [{'valid': False}, {'valid': True}, {'valid': True}]
    assert [c['default'] for c in cni.mark_default(confs)] == [False, True, False]


def test_subnet_env_and_flannel_ranges(fixture_text):
    env = cni.parse_subnet_env(fixture_text('flannel/subnet.env'))
    assert env['FLANNEL_SUBNET'] == '172.20.5.1/29'
    assert env['FLANNEL_MTU'] == '1450'
    assert cni.flannel_range_sets(env) == [[{'subnet': '172.20.5.0/29', 'rangeStart': None, 'rangeEnd': None, 'gateway': None}]]
    dual = cni.parse_subnet_env('FLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_IPV6_SUBNET="fd00:10:244:1::1/64"\n# c\nJUNK\n')
    assert [s[0]['subnet'] for s in cni.flannel_range_sets(dual)] == ['10.244.1.0/24', 'fd00:10:244:1::/64']
    assert cni.flannel_range_sets({'FLANNEL_SUBNET': 'bogus'}) == []
