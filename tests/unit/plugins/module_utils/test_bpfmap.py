"""bpfmap (catalog N-10) on bpftool 7.1 output recorded on the CI host kernel (see fixtures/README.md)."""

import re

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import bpfmap

from ..conftest import fixture_reply, fixture_text

PATH = '/sys/fs/bpf/tc/globals/cilium_lb4_services_v2'


def test_parse_show_and_dump():
    info = bpfmap.parse_map_show(fixture_text('bpftool/map-show-services.json'))
    assert info == {'id': 28, 'type': 'hash', 'name': 'cilium_lb4_serv', 'max_entries': 8, 'key_size': 12, 'value_size': 12}
    entries = bpfmap.parse_dump(fixture_text('bpftool/map-dump-services.json'))
    assert entries[0] == {'key': ['0a', '60', '00', '0a', '00', '35', '00', '00', '06', '00', '00', '00'],
                          'value': ['01', '00', '00', '00', '02', '00', '00', '00', '00', '00', '00', '00']}
    assert len(entries) == 2


def test_plan_by_threshold():
    info = bpfmap.parse_map_show(fixture_text('bpftool/map-show-services.json'))
    entries = bpfmap.parse_dump(fixture_text('bpftool/map-dump-services.json'))
    assert bpfmap.plan(info, entries, 25, clear=True) == {'count': 2, 'max_entries': 8, 'percent': 25.0, 'over_threshold': True, 'action': 'clear'}
    assert bpfmap.plan(info, entries, 26, clear=True)['action'] == 'keep'
    assert bpfmap.plan(info, entries, 25, clear=False)['action'] == 'keep'
    assert bpfmap.plan(info, [], 1, clear=True)['action'] == 'keep'


def test_delete_batch_and_a_batch_that_stopped_early():
    entries = bpfmap.parse_dump(fixture_text('bpftool/map-dump-services.json'))
    text = bpfmap.delete_batch(PATH, entries)
    assert text.splitlines()[1] == 'map delete pinned %s key hex 0a 60 00 01 01 bb 00 00 06 00 00 00' % PATH
    # Recorded: a batch whose 2nd delete hit a missing key stops there (rc 254); the 3rd entry is still in the map.
    rc, out, err = fixture_reply('bpftool/batch-missing-key')
    assert (rc, out, err.strip()) == (254, '', 'Error: delete failed: No such file or directory')
    left = bpfmap.remaining(entries, bpfmap.parse_dump(fixture_text('bpftool/map-dump-after-stopped-batch.json')))
    assert left == [entries[0]]


def test_error_text_reads_the_json_error():
    rc, out, err = fixture_reply('bpftool/map-show-nosuch')
    assert rc == 255
    assert bpfmap.error_text(out, err) == 'bpf obj get (/tmp/bpfcap/nosuch): No such file or directory'
    assert bpfmap.error_text('', 'Error: x\n') == 'Error: x'


@pytest.mark.parametrize('bad', ['relative/map', '/sys/fs/bpf/a b', '/sys/fs/bpf/../x', '/sys/fs/bpf/', None, '/x;rm'])
def test_validate_path_rejects(bad):
    with pytest.raises(bpfmap.MapError, match='not a pinned map path:'):
        bpfmap.validate_path(bad)


@pytest.mark.parametrize('bad', [0, 101, -5, True, '90'])
def test_validate_threshold_rejects(bad):
    with pytest.raises(bpfmap.MapError, match='threshold must be a percentage between 1 and 100, got'):
        bpfmap.validate_threshold(bad)


@pytest.mark.parametrize('text', ['{"no": 1}', 'not json', '[]'])
def test_parse_show_rejects(text):
    with pytest.raises(bpfmap.MapError, match='bpftool map show printed'):
        bpfmap.parse_map_show(text)


@pytest.mark.parametrize('text, words', [
    ('{}', 'bpftool map dump printed dict, expected a list'),
    ('[{"value": []}]', 'bpftool map dump entry without a key'),
    ('[{"key": ["0xzz"]}]', "key byte '0xzz' is not hex"),
])
def test_parse_dump_rejects(text, words):
    with pytest.raises(bpfmap.MapError, match=re.escape(words)):
        bpfmap.parse_dump(text)
