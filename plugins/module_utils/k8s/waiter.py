# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting for a predicate on what the API shows, with one deadline (issue #13).

``wait_until(probe, done, deadline, interval)`` calls ``probe()`` (one read of the cluster), returns its
value as soon as ``done(value)`` holds, and raises ``WaitTimeout`` carrying the last value read once
the deadline has passed, so the caller can say what it saw.  Deadlines are on the monotonic clock (a
wall-clock step on the controller neither shortens nor stretches a wait).  Errors from ``probe``
propagate: an API that cannot be read ends the wait, it is never taken as "not yet".
"""

from __future__ import annotations

import time


class WaitTimeout(Exception):
    """The deadline passed before the predicate held; ``last`` is the last value the probe returned."""

    def __init__(self, last):
        super(WaitTimeout, self).__init__('condition not reached before the deadline')
        self.last = last


def deadline(seconds, clock=time.monotonic):
    """The deadline ``seconds`` from now, for ``wait_until``."""
    return clock() + seconds


def wait_until(probe, done, until, interval, clock=time.monotonic, sleep=time.sleep):
    """``probe()`` until ``done(value)``; the value, or WaitTimeout(last value) once ``until`` has passed.

    The probe runs at least once, even when the deadline has already passed; the pause between two
    probes is ``interval`` seconds, cut short so that no wait ends later than the deadline.
    """
    while True:
        value = probe()
        if done(value):
            return value
        remaining = until - clock()
        if remaining <= 0:
            raise WaitTimeout(value)
        sleep(min(interval, remaining))
