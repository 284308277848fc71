"""netmedic: run the collection's playbooks the way a maintenance window needs them.

    bin/netmedic list                                  playbooks and what they do
    bin/netmedic run PLAYBOOK -i INVENTORY [--check] [--diff] [-e K=V | -e @file | -e JSON]... [-l LIMIT]
    bin/netmedic runs                                  past runs (newest first) with their status
    bin/netmedic prune [--keep-runs N] [--keep-days D] [--check]   remove old runs

Every run goes through ansible-runner into its own artifact directory (stdout, job events,
rc, status) under NETMEDIC_RUNS_DIR (default ~/.netmedic/runs), next to the change report the
collection's callback writes there. Run directories are 0700 and named with the UTC time in
microseconds, the process id and a random suffix (two runs never share one). Extra vars (which
may hold secrets) are removed from the run directory when the run ends, and credential-like
environment variables (K8S_AUTH_API_KEY, ...) are masked in the runner's `command` artifact.
Retention: `prune`, or `run` with --keep-runs / --keep-days (NETMEDIC_KEEP_RUNS /
NETMEDIC_KEEP_DAYS), removes older run directories (0 keeps all, the default); with --check
it only lists them. The summary at the end says per host what was ok,
changed, failed or unreachable. Exit code: 0 success, 2 a host failed, 3 a host was
unreachable, 4 netmedic itself could not run (bad playbook name, missing inventory).
A run with --check is labelled as such everywhere, and nothing in it changes a node or cluster.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOKS = ROOT / 'playbooks'
RUNS = Path(os.environ.get('NETMEDIC_RUNS_DIR') or Path.home() / '.netmedic' / 'runs')
if str(ROOT / 'collections') not in sys.path:
    sys.path.insert(0, str(ROOT / 'collections'))

from ansible_collections.netmedic.k8s.plugins.module_utils import redact, reportfiles  # noqa: E402

# What ansible-runner may leave in a run's env/ that holds secrets.
SECRET_ENV_FILES = ('extravars', 'passwords', 'ssh_key')
RUN_NAME = re.compile(r'^\d{8}T\d{6}(?:\.\d{6})?Z-')


def playbooks():
    """{name: first comment paragraph} of every playbook shipped in playbooks/."""
    found = {}
    for path in sorted(PLAYBOOKS.glob('*.yml')):
        summary = []
        for line in path.read_text().splitlines()[1:]:
            if not line.startswith('#'):
                break
            text = line.lstrip('#').strip()
            if not text and summary:
                break
            if text:
                summary.append(text)
        found[path.stem] = ' '.join(summary)
    return found


def _fail(msg):
    print('netmedic: %s' % msg, file=sys.stderr)
    return 4


def cmd_list(_args):
    for name, summary in playbooks().items():
        print('%-24s %s' % (name, summary))
    return 0


def cmd_runs(_args):
    if not RUNS.is_dir():
        print('no runs yet (%s)' % RUNS)
        return 0
    for run in sorted(RUNS.iterdir(), reverse=True):
        meta = run / 'netmedic.json'
        if meta.is_file():
            data = json.loads(meta.read_text())
            mode = '  (check mode)' if data['check'] else ''
            print('%s  %-20s %-8s rc=%s%s' % (run.name, data['playbook'], data['status'], data['rc'], mode))
    return 0


def prune_runs(keep_runs, keep_days, check, protect=()):
    """Remove (check: list) run directories beyond ``keep_runs`` newest / older than ``keep_days``.

    Only directories directly under RUNS whose name starts with a run time and that hold a
    ``netmedic.json`` record are considered (a directory without one may be a run in progress).
    """
    if not RUNS.is_dir() or not (keep_runs or keep_days):
        return []
    runs = []
    for run in RUNS.iterdir():
        if RUN_NAME.match(run.name) and run.is_dir() and not run.is_symlink() and (run / 'netmedic.json').is_file():
            runs.append((run.name, reportfiles.parse_time(run.name)))
    now = datetime.datetime.now(datetime.timezone.utc)
    remove = reportfiles.plan_retention(runs, now, keep_runs, keep_days, protect=protect)
    for name in remove:
        print('netmedic: %s run %s' % ('would remove (check mode)' if check else 'removing', RUNS / name))
        if not check:
            shutil.rmtree(str(RUNS / name))
    return remove


def cmd_prune(args):
    try:
        removed = prune_runs(args.keep_runs, args.keep_days, args.check)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    print('netmedic: %d run(s) %s' % (len(removed), 'would be removed (check mode)' if args.check else 'removed'))
    return 0


def scrub_run(workdir):
    """After a run: secrets out of the run directory. Returns what was removed or masked."""
    done = []
    for name in SECRET_ENV_FILES:
        path = workdir / 'env' / name
        if path.is_file() or path.is_symlink():
            path.unlink()
            done.append(str(path))
    for command in sorted((workdir / 'artifacts').glob('*/command')):
        data = json.loads(command.read_text())
        masked = redact.redact(data)
        if masked != data:
            tmp = command.with_name('.command.tmp')
            tmp.write_text(json.dumps(masked))
            tmp.chmod(0o600)
            os.replace(str(tmp), str(command))
            done.append(str(command))
    return done


def _extravars(values):
    merged = {}
    for value in values or []:
        if value.startswith('@'):
            import yaml
            with open(value[1:]) as handle:
                merged.update(yaml.safe_load(handle) or {})
        elif value.lstrip().startswith('{'):
            merged.update(json.loads(value))
        else:
            for pair in value.split():
                key, sep, val = pair.partition('=')
                if not sep:
                    raise ValueError('extra var %r is not KEY=VALUE, @file or JSON' % pair)
                merged[key] = val
    return merged


def cmd_run(args):
    import ansible_runner

    known = playbooks()
    if args.playbook not in known:
        return _fail('unknown playbook %r; one of: %s' % (args.playbook, ', '.join(known)))
    inventory = Path(args.inventory).resolve()
    if not inventory.exists():
        return _fail('inventory %s does not exist' % inventory)
    try:
        extravars = _extravars(args.extra_vars)
        if args.keep_runs < 0 or args.keep_days < 0:
            raise ValueError('--keep-runs and --keep-days must be 0 (keep all) or positive')
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    ident = '%s-%s%s' % (reportfiles.stamp(), args.playbook, '-check' if args.check else '')
    reportfiles.private_dir(str(RUNS))
    workdir = RUNS / ident
    workdir.mkdir(mode=0o700)          # exclusive: an existing directory is never reused
    workdir.chmod(0o700)
    cmdline = []
    if args.check:
        cmdline.append('--check')
    if args.diff:
        cmdline.append('--diff')
    envvars = {
        'ANSIBLE_CONFIG': str(ROOT / 'ansible.cfg'),
        'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections'),
        'NETMEDIC_REPORT_DIR': str(workdir / 'report'),
        'ANSIBLE_NOCOLOR': '1',
    }
    limit = ' (limit %s)' % args.limit if args.limit else ''
    print('netmedic: %s %s on %s%s -> %s' % ('checking' if args.check else 'running', args.playbook, inventory, limit, workdir))
    try:
        result = ansible_runner.run(
            private_data_dir=str(workdir), project_dir=str(ROOT), playbook=str(PLAYBOOKS / (args.playbook + '.yml')),
            inventory=str(inventory), extravars=extravars, limit=args.limit, cmdline=' '.join(cmdline) or None,
            envvars=envvars, quiet=args.quiet, ident='run',
        )
    finally:
        scrubbed = scrub_run(workdir)
    stats = result.stats or {}
    hosts = sorted(set().union(*(stats.get(k, {}).keys() for k in ('ok', 'changed', 'failures', 'dark', 'skipped'))))
    mode = ' (check mode: nothing changed)' if args.check else ''
    print('\nnetmedic summary: %s%s, status %s, rc %s' % (args.playbook, mode, result.status, result.rc))
    for host in hosts:
        print('  %-24s ok=%-3s changed=%-3s failed=%-3s unreachable=%s' % (
            host, stats.get('ok', {}).get(host, 0), stats.get('changed', {}).get(host, 0),
            stats.get('failures', {}).get(host, 0), stats.get('dark', {}).get(host, 0)))
    reports = sorted(p for p in (workdir / 'report').glob('change-report-*.md') if not p.is_symlink())
    if reports:
        print('  change report: %s' % reports[-1])
    print('  artifacts:     %s' % (workdir / 'artifacts' / 'run'))
    if any(stats.get('dark', {}).values()):
        code = 3
    elif any(stats.get('failures', {}).values()) or result.rc not in (0, None):
        code = 2
    else:
        code = 0
    reportfiles.write_new(str(workdir / 'netmedic.json'), json.dumps({
        'playbook': args.playbook, 'inventory': str(inventory), 'check': args.check, 'limit': args.limit,
        'status': result.status, 'rc': result.rc, 'exit': code, 'stats': stats, 'scrubbed': scrubbed,
        'report': str(reports[-1]) if reports else None}, indent=2))
    if args.keep_runs or args.keep_days:
        prune_runs(args.keep_runs, args.keep_days, args.check, protect=[ident])
    return code


def _env_number(name, kind):
    value = os.environ.get(name) or '0'
    try:
        return kind(value)
    except ValueError:
        raise SystemExit(_fail('%s=%r is not a number' % (name, value)))


def retention(parser):
    parser.add_argument('--keep-runs', type=int, default=_env_number('NETMEDIC_KEEP_RUNS', int),
                        help='keep this many newest runs, remove older ones (0: keep all; env NETMEDIC_KEEP_RUNS)')
    parser.add_argument('--keep-days', type=float, default=_env_number('NETMEDIC_KEEP_DAYS', float),
                        help='remove runs older than this many days (0: keep all; env NETMEDIC_KEEP_DAYS)')


def main(argv=None):
    parser = argparse.ArgumentParser(prog='netmedic', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('list', help='the playbooks and what they do').set_defaults(func=cmd_list)
    sub.add_parser('runs', help='past runs').set_defaults(func=cmd_runs)
    run = sub.add_parser('run', help='run a playbook through ansible-runner')
    run.add_argument('playbook', help='playbook name without .yml (see `netmedic list`)')
    run.add_argument('-i', '--inventory', required=True)
    run.add_argument('-l', '--limit')
    run.add_argument('-e', '--extra-vars', action='append')
    run.add_argument('--check', action='store_true', help='check mode: report what would change, change nothing')
    run.add_argument('--diff', action='store_true')
    run.add_argument('-q', '--quiet', action='store_true', help='only the summary')
    retention(run)
    run.set_defaults(func=cmd_run)
    prune = sub.add_parser('prune', help='remove old run directories (retention by count and age)')
    retention(prune)
    prune.add_argument('--check', action='store_true', help='only list what would be removed')
    prune.set_defaults(func=cmd_prune)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
