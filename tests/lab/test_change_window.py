"""Module netmedic.k8s.change_window (issue 9 "Change window").

The module reads only the clock (``now`` pins it) and no playbook feature is involved, so its
``main()`` runs in the test process (``module_tasks``, tests/harness.py: issue 12), one task per case
(``ignore_errors``), with check mode handed over as Ansible hands it.  Through ``ansible-playbook``
it runs in every workflow's change_guard (tests/lab/test_w3_spine.py, tests/cluster/test_w7_spine.py: outside the
window, override recorded).
"""

from __future__ import annotations

DOUBLE_ONLY = 'no-cluster: change_window reads only the clock; the double (no seed) only hands out a kubeconfig'

WINDOW = '''
    days: [sat, sun]
    start: "22:00"
    end: "04:00"
    timezone: Europe/Berlin'''

TASKS = '''
- name: inside
  netmedic.k8s.change_window:{w}
    now: "2026-11-28T23:30:00Z"
- name: outside
  netmedic.k8s.change_window:{w}
    now: "2026-11-25T12:00:00Z"
  ignore_errors: true
- name: outside with override
  netmedic.k8s.change_window:{w}
    now: "2026-11-25T12:00:00Z"
    override: true
- name: outside in check mode
  netmedic.k8s.change_window:{w}
    now: "2026-11-25T12:00:00Z"
  check_mode: true
- name: too little time left for one more node
  netmedic.k8s.change_window:{w}
    now: "2026-11-29T02:30:00Z"
    min_remaining: 2400
  ignore_errors: true
- name: unquoted time
  netmedic.k8s.change_window:
    days: [sat]
    start: 22:00
    end: "04:00"
  ignore_errors: true
- name: unknown zone in check mode still fails
  netmedic.k8s.change_window:
    days: [sat]
    start: "22:00"
    end: "04:00"
    timezone: Mars/Olympus
  check_mode: true
  ignore_errors: true
'''.format(w=WINDOW)


def test_change_window_module_cases(make_double, module_tasks):
    double = make_double(seed=None, wait=False)
    rc, results, output = module_tasks(double, TASKS)
    assert rc == 0, output
    inside = results['inside']
    assert inside['proceed'] and inside['inside'] and not inside['changed'], inside
    assert inside['seconds_left'] == 3.5 * 3600 and inside['closes'] == '2026-11-29T03:00:00Z'
    outside = results['outside']
    assert outside['failed'] and not outside['proceed'] and not outside.get('changed'), outside
    assert 'outside the change window sat,sun 22:00-04:00 Europe/Berlin' in outside['msg']
    assert 'next opens 2026-11-28T21:00:00Z' in outside['msg'] and 'nothing was changed' in outside['msg']
    forced = results['outside with override']
    assert not forced.get('failed') and forced['proceed'] and forced['override_used'], forced
    assert any('OVERRIDDEN' in w for w in forced['warnings'])
    check = results['outside in check mode']
    assert not check.get('failed') and check['proceed'] and not check['inside'] and not check['override_used'], check
    assert any('a real run would stop here' in w for w in check['warnings'])
    short = results['too little time left for one more node']
    assert short['failed'] and 'only 1800 s left' in short['msg'] and '2400 s needed' in short['msg'], short
    unquoted = results['unquoted time']
    assert unquoted['failed'] and 'quote the time: "22:00"' in unquoted['msg'], unquoted
    zone = results['unknown zone in check mode still fails']
    assert zone['failed'] and "unknown timezone 'Mars/Olympus'" in zone['msg'], zone
