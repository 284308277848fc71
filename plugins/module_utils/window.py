# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Change window planner (the workflow safety spine, issue 9): pure functions, no I/O.

A window is ``days`` (weekdays it OPENS on), ``start`` and ``end`` (``HH:MM`` wall-clock time)
and ``timezone`` (an IANA name read with ``zoneinfo``).  An ``end`` not after ``start`` runs past
midnight and belongs to the day it starts on (``sat 22:00-04:00`` covers Saturday night into
Sunday morning).  Judging uses the wall clock in the window's zone; the seconds left are real
elapsed seconds (UTC arithmetic), so a DST change inside the window is counted correctly.  A
wall-clock time that does not exist on a DST day (the spring-forward gap) is read with the offset
in force before the change (``fold=0``), which moves it forward by the gap.
"""

from __future__ import annotations

import datetime
import re

DAYS = ('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun')
_FULL = ('monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday')
_HHMM = re.compile(r'^([01][0-9]|2[0-3]):([0-5][0-9])$', re.ASCII)
_ZONE = re.compile(r'^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$', re.ASCII)
UTC = datetime.timezone.utc


class WindowError(ValueError):
    """An invalid window or time; the message says what to write instead."""


def _day(value):
    if not isinstance(value, str):
        raise WindowError('days: each day must be a string (mon ... sun), got %r' % (value,))
    text = value.strip().lower()
    if text in DAYS:
        return text
    if text in _FULL:
        return DAYS[_FULL.index(text)]
    raise WindowError('days: unknown day %r; use mon, tue, wed, thu, fri, sat, sun (or the full English names)' % (value,))


def _minutes(value, what):
    if isinstance(value, bool) or not isinstance(value, str):
        hint = ''
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1440:
            # YAML 1.1 reads an unquoted 22:00 as the base-60 integer 1320.
            hint = ' (YAML read an unquoted %02d:%02d as the number %d; quote the time: "%02d:%02d")' % (
                value // 60, value % 60, value, value // 60, value % 60)
        raise WindowError('%s must be a quoted string HH:MM (00:00-23:59), got %r%s' % (what, value, hint))
    match = _HHMM.match(value.strip())
    if not match:
        if value.strip().isascii() and value.strip().isdigit():
            return _minutes(int(value.strip()), what)
        raise WindowError('%s must be HH:MM with two digits each (00:00-23:59), got %r' % (what, value))
    return int(match.group(1)) * 60 + int(match.group(2))


def zone(name):
    """A ZoneInfo for an IANA name; an unknown or malformed name is a WindowError (never UTC)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or not name.strip():
        raise WindowError('timezone must be an IANA time zone name such as Europe/Berlin or UTC, got %r' % (name,))
    name = name.strip()
    if not _ZONE.match(name) or '..' in name:
        raise WindowError('timezone %r is not an IANA time zone name (such as Europe/Berlin or UTC)' % (name,))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise WindowError('unknown timezone %r (%s); use an IANA name such as Europe/Berlin or UTC' % (name, exc)) from exc


def parse(days, start, end, timezone='UTC'):
    """Validate a window; returns ``{'days': [...], 'start': min, 'end': min, 'timezone': name}``."""
    if isinstance(days, str):
        days = [d for d in re.split(r'[\s,]+', days) if d]
    if not isinstance(days, (list, tuple)) or not days:
        raise WindowError('days must be a non-empty list of mon, tue, wed, thu, fri, sat, sun; got %r' % (days,))
    parsed = []
    for value in days:
        day = _day(value)
        if day not in parsed:
            parsed.append(day)
    first = _minutes(start, 'start')
    last = _minutes(end, 'end')
    if first == last:
        raise WindowError('start and end are both %s: a window must have a length (for a whole day use '
                          'start "00:00", end "23:59", or no window at all)' % start)
    zone(timezone)
    return {'days': sorted(parsed, key=DAYS.index), 'start': first, 'end': last, 'timezone': timezone.strip()}


def parse_time(text):
    """An aware UTC datetime from ISO 8601 text with an explicit offset (``2026-11-28T23:00:00Z``)."""
    if not isinstance(text, str) or not text.strip():
        raise WindowError('now must be an ISO 8601 time with a zone, such as 2026-11-28T23:00:00Z; got %r' % (text,))
    value = text.strip()
    if value.endswith(('Z', 'z')):
        value = value[:-1] + '+00:00'
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError as exc:
        raise WindowError('now %r is not an ISO 8601 time such as 2026-11-28T23:00:00Z (%s)' % (text, exc)) from exc
    if moment.tzinfo is None:
        raise WindowError('now %r has no zone; add Z or an offset such as +01:00' % (text,))
    return moment.astimezone(UTC)


