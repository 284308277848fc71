#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: change_window
short_description: Refuse to change anything outside the maintenance (change) window
version_added: 0.2.0
description:
  - Part of the workflow safety spine (issue 9) under the catalog workflows B(W-1) ... B(W-7).
  - Judges the controller's clock against a weekly window - the weekdays it opens on (O(days)), O(start) and O(end)
    as wall-clock times in O(timezone) (an IANA name, read with Python C(zoneinfo)). An O(end) not after O(start)
    runs past midnight and belongs to the day it starts on (V(sat) V(22:00)-V(04:00) is Saturday night into Sunday).
    O(end) itself is outside. The seconds left are real seconds, so a daylight-saving change inside the window is
    counted correctly; a start time that does not exist on a spring-forward day moves forward by the gap.
  - Outside the window, or with fewer than O(min_remaining) seconds left (a rolling workflow asks this before each
    node so it stops cleanly between nodes), the task fails with the reason and the next opening - unless
    O(override=true), which lets the run go on and is recorded (RV(override_used), a warning in the change report).
  - Changes nothing anywhere; it only reads the clock.
author:
  - netmedic maintainers (@netmedic)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Judges the window and reports it, but does not fail outside it (a check run changes nothing) - the result
      says a real run would stop (RV(proceed) is true, RV(enough_time) false, a warning).
  diff_mode:
    support: none
  platform:
    platforms: posix
    support: full
    details: Runs anywhere, usually on the controller (C(delegate_to=localhost) from node plays).
options:
  days:
    description:
      - The weekdays the window opens on - V(mon) V(tue) V(wed) V(thu) V(fri) V(sat) V(sun) (or the full English
        names, any case).
    type: list
    elements: str
    required: true
  start:
    description:
      - Opening wall-clock time, V(HH:MM) (V(00:00)-V(23:59)). Quote it in YAML - an unquoted V(22:00) is read by YAML
        as the number 1320 and refused with that explanation.
    type: raw
    required: true
  end:
    description: Closing wall-clock time, V(HH:MM), not equal to O(start); quote it like O(start).
    type: raw
    required: true
  timezone:
    description: IANA time zone of O(start) and O(end), for example V(Europe/Berlin); an unknown name fails.
    type: str
    default: UTC
  min_remaining:
    description:
      - Seconds that must be left before the window closes - the worst-case time of the next step (one node).
        With fewer left the run stops here, before the step.
    type: int
    default: 0
  override:
    description:
      - Go on although the window is closed (or too little time is left). The override is returned in
        RV(override_used) and warned about, so the change report shows it. Playbooks pass
        C(netmedic_window_override).
    type: bool
    default: false
  now:
    description:
      - Judge this moment instead of the clock, ISO 8601 with a zone (V(2026-11-28T23:00:00Z)); for rehearsals and
        tests.
    type: str
seealso:
  - module: netmedic.k8s.cluster_lock
"""

EXAMPLES = r"""
- name: Only inside the weekend night window, Berlin time
  netmedic.k8s.change_window:
    days: [sat, sun]
    start: "22:00"
    end: "04:00"
    timezone: Europe/Berlin
    override: "{{ netmedic_window_override | default(false) }}"

- name: Before each node - stop cleanly if one node (up to 40 minutes) would not fit any more
  netmedic.k8s.change_window:
    days: [sat, sun]
    start: "22:00"
    end: "04:00"
    timezone: Europe/Berlin
    min_remaining: 2400
"""

RETURN = r"""
proceed:
  description: Whether the run may go on (inside with enough time, overridden, or check mode).
  returned: success
  type: bool
  sample: true
inside:
  description: Whether the window is open at the judged moment.
  returned: success
  type: bool
  sample: true
enough_time:
  description: Whether it is open with at least O(min_remaining) seconds left.
  returned: success
  type: bool
  sample: true
override_used:
  description: Whether O(override) let a run go on that the window would have stopped.
  returned: success
  type: bool
  sample: false
seconds_left:
  description: Seconds until the window closes (0 when closed).
  returned: success
  type: int
  sample: 5400
opened:
  description: When the current opening began (UTC), null when closed.
  returned: success
  type: str
  sample: "2026-11-28T21:00:00Z"
closes:
  description: When the current opening ends (UTC), null when closed.
  returned: success
  type: str
  sample: "2026-11-29T03:00:00Z"
next_open:
  description: When the window opens next (UTC), null when open.
  returned: success
  type: str
  sample: null
local:
  description: The judged moment as wall-clock time in O(timezone).
  returned: success
  type: str
  sample: Sun 2026-11-29 01:30 Europe/Berlin
window:
  description: The window, normalised.
  returned: success
  type: str
  sample: sat,sun 22:00-04:00 Europe/Berlin
decision:
  description: The decision in words (also the failure message outside the window).
  returned: always
  type: str
  sample: inside the change window sat,sun 22:00-04:00 Europe/Berlin (Sun 2026-11-29 01:30 Europe/Berlin; 5400 s left)
catalog:
  description: The workflows this spine serves.
  returned: always
  type: list
  elements: str
  sample: ["W-1", "W-2", "W-3", "W-4", "W-5", "W-6", "W-7"]
"""

import datetime

from ansible_collections.netmedic.k8s.plugins.module_utils import lifecycle
from ansible_collections.netmedic.k8s.plugins.module_utils import window as cw


class ChangeWindow(lifecycle.ModuleLifecycle):
    """The window of the workflow spine on the lifecycle: validate (parse the window and O(now)), read the
    clock, plan (judge and decide), report; it changes nothing, so there is no apply step."""

    catalog = lifecycle.WORKFLOWS
    options = dict(
        days=dict(type='list', elements='str', required=True),
        start=dict(type='raw', required=True),
        end=dict(type='raw', required=True),
        timezone=dict(type='str', default='UTC'),
        min_remaining=dict(type='int', default=0),
        override=dict(type='bool', default=False),
        now=dict(type='str'),
    )
    refusals = (cw.WindowError,)

    def refusal(self, error):
        return 'invalid change window: %s' % error

    def validate(self):
        p = self.params
        self.window = cw.parse(p['days'], p['start'], p['end'], p['timezone'])
        self.moment = cw.parse_time(p['now']) if p['now'] else None

    def read(self):
        if self.moment is None:
            self.moment = datetime.datetime.now(datetime.timezone.utc)

    def plan(self):
        self.judgement = cw.judge(self.window, self.moment, self.params['min_remaining'])
        self.decision = cw.decide(self.judgement, override=self.params['override'], check_mode=self.check_mode)

    def report(self):
        result, judgement, decision = self.result, self.judgement, self.decision
        result.extra.update(judgement)
        result.extra.update(proceed=decision['proceed'], override_used=decision['override_used'], decision=decision['reason'])
        result.before = result.after = {'inside': judgement['inside'], 'enough_time': judgement['enough_time']}
        if not decision['proceed']:
            result.fail('%s; nothing was changed. Run again inside the window, or set the override '
                        '(netmedic_window_override=true) to go on anyway.' % decision['reason'])
        if decision['override_used']:
            result.warn('change window OVERRIDDEN: %s' % decision['reason'])
        elif not judgement['enough_time']:
            result.warn(decision['reason'])


def main():
    ChangeWindow().run()


if __name__ == '__main__':
    main()
