"""netmedic.k8s.spec_value: survey text answers become the list or mapping the playbook's spec expects (issue 11 item 5)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.netmedic.k8s.plugins.filter.spec_value import spec_value


@pytest.mark.parametrize('value,kind,expected', [
    ('lab-node-1, lab-node-2', 'list', ['lab-node-1', 'lab-node-2']),
    ('lab-node-1', 'list', ['lab-node-1']),
    (['a', 'b'], 'list', ['a', 'b']),
    ('{"days": ["sat", "sun"], "start": "22:00", "end": "04:00"}', 'dict', {'days': ['sat', 'sun'], 'start': '22:00', 'end': '04:00'}),
    ('start=22:00, end=04:00', 'dict', {'start': '22:00', 'end': '04:00'}),
    ('  ', 'dict', {}),
    ({'a': 1}, 'dict', {'a': 1}),
])
def test_text_answers_converted_with_ansibles_own_converters(value, kind, expected):
    assert spec_value(value, kind) == expected


@pytest.mark.parametrize('value,kind,match', [
    ('{"days": ', 'dict', 'is not a dict'),
    ('x', 'int', 'must be list or dict'),
])
def test_bad_answers_fail_clearly(value, kind, match):
    with pytest.raises(AnsibleFilterError, match=match):
        spec_value(value, kind)
