from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils.versions import Version, VersionError, fixed_in, is_at_least

# The fixed GKE builds of catalog N-1 (seeds 000/001).
N1_FIXED = ['1.22.17-gke.3100', '1.23.16-gke.200', '1.24.9-gke.3200', '1.25.6-gke.200']


@pytest.mark.parametrize('text, release, vendor, build', [
    ('1.24.9', (1, 24, 9), None, None),
    ('v1.18', (1, 18), None, None),
    ('1.24.9-gke.3200', (1, 24, 9), 'gke', 3200),
    ('v1.28.3-gke.1090000', (1, 28, 3), 'gke', 1090000),
    ('v0.15.1.11-7e95fe23-aliyun', (0, 15, 1, 11), 'aliyun', None),
    ('v0.15.1.4-e02c8f12-aliyun', (0, 15, 1, 4), 'aliyun', None),
    ('v1.20.11-aliyun.1', (1, 20, 11), 'aliyun', 1),
    (' 1.16 ', (1, 16), None, None),
])
def test_parse(text, release, vendor, build):
    v = Version(text)
    assert v.release == release
    assert v.vendor == vendor
    assert v.build == build


@pytest.mark.parametrize('bad', ['', 'latest', 'gke-1.24', '1..2', 'v', None, '-1.2'])
def test_parse_rejects(bad):
    with pytest.raises(VersionError, match='not a version:'):
        Version(bad)


@pytest.mark.parametrize('a, b', [
    ('1.24.9', '1.24.10'),
    ('1.9', '1.10'),
    ('1.24.9', '1.24.9-gke.3200'),          # a bare release never counts as the fixed build
    ('1.24.9-gke.200', '1.24.9-gke.3200'),
    ('1.24.9-gke.3200', '1.24.10'),
    ('1.28.3-gke.1089999', '1.28.3-gke.1090000'),
    ('v0.15.1.4-e02c8f12-aliyun', 'v0.15.1.11-7e95fe23-aliyun'),
    ('v0.15.1-aliyun', 'v0.15.1.11-7e95fe23-aliyun'),
    ('1.16', '1.18.0'),
])
def test_order(a, b):
    assert Version(a) < Version(b)
    assert Version(b) > a
    assert not Version(a) >= b


def test_equal_ignores_missing_zero_parts_and_commit_hashes():
    assert Version('1.24') == '1.24.0'
    assert Version('v0.15.1.11-7e95fe23-aliyun') == Version('0.15.1.11-deadbeef-aliyun')
    assert hash(Version('1.24')) == hash(Version('1.24.0'))
    assert Version('1.24') != '1.25'


def test_is_at_least():
    assert is_at_least('v1.20.4-aliyun.1', '1.20')
    assert not is_at_least('1.16.9', '1.18')


@pytest.mark.parametrize('version, fixed', [
    ('1.21.14-gke.100', False),      # older than every listed line
    ('1.22.17-gke.3000', False),
    ('1.22.17-gke.3100', True),
    ('1.23.16-gke.200', True),
    ('1.23.15-gke.9000', False),
    ('1.24.9', False),               # bare release: not known to carry the fix
    ('1.24.9-gke.3200', True),
    ('1.25.6-gke.100', False),
    ('1.26.1-gke.100', True),        # newer than every listed line
])
def test_fixed_in_n1(version, fixed):
    assert fixed_in(version, N1_FIXED) is fixed


def test_fixed_in_needs_a_fix():
    with pytest.raises(VersionError, match='fixed_in needs at least one fixed version'):
        fixed_in('1.2.3', [])
