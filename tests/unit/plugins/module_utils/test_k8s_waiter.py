"""The predicate waiter (module_utils/k8s/waiter.py), with a fake clock: issue #13."""

from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import waiter


class Clock(object):
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_issue13_waiter_returns_the_first_value_that_satisfies_the_predicate():
    clock = Clock()
    values = iter([None, {'ready': False}, {'ready': True}, {'ready': True}])
    got = waiter.wait_until(lambda: next(values), lambda v: bool(v and v['ready']), clock() + 10, 2, clock=clock, sleep=clock.sleep)
    assert got == {'ready': True} and clock.sleeps == [2, 2]


def test_issue13_waiter_times_out_with_the_last_value_and_never_sleeps_past_the_deadline():
    clock = Clock()
    seen = []

    def probe():
        seen.append(clock())
        return 'pending-%d' % len(seen)

    with pytest.raises(waiter.WaitTimeout, match='condition not reached before the deadline') as info:
        waiter.wait_until(probe, lambda v: False, clock() + 5, 2, clock=clock, sleep=clock.sleep)
    assert info.value.last == 'pending-4'
    assert clock.sleeps == [2, 2, 1] and seen == [1000.0, 1002.0, 1004.0, 1005.0]


def test_issue13_waiter_probes_once_even_after_the_deadline_and_passes_errors_through():
    clock = Clock()
    assert waiter.wait_until(lambda: 'done', lambda v: v == 'done', clock() - 1, 2, clock=clock, sleep=clock.sleep) == 'done'

    def broken():
        raise RuntimeError('cannot reach the Kubernetes API')

    with pytest.raises(RuntimeError, match='cannot reach the Kubernetes API'):
        waiter.wait_until(broken, lambda v: True, clock() + 10, 2, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_issue13_deadline_is_relative_to_the_given_clock():
    clock = Clock()
    assert waiter.deadline(30, clock=clock) == 1030.0
