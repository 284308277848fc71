"""report_html and diagnosis: the HTML pages of issue 11 (item 2, and item 1's HTML), rendered without a browser.

The browser test (tests/integration/test_diagnosis_html_browser.py) loads the same pages in Chromium.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

from ansible_collections.netmedic.k8s.plugins.module_utils import diagnosis, report_html

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'diagnosis'
HOSTILE = '<img src=x onerror=alert(1)>'


def _load(name):
    return json.loads((FIXTURES / ('%s.json' % name)).read_text())


class _Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's parser would see them."""

    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(text):
    parser = _Tags()
    parser.feed(text)
    return parser.tags


def test_issue11_heatmap_one_cell_per_node_and_id():
    report = _load('before')
    page = report_html.diagnosis_html(report)
    cells = [a for t, a in _tags(page) if t == 'rect' and 'cell' in a.get('class', '').split()]
    ids = diagnosis.catalog_ids(report)
    assert len(ids) == 11 and len(cells) == 3 * 11
    assert sorted((a['data-node'], a['data-id']) for a in cells) == sorted((n, i) for n in report for i in ids)
    state = {(a['data-node'], a['data-id']): a['data-state'] for a in cells}
    assert state[('lab-node-1', 'N-2')] == 'critical' and state[('lab-node-2', 'N-3')] == 'warning'
    assert state[('lab-node-1', 'N-1')] == 'ok'
    # The ipvs probe failed on the third node: N-4/N-5 are unknown there, never ok.
    assert state[(HOSTILE, 'N-4')] == state[(HOSTILE, 'N-5')] == 'unknown'


def test_issue11_every_value_escaped_and_nothing_loaded():
    page = report_html.diagnosis_html(_load('after'), before=_load('before'), title='<i>t</i>')
    tags = _tags(page)
    assert not [t for t, _a in tags if t in ('script', 'img', 'link', 'iframe', 'object', 'embed', 'i')]
    assert not [a for _t, a in tags if any(k.startswith('on') or k in ('src', 'href') for k in a)]
    assert not re.search(r'url\(|@import', page)
    assert '&lt;img src=x onerror=alert(1)&gt;' in page and '&lt;script&gt;alert(1)&lt;/script&gt;' in page


def test_issue11_utilisation_bars_from_node_facts():
    page = report_html.diagnosis_html(_load('before'))
    bars = {(a.get('data-label'), a.get('data-percent')) for t, a in _tags(page) if t == 'div' and 'bar' in a.get('class', '')}
    assert ('conntrack', '100.0') in bars and ('IPAM cbr0', '100.0') in bars and ('IPAM macvlan-1', '21.4') in bars
    assert 'ephemeral 1024-65000' in page and 'overlap not reserved 1024-32767' in page
    assert 'overlap not covered by reserved ports' in page


def test_issue11_findings_show_evidence_and_fix():
    page = report_html.diagnosis_html(_load('before'))
    assert page.count('class="finding"') == 5
    assert 'Fix: <code>netmedic.k8s.conntrack_limit</code>' in page and '&quot;max&quot;: 262144' in page


def test_issue11_compare_verdicts():
    rows = {r['id']: r for r in diagnosis.compare(_load('before'), _load('after'))}
    assert {i: r['verdict'] for i, r in rows.items()} == {
        'N-1': 'fixed', 'N-2': 'fixed', 'N-3': 'still there', 'N-6': 'still there', 'N-8': 'fixed', 'D-11': 'new'}
    assert rows['N-3']['remediation'] == ['netmedic.k8s.port_range'] and rows['N-2']['before'] == ['lab-node-1']
    text = diagnosis.compare_text(_load('before'), _load('after'))
    assert '3 of 5 catalog IDs fixed; findings 5 host(s) -> 3 host(s)' in text
    page = report_html.diagnosis_html(_load('after'), before=_load('before'))
    assert page.count('class="badge sev-ok verdict"') == 3 and 'Before / after' in page
    assert 'Before / after' not in report_html.diagnosis_html(_load('after'))


def test_issue11_compare_worse_and_partly():
    one = {'a': {'findings': [{'id': 'N-2', 'severity': 'warning', 'summary': 's'}]}, 'b': {'findings': []}}
    both = {'a': {'findings': [{'id': 'N-2', 'severity': 'warning', 'summary': 's'}]},
            'b': {'findings': [{'id': 'N-2', 'severity': 'warning', 'summary': 's'}]}}
    assert diagnosis.compare(one, both)[0]['verdict'] == 'worse'
    assert diagnosis.compare(both, one)[0]['verdict'] == 'partly fixed'


def test_issue11_change_report_page_diff_and_timeline():
    report = {'playbook': 'p.yml', 'started': 's', 'finished': 'f',
              'header': {'mode': 'apply', 'change_id': None, 'change_id_missing': True, 'operator': '<op>'},
              'hosts': {'localhost': {'ok': 1, 'changed': 1, 'failures': 1, 'ignored': 0, 'rescued': 0, 'skipped': 0, 'unreachable': 0}},
              'rollouts': [{'task': 'restart', 'daemonset': 'kube-system/kube-proxy', 'restarted': [{'node': 'n1'}],
                            'failed_node': {'node': 'n2', 'reason': 'failure line'}, 'remaining': ['n3'], 'unverified': []}],
              'entries': [{'host': 'localhost', 'task': 't', 'action': 'a', 'status': 'ok', 'state': 'changed', 'changed': True,
                           'finished': 'f', 'diff': '--- before\n+++ after\n@@ -1 +1 @@\n-a: 1\n+a: <2>\n'}]}
    page = report_html.change_report_html(report)
    steps = [a['class'] for t, a in _tags(page) if t == 'circle']
    assert steps == ['step sev-ok', 'step sev-critical', 'step sev-unknown']
    assert '<span class="add">+a: &lt;2&gt;</span>' in page and '<span class="del">-a: 1</span>' in page
    assert 'id="change-id-missing"' in page and '&lt;op&gt;' in page
