"""Change window planner (issue 9, "Change window"): days, midnight, DST, bad input."""

from __future__ import annotations

import datetime
import re

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import window as w

UTC = datetime.timezone.utc


def at(text):
    return w.parse_time(text)


def judge(now, min_remaining=0, **spec):
    spec.setdefault('days', ['sat', 'sun'])
    spec.setdefault('start', '22:00')
    spec.setdefault('end', '04:00')
    spec.setdefault('timezone', 'Europe/Berlin')
    return w.judge(w.parse(**spec), at(now), min_remaining)


def test_parse_normalises_days_and_times():
    parsed = w.parse(['Sunday', 'SAT', 'sat'], '22:00', '04:30', 'Europe/Berlin')
    assert parsed == {'days': ['sat', 'sun'], 'start': 1320, 'end': 270, 'timezone': 'Europe/Berlin'}
    assert w.parse('mon,tue wed', '01:00', '02:00')['days'] == ['mon', 'tue', 'wed']


@pytest.mark.parametrize('now, inside', [
    ('2026-11-28T20:59:59Z', False),   # Sat 21:59:59 Berlin (CET, +1)
    ('2026-11-28T21:00:00Z', True),    # Sat 22:00 opens
    ('2026-11-28T23:30:00Z', True),    # Sun 00:30, still Saturday's window
    ('2026-11-29T02:59:59Z', True),    # Sun 03:59:59
    ('2026-11-29T03:00:00Z', False),   # Sun 04:00 closed (end is exclusive)
    ('2026-11-29T21:30:00Z', True),    # Sun 22:30, Sunday's own window
    ('2026-11-30T02:00:00Z', True),    # Mon 03:00, Sunday's window past midnight
    ('2026-11-30T21:30:00Z', False),   # Mon 22:30: Monday is not a window day
    ('2026-11-27T23:30:00Z', False),   # Sat 00:30: Friday's night is not in the window
])
def test_window_across_midnight_belongs_to_its_start_day(now, inside):
    assert judge(now)['inside'] is inside


def test_same_day_window_and_end_exclusive():
    spec = dict(days=['wed'], start='01:00', end='05:00', timezone='UTC')
    assert judge('2026-11-25T01:00:00Z', **spec)['inside']
    assert judge('2026-11-25T04:59:00Z', **spec)['inside']
    assert not judge('2026-11-25T05:00:00Z', **spec)['inside']
    assert not judge('2026-11-26T02:00:00Z', **spec)['inside']   # Thursday


def test_seconds_left_and_min_remaining():
    got = judge('2026-11-29T02:00:00Z', min_remaining=3600)      # Sun 03:00 Berlin, closes 04:00
    assert got['inside'] and got['seconds_left'] == 3600 and got['enough_time']
    assert got['closes'] == '2026-11-29T03:00:00Z' and got['opened'] == '2026-11-28T21:00:00Z'
    short = judge('2026-11-29T02:00:01Z', min_remaining=3600)
    assert short['inside'] and not short['enough_time'] and short['seconds_left'] == 3599


def test_outside_reports_next_opening():
    got = judge('2026-11-25T12:00:00Z')                          # Wednesday
    assert not got['inside'] and got['seconds_left'] == 0 and got['closes'] is None
    assert got['next_open'] == '2026-11-28T21:00:00Z'
    assert got['local'] == 'Wed 2026-11-25 13:00 Europe/Berlin'


def test_dst_fall_back_inside_window_counts_real_seconds():
    # Europe/Berlin leaves summer time on Sun 2026-10-25 at 03:00 CEST -> 02:00 CET.
    # Saturday's window 22:00 CEST (20:00 UTC) to 04:00 CET (03:00 UTC) lasts 7 real hours.
    got = judge('2026-10-24T20:00:00Z')
    assert got['inside'] and got['seconds_left'] == 7 * 3600
    assert got['closes'] == '2026-10-25T03:00:00Z'


