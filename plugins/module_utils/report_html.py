# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Self-contained HTML pages of netmedic's reports (issue 11): the diagnosis and the change report.

One HTML file each, inline CSS and SVG only: no script, no font, no image, no link is loaded,
so the page opens from a change ticket, a mail or an air-gapped laptop. Every value taken from
a report goes through ``esc()`` (HTML escaping, quotes included) before it reaches the page;
the renderers never build markup from unescaped report text.

- ``diagnosis_html(report, before=None)``: fleet heatmap (nodes x catalog IDs, by severity),
  utilisation bars per node (conntrack, IPAM per network, ephemeral vs NodePort ranges), the
  findings with evidence and the fix to run, and a before/after comparison with a second report.
- ``change_report_html(report)``: the ``change_report`` callback's report: header, per-host
  counts, every entry with its diff, and each rollout as a timeline.
"""

from __future__ import annotations

import html
import json

from ansible_collections.netmedic.k8s.plugins.module_utils import diagnosis

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em;color:#1b1f24;background:#fff}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.2em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.sev-critical{fill:#cf222e;background:#ffebe9}.sev-warning{fill:#d4a72c;background:#fff8c5}
.sev-info{fill:#54aeff;background:#ddf4ff}.sev-ok{fill:#2da44e;background:#dafbe1}.sev-unknown{fill:#afb8c1;background:#eaeef2}
.badge{display:inline-block;padding:0 .5em;border-radius:1em;font-size:.85em;border:1px solid #d0d7de}
.legend span{margin-right:1em}.muted{color:#57606a}.loud{color:#cf222e;font-weight:bold}
.add{color:#116329;background:#dafbe1}.del{color:#82071e;background:#ffebe9}.hunk{color:#0550ae}
.finding{border:1px solid #d0d7de;border-radius:6px;padding:.5em .8em;margin:.6em 0}
svg text{font-family:system-ui,sans-serif;font-size:12px}
.bar{display:flex;align-items:center;gap:.6em;margin:.2em 0}.bar .label{min-width:22em}
"""

SEVERITY_ORDER = ('critical', 'warning', 'info', 'ok', 'unknown')


def esc(value):
    """HTML-escaped text of any value (None is empty; dicts and lists as compact JSON)."""
    if value is None:
        return ''
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, default=str)
    return html.escape(str(value), quote=True)


def page(title, body):
    """A complete HTML document: the title, the inline style sheet and ``body`` (already escaped markup)."""
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<title>%s</title><style>%s</style></head><body>\n%s\n</body></html>\n') % (esc(title), CSS, body)


def _table(headers, rows, cls=''):
    """``rows``: lists of already escaped cells."""
    out = ['<table%s><thead><tr>%s</tr></thead><tbody>' % (
        (' class="%s"' % esc(cls)) if cls else '', ''.join('<th>%s</th>' % esc(h) for h in headers))]
    for row in rows:
        out.append('<tr>%s</tr>' % ''.join('<td>%s</td>' % cell for cell in row))
    out.append('</tbody></table>')
    return ''.join(out)


def _legend(states=SEVERITY_ORDER):
    return '<p class="legend">%s</p>' % ''.join(
        '<span><span class="badge sev-%s">%s</span></span>' % (esc(s), esc(s)) for s in states)


# ---------------------------------------------------------------- diagnosis

CELL, LABEL_W, HEAD_H = 28, 170, 60


