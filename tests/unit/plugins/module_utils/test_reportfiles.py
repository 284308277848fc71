"""reportfiles: unique names, exclusive private writes, the latest pointer, retention (issue #10 holes 11, 12)."""

from __future__ import annotations

import datetime
import os

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import reportfiles as rf

NOW = datetime.datetime(2026, 12, 1, 22, 0, 0, 123456, tzinfo=datetime.timezone.utc)


def test_issue10_h12_stamps_unique_within_the_same_microsecond():
    stamps = {rf.stamp(NOW) for _i in range(50)}
    assert len(stamps) == 50
    assert all(s.startswith('20261201T220000.123456Z-%d-' % os.getpid()) for s in stamps)
    assert rf.parse_time('change-report-%s' % stamps.pop()) == NOW
    assert rf.parse_time('change-report-20261125T201500Z') == datetime.datetime(2026, 11, 25, 20, 15, tzinfo=datetime.timezone.utc)
    assert rf.parse_time('change-report-latest') is None


def test_issue10_h12_write_new_is_exclusive_private_and_leaves_no_temp(tmp_path):
    target = tmp_path / 'r.json'
    rf.write_new(str(target), 'one')
    with pytest.raises(FileExistsError, match='File exists'):
        rf.write_new(str(target), 'two')
    assert target.read_text() == 'one' and oct(target.stat().st_mode & 0o777) == '0o600'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['r.json']


def test_issue10_h4_private_dir_created_0700_existing_left_alone(tmp_path):
    old = os.umask(0o022)
    try:
        assert rf.private_dir(str(tmp_path / 'a' / 'b')) is True
    finally:
        os.umask(old)
    assert oct((tmp_path / 'a' / 'b').stat().st_mode & 0o777) == '0o700'
    shared = tmp_path / 'shared'
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    assert rf.private_dir(str(shared)) is False and rf.dir_is_shared(str(shared))
    assert oct(shared.stat().st_mode & 0o777) == '0o755'


def test_issue10_h12_point_replaces_latest_symlink(tmp_path):
    for name in ('a.md', 'b.md'):
        (tmp_path / name).write_text(name)
        rf.point(str(tmp_path / 'latest.md'), str(tmp_path / name))
    assert os.readlink(str(tmp_path / 'latest.md')) == 'b.md' and (tmp_path / 'latest.md').read_text() == 'b.md'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.md', 'b.md', 'latest.md']


def _runs(days_ago):
    return [('r%d' % d, NOW - datetime.timedelta(days=d)) for d in days_ago]


def test_issue10_h11_retention_by_count_and_age():
    runs = _runs([0, 1, 2, 10, 40]) + [('unknown', None)]
    assert rf.plan_retention(runs, NOW) == []
    assert rf.plan_retention(runs, NOW, keep_count=3) == ['r40', 'r10']
    assert rf.plan_retention(runs, NOW, keep_days=7) == ['r40', 'r10']
    assert rf.plan_retention(runs, NOW, keep_count=4, keep_days=30) == ['r40']
    assert rf.plan_retention(runs, NOW, keep_count=1, protect=['r2']) == ['r40', 'r10', 'r1']


def test_issue10_h11_retention_refuses_negative():
    with pytest.raises(ValueError, match=r'0 \(keep all\) or positive'):
        rf.plan_retention(_runs([1]), NOW, keep_count=-1)


def test_issue10_h12_write_new_without_hard_links_still_exclusive(tmp_path, monkeypatch):
    def no_links(_src, _dst):
        raise PermissionError(1, 'Operation not permitted')

    monkeypatch.setattr(rf.os, 'link', no_links)
    target = tmp_path / 'r.md'
    rf.write_new(str(target), 'one')
    with pytest.raises(FileExistsError, match='File exists'):
        rf.write_new(str(target), 'two')
    assert target.read_text() == 'one' and oct(target.stat().st_mode & 0o777) == '0o600'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['r.md']
