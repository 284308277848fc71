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
