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


def test_issue10_h4_secrets_masked_in_diff_before_after_backups_and_no_log_values():
    secret = 'lab-Acc3ssSecret-0001'
    eni_conf = '{\n  "max_pool_size": 5,\n  "access_secret": "%s"\n}\n' % secret
    module = FakeModule()
    module.no_log_values = set()
    r = Result(module, ['C-6'])
    r.before = {'eni_conf': eni_conf}
    r.after = {'eni_conf': eni_conf.replace('5', '10')}
    r.add_diff(eni_conf, eni_conf.replace('5', '10'), 'ConfigMap kube-system/eni-config eni_conf')
    r.backups.append({'of': 'kube-system/eni-config', 'data': {'eni_conf': eni_conf}})
    r.extra['configmap'] = {'changes': [{'path': 'access_secret', 'before': secret, 'after': secret}]}
    r.exit()
    out = module.exited
    assert secret not in repr(out)
    assert '"access_secret": "********"' in out['diff'][0]['before'] and '"max_pool_size": 10' in out['diff'][0]['after']
    assert out['backups'][0]['data']['eni_conf'] == eni_conf.replace(secret, '********')
    assert module.no_log_values == {secret}                  # Ansible masks it in `invocation` too
    assert r.backups[0]['data']['eni_conf'] == eni_conf       # the Result itself (what a module writes) is intact


def test_issue10_h4_failure_message_masked():
    module = FakeModule()
    r = Result(module, ['C-6'])
    r.fail('write refused: access_secret: s3cr3t-value-0001', remaining=['password=hunter2-long'])
    assert module.failed['msg'] == 'write refused: access_secret: "********"'
    assert module.failed['remaining'] == ['password="********"']