def heatmap_svg(report):
    """The fleet heatmap: one ``rect.cell`` per node x catalog ID, coloured by the worst severity."""
    cells = diagnosis.matrix(report)
    ids = diagnosis.catalog_ids(report)
    nodes = diagnosis.hosts(report)
    width = LABEL_W + CELL * max(len(ids), 1) + 10
    height = HEAD_H + CELL * max(len(nodes), 1) + 10
    out = ['<svg xmlns="http://www.w3.org/2000/svg" id="heatmap" role="img" width="%d" height="%d" '
           'viewBox="0 0 %d %d" aria-label="fleet heatmap">' % (width, height, width, height)]
    for col, catalog_id in enumerate(ids):
        x = LABEL_W + col * CELL + CELL // 2
        out.append('<text x="%d" y="%d" transform="rotate(-45 %d %d)">%s</text>' % (x, HEAD_H - 6, x, HEAD_H - 6, esc(catalog_id)))
    for row, node in enumerate(nodes):
        y = HEAD_H + row * CELL
        label = node if len(node) <= 24 else node[:23] + '\u2026'
        out.append('<text x="%d" y="%d" text-anchor="end">%s<title>%s</title></text>' % (
            LABEL_W - 6, y + CELL // 2 + 4, esc(label), esc(node)))
        for col, catalog_id in enumerate(ids):
            state = cells[node][catalog_id]
            out.append('<rect class="cell sev-%s" data-node="%s" data-id="%s" data-state="%s" x="%d" y="%d" '
                       'width="%d" height="%d" rx="3" stroke="#fff"><title>%s %s: %s</title></rect>' % (
                           esc(state), esc(node), esc(catalog_id), esc(state), LABEL_W + col * CELL, y,
                           CELL - 2, CELL - 2, esc(node), esc(catalog_id), esc(state)))
    out.append('</svg>')
    return ''.join(out)


def _bar(label, used, total, note=''):
    """One horizontal usage bar (SVG), ``used`` of ``total``; unknown totals say so instead of guessing."""
    if not isinstance(total, (int, float)) or isinstance(total, bool) or total <= 0 or not isinstance(used, (int, float)):
        return '<div class="bar"><span class="muted">%s: not available%s</span></div>' % (esc(label), esc(note and ' (%s)' % note))
    percent = max(0.0, min(100.0, 100.0 * used / total))
    state = 'critical' if percent >= 90 else ('warning' if percent >= 75 else 'ok')
    return ('<div class="bar" data-label="%s" data-percent="%.1f"><span class="label">%s: %s of %s%s</span>'
            '<svg xmlns="http://www.w3.org/2000/svg" width="360" height="22" role="img" aria-label="%s">'
            '<rect x="0" y="3" width="300" height="16" fill="#eaeef2" rx="3"/>'
            '<rect class="sev-%s" x="0" y="3" width="%.1f" height="16" rx="3"/>'
            '<text x="306" y="16">%.1f%%</text></svg></div>') % (
                esc(label), percent, esc(label), esc(used), esc(total), esc(note and ' - %s' % note), esc(label),
                state, 3.0 * percent, percent)


def _ports_svg(ports):
    """Ephemeral range vs NodePort range on the 0-65535 axis; their overlap is red unless reserved."""
    eph = ports.get('ephemeral') or {}
    nodeport = str(ports.get('nodeport_range') or '')
    try:
        np_start, np_end = (int(p) for p in nodeport.split('-', 1))
        e_start, e_end = int(eph['start']), int(eph['end'])
    except (ValueError, KeyError, TypeError):
        return '<p class="muted">port ranges: not available</p>'
    scale = 400.0 / 65535

    def span(start, end, y, cls, label):
        return '<rect class="%s" x="%.1f" y="%d" width="%.1f" height="12"><title>%s</title></rect>' % (
            cls, 10 + start * scale, y, max(1.0, (end - start + 1) * scale), esc(label))
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" class="ports" width="640" height="62" role="img" aria-label="port ranges">',
             '<rect x="10" y="4" width="400" height="12" fill="#eaeef2"/>',
             span(e_start, e_end, 4, 'sev-info', 'ephemeral %d-%d' % (e_start, e_end)),
             '<rect x="10" y="22" width="400" height="12" fill="#eaeef2"/>',
             span(np_start, np_end, 22, 'sev-ok', 'NodePort %d-%d' % (np_start, np_end))]
    for start, end in _ranges(ports.get('uncovered')):
        parts.append(span(start, end, 40, 'sev-critical', 'overlap not reserved %d-%d' % (start, end)))
    parts.append('<text x="416" y="14">ephemeral %s</text>' % esc('%d-%d' % (e_start, e_end)))
    parts.append('<text x="416" y="32">NodePort %s</text>' % esc(nodeport))
    conflict = 'overlap not covered by reserved ports' if ports.get('conflict') else 'no unreserved overlap'
    parts.append('<text x="10" y="60">%s</text></svg>' % esc(conflict))
    return ''.join(parts)


def _ranges(value):
    out = []
    for item in value or []:
        try:
            if isinstance(item, dict):
                out.append((int(item['start']), int(item['end'])))
            elif isinstance(item, (list, tuple)):
                out.append((int(item[0]), int(item[-1])))
            else:
                start, _sep, end = str(item).partition('-')
                out.append((int(start), int(end or start)))
        except (ValueError, KeyError, TypeError, IndexError):
            continue
    return out


def utilisation_html(report):
    """Per node: conntrack usage, IPAM usage per network, ephemeral vs NodePort ranges."""
    out = []
    for node in diagnosis.hosts(report):
        facts = report.get(node) if isinstance(report.get(node), dict) else {}
        out.append('<div class="node" data-node="%s"><h3>%s</h3>' % (esc(node), esc(node)))
        conntrack = facts.get('conntrack') or {}
        if conntrack.get('available'):
            events = (conntrack.get('table_full_events') or {}).get('count')
            out.append(_bar('conntrack', conntrack.get('count'), conntrack.get('max'),
                            'table-full events: %s' % events if events else ''))
        else:
            out.append(_bar('conntrack', None, None, conntrack.get('reason') or 'not gathered'))
        networks = (facts.get('ipam') or {}).get('networks') or []
        for net in networks:
            if isinstance(net, dict):
                out.append(_bar('IPAM %s' % (net.get('name') or net.get('path') or '?'), net.get('allocated'), net.get('size'),
                                'exhausted' if net.get('exhausted') else ''))
        if not networks:
            out.append('<p class="muted">IPAM: no host-local network found</p>')
        out.append(_ports_svg(facts.get('ports') or {}))
        out.append('</div>')
    return ''.join(out)


def findings_html(report):
    """Every finding, most severe first: summary, evidence, the fix to run."""
    items = []
    for node in diagnosis.hosts(report):
        for finding in diagnosis.findings_of(report, node):
            items.append((-diagnosis.RANK.get(str(finding.get('severity')), 1), diagnosis.id_key(finding.get('id')), node, finding))
    if not items:
        return '<p>No findings.</p>'
    out = []
    for _rank, _key, node, f in sorted(items, key=lambda t: (t[0], t[1], t[2])):
        sev = str(f.get('severity') or 'info')
        out.append('<div class="finding" data-id="%s" data-node="%s"><span class="badge sev-%s">%s</span> <b>%s</b> on <b>%s</b>: %s'
                   % (esc(f.get('id')), esc(node), esc(sev if sev in SEVERITY_ORDER else 'info'), esc(sev),
                      esc(f.get('id')), esc(node), esc(f.get('summary'))))
        out.append('<div>Fix: <code>%s</code></div>' % esc(f.get('remediation') or 'see the catalog'))
        if f.get('evidence') not in (None, {}, []):
            out.append('<details><summary>evidence</summary><pre>%s</pre></details>' % esc(
                json.dumps(f.get('evidence'), indent=2, sort_keys=True, default=str)))
        out.append('</div>')
    return ''.join(out)


def comparison_html(before, after):
    rows = diagnosis.compare(before, after)
    if not rows:
        return '<p>Neither report has a finding.</p>'
    cls = {'fixed': 'ok', 'partly fixed': 'info', 'new': 'critical', 'worse': 'critical', 'still there': 'warning'}
    return _table(['ID', 'finding', 'before (hosts)', 'after (hosts)', 'verdict', 'fix to run'], [
        [esc(r['id']), esc(r['summary']), esc(', '.join(r['before']) or '-'), esc(', '.join(r['after']) or '-'),
         '<span class="badge sev-%s verdict">%s</span>' % (cls[r['verdict']], esc(r['verdict'])),
         esc(', '.join(r['remediation']) if r['after'] else '')] for r in rows], cls='comparison')


def diagnosis_html(report, before=None, title='netmedic diagnosis', generated=None):
    """The diagnosis page; ``before``: an earlier report of the same fleet for the comparison."""
    report = report or {}
    counts = dict.fromkeys(diagnosis.SEVERITIES, 0)
    for node in diagnosis.hosts(report):
        for f in diagnosis.findings_of(report, node):
            counts[str(f.get('severity'))] = counts.get(str(f.get('severity')), 0) + 1
    body = ['<h1>%s</h1>' % esc(title),
            '<p>%d node(s), %d catalog ID(s); findings: %s%s</p>' % (
                len(diagnosis.hosts(report)), len(diagnosis.catalog_ids(report)),
                esc(', '.join('%s %d' % (s, counts.get(s, 0)) for s in diagnosis.SEVERITIES)),
                esc(generated and '; generated %s' % generated)),
            '<h2>Fleet heatmap</h2>', _legend(), heatmap_svg(report),
            '<h2>Findings</h2>', findings_html(report),
            '<h2>Utilisation per node</h2>', utilisation_html(report)]
    if before is not None:
        body += ['<h2>Before / after</h2>', comparison_html(before, report)]
    return page(title, '\n'.join(body))


# ---------------------------------------------------------------- change report

def diff_html(text):
    """A unified diff with added/removed lines marked (escaped)."""
    lines = []
    for line in str(text or '').splitlines():
        cls = 'add' if line.startswith('+') and not line.startswith('+++') else (
            'del' if line.startswith('-') and not line.startswith('---') else ('hunk' if line.startswith('@@') else ''))
        lines.append('<span class="%s">%s</span>' % (cls, esc(line)) if cls else esc(line))
    return '<pre class="diff">%s</pre>' % '\n'.join(lines)


def timeline_svg(rollout):
    """A rollout's nodes in plan order: restarted (ok), failed node (critical), unverified (warning), remaining (unknown)."""
    steps = []
    for item in rollout.get('restarted') or []:
        steps.append((str(item.get('node') if isinstance(item, dict) else item), 'ok', 'restarted'))
    failed = rollout.get('failed_node')
    if isinstance(failed, dict) and failed.get('node'):
        steps.append((str(failed['node']), 'critical', 'failed: %s' % (failed.get('reason') or '')))
    for node in rollout.get('unverified') or []:
        steps.append((str(node), 'warning', 'unverified'))
    for node in rollout.get('remaining') or []:
        steps.append((str(node), 'unknown', 'remaining'))
    width = 40 + 130 * max(len(steps), 1)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="%d" height="64" role="img" aria-label="rollout">' % width,
           '<line x1="20" y1="20" x2="%d" y2="20" stroke="#8c959f" stroke-width="2"/>' % (width - 20)]
    for i, (node, state, what) in enumerate(steps):
        x = 40 + 130 * i
        out.append('<circle class="step sev-%s" cx="%d" cy="20" r="9"><title>%s: %s</title></circle>' % (state, x, esc(node), esc(what)))
        out.append('<text x="%d" y="46" text-anchor="middle">%s</text>' % (x, esc(node)))
        out.append('<text x="%d" y="60" text-anchor="middle" class="muted">%s</text>' % (x, esc(what[:20])))
    out.append('</svg>')
    return ''.join(out)


