from __future__ import annotations

from ansible_collections.netmedic.k8s.plugins.module_utils import resolv


def _file(path, text):
    entry = {'path': path, 'exists': text is not None}
    entry.update(resolv.parse_resolv_conf(text or ''))
    return entry


def test_parse_real_and_stub_files(fixture_text):
    assert resolv.parse_resolv_conf(fixture_text('resolv/host-etc-resolv.conf')) == {
        'nameservers': ['10.255.255.53'], 'search': [], 'options': []}
    stub = resolv.parse_resolv_conf(fixture_text('resolv/stub-resolv.conf'))
    assert stub == {'nameservers': ['127.0.0.53'], 'search': ['.'], 'options': ['edns0', 'trust-ad']}
    assert resolv.is_stub(stub)
    upstream = resolv.parse_resolv_conf(fixture_text('resolv/systemd-upstream.conf'))
    assert upstream['nameservers'] == ['10.128.0.2', '169.254.169.254']
    assert upstream['search'] == ['c.project.internal', 'google.internal']
    assert not resolv.is_stub(upstream)


def test_comments_and_last_search_wins():
    parsed = resolv.parse_resolv_conf('# x\nnameserver 1.1.1.1 # c\n; y\ndomain a\nsearch b c\nnameserver\n')
    assert parsed == {'nameservers': ['1.1.1.1'], 'search': ['b', 'c'], 'options': []}


def test_compare_single_file(fixture_text):
    result = resolv.compare([_file('/etc/resolv.conf', fixture_text('resolv/host-etc-resolv.conf')),
                             _file('/run/systemd/resolve/resolv.conf', None)])
    assert result == {'agree': None, 'stub': False, 'effective_nameservers': ['10.255.255.53'], 'differences': []}


def test_compare_stub_against_upstream(fixture_text):
    result = resolv.compare([_file('/etc/resolv.conf', fixture_text('resolv/stub-resolv.conf')),
                             _file('/run/systemd/resolve/resolv.conf', fixture_text('resolv/systemd-upstream.conf'))])
    assert result['agree'] is False
    assert result['stub'] is True
    assert result['effective_nameservers'] == ['10.128.0.2', '169.254.169.254']
    assert {d['field'] for d in result['differences']} == {'nameservers', 'search'}


def test_compare_same_servers_in_other_order_agree():
    a = _file('/a', 'nameserver 1.1.1.1\nnameserver 8.8.8.8\n')
    b = _file('/b', 'nameserver 8.8.8.8\nnameserver 1.1.1.1\n')
    assert resolv.compare([a, b])['agree'] is True
    c = _file('/c', 'nameserver 9.9.9.9\n')
    diff = resolv.compare([a, c])
    assert diff['agree'] is False
    assert diff['differences'] == [{'field': 'nameservers', 'paths': ['/a', '/c'],
                                    'values': [['1.1.1.1', '8.8.8.8'], ['9.9.9.9']]}]
