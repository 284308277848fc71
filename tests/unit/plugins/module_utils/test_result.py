from __future__ import annotations

from ansible_collections.netmedic.k8s.plugins.module_utils.result import Result


class FakeModule(object):
    def __init__(self, diff=True):
        self._diff = diff
        self.warnings = []
        self.exited = None
        self.failed = None

    def warn(self, msg):
        self.warnings.append(msg)

    def exit_json(self, **kwargs):
        self.exited = kwargs

    def fail_json(self, **kwargs):
        self.failed = kwargs


def test_no_diff_no_change():
    r = Result(FakeModule(), ['N-2'])
    r.add_diff('a = 1', 'a = 1', 'x')
    r.exit()
    assert r.module.exited['changed'] is False
    assert r.module.exited['diff'] == []
    assert r.module.exited['catalog'] == ['N-2']


def test_diff_text_and_data():
    r = Result(FakeModule(), ['N-6'])
    r.add_diff('a = 1', 'a = 2', '/etc/x.conf')
    r.add_diff({'entries': [1]}, {'entries': []}, 'neighbors')
    r.add_backup('/tmp/b~', '/etc/x.conf')
    r.add_backup(None, '/etc/y.conf')
    data = r.to_dict()
    assert data['changed'] is True
    assert data['diff'][0] == {'before': 'a = 1\n', 'after': 'a = 2\n',
                               'before_header': '/etc/x.conf (before)', 'after_header': '/etc/x.conf (after)'}
    assert '"entries": [\n    1\n  ]' in data['diff'][1]['before']
    assert data['backups'] == [{'path': '/tmp/b~', 'of': '/etc/x.conf'}]


def test_diff_key_only_with_diff_mode_and_warnings_once():
    module = FakeModule(diff=False)
    r = Result(module, ['N-2'])
    r.warn('careful')
    r.warn('careful')
    assert 'diff' not in r.to_dict()
    assert module.warnings == ['careful']


def test_fail_keeps_state_and_changed():
    r = Result(FakeModule(), ['N-2'])
    r.before = {'max': 1}
    r.add_diff('1', '2', 'k')
    r.fail('could not write', remaining=['x'])
    failed = r.module.failed
    assert failed['msg'] == 'could not write'
    assert failed['changed'] is True
    assert failed['before'] == {'max': 1}
    assert failed['remaining'] == ['x']