def change_report_html(report):
    """The change report as one page (see plugins/callback/change_report.py for its fields)."""
    head = report.get('header') or {}
    title = 'netmedic change report: %s (%s)' % (report.get('playbook') or '?', head.get('mode') or '?')
    body = ['<h1>%s</h1>' % esc(title)]
    if head.get('change_id_missing'):
        body.append('<p class="loud" id="change-id-missing">No change ticket: netmedic_change_id was not given for this '
                    'apply run.</p>')
    rows = []
    for key, label in (('mode', 'mode'), ('change_id', 'change ticket (netmedic_change_id)'), ('operator', 'operator'),
                       ('awx', 'AWX job'), ('inventory', 'inventory'), ('limit', 'limit'), ('window', 'change window'),
                       ('collection', 'collection'), ('git_revision', 'git revision'), ('extra_vars', 'extra vars')):
        value = head.get(key)
        rows.append([esc(label), '<code>%s</code>' % esc(value) if value not in (None, '', {}, []) else '<span class="muted">-</span>'])
    rows.append([esc('started / finished'), esc('%s / %s' % (report.get('started'), report.get('finished')))])
    body += ['<h2>Header</h2>', _table(['field', 'value'], rows, cls='header')]
    counters = ('ok', 'changed', 'failures', 'ignored', 'rescued', 'skipped', 'unreachable')
    body += ['<h2>Hosts</h2>', _table(['host'] + list(counters), [
        [esc(host)] + [esc((stats or {}).get(c, 0)) for c in counters] for host, stats in sorted((report.get('hosts') or {}).items())],
        cls='hosts')]
    rollouts = report.get('rollouts') or []
    if rollouts:
        body.append('<h2>Rollouts</h2>')
        for r in rollouts:
            body.append('<h3>%s %s</h3>' % (esc(r.get('task')), esc(r.get('daemonset') or '')))
            body.append(timeline_svg(r))
    body.append('<h2>Entries</h2>')
    for e in report.get('entries') or []:
        body.append('<div class="finding entry" data-status="%s"><b>%s</b> <code>%s</code> on <b>%s</b>%s: <span class="badge">%s</span>'
                    ' <span class="muted">%s</span>' % (
                        esc(e.get('status')), esc(e.get('task')), esc(e.get('action')), esc(e.get('host')),
                        esc(' [%s]' % e['item'] if 'item' in e else ''), esc(e.get('state')), esc(e.get('finished'))))
        if e.get('catalog'):
            body.append('<div>catalog: %s</div>' % esc(', '.join(str(c) for c in e['catalog'])))
        for backup in e.get('backups') or []:
            body.append('<div>backup of %s: <code>%s</code></div>' % (esc(backup.get('of', '?')), esc(backup.get('path') or backup.get('configmap'))))
        for warning in e.get('warnings') or []:
            body.append('<div>warning: %s</div>' % esc(warning))
        if e.get('status') != 'ok' and e.get('msg'):
            body.append('<div class="loud">error: %s</div>' % esc(e.get('msg')))
        if e.get('diff_unavailable'):
            body.append('<div class="muted">diff: not returned by the module (run with --diff to record it)</div>')
        if e.get('diff'):
            body.append(diff_html(e['diff']))
        body.append('</div>')
    return page(title, '\n'.join(body))
