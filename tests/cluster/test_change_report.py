"""Callback netmedic.k8s.change_report: the report a change ticket needs, from real runs on the double and on the real
kube-apiserver (issue 15).

Ported from tests/lab/test_change_report.py (where only the ansible-runner case, which talks to no API server,
stays). Each test runs ``ansible-playbook`` with the callback against copies of the seed's kube-system ConfigMaps and
DaemonSets in a namespace of its own (``seeded``; the modules' ``namespace``), so the seed stays clean. What the
report says is checked against what was written, read back through the API (the backup ConfigMaps, the Terway
secret kept in the ConfigMap and its backup), never taken from the module's result alone.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import yaml

from tests.cluster.conftest import bearer
from tests.lab.playbook_run import module_python, playbook_command, playbook_env, run_process

ROOT = Path(__file__).resolve().parents[2]


def _run(cluster, tmp_path, tasks, check=False, extra=(), report_dir=None):
    play = [{'hosts': 'localhost', 'gather_facts': False, 'vars': {'ansible_python_interpreter': module_python()[0]},
             'tasks': tasks}]
    path = tmp_path / 'play.yml'
    path.write_text(yaml.safe_dump(play))
    report_dir = report_dir or tmp_path / ('report-check' if check else 'report')
    extra = (['--check'] if check else []) + list(extra)
    proc = run_process(cluster, tmp_path, path, *extra, timeout=600, callback=None, change_id=None,
                       env={'ANSIBLE_CALLBACKS_ENABLED': 'netmedic.k8s.change_report', 'NETMEDIC_REPORT_DIR': str(report_dir),
                            'TMPDIR': str(_private_tmp(tmp_path))})
    (json_file,) = sorted(p for p in report_dir.glob('change-report-*.json') if not p.is_symlink())
    (md_file,) = sorted(p for p in report_dir.glob('change-report-*.md') if not p.is_symlink())
    return proc, json.loads(json_file.read_text()), md_file.read_text()


def _private_tmp(tmp_path):
    """TMPDIR of the runs (kubernetes.core caches discovery in ``$TMPDIR/k8srcp-*.json``)."""
    tmp = tmp_path / 'tmp'
    tmp.mkdir(exist_ok=True)
    return tmp


def _tasks(ns):
    return [
        {'name': 'maxPerCore',
         'netmedic.k8s.kube_proxy_config': {'namespace': ns, 'names': ['kube-proxy-worker'],
                                            'settings': {'conntrack.maxPerCore': 65536}}},
        {'name': 'bad scheduler', 'ignore_errors': True,
         'netmedic.k8s.kube_proxy_config': {'namespace': ns, 'settings': {'ipvs.scheduler': 'fastest'},
                                            'api_key': 'not-logged-anywhere'}},
    ]


def test_report_lists_changes_backups_and_failures(writable, seeded, tmp_path):
    cluster, ns = writable, seeded
    rv = cluster.get('ConfigMap', ns, 'kube-proxy-worker')['metadata']['resourceVersion']
    proc, report, md = _run(cluster, tmp_path, _tasks(ns), check=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = next(e for e in report['entries'] if e['task'] == 'maxPerCore')
    assert entry['changed'] is True and entry['check_mode'] is True and entry['catalog'][:2] == ['C-0', 'C-1']
    assert '**maxPerCore** `netmedic.k8s.kube_proxy_config`: would change (check mode)' in md
    assert cluster.get('ConfigMap', ns, 'kube-proxy-worker')['metadata']['resourceVersion'] == rv     # check: no write

    proc, report, md = _run(cluster, tmp_path, _tasks(ns))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = next(e for e in report['entries'] if e['task'] == 'maxPerCore')
    assert entry['changed'] is True and entry['check_mode'] is False
    (backup,) = entry['backups']
    assert backup['configmap'].split('/')[0] == ns
    stored = cluster.get('ConfigMap', ns, backup['configmap'].split('/')[1])
    assert stored['metadata']['labels']['netmedic.k8s/backup-of'] == 'kube-proxy-worker'
    assert 'backup of %s/kube-proxy-worker: %s' % (ns, backup['configmap']) in md
    bad = next(e for e in report['entries'] if e['task'] == 'bad scheduler')
    # ignore_errors: named as such, in agreement with the host counts (issue 11).
    assert bad['status'] == 'ignored' and 'scheduler' in bad['msg']
    assert '**bad scheduler** `netmedic.k8s.kube_proxy_config`: failed, ignored (ignore_errors)' in md
    assert report['hosts']['localhost']['changed'] == 1
    assert 'not-logged-anywhere' not in md and 'not-logged-anywhere' not in json.dumps(report)


# A Terway eni_conf as ACK writes it when the cluster uses an AccessKey instead of a RAM role.
ACCESS_KEY = 'LTAI5tLabAccessKeyId0001'
ACCESS_SECRET = 'lab-Acc3ssSecret-must-never-leak-0001'


def _plant_terway_secret(cluster, ns):
    cm = cluster.get('ConfigMap', ns, 'eni-config')
    conf = json.loads(cm['data']['eni_conf'])
    conf.update(access_key=ACCESS_KEY, access_secret=ACCESS_SECRET)
    cm['data']['eni_conf'] = json.dumps(conf, indent=2) + '\n'
    cluster.replace(cm)                                  # an ordinary update on either server
    return conf


def test_issue10_h4_terway_secret_not_in_report_diff_or_vvv(writable, seeded, tmp_path):
    cluster, ns = writable, seeded
    conf = _plant_terway_secret(cluster, ns)
    tasks = [{'name': 'pool', 'register': 'pool',
              'netmedic.k8s.terway_config': {'namespace': ns, 'eni_conf': {'max_pool_size': 10}}},
             {'name': 'show', 'ansible.builtin.debug': {'var': 'pool'}}]
    report_dir = tmp_path / 'reports' / 'r'
    proc, report, _md = _run(cluster, tmp_path, tasks, extra=['--diff', '-vvv'], report_dir=report_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    # The change happened, and the diff still shows what changed (and that a secret is there, masked).
    assert 'max_pool_size' in output and re.search(r'access_secret\\?": \\?"\*{8}', output)
    stored = json.loads(cluster.get('ConfigMap', ns, 'eni-config')['data']['eni_conf'])
    assert stored['max_pool_size'] == 10 and stored['access_secret'] == ACCESS_SECRET
    # The backup ConfigMap keeps the real data (a masked backup would be no backup) ...
    entry = next(e for e in report['entries'] if e['task'] == 'pool')
    (backup,) = entry['backups']
    kept = cluster.get('ConfigMap', ns, backup['configmap'].split('/')[1])
    assert json.loads(kept['data']['eni_conf'])['access_secret'] == ACCESS_SECRET
    # ... while the report keeps its name only, and nothing shows either credential.
    assert set(backup) == {'of', 'configmap'}
    files = sorted(report_dir.iterdir())
    for secret in (ACCESS_KEY, ACCESS_SECRET):
        assert secret not in output
        for path in files:
            assert secret not in path.read_text(), path
    assert conf['max_pool_size'] == 5 and 'vsw-lab00000000000000001' in output      # harmless keys stay visible
    # Reports: 0600 files in a 0700 directory.
    assert report_dir.stat().st_mode & 0o777 == 0o700
    assert [oct(p.stat().st_mode & 0o777) for p in files if not p.is_symlink()] == ['0o600'] * 3      # .html .json .md


TERWAY_RULES = [{'apiGroups': [''], 'resources': ['configmaps'], 'verbs': ['get', 'list', 'create', 'update', 'patch']},
                {'apiGroups': ['apps'], 'resources': ['daemonsets'], 'verbs': ['get', 'list']}]


def _inline_kubeconfig(cluster, auth):
    """The cluster's kubeconfig as a dict, its user a bearer token (the admin of the real server's kubeconfig
    authenticates by a client certificate; a token is what the masking is about on both servers)."""
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    context_name = cluster.context or config['current-context']
    context = next(c for c in config['contexts'] if c['name'] == context_name)
    server = next(c for c in config['clusters'] if c['name'] == context['context']['cluster'])
    return {'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'inline', 'preferences': {},
            'clusters': [server],
            'contexts': [{'name': 'inline', 'context': {'cluster': server['name'], 'user': 'inline-user'}}],
            'users': [{'name': 'inline-user', 'user': {'token': auth['api_key']}}]}


def test_issue10_h4_inline_kubeconfig_token_masked(writable, seeded, tmp_path):
    cluster, ns = writable, seeded
    inline = _inline_kubeconfig(cluster, bearer(cluster, ns, 'terway-reader', TERWAY_RULES, tmp_path))
    token = inline['users'][0]['user']['token']
    assert len(token) >= 8
    tasks = [{'name': 'inline', 'register': 'inline', 'vars': {'ansible_inject_invocation': True},
              'netmedic.k8s.terway_config': {'kubeconfig': inline, 'namespace': ns, 'disable_network_policy': False}},
             {'name': 'show', 'ansible.builtin.debug': {'var': 'inline.invocation.module_args.kubeconfig'}}]
    proc, report, md = _run(cluster, tmp_path, tasks, extra=['-vvv'])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"token": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"' in proc.stdout
    # Only the credential is masked: the rest of the inline kubeconfig stays readable.
    assert '"server": "%s"' % inline['clusters'][0]['cluster']['server'] in proc.stdout
    assert token not in proc.stdout + proc.stderr and token not in md and token not in json.dumps(report)


def test_issue10_h12_concurrent_runs_write_two_reports(writable, seeded, tmp_path):
    cluster, ns = writable, seeded
    report_dir = tmp_path / 'shared'
    tasks = [{'name': 'read', 'netmedic.k8s.terway_config': {'namespace': ns, 'disable_network_policy': False}}]
    play = tmp_path / 'play.yml'
    play.write_text(yaml.safe_dump([{'hosts': 'localhost', 'gather_facts': False,
                                     'vars': {'ansible_python_interpreter': module_python()[0]}, 'tasks': tasks}]))
    env = {'ANSIBLE_CALLBACKS_ENABLED': 'netmedic.k8s.change_report', 'NETMEDIC_REPORT_DIR': str(report_dir)}
    procs = []
    for i in range(2):
        run_env = dict(env, ANSIBLE_LOCAL_TEMP=str(tmp_path / ('t%d' % i)), TMPDIR=str(_private_tmp(tmp_path)))
        procs.append(subprocess.Popen(playbook_command(play, change_id=None), cwd=str(tmp_path), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True,
                                      env=playbook_env(cluster, tmp_path, run_env, callback=None)))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    reports = sorted(p for p in report_dir.glob('change-report-*.json') if not p.is_symlink())
    assert len(reports) == 2 and len(sorted(p for p in report_dir.glob('change-report-*.md') if not p.is_symlink())) == 2
    assert all(json.loads(p.read_text())['entries'] for p in reports)
    assert not [p for p in report_dir.iterdir() if p.name.startswith('.')]          # no temp file left behind


# ---------------------------------------------------------------- issue 11: the report as evidence

AWX_VARS = {'awx_user_name': 'alice', 'awx_job_id': 4711, 'awx_job_template_name': 'netmedic conntrack (check)',
            'awx_inventory_name': 'prod-eu1', 'netmedic_window': 'sat,sun 22:00-04:00 UTC'}
EXTRA_SECRET = 'xv-Extra-Secret-Token-0001'


def _git_head():
    return subprocess.run(['git', '-C', str(ROOT), 'rev-parse', 'HEAD'], capture_output=True, text=True, timeout=30,
                          check=True).stdout.strip()


def _diff_lines(text):
    return [line for line in text.splitlines() if line.startswith(('+', '-', '@@'))]


def test_issue11_check_run_report_is_evidence(writable, seeded, tmp_path):
    """Issue 11 item 1: a check run's report says WHAT would change (the diff, as the default callback shows it), who
    ran it where (AWX user, job, template, inventory, limit), with which extra vars (secrets masked), which collection
    version and git revision, the change window and ticket, and when each entry ran."""
    cluster, ns = writable, seeded
    extra = dict(AWX_VARS, netmedic_change_id='CHG-1234', netmedic_api_token=EXTRA_SECRET)
    proc, report, md = _run(cluster, tmp_path, _tasks(ns), check=True,
                            extra=['--diff', '--limit', 'localhost', '-e', json.dumps(extra)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    head = report['header']
    assert head['mode'] == 'check' and head['change_id'] == 'CHG-1234' and head['change_id_missing'] is False
    assert head['operator'] == 'alice'
    assert head['awx'] == {'job_id': 4711, 'job_template': 'netmedic conntrack (check)', 'user': 'alice',
                           'inventory': 'prod-eu1'}
    assert head['inventory'] == 'prod-eu1' and head['limit'] == 'localhost'
    assert head['extra_vars']['netmedic_api_token'] == '********'
    assert head['window']['requested'] == 'sat,sun 22:00-04:00 UTC'
    galaxy = yaml.safe_load((ROOT / 'galaxy.yml').read_text())
    assert head['collection'] == {'name': 'netmedic.k8s', 'version': galaxy['version']}
    assert head['git_revision'] == _git_head()
    for text in (md, json.dumps(report), proc.stdout):
        assert EXTRA_SECRET not in text
    entry = next(e for e in report['entries'] if e['task'] == 'maxPerCore')
    for key in ('started', 'finished'):
        assert entry[key].endswith('+00:00') and entry[key] >= report['started']
    # The diff: the same lines the default callback printed for --diff, here without colours.
    lines = _diff_lines(entry['diff'])
    assert any(line.startswith('+') and '65536' in line for line in lines), entry['diff']
    assert any(line.startswith('-') and 'maxPerCore' in line for line in lines), entry['diff']
    for line in lines:
        assert line in proc.stdout, line
    assert entry['diff'].rstrip('\n') in md
    for want in ('Mode: **check**', 'alice', '4711', 'prod-eu1', '`localhost`', 'CHG-1234', galaxy['version'], _git_head()):
        assert want in md, want


def test_issue11_check_run_diff_without_diff_flag(writable, seeded, tmp_path):
    """Issue 11: without --diff the modules return before/after only; the report still shows the planned change."""
    cluster, ns = writable, seeded
    proc, report, md = _run(cluster, tmp_path, _tasks(ns)[:1], check=True, extra=['-e', 'netmedic_change_id=CHG-1'])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (entry,) = [e for e in report['entries'] if e['task'] == 'maxPerCore']
    assert any(line.startswith('+') and '65536' in line for line in _diff_lines(entry['diff'])), entry
    assert '```diff' in md


def test_issue11_ignored_failure_and_rescue_agree_with_host_table(writable, seeded, tmp_path):
    """Issue 11: a task failed with ignore_errors showed FAILED while the host table said 0 failed; a rescued
    failure too. Entries and table now agree: ignored and rescued are counted and named as such."""
    cluster, ns = writable, seeded
    tasks = _tasks(ns) + [{'name': 'guarded', 'block': [
        {'name': 'bad in block', 'netmedic.k8s.kube_proxy_config': {'namespace': ns, 'settings': {'ipvs.scheduler': 'fastest'}}}],
        'rescue': [{'name': 'rescue step', 'ansible.builtin.debug': {'msg': 'rescued'}}]}]
    proc, report, md = _run(cluster, tmp_path, tasks, check=True, extra=['-e', 'netmedic_change_id=CHG-2'])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    host = report['hosts']['localhost']
    assert (host['failures'], host['ignored'], host['rescued']) == (0, 1, 1)
    status = {e['task']: e['status'] for e in report['entries']}
    assert status['bad scheduler'] == 'ignored' and status['bad in block'] == 'rescued'
    assert sum(1 for e in report['entries'] if e['status'] == 'failed') == host['failures']
    assert '| Host | ok | changed | failed | ignored | rescued | skipped | unreachable |' in md
    assert '**bad scheduler** `netmedic.k8s.kube_proxy_config`: failed, ignored (ignore_errors)' in md
    assert ': FAILED' not in md


def test_issue11_apply_without_change_id_is_marked_missing(writable, seeded, tmp_path):
    """Issue 11: an apply run needs netmedic_change_id. A callback cannot fail a run, so the report says it loudly
    (Markdown, HTML, JSON) and the run prints a warning."""
    cluster, ns = writable, seeded
    proc, report, md = _run(cluster, tmp_path, _tasks(ns)[:1])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report['header']['mode'] == 'apply' and report['header']['change_id'] is None
    assert report['header']['change_id_missing'] is True
    assert 'NO CHANGE TICKET' in md and 'netmedic_change_id' in proc.stderr
    html = next(p for p in (tmp_path / 'report').glob('change-report-*.html') if not p.is_symlink()).read_text()
    assert 'id="change-id-missing"' in html
    conf = yaml.safe_load(cluster.get('ConfigMap', ns, 'kube-proxy-worker')['data']['config.conf'])
    assert conf['conntrack']['maxPerCore'] == 65536                    # an apply run: the change was made


def test_issue11_json_schema_html_and_copies(writable, seeded, tmp_path, monkeypatch):
    """Issue 11: JSON valid against the published schema; a self-contained 0600 HTML page; copies in the archive
    directory (outlives an AWX job container) and in ansible-runner's artifact directory."""
    cluster, ns = writable, seeded
    schema = json.loads((ROOT / 'docs' / 'schemas' / 'change_report.schema.json').read_text())
    archive, artifacts = tmp_path / 'archive', tmp_path / 'artifacts' / 'ident'
    artifacts.mkdir(parents=True)
    monkeypatch.setenv('NETMEDIC_REPORT_ARCHIVE_DIR', str(archive))
    monkeypatch.setenv('AWX_ISOLATED_DATA_DIR', str(artifacts))
    proc, report, _md = _run(cluster, tmp_path, _tasks(ns), extra=['-e', 'netmedic_change_id=CHG-3', '-e', 'x=<script>'])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jsonschema.validate(report, schema)
    (html_file,) = [p for p in (tmp_path / 'report').glob('change-report-*.html') if not p.is_symlink()]
    html = html_file.read_text()
    assert html_file.stat().st_mode & 0o777 == 0o600
    assert '<script' not in html and '&lt;script&gt;' in html
    assert not re.search(r'''(src|href)\s*=|@import|url\(''', html)
    base = html_file.name[:-len('.html')]
    for directory in (archive, artifacts / 'netmedic'):
        copies = sorted(p.name for p in directory.iterdir())
        assert copies == [base + ext for ext in ('.html', '.json', '.md')], copies
        assert all(p.stat().st_mode & 0o777 == 0o600 for p in directory.iterdir())
    summary = json.loads((artifacts / 'netmedic' / (base + '.json')).read_text())
    assert summary == report
