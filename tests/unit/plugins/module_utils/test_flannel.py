from __future__ import annotations

import json
import re

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import flannel as fl

N7 = {'flannel_data_dir': '/var/run/cni/flannel', 'ipam_data_dir': '/var/run/cni/networks'}


def pairs(text):
    """The document as nested key/value pair lists: equal only with the same key order."""
    return json.loads(text, object_pairs_hook=list)


def test_n7_migration_reproduces_the_documented_result(fixture_text):
    before = fixture_text('flannel/ack-n7-before.json')
    new, changes = fl.plan(before, N7)
    assert pairs(new) == pairs(fixture_text('flannel/ack-n7-after.json'))
    assert changes == [
        {'path': 'plugins[0].dataDir', 'before': None, 'after': '/var/run/cni/flannel'},
        {'path': 'plugins[0].ipam', 'before': None, 'after': {'type': 'host-local', 'dataDir': '/var/run/cni/networks'}},
    ]
    assert fl.summary(new)['ipam.dataDir'] == '/var/run/cni/networks'
    again, more = fl.plan(new, N7)
    assert again is new and more == []


def test_published_example_with_comments_is_refused(fixture_text):
    with pytest.raises(fl.FlannelError, match=r'not valid JSON .*line 10'):
        fl.plan(fixture_text('flannel/ack-n7-before.published.txt'), N7)


def test_hairpin_example_single_plugin_needs_no_change(fixture_text):
    text = fixture_text('flannel/ack-hairpin.json')
    assert fl.plan(text, {'hairpin_mode': True, 'cni_version': '0.3.1'}) == (text, [])
    assert fl.summary(text) == {'form': 'plugin', 'cniVersion': '0.3.1', 'hairpinMode': True, 'dataDir': None,
                                'ipam.type': None, 'ipam.dataDir': None}


def test_single_plugin_without_cni_version_gets_it_after_name(fixture_text):
    # The C-5 fault: the hairpin example as it was before the manual fix (no cniVersion, no hairpinMode).
    text = fixture_text('flannel/ack-hairpin.json').replace('  "cniVersion":"0.3.1",\n', '').replace(
        ',\n    "hairpinMode": true', '')
    new, changes = fl.plan(text, {'cni_version': '0.3.0', 'hairpin_mode': True})
    assert [c['path'] for c in changes] == ['cniVersion', 'delegate.hairpinMode']
    assert [k for k, _v in pairs(new)] == ['name', 'cniVersion', 'type', 'delegate']
    assert json.loads(new)['delegate'] == {'isDefaultGateway': True, 'hairpinMode': True}


def test_lab_seed_conflist_all_fixes(fixture_text):
    text = fixture_text('flannel/lab-seed-conflist.json')
    new, changes = fl.plan(text, dict(N7, cni_version='0.3.1', hairpin_mode=True))
    conf = json.loads(new)
    assert [k for k, _v in pairs(new)] == ['name', 'cniVersion', 'plugins']
    assert conf['plugins'][0]['delegate'] == {'isDefaultGateway': True, 'hairpinMode': True}
    assert conf['plugins'][1] == json.loads(text)['plugins'][1]           # portmap untouched
    assert len(changes) == 4
    assert new.startswith('{\n  "name": "cb0",\n  "cniVersion": "0.3.1",\n  "plugins": [\n    {\n')


def test_hairpin_can_be_turned_off_and_indent_is_kept():
    text = '{\n    "name": "cb0",\n    "type": "flannel",\n    "delegate": {"hairpinMode": true}\n}\n'
    new, changes = fl.plan(text, {'hairpin_mode': False})
    assert changes == [{'path': 'delegate.hairpinMode', 'before': True, 'after': False}]
    assert '\n    "delegate": {\n        "hairpinMode": false\n    }\n' in new


def test_existing_host_local_ipam_keeps_its_other_keys():
    ipam = {'type': 'host-local', 'dataDir': '/var/lib/cni/networks', 'ranges': [[{'subnet': '10.0.0.0/24'}]]}
    text = json.dumps({'name': 'cb0', 'type': 'flannel', 'ipam': ipam})
    new, changes = fl.plan(text, {'ipam_data_dir': '/var/run/cni/networks'})
    assert changes == [{'path': 'ipam.dataDir', 'before': '/var/lib/cni/networks', 'after': '/var/run/cni/networks'}]
    assert json.loads(new)['ipam'] == {'type': 'host-local', 'dataDir': '/var/run/cni/networks',
                                       'ranges': [[{'subnet': '10.0.0.0/24'}]]}


@pytest.mark.parametrize('text, message', [
    ('', 'empty'),
    ('[1, 2]', 'must be a JSON object'),
    ('{"name": "x", "type": "bridge"}', 'neither a conflist'),
    ('{"name": "x", "plugins": [{"type": "portmap"}]}', 'exactly one plugin of type "flannel"'),
    ('{"name": "x", "plugins": {"type": "flannel"}}', '"plugins" must be a list'),
    ('{"type": "flannel", "ipam": {"type": "dhcp"}}', "not host-local"),
])
def test_documents_that_cannot_be_edited(text, message):
    with pytest.raises(fl.FlannelError, match=message):
        fl.plan(text, {'ipam_data_dir': '/var/run/cni/networks'})


@pytest.mark.parametrize('settings, words', [
    ({}, 'nothing to set: give at least one of'),
    ({'cni_version': '0.3'}, "cni_version must look like 0.3.1, got '0.3'"),
    ({'cni_version': 'latest'}, "cni_version must look like 0.3.1, got 'latest'"),
    ({'hairpin_mode': 'yes'}, "hairpin_mode must be true or false, got 'yes'"),
    ({'ipam_data_dir': 'var/run'}, 'ipam_data_dir must be a normalised absolute path'),
    ({'ipam_data_dir': '/var/../etc'}, 'ipam_data_dir must be a normalised absolute path'),
    ({'flannel_data_dir': '/var//run'}, 'flannel_data_dir must be a normalised absolute path'),
    ({'colour': 'blue'}, "unsupported setting 'colour'"),
])
def test_bad_settings(settings, words):
    with pytest.raises(fl.FlannelError, match=re.escape(words)):
        fl.validate(settings)
