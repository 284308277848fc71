"""Print a before/after table of diagnose.json findings per catalog ID (used by lab/vm/demo.sh).

    python demo_compare.py BEFORE.json AFTER.json
"""

import json
import sys


def findings(path):
    """{catalog id: {host: [summaries]}} from a diagnose.json report."""
    with open(path) as fh:
        report = json.load(fh)
    out = {}
    for host, facts in sorted(report.items()):
        for f in (facts or {}).get('findings', []):
            out.setdefault(f['id'], {}).setdefault(host, []).append(f)
    return out


def main(before_path, after_path):
    before, after = findings(before_path), findings(after_path)
    ids = sorted(set(before) | set(after), key=lambda i: (i.split('-')[0], int(i.split('-')[1]) if i.split('-')[1].isdigit() else 0))
    print(f'\n{"ID":<5} {"finding (hosts with it)":<31} {"before":>6}  {"after":>5}   verdict')
    print('-' * 78)
    fixed = 0
    for fid in ids:
        b, a = before.get(fid, {}), after.get(fid, {})
        if b and not a:
            verdict = 'FIXED'
            fixed += 1
        elif a and not b:
            verdict = 'NEW'
        elif len(a) < len(b):
            verdict = 'partly fixed'
        else:
            remediation = sorted({f.get('remediation') or '?' for fs in a.values() for f in fs})
            verdict = 'still there -> ' + ', '.join(remediation)
        summary = next(iter(b.values() or a.values()))[0]['summary']
        print(f'{fid:<5} {summary[:30]:<31} {len(b):>6}  {len(a):>5}   {verdict}')
    print('-' * 78)
    print(f'{fixed} of {len(before)} catalog IDs fixed; findings {sum(map(len, before.values()))} host(s) -> '
          f'{sum(map(len, after.values()))} host(s)')


if __name__ == '__main__':
    main(*sys.argv[1:3])
