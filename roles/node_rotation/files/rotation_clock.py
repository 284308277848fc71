# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Clock for role netmedic.k8s.node_rotation, run on the controller: prints one JSON object.

Argument: a JSON object ``{"window": null | {"days": [...], "start": "HH:MM", "end": "HH:MM",
"timezone": "Area/City"}, "now": null | "2026-11-25T02:00:00Z"}``.  Output: ``epoch`` and ``utc``
(the time used), ``identity`` (user@host, the default lock holder) and ``window``: ``inside``,
``local`` (the local time it was judged by) or ``error`` for an invalid window.  ``now`` exists
for rehearsals and tests.  A window whose end is not after its start runs past midnight and
belongs to the day it starts on.
"""

from __future__ import annotations

import datetime
import getpass
import json
import re
import socket
import sys

DAYS = ('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun')
HHMM = re.compile(r'^([01][0-9]|2[0-3]):([0-5][0-9])$')


def _minutes(text, what):
    match = HHMM.match(str(text))
    if not match:
        raise ValueError('%s must be HH:MM (00:00-23:59), got %r' % (what, text))
    return int(match.group(1)) * 60 + int(match.group(2))


def judge(window, now_utc):
    """``{'inside': bool, 'local': str}``; raises ValueError for an invalid window."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(window, dict):
        raise ValueError('the window must be a dictionary with days, start, end and timezone')
    unknown = sorted(set(window) - {'days', 'start', 'end', 'timezone'})
    if unknown:
        raise ValueError('unknown window keys: %s' % ', '.join(unknown))
    days = [str(d).lower()[:3] for d in window.get('days') or []]
    if not days or any(d not in DAYS for d in days):
        raise ValueError('days must be a non-empty list of mon, tue, wed, thu, fri, sat, sun; got %r' % (window.get('days'),))
    start = _minutes(window.get('start'), 'start')
    end = _minutes(window.get('end'), 'end')
    name = window.get('timezone') or 'UTC'
    try:
        zone = ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError('unknown timezone %r (%s)' % (name, exc)) from exc
    local = now_utc.astimezone(zone)
    minute = local.hour * 60 + local.minute
    today = DAYS[local.weekday()]
    yesterday = DAYS[(local.weekday() - 1) % 7]
    if start < end:
        inside = today in days and start <= minute < end
    else:
        inside = (today in days and minute >= start) or (yesterday in days and minute < end)
    return {'inside': inside, 'local': local.strftime('%a %H:%M ') + str(name)}


def main(argv):
    spec = json.loads(argv[1]) if len(argv) > 1 else {}
    if spec.get('now'):
        now = datetime.datetime.fromisoformat(str(spec['now']).replace('Z', '+00:00'))
        if now.tzinfo is None:
            now = now.replace(tzinfo=datetime.timezone.utc)
    else:
        now = datetime.datetime.now(datetime.timezone.utc)
    out = {'epoch': now.timestamp(), 'utc': now.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
           'identity': '%s@%s' % (getpass.getuser(), socket.gethostname()), 'window': None}
    if spec.get('window'):
        try:
            out['window'] = judge(spec['window'], now)
        except ValueError as exc:
            out['window'] = {'inside': False, 'error': str(exc)}
    print(json.dumps(out))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
