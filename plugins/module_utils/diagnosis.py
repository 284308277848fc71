# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a diagnosis report (``playbooks/diagnose.yml``'s JSON) and comparing two (issue 11).

A report is ``{host: ansible_facts.netmedic of that host}`` (``node_network_facts``' return).
The one place that turns it into a fleet matrix (nodes x catalog IDs, by severity) and a
before/after comparison; used by the HTML renderer (``report_html``), the ``diagnosis_html``
filter and ``lab/vm/demo_compare.py``.
"""

from __future__ import annotations

import re

SEVERITIES = ('critical', 'warning', 'info')
RANK = {'critical': 3, 'warning': 2, 'info': 1, 'ok': 0}


def id_key(catalog_id):
    """Sort key of a catalog ID (``N-2`` before ``N-10``; letters grouped)."""
    match = re.match(r'^([A-Za-z]+)-(\d+)(.*)$', str(catalog_id))
    if not match:
        return (str(catalog_id), 0, '')
    return (match.group(1), int(match.group(2)), match.group(3))


def hosts(report):
    """Host names of a report, sorted."""
    return sorted((report or {}).keys())


def _facts(report, host):
    facts = (report or {}).get(host)
    return facts if isinstance(facts, dict) else {}


def findings_of(report, host):
    """The findings of one host (a list of dicts, possibly empty)."""
    return [f for f in _facts(report, host).get('findings') or [] if isinstance(f, dict)]


def catalog_ids(report):
    """Every catalog ID a report covers: what the probes check (``catalog``) plus what was found."""
    ids = set()
    for host in hosts(report):
        facts = _facts(report, host)
        ids.update(str(i) for i in facts.get('catalog') or [])
        ids.update(str(f.get('id')) for f in findings_of(report, host) if f.get('id'))
    return sorted(ids, key=id_key)


def matrix(report):
    """``{host: {catalog id: state}}`` for every host x every ID of the report.

    ``state`` is the most severe finding's severity (critical, warning, info), ``ok`` when the host
    checked that ID and found nothing, ``unknown`` when it did not (no facts for the host, the ID is
    not in its ``catalog``, or the probe behind it failed: uncertainty is never shown as ok).
    """
    ids = catalog_ids(report)
    out = {}
    for host in hosts(report):
        facts = _facts(report, host)
        checked = {str(i) for i in facts.get('catalog') or []}
        failed_probes = {str(e.get('probe')) for e in facts.get('errors') or [] if isinstance(e, dict)}
        row = {}
        for catalog_id in ids:
            found = [f for f in findings_of(report, host) if str(f.get('id')) == catalog_id]
            if found:
                row[catalog_id] = max((str(f.get('severity') or 'info') for f in found), key=lambda s: RANK.get(s, 1))
            elif catalog_id in checked and not failed_probes.intersection(PROBES_OF.get(catalog_id, ())):
                row[catalog_id] = 'ok'
            else:
                row[catalog_id] = 'unknown'
        out[host] = row
    return out


# Which probe of node_network_facts decides a catalog ID (a failed probe makes the cell unknown).
PROBES_OF = {
    'N-1': ('ipam',), 'N-2': ('conntrack',), 'N-3': ('ports',), 'N-4': ('ipvs',), 'N-5': ('ipvs',),
    'N-6': ('neighbors',), 'N-7': ('ipam',), 'N-8': ('bridges',), 'C-5': ('cni',), 'D-7': ('cni',),
    'D-11': ('dns',),
}


def by_id(report):
    """``{catalog id: {host: [findings]}}`` (the view a before/after comparison needs)."""
    out = {}
    for host in hosts(report):
        for finding in findings_of(report, host):
            out.setdefault(str(finding.get('id')), {}).setdefault(host, []).append(finding)
    return out


def compare(before, after):
    """Rows of a before/after comparison, one per catalog ID found in either report.

    Each row: ``id``, ``summary``, ``before`` / ``after`` (hosts with the finding, sorted),
    ``verdict`` (``fixed``, ``new``, ``partly fixed``, ``worse``, ``still there``) and
    ``remediation`` (what the remaining findings say to run).
    """
    old, new = by_id(before), by_id(after)
    rows = []
    for catalog_id in sorted(set(old) | set(new), key=id_key):
        b, a = old.get(catalog_id, {}), new.get(catalog_id, {})
        if b and not a:
            verdict = 'fixed'
        elif a and not b:
            verdict = 'new'
        elif len(a) < len(b):
            verdict = 'partly fixed'
        elif set(a) - set(b):
            verdict = 'worse'
        else:
            verdict = 'still there'
        sample = next(iter((b or a).values()))[0]
        rows.append({
            'id': catalog_id,
            'summary': str(sample.get('summary') or ''),
            'before': sorted(b),
            'after': sorted(a),
            'verdict': verdict,
            'remediation': sorted({str(f.get('remediation') or '?') for fs in a.values() for f in fs}),
        })
    return rows


def compare_text(before, after):
    """The comparison as a plain-text table (the demo's terminal output)."""
    rows = compare(before, after)
    lines = ['', '%-5s %-31s %6s  %5s   verdict' % ('ID', 'finding (hosts with it)', 'before', 'after'), '-' * 78]
    for row in rows:
        verdict = row['verdict'].upper() if row['verdict'] in ('fixed', 'new') else row['verdict']
        if row['verdict'] in ('still there', 'worse'):
            verdict += ' -> ' + ', '.join(row['remediation'])
        lines.append('%-5s %-31s %6d  %5d   %s' % (row['id'], row['summary'][:30], len(row['before']), len(row['after']), verdict))
    fixed = sum(1 for r in rows if r['verdict'] == 'fixed')
    had = sum(1 for r in rows if r['before'])
    lines.append('-' * 78)
    lines.append('%d of %d catalog IDs fixed; findings %d host(s) -> %d host(s)' % (
        fixed, had, sum(len(r['before']) for r in rows), sum(len(r['after']) for r in rows)))
    return '\n'.join(lines)