def test_dst_spring_forward_inside_window_counts_real_seconds():
    # Europe/Berlin enters summer time on Sun 2026-03-29 at 02:00 CET -> 03:00 CEST.
    got = judge('2026-03-28T21:00:00Z')                          # Sat 22:00 CET
    assert got['inside'] and got['seconds_left'] == 5 * 3600      # to 04:00 CEST = 02:00 UTC
    assert got['closes'] == '2026-03-29T02:00:00Z'


def test_dst_gap_start_time_moves_forward():
    # 02:30 does not exist on 2026-03-29 in Berlin; read with the old offset it is 01:30 UTC (03:30 CEST).
    spec = dict(days=['sun'], start='02:30', end='05:00', timezone='Europe/Berlin')
    assert not judge('2026-03-29T01:00:00Z', **spec)['inside']   # 03:00 CEST
    assert judge('2026-03-29T01:30:00Z', **spec)['inside']


def test_other_zone_and_utc():
    spec = dict(days=['mon'], start='09:00', end='10:00', timezone='America/New_York')
    assert judge('2026-11-30T14:30:00Z', **spec)['inside']        # 09:30 EST
    assert not judge('2026-11-30T09:30:00Z', **spec)['inside']


@pytest.mark.parametrize('spec, message', [
    (dict(days=[]), 'days must be a non-empty list'),
    (dict(days=['monkey']), "unknown day 'monkey'"),
    (dict(days=['sa']), "unknown day 'sa'"),
    (dict(days=[1]), 'each day must be a string'),
    (dict(start=1320), 'YAML read an unquoted 22:00 as the number 1320; quote the time: "22:00"'),
    (dict(start='1320'), 'YAML read an unquoted 22:00 as the number 1320'),
    (dict(start='24:00'), 'start must be HH:MM'),
    (dict(start='7:00'), 'start must be HH:MM'),
    (dict(start='\uff12\uff12:\uff10\uff10'), 'start must be HH:MM'),             # full-width digits
    (dict(end='04:60'), 'end must be HH:MM'),
    (dict(end=True), 'end must be a quoted string'),
    (dict(start='03:00', end='03:00'), 'a window must have a length'),
    (dict(timezone='Mars/Olympus'), "unknown timezone 'Mars/Olympus'"),
    (dict(timezone='../../etc/passwd'), 'is not an IANA time zone name'),
    (dict(timezone=''), 'timezone must be an IANA time zone name'),
])
def test_bad_windows_fail_with_clear_messages(spec, message):
    full = dict(days=['sat'], start='22:00', end='04:00', timezone='UTC')
    full.update(spec)
    with pytest.raises(w.WindowError, match=re.escape(message)):
        w.parse(**full)


@pytest.mark.parametrize('text, message', [
    ('2026-11-28T23:00:00', 'has no zone'),
    ('yesterday', 'is not an ISO 8601 time'),
    ('', 'now must be an ISO 8601 time'),
])
def test_bad_now(text, message):
    with pytest.raises(w.WindowError, match=message):
        w.parse_time(text)


def test_bad_min_remaining():
    with pytest.raises(w.WindowError, match='min_remaining must be a whole number'):
        judge('2026-11-28T23:00:00Z', min_remaining=-1)


def test_decide_inside_outside_override_and_check_mode():
    inside = judge('2026-11-28T23:00:00Z')
    assert w.decide(inside)['proceed'] and not w.decide(inside)['override_used']
    assert 'inside the change window' in w.decide(inside)['reason']
    outside = judge('2026-11-25T12:00:00Z')
    stop = w.decide(outside)
    assert not stop['proceed'] and 'outside the change window sat,sun 22:00-04:00 Europe/Berlin' in stop['reason']
    forced = w.decide(outside, override=True)
    assert forced['proceed'] and forced['override_used'] and 'override' in forced['reason']
    check = w.decide(outside, check_mode=True)
    assert check['proceed'] and not check['override_used'] and 'a real run would stop here' in check['reason']
    short = w.decide(judge('2026-11-29T02:30:00Z', min_remaining=3600))
    assert not short['proceed'] and 'only 1800 s left' in short['reason'] and '3600 s needed' in short['reason']