def _hhmm(minutes):
    return '%02d:%02d' % (minutes // 60, minutes % 60)


def describe(window):
    return '%s %s-%s %s' % (','.join(window['days']), _hhmm(window['start']), _hhmm(window['end']), window['timezone'])


def _at(day, minutes, tz):
    """The aware datetime for wall-clock ``minutes`` on local date ``day`` in ``tz`` (fold=0)."""
    naive = datetime.datetime.combine(day, datetime.time(minutes // 60, minutes % 60))
    return naive.replace(tzinfo=tz)


def judge(window, now, min_remaining=0):
    """Is ``now`` (aware datetime) inside ``window`` (from ``parse``), with ``min_remaining`` seconds left?

    Returns ``inside`` (the window is open now), ``enough_time`` (open and at least
    ``min_remaining`` seconds before it closes), ``seconds_left`` (0 when closed), ``opened`` /
    ``closes`` (ISO UTC of the current occurrence, None when closed), ``next_open`` (ISO UTC,
    when closed), ``local`` (the wall-clock time judged by) and ``window`` (text).
    """
    if isinstance(min_remaining, bool) or not isinstance(min_remaining, int) or min_remaining < 0:
        raise WindowError('min_remaining must be a whole number of seconds >= 0, got %r' % (min_remaining,))
    if now.tzinfo is None:
        raise WindowError('the time to judge must carry a zone')
    tz = zone(window['timezone'])
    local = now.astimezone(tz)
    start, end = window['start'], window['end']
    occurrence = None
    # The occurrence that could contain now opened today or (past midnight) yesterday.
    for back in (0, 1):
        day = local.date() - datetime.timedelta(days=back)
        if DAYS[day.weekday()] not in window['days']:
            continue
        opened = _at(day, start, tz)
        closes = _at(day + datetime.timedelta(days=1 if end <= start else 0), end, tz)
        if opened.astimezone(UTC) <= now.astimezone(UTC) < closes.astimezone(UTC):
            occurrence = (opened, closes)
            break
    result = {'window': describe(window), 'local': local.strftime('%a %Y-%m-%d %H:%M ') + window['timezone'],
              'min_remaining': min_remaining}
    if occurrence:
        left = int((occurrence[1].astimezone(UTC) - now.astimezone(UTC)).total_seconds())
        result.update(inside=True, seconds_left=left, enough_time=left >= min_remaining,
                      opened=occurrence[0].astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ'),
                      closes=occurrence[1].astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ'), next_open=None)
    else:
        result.update(inside=False, seconds_left=0, enough_time=False, opened=None, closes=None,
                      next_open=_next_open(window, local, tz, now))
    return result


def _next_open(window, local, tz, now):
    for ahead in range(8):
        day = local.date() + datetime.timedelta(days=ahead)
        if DAYS[day.weekday()] in window['days']:
            opened = _at(day, window['start'], tz)
            if opened.astimezone(UTC) > now.astimezone(UTC):
                return opened.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')
    return None  # pragma: no cover - a valid window opens within 8 days


def decide(judgement, override=False, check_mode=False):
    """What a workflow does with a judgement: ``{'proceed', 'override_used', 'reason'}``.

    Inside with enough time: proceed.  Otherwise: proceed only with ``override`` (recorded as
    ``override_used``); check mode proceeds too (it changes nothing) but says why a real run
    would stop.
    """
    if judgement['inside'] and judgement['enough_time']:
        return {'proceed': True, 'override_used': False, 'reason': 'inside the change window %s (%s; %d s left)'
                % (judgement['window'], judgement['local'], judgement['seconds_left'])}
    if judgement['inside']:
        why = ('only %d s left in the change window %s (%s), %d s needed'
               % (judgement['seconds_left'], judgement['window'], judgement['local'], judgement['min_remaining']))
    else:
        why = ('outside the change window %s (now %s; next opens %s)'
               % (judgement['window'], judgement['local'], judgement['next_open']))
    if override:
        return {'proceed': True, 'override_used': True, 'reason': why + '; proceeding because the override is set'}
    if check_mode:
        return {'proceed': True, 'override_used': False, 'reason': why + '; check mode runs anyway, a real run would stop here'}
    return {'proceed': False, 'override_used': False, 'reason': why}
