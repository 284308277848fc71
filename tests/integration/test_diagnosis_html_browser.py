"""The HTML reports of issue 11 in a real headless browser (Debian's chromium, bindep.txt profile test).

Each page loads from a file with every network request sent to a dead proxy on the loopback
(nothing can leave this machine), and must: log nothing to the console, request no URL of its
own (Chromium's net log), and, for the diagnosis, show exactly one heatmap cell per node x
catalog ID. Screenshots are kept in tests/output/ as artifacts. A control page with a script
error and an external image proves the checks see what they look for.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import yaml

from ansible_collections.netmedic.k8s.plugins.module_utils import diagnosis, report_html

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / 'tests' / 'output' / 'browser'
FIXTURES = ROOT / 'tests' / 'unit' / 'fixtures' / 'diagnosis'
# Chromium's own background requests (updates, time, accounts): they also hit the dead proxy.
BROWSER_OWN = re.compile(r'^https?://([a-z0-9.-]+\.)?(google\.com|googleapis\.com|gvt1\.com|gstatic\.com)(/|:|$)')
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--proxy-server=127.0.0.1:9',
         '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
         '--disable-default-apps', '--disable-extensions']


def _browse(chromium, tmp_path, page, screenshot=None):
    """Load ``page``: ``(dom, console lines, URLs the page requested)``; with ``screenshot``, also a PNG of it."""
    netlog = tmp_path / ('net-%s.json' % page.stem)
    profile = ['--user-data-dir=%s' % (tmp_path / 'profile')]
    proc = subprocess.run([chromium] + FLAGS + profile + ['--enable-logging=stderr', '--v=0', '--log-net-log=%s' % netlog,
                                                          '--dump-dom', page.as_uri()],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = [line for line in proc.stderr.splitlines() if ':CONSOLE' in line]
    urls = set(re.findall(r'"url":"([^"]+)"', netlog.read_text())) if netlog.exists() else None
    assert urls is not None, 'chromium wrote no net log'
    urls = {u for u in urls if not u.startswith(('file:', 'data:', 'about:', 'chrome:')) and not BROWSER_OWN.match(u)}
    if screenshot:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        shot = subprocess.run([chromium] + FLAGS + profile + ['--window-size=1280,2400', '--screenshot=%s' % screenshot,
                                                              page.as_uri()],
                              capture_output=True, text=True, timeout=180, check=False)
        assert shot.returncode == 0 and screenshot.stat().st_size > 10000, shot.stderr[-3000:]
        assert screenshot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    return proc.stdout, console, urls


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.bars, self.verdicts = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get('class') or '').split()
        if tag == 'rect' and 'cell' in classes:
            self.cells.append((attrs.get('data-node'), attrs.get('data-id'), attrs.get('data-state')))
        if tag == 'div' and 'bar' in classes:
            self.bars.append(attrs.get('data-label'))
        if 'verdict' in classes:
            self.verdicts.append(attrs.get('class'))


def _cells(dom):
    parser = _Cells()
    parser.feed(dom)
    return parser


def test_issue11_control_page_errors_are_seen(require, tmp_path):
    """Control: a page with a script error and an external image is caught by both checks."""
    chromium = require('chromium')
    bad = tmp_path / 'bad.html'
    bad.write_text('<!DOCTYPE html><html><body><img src="http://report.invalid/x.png">'
                   '<script>undefinedFunction()</script></body></html>')
    _dom, console, urls = _browse(chromium, tmp_path, bad)
    assert any('undefinedFunction' in line for line in console), console
    assert urls == {'http://report.invalid/x.png'}


def test_issue11_diagnosis_page_fleet_in_browser(require, tmp_path):
    """A three-node fleet with findings of every severity, a failed probe, hostile names, and a comparison."""
    chromium = require('chromium')
    before, after = (json.loads((FIXTURES / n).read_text()) for n in ('before.json', 'after.json'))
    page = tmp_path / 'diagnosis-fleet.html'
    page.write_text(report_html.diagnosis_html(after, before=before))
    dom, console, urls = _browse(chromium, tmp_path, page, screenshot=OUTPUT / 'diagnosis-fleet.png')
    assert console == [] and urls == set()
    parsed = _cells(dom)
    ids = diagnosis.catalog_ids(after)
    assert len(parsed.cells) == len(after) * len(ids) == 3 * 11
    assert len({(n, i) for n, i, _s in parsed.cells}) == len(parsed.cells)
    assert {s for _n, _i, s in parsed.cells} == {'ok', 'warning', 'info', 'unknown'}
    assert parsed.verdicts and 'conntrack' in parsed.bars
    assert '<img' not in dom.split('<body>', 1)[1].replace('&lt;img', '')      # the hostile node name stays text


def _diagnose(tmp_path, report_dir, *extra):
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'all': {'hosts': {
        name: {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable} for name in ('node-a', 'node-b')}}}))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'), NETMEDIC_REPORT_DIR=str(tmp_path / 'change-reports'))
    cmd = [str(Path(sys.executable).with_name('ansible-playbook')), '-i', str(inventory), str(ROOT / 'playbooks' / 'diagnose.yml'),
           '-e', 'netmedic_report_dir=%s' % report_dir] + list(extra)
    return subprocess.run(cmd, env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=600, check=False)


def test_issue11_diagnose_playbook_writes_html_with_comparison(require, tmp_path):
    """diagnose.yml on two nodes (this machine, read-only) writes diagnose.html; a second run compares with the first;
    a comparison file that is not there fails before anything is written."""
    chromium = require('chromium')
    first = _diagnose(tmp_path, tmp_path / 'r1')
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    before_json = (tmp_path / 'r1' / 'diagnose.json').resolve()
    second = _diagnose(tmp_path, tmp_path / 'r2', '-e', 'netmedic_compare_with=%s' % before_json)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    html_file = (tmp_path / 'r2' / 'diagnose.html').resolve()
    assert html_file.stat().st_mode & 0o777 == 0o600 and html_file.name.startswith('diagnose-')
    report = json.loads((tmp_path / 'r2' / 'diagnose.json').read_text())
    dom, console, urls = _browse(chromium, tmp_path, html_file, screenshot=OUTPUT / 'diagnose-playbook.png')
    assert console == [] and urls == set()
    parsed = _cells(dom)
    assert sorted((n, i) for n, i, _s in parsed.cells) == sorted(
        (n, i) for n in ('node-a', 'node-b') for i in diagnosis.catalog_ids(report))
    assert 'Before / after' in dom
    # The diagnosis is read-only: its change report needs no ticket.
    (change,) = [p for p in (tmp_path / 'change-reports').glob('change-report-*.json') if not p.is_symlink()][-1:]
    assert json.loads(change.read_text())['header']['read_only'] is True

    files = sorted(p.name for p in (tmp_path / 'r3').iterdir()) if (tmp_path / 'r3').exists() else []
    bad = _diagnose(tmp_path, tmp_path / 'r3', '-e', 'netmedic_compare_with=%s' % (tmp_path / 'missing.json'))
    assert bad.returncode != 0 and 'no such file' in bad.stdout
    assert sorted(p.name for p in (tmp_path / 'r3').iterdir()) == files if (tmp_path / 'r3').exists() else True


def test_issue11_change_report_page_in_browser(require, tmp_path):
    """The change report's HTML page (diff, rollout timeline, missing ticket) loads cleanly too."""
    chromium = require('chromium')
    report = {'playbook': 'ipvs_scheduler_change.yml', 'started': '2026-12-02T01:00:00+00:00', 'finished': '2026-12-02T01:05:00+00:00',
              'header': {'mode': 'apply', 'change_id': None, 'change_id_missing': True, 'operator': 'alice',
                         'awx': {'job_id': 4711, 'job_template': 'W-3 <apply>'}, 'limit': 'localhost',
                         'extra_vars': {'netmedic_api_token': '********'}},
              'hosts': {'localhost': {'ok': 3, 'changed': 2, 'failures': 1, 'ignored': 0, 'rescued': 0, 'skipped': 0, 'unreachable': 0}},
              'rollouts': [{'task': 'restart kube-proxy', 'daemonset': 'kube-system/kube-proxy', 'restarted': [{'node': 'lab-node-1'}],
                            'failed_node': {'node': 'lab-node-2', 'reason': 'failure line'}, 'remaining': ['lab-node-3'],
                            'unverified': []}],
              'entries': [{'host': 'localhost', 'task': 'scheduler', 'action': 'netmedic.k8s.kube_proxy_config', 'status': 'ok',
                           'state': 'changed', 'changed': True, 'finished': '2026-12-02T01:01:00+00:00',
                           'diff': '--- before: kube-proxy\n+++ after: kube-proxy\n@@ -1 +1 @@\n-  scheduler: rr\n+  scheduler: lc\n'}]}
    page = tmp_path / 'change-report.html'
    page.write_text(report_html.change_report_html(report))
    dom, console, urls = _browse(chromium, tmp_path, page, screenshot=OUTPUT / 'change-report.png')
    assert console == [] and urls == set()
    assert dom.count('class="step sev-') == 3 and 'id="change-id-missing"' in dom and '+  scheduler: lc' in dom
