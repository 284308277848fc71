"""Retention of cni_ipam_gc's per-run backup directories (issue 10 hole 11: 'per-run GC backup directories'
were never pruned), in the shared code path ipam_gc.py (the module and the C-8 pod)."""

from __future__ import annotations

import datetime
import os
import shutil

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import ipam_gc

NOW = datetime.datetime(2026, 12, 2, 12, 0, 0, tzinfo=datetime.timezone.utc)


def _runs(tmp_path, days):
    names = []
    for d in days:
        name = '%s-%d' % ((NOW - datetime.timedelta(days=d)).strftime('%Y%m%dT%H%M%SZ'), 100 + d)
        (tmp_path / name / 'var' / 'lib' / 'cni').mkdir(parents=True)
        (tmp_path / name / 'manifest.json').write_text('{"catalog": "N-1"}')
        names.append(name)
    return names


def test_keep_count_removes_oldest_and_check_mode_removes_nothing(tmp_path):
    names = _runs(tmp_path, (40, 30, 20, 10, 1))
    plan = ipam_gc.prune_run_dirs(str(tmp_path), keep_count=2, check_mode=True, now=NOW)
    assert plan['removed'] == [str(tmp_path / n) for n in names[:3]]
    assert all((tmp_path / n).is_dir() for n in names)
    done = ipam_gc.prune_run_dirs(str(tmp_path), keep_count=2, now=NOW)
    assert done == plan
    assert sorted(os.listdir(tmp_path)) == sorted(names[3:])
    assert ipam_gc.prune_run_dirs(str(tmp_path), keep_count=2, now=NOW)['removed'] == []


def test_keep_days_never_removes_the_newest_nor_protected_nor_foreign(tmp_path):
    names = _runs(tmp_path, (40, 30, 20))
    (tmp_path / 'notes').mkdir()
    (tmp_path / '20200101T000000Z-1.txt').write_text('x')
    os.symlink(str(tmp_path / names[0]), str(tmp_path / '20200101T000000Z-2'))
    done = ipam_gc.prune_run_dirs(str(tmp_path), keep_days=7, protect=[str(tmp_path / names[1])], now=NOW)
    assert done['removed'] == [str(tmp_path / names[0])]
    assert (tmp_path / names[1]).is_dir() and (tmp_path / names[2]).is_dir()       # protected; newest
    assert (tmp_path / 'notes').is_dir() and (tmp_path / '20200101T000000Z-1.txt').exists()
    assert os.path.islink(tmp_path / '20200101T000000Z-2')


@pytest.mark.parametrize('limits', [{}, {'keep_count': 0, 'keep_days': 0}])
def test_no_limit_removes_nothing_and_missing_dir_is_empty(tmp_path, limits):
    names = _runs(tmp_path, (400, 300))
    assert ipam_gc.prune_run_dirs(str(tmp_path), now=NOW, **limits) == {
        'removed': [], 'kept': [str(tmp_path / n) for n in names], 'errors': []}
    assert ipam_gc.prune_run_dirs(str(tmp_path / 'absent'), keep_count=1) == {'removed': [], 'kept': [], 'errors': []}


def test_a_directory_without_run_gcs_manifest_is_never_a_candidate(tmp_path):
    """One retention for the module and the C-8 pod: ownership is run_gc's manifest, not the name alone."""
    names = _runs(tmp_path, (40, 30, 1))
    (tmp_path / names[0] / 'manifest.json').write_text('{"catalog": "X"}')
    (tmp_path / names[1] / 'manifest.json').unlink()
    assert ipam_gc.prune_run_dirs(str(tmp_path), keep_days=7, now=NOW)['removed'] == []


def test_a_directory_that_cannot_be_removed_is_an_error_not_a_stop(tmp_path, monkeypatch):
    names = _runs(tmp_path, (40, 30, 1))
    real = shutil.rmtree

    def rmtree(path, *a, **kw):
        if path.endswith(names[0]):
            raise OSError(16, 'Device or resource busy')
        return real(path, *a, **kw)

    monkeypatch.setattr(shutil, 'rmtree', rmtree)   # HostFS.rmtree calls it
    done = ipam_gc.prune_run_dirs(str(tmp_path), keep_days=7, now=NOW)
    assert done['removed'] == [str(tmp_path / names[1])]
    assert len(done['errors']) == 1 and 'busy' in done['errors'][0]
    assert str(tmp_path / names[0]) in done['kept']


def test_bad_limits_raise(tmp_path):
    _runs(tmp_path, (3, 2))
    with pytest.raises(ValueError):
        ipam_gc.prune_run_dirs(str(tmp_path), keep_count=-1, now=NOW)
