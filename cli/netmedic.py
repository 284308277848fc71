"""netmedic: run the collection's playbooks the way a maintenance window needs them.

    bin/netmedic list                                  playbooks and what they do
    bin/netmedic run PLAYBOOK -i INVENTORY [--check] [--diff] [-e K=V | -e @file | -e JSON]... [-l LIMIT]
    bin/netmedic runs                                  past runs (newest first) with their status

Every run goes through ansible-runner into its own artifact directory (stdout, job events,
rc, status) under NETMEDIC_RUNS_DIR (default ~/.netmedic/runs), next to the change report the
collection's callback writes there. The summary at the end says per host what was ok,
changed, failed or unreachable. Exit code: 0 success, 2 a host failed, 3 a host was
unreachable, 4 netmedic itself could not run (bad playbook name, missing inventory).
A run with --check is labelled as such everywhere, and nothing in it changes a node or cluster.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOKS = ROOT / 'playbooks'
RUNS = Path(os.environ.get('NETMEDIC_RUNS_DIR') or Path.home() / '.netmedic' / 'runs')


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
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')
    ident = '%s-%s%s' % (stamp, args.playbook, '-check' if args.check else '')
    workdir = RUNS / ident
    workdir.mkdir(parents=True)
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
    result = ansible_runner.run(
        private_data_dir=str(workdir), project_dir=str(ROOT), playbook=str(PLAYBOOKS / (args.playbook + '.yml')),
        inventory=str(inventory), extravars=extravars, limit=args.limit, cmdline=' '.join(cmdline) or None,
        envvars=envvars, quiet=args.quiet, ident='run',
    )
    stats = result.stats or {}
    hosts = sorted(set().union(*(stats.get(k, {}).keys() for k in ('ok', 'changed', 'failures', 'dark', 'skipped'))))
    mode = ' (check mode: nothing changed)' if args.check else ''
    print('\nnetmedic summary: %s%s, status %s, rc %s' % (args.playbook, mode, result.status, result.rc))
    for host in hosts:
        print('  %-24s ok=%-3s changed=%-3s failed=%-3s unreachable=%s' % (
            host, stats.get('ok', {}).get(host, 0), stats.get('changed', {}).get(host, 0),
            stats.get('failures', {}).get(host, 0), stats.get('dark', {}).get(host, 0)))
    reports = sorted((workdir / 'report').glob('change-report-*.md'))
    if reports:
        print('  change report: %s' % reports[-1])
    print('  artifacts:     %s' % (workdir / 'artifacts' / 'run'))
    if any(stats.get('dark', {}).values()):
        code = 3
    elif any(stats.get('failures', {}).values()) or result.rc not in (0, None):
        code = 2
    else:
        code = 0
    (workdir / 'netmedic.json').write_text(json.dumps({
        'playbook': args.playbook, 'inventory': str(inventory), 'check': args.check, 'limit': args.limit,
        'status': result.status, 'rc': result.rc, 'exit': code, 'stats': stats,
        'report': str(reports[-1]) if reports else None}, indent=2))
    return code


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
    run.set_defaults(func=cmd_run)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
