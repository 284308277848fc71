"""cilium_lb_maps (catalog N-10) against real eBPF maps on the host kernel.

A private BPF filesystem is mounted under the test's temporary directory, and two hash
maps named like Cilium's are pinned there with bpftool: the services map 60/64 full
(93.75 %), the backends map 10/64. The module gets those paths (``maps``); every check
dumps the maps with bpftool independently of the module. Nothing under /sys/fs/bpf is
touched.
"""

import json
import subprocess
from pathlib import Path

import pytest

SERVICES, BACKENDS = 'cilium_lb4_services_v2', 'cilium_lb4_backends_v2'


def bpftool(*args, data=None):
    proc = subprocess.run(['bpftool'] + list(args), input=data, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def count(path):
    return len(json.loads(bpftool('-j', 'map', 'dump', 'pinned', str(path))))


@pytest.fixture
def bpffs(sandbox, tmp_path, require):  # sandbox: fails (never skips) without root
    require('bpftool')  # fails naming the package when missing (issue 12)
    root = tmp_path / 'bpffs'
    root.mkdir()
    subprocess.run(['mount', '-t', 'bpf', 'bpf', str(root)], check=True)
    try:
        maps = {}
        for name, key, entries in ((SERVICES, 12, 60), (BACKENDS, 4, 10)):
            path = root / name
            bpftool('map', 'create', str(path), 'type', 'hash', 'key', str(key), 'value', '12', 'entries', '64', 'name', name[:15])
            lines = ''.join('map update pinned %s key hex %s value hex %s\n'
                            % (path, ' '.join('%02x' % b for b in i.to_bytes(key, 'little')), ' '.join(['07'] * 12))
                            for i in range(1, entries + 1))
            bpftool('batch', 'file', '-', data=lines)
            maps[name] = path
        yield maps
    finally:
        subprocess.run(['umount', str(root)], check=False)


def args(bpffs, tmp_path, **extra):
    return dict({'maps': [str(bpffs[SERVICES]), str(bpffs[BACKENDS])], 'backup_dir': str(tmp_path / 'backups')}, **extra)


def test_report_then_check_mode_then_clear_then_idempotent(bpffs, tmp_path, run):
    original = json.loads(bpftool('-j', 'map', 'dump', 'pinned', str(bpffs[SERVICES])))

    report = run('cilium_lb_maps', args(bpffs, tmp_path))
    assert not report.failed, report.output
    assert report['changed'] is False
    services, backends = report['maps']
    assert (services['name'], services['count'], services['max_entries'], services['percent']) == ('cilium_lb4_serv', 60, 64, 93.8)
    assert (services['over_threshold'], services['action'], backends['over_threshold']) == (True, 'keep', False)
    assert any('state=cleared' in w for w in report.get('warnings', []))

    checked = run('cilium_lb_maps', args(bpffs, tmp_path, state='cleared'), check=True, diff=True)
    assert not checked.failed, checked.output
    assert checked['changed'] is True
    assert [m['deleted'] for m in checked['maps']] == [60, 0]
    assert checked['after'] == {str(bpffs[SERVICES]): 0, str(bpffs[BACKENDS]): 10}
    assert (count(bpffs[SERVICES]), count(bpffs[BACKENDS])) == (60, 10), 'check mode deleted entries'
    assert not (tmp_path / 'backups').exists()

    cleared = run('cilium_lb_maps', args(bpffs, tmp_path, state='cleared'))
    assert not cleared.failed, cleared.output
    assert cleared['changed'] is True
    assert (count(bpffs[SERVICES]), count(bpffs[BACKENDS])) == (0, 10)
    (backup,) = cleared['backups']
    assert backup['of'] == str(bpffs[SERVICES])
    saved = json.loads(Path(backup['path']).read_text())
    assert len(saved['entries']) == 60
    assert sorted(e['key'] for e in saved['entries']) == sorted([b[2:] for b in e['key']] for e in original)
    assert any('restart the Cilium agent' in w for w in cleared.get('warnings', []))

    again = run('cilium_lb_maps', args(bpffs, tmp_path, state='cleared'))
    assert not again.failed, again.output
    assert again['changed'] is False
    assert count(bpffs[BACKENDS]) == 10


@pytest.mark.parametrize('extra, words', [
    ({'threshold': 0}, 'between 1 and 100'),
    ({'threshold': 150}, 'between 1 and 100'),
    ({'maps': ['relative/path']}, 'not a pinned map path'),
    ({'maps': []}, 'at least one'),
    ({'state': 'flushed'}, 'state'),
])
def test_bad_input_fails_before_any_change(bpffs, tmp_path, run, extra, words):
    result = run('cilium_lb_maps', dict(args(bpffs, tmp_path, state='cleared', threshold=1), **extra))
    assert result.failed
    assert result.get('changed', False) is False
    assert words in result['msg']
    assert (count(bpffs[SERVICES]), count(bpffs[BACKENDS])) == (60, 10)


def test_a_path_that_is_not_a_map_fails_before_clearing_the_others(bpffs, tmp_path, run):
    result = run('cilium_lb_maps', {'maps': [str(bpffs[SERVICES]), str(tmp_path / 'bpffs' / 'nosuch')], 'state': 'cleared',
                                    'backup_dir': str(tmp_path / 'backups')})
    assert result.failed and result['changed'] is False
    assert 'is not a pinned eBPF map' in result['msg'] and 'No such file or directory' in result['msg']
    assert count(bpffs[SERVICES]) == 60
