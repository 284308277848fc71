"""The module lifecycle (module_utils/lifecycle.py, issue 13): the order of the steps, the check-mode stop
and refusals, for every module built on it."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.netmedic.k8s.plugins.module_utils import lifecycle


class Bad(ValueError):
    pass


def make(calls, refuse_at=None, changes=True, in_check_mode=False):
    class Probe(lifecycle.ModuleLifecycle):
        catalog = ['N-0']
        options = dict(value=dict(type='int', default=1))
        refusals = (Bad,)
        apply_in_check_mode = in_check_mode

        def _step(self, name):
            calls.append(name)
            if name == refuse_at:
                raise Bad('%s refused' % name)

        def validate(self):
            self._step('validate')

        def read(self):
            self._step('read')

        def plan(self):
            self._step('plan')

        def report(self):
            self._step('report')
            if changes:
                self.result.add_diff('1', '2', 'value')

        def apply(self):
            self._step('apply')

        def verify(self):
            self._step('verify')
            self.result.after = {'value': 2}

    return Probe


def run(cls, capsys, check=False):
    args = {'_ansible_check_mode': True} if check else {}
    with patch_module_args(args), pytest.raises(SystemExit):
        cls().run()
    return json.loads(capsys.readouterr().out)


def test_issue13_lifecycle_runs_every_step_in_order(capsys):
    calls = []
    result = run(make(calls), capsys)
    assert calls == ['validate', 'read', 'plan', 'report', 'apply', 'verify']
    assert result['changed'] is True and result['catalog'] == ['N-0'] and result['after'] == {'value': 2}


def test_issue13_lifecycle_check_mode_stops_before_apply(capsys):
    calls = []
    result = run(make(calls), capsys, check=True)
    assert calls == ['validate', 'read', 'plan', 'report']
    assert result['changed'] is True


def test_issue13_lifecycle_dry_run_apply_runs_in_check_mode_without_verify(capsys):
    calls = []
    run(make(calls, in_check_mode=True), capsys, check=True)
    assert calls == ['validate', 'read', 'plan', 'report', 'apply']


def test_issue13_lifecycle_nothing_to_change_ends_unchanged(capsys):
    calls = []
    result = run(make(calls, changes=False), capsys)
    assert calls == ['validate', 'read', 'plan', 'report']
    assert result['changed'] is False


@pytest.mark.parametrize('step', ['validate', 'read', 'plan', 'report'])
def test_issue13_lifecycle_refusal_fails_unchanged_before_apply(capsys, step):
    calls = []
    result = run(make(calls, refuse_at=step), capsys)
    assert 'apply' not in calls
    assert result['failed'] is True and result['changed'] is False
    assert result['msg'] == '%s refused (nothing was changed)' % step


def make_holding(calls, **kw):
    """The probe with a held resource (lifecycle.held) and an after step, both written down in ``calls``."""
    import contextlib

    class Holding(make(calls, **kw)):
        @contextlib.contextmanager
        def held(self):
            calls.append('take')
            try:
                yield
            finally:
                calls.append('release')

        def after(self):
            calls.append('after')

    return Holding


@pytest.mark.parametrize('check, changes, steps', [
    (False, True, ['plan', 'report', 'apply', 'verify']),
    (True, True, ['plan', 'report']),                   # check-mode stop inside the block
    (False, False, ['plan', 'report']),                 # nothing to change
])
def test_issue13_lifecycle_held_spans_plan_to_verify_and_after_runs_released(capsys, check, changes, steps):
    calls = []
    run(make_holding(calls, changes=changes), capsys, check=check)
    assert calls == ['validate', 'read', 'take'] + steps + ['release', 'after']


@pytest.mark.parametrize('step', ['plan', 'report'])
def test_issue13_lifecycle_held_is_released_on_a_refusal_and_after_does_not_run(capsys, step):
    calls = []
    result = run(make_holding(calls, refuse_at=step), capsys)
    assert calls[-1] == 'release' and 'after' not in calls and 'apply' not in calls
    assert result['failed'] is True and result['changed'] is False


@pytest.mark.parametrize('step', ['validate', 'read'])
def test_issue13_lifecycle_refusal_before_plan_takes_nothing(capsys, step):
    calls = []
    run(make_holding(calls, refuse_at=step), capsys)
    assert 'take' not in calls and 'after' not in calls


def test_issue13_lifecycle_held_is_released_when_apply_fails(capsys):
    calls = []

    class Failing(make_holding(calls)):
        def apply(self):
            calls.append('apply')
            self.result.fail('apply failed')

    result = run(Failing, capsys)
    assert calls[-2:] == ['apply', 'release'] and 'after' not in calls
    assert result['failed'] is True


@pytest.mark.parametrize('msg, expected', [
    ('bad input', 'bad input (nothing was changed)'),
    ('bad input; nothing was changed', 'bad input; nothing was changed'),
    # a module's own sentence ("... Nothing was changed") is not followed by a second, lower-case copy
    ('not a pinned eBPF map. Nothing was changed', 'not a pinned eBPF map. Nothing was changed'),
    ('NOTHING WAS CHANGED here', 'NOTHING WAS CHANGED here'),
])
def test_refusal_text_says_nothing_was_changed_once_whatever_the_case(msg, expected):
    assert lifecycle.refusal_text(msg) == expected


@pytest.mark.parametrize('msg, phrase, expected', [
    ('bad input', 'nothing was restarted', 'bad input (nothing was restarted)'),
    ('gone; nothing was restarted', 'nothing was restarted', 'gone; nothing was restarted'),
    ('names must be given (nothing was read or changed)', 'nothing was changed', 'names must be given (nothing was read or changed)'),
])
def test_issue13_refusal_text_takes_the_module_phrase(msg, phrase, expected):
    assert lifecycle.refusal_text(msg, phrase) == expected


def test_issue13_refusal_carries_the_result_keys_only_when_asked_and_masked(capsys):
    calls = []

    class Plain(make(calls, refuse_at='read')):
        def validate(self):
            self.result.extra.update(passed=False, token='s3cr3t-t0ken-value')

    plain = run(Plain, capsys)
    assert plain['msg'] == 'read refused (nothing was changed)' and plain['changed'] is False
    assert 'passed' not in plain and 'token' not in plain

    class Carrying(Plain):
        refusal_carries_result = True
        nothing_changed = 'nothing was restarted'

    carrying = run(Carrying, capsys)
    assert carrying['msg'] == 'read refused (nothing was restarted)' and carrying['changed'] is False
    assert carrying['passed'] is False and carrying['token'] == '********'
