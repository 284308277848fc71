#!/usr/bin/env python
"""Fleet-scale benchmark of the node playbooks over real SSH (issue 14 item 1).

Runs ``playbooks/diagnose.yml`` and ``playbooks/remediate_node.yml`` (``--check --diff`` and
applied) against the first N nodes of the fleet lab (``lab/fleet/fleetctl``), for each N in
``--sizes`` and each connection plugin in ``--plugins``, and prints/records per run:

- wall time of ``ansible-playbook``;
- controller CPU: user+sys of the whole ``ansible-playbook`` process tree, from
  ``getrusage(RUSAGE_CHILDREN)`` in a measuring child that is a child subreaper, so the
  ControlPersist masters that OpenSSH daemonizes are reparented to it, stopped after the
  run and counted too;
- controller memory: peak RSS of the largest process (``ru_maxrss``) and the peak of the sum
  of RSS over the tree (sampled every 0.2 s);
- node CPU: user+sys the nodes spent (the fleet's sshd listeners and everything they ran:
  sshd sessions, shells, the module's Python), from ``/proc/<sshd>/stat``;
- per-host overhead: (wall(N) - wall(1)) / (N - 1) and controller CPU per host.

Knob variants (``--variants``) rerun the playbooks with one setting changed (forks, strategy,
pipelining, ControlPersist) or measure what fact gathering would cost (``facts``). Interpreter
discovery is not a variant: on this machine it finds the pyenv shim that exits 127 (the nodes
share the host's /root/.pyenv), so the fleet inventory pins /usr/bin/python3.

Needs root (the fleet lab), the project's .venv, and for ``paramiko_ssh`` the venv of
``lab/fleet/fleetctl paramiko-venv`` (ansible-core 2.21 no longer ships that plugin).
See bench/README.md (fleet section) for the commands and the measured tables.
"""

import argparse
import contextlib
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'lab', 'fleet'))
import fleetctl  # noqa: E402

FLEETCTL = os.path.join(ROOT, 'lab', 'fleet', 'fleetctl')
VENV_BIN = os.path.join(ROOT, '.venv', 'bin')
PLAYBOOKS = {
    'diagnose': ('playbooks/diagnose.yml', []),
    'remediate-check': ('playbooks/remediate_node.yml', ['--check', '--diff']),
    'remediate-apply': ('playbooks/remediate_node.yml', []),
    # the floor: one ansible.builtin.ping round trip per node (written into the workdir)
    'floor': ('<workdir>/floor.yml', []),
}
FLOOR_PLAYBOOK = '''---
- name: One module round trip per node (the floor of any node playbook)
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
'''
# Fixes that act inside a node's own namespaces (nf_conntrack_max is read-only outside the
# host's initial network namespace, so the default conntrack_limit cannot be applied there).
DEFAULT_FIXES = ['port_range', 'pod_bridge']
# One setting changed against the repository's ansible.cfg (pipelining on, ControlPersist 60s,
# forks 5, strategy linear, gathering explicit, interpreter pinned in the fleet inventory).
VARIANTS = {
    'baseline': {},
    'forks10': {'ANSIBLE_FORKS': '10'},
    'forks25': {'ANSIBLE_FORKS': '25'},
    'forks50': {'ANSIBLE_FORKS': '50'},
    'forks100': {'ANSIBLE_FORKS': '100'},
    'free': {'ANSIBLE_STRATEGY': 'free'},
    'forks50-free': {'ANSIBLE_FORKS': '50', 'ANSIBLE_STRATEGY': 'free'},
    'no-pipelining': {'ANSIBLE_PIPELINING': 'False'},
    'no-controlpersist': {'ANSIBLE_SSH_ARGS': '-o ControlMaster=no -o ServerAliveInterval=5 -o ServerAliveCountMax=3'},
    # not a playbook setting: what gathering facts would add (ansible -m setup on the same nodes)
    'facts': {'_adhoc_setup': True},
}
PR_SET_CHILD_SUBREAPER = 36


def load_average():
    with open('/proc/loadavg') as f:
        return ' '.join(f.read().split()[:3])


# ---------------------------------------------------------------- the measuring child

def _tree_rss(root_pid, page):
    """Sum of RSS (bytes) of every descendant of root_pid (not root_pid itself)."""
    parent = {}
    rss = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % name) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        parent[int(name)] = int(fields[1])
        rss[int(name)] = int(fields[21]) * page
    total = 0
    for pid in rss:
        p = parent.get(pid)
        while p and p != root_pid:
            p = parent.get(p)
        if p == root_pid:
            total += rss[pid]
    return total


def measure(argv, env, log_path):
    """Run argv as a child subreaper; return wall, cpu (children incl. reparented ssh masters),
    ru_maxrss and the sampled peak tree RSS. Runs in its own process (see main: _measure)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    page = os.sysconf('SC_PAGE_SIZE')
    peak = [0]
    done = threading.Event()
    me = os.getpid()

    def sampler():
        while not done.wait(0.2):
            peak[0] = max(peak[0], _tree_rss(me, page))

    with open(log_path, 'w') as log:
        start = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        rc = proc.wait()
        wall = time.monotonic() - start
    done.set()
    thread.join()
    # Reparented leftovers (OpenSSH ControlPersist masters): stop them, reap them, count them.
    time.sleep(0.1)
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                with open('/proc/%s/stat' % name) as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            except OSError:
                continue
            if ppid == me:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(name), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            pid = os.waitpid(-1, os.WNOHANG)[0]
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.05)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {'rc': rc, 'wall_s': round(wall, 2), 'ctl_cpu_s': round(ru.ru_utime + ru.ru_stime, 2),
            'ctl_user_s': round(ru.ru_utime, 2), 'ctl_sys_s': round(ru.ru_stime, 2),
            'ctl_maxrss_mb': round(ru.ru_maxrss / 1024, 1), 'ctl_tree_rss_peak_mb': round(peak[0] / 2 ** 20, 1)}


# ---------------------------------------------------------------- one run

def write_inventory(state, n, path):
    """The fleet inventory restricted to its first n hosts (same group vars)."""
    with open(os.path.join(state, 'inventory.yml')) as f:
        lines = f.read().split('\n')
    out, hosts = [], 0
    for line in lines:
        if line.startswith('        fleet-'):
            hosts += 1
            if hosts > n:
                continue
        out.append(line)
    if hosts < n:
        raise SystemExit('the fleet has %d nodes, %d asked (fleetctl up --nodes %d)' % (hosts, n, n))
    with open(path, 'w') as f:
        f.write('\n'.join(out))


def run_one(args, workdir, plugin, n, playbook, variant):
    state = fleetctl.STATE
    inv = os.path.join(workdir, 'inventory-%d.yml' % n)
    if not os.path.exists(inv):
        write_inventory(state, n, inv)
    knobs = dict(VARIANTS[variant])
    adhoc = knobs.pop('_adhoc_setup', False)
    env = dict(os.environ)
    env.update(ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), NETMEDIC_REPORT_DIR=os.path.join(workdir, 'report'),
               ANSIBLE_DEPRECATION_WARNINGS='False', ANSIBLE_FORCE_COLOR='0')
    env.update(knobs)
    bindir = VENV_BIN
    if plugin == 'paramiko_ssh':
        bindir = args.paramiko_bin
        env['HOME'] = os.path.join(state, 'home')     # its known_hosts (fleetctl writes it)
    env['PATH'] = bindir + os.pathsep + env.get('PATH', '')
    if adhoc:
        argv = [os.path.join(bindir, 'ansible'), '-i', inv, 'fleet', '-m', 'ansible.builtin.setup', '-c', plugin]
    else:
        path, flags = PLAYBOOKS[playbook]
        if playbook == 'floor':
            path = os.path.join(workdir, 'floor.yml')
            with open(path, 'w') as f:
                f.write(FLOOR_PLAYBOOK)
        argv = [os.path.join(bindir, 'ansible-playbook'), '-i', inv, path, '-c', plugin] + flags
        if playbook == 'diagnose':
            argv += ['-e', 'netmedic_report_dir=%s' % os.path.join(workdir, 'report')]
        elif playbook != 'floor':
            argv += ['-e', json.dumps({'netmedic_fixes': args.fixes})]
    if playbook == 'remediate-apply':
        fleetctl.reset_nodes(range(n))
    indices = range(n)
    node_cpu0 = fleetctl.node_cpu_seconds(indices)
    load = load_average()
    log_path = os.path.join(workdir, 'log-%s-%d-%s-%s.txt' % (plugin, n, playbook, variant))
    # measured in a fresh child so ru_maxrss and RUSAGE_CHILDREN belong to this run only
    out = subprocess.run([sys.executable, os.path.abspath(__file__), '_measure', log_path, json.dumps(argv), json.dumps(env)],
                         capture_output=True, text=True, check=True)
    res = json.loads(out.stdout)
    time.sleep(0.3)   # the nodes' session sshds exit once their masters are gone
    res['node_cpu_s'] = round(fleetctl.node_cpu_seconds(indices) - node_cpu0, 2)
    with open(log_path) as f:
        text = f.read()
    recap = [line for line in text.split('\n') if line.startswith('fleet-') and ' : ok=' in line]
    bad = [line for line in recap if ' failed=0 ' not in line or ' unreachable=0 ' not in line]
    res.update(tree=args.tree, started=time.strftime('%H:%M:%S', time.gmtime(time.time() - res['wall_s'])))
    res.update(plugin=plugin, nodes=n, playbook='setup (ad hoc)' if adhoc else playbook, variant=variant,
               load_before=load, load_after=load_average(), hosts_in_recap=len(recap) if not adhoc else None,
               failed_hosts=len(bad), log=log_path)
    if adhoc:
        res['hosts_in_recap'] = text.count(' | SUCCESS')
    ok = res['rc'] == 0 and not bad and res['hosts_in_recap'] == n
    res['ok'] = ok
    print('%-12s %-16s %-17s n=%-4d wall %7.1f s  ctl cpu %7.1f s  node cpu %7.1f s  rss %6.1f / tree %7.1f MB  load %s  %s'
          % (plugin, variant, res['playbook'], n, res['wall_s'], res['ctl_cpu_s'], res['node_cpu_s'],
             res['ctl_maxrss_mb'], res['ctl_tree_rss_peak_mb'], load, 'ok' if ok else 'FAILED (see %s)' % log_path), flush=True)
    return res


def print_table(results):
    """Markdown table; per host = (wall(N) - wall(smallest N)) / (N - smallest N) in the same series;
    busy = (controller + node CPU) / wall: how many of the machine's cores the run kept busy."""
    print('\n| plugin | variant | playbook | nodes | wall s | per host s | ctl CPU s | ctl CPU/host s | node CPU s | busy cores '
          '| max RSS MB | tree RSS MB | load |')
    print('| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |')
    first = {}
    order = {'ssh': 0, 'paramiko_ssh': 1}
    for r in sorted(results, key=lambda r: (order[r['plugin']], r['variant'], r['playbook'], r['nodes'])):
        key = (r['plugin'], r['variant'], r['playbook'])
        first.setdefault(key, r)
        base = first[key]
        per_host = ((r['wall_s'] - base['wall_s']) / (r['nodes'] - base['nodes'])) if r['nodes'] > base['nodes'] else None
        print('| %s | %s | %s | %d | %.1f | %s | %.1f | %.2f | %.1f | %.2f | %.0f | %.0f | %s |%s' % (
            r['plugin'], r['variant'], r['playbook'], r['nodes'], r['wall_s'], '%.2f' % per_host if per_host is not None else '-',
            r['ctl_cpu_s'], r['ctl_cpu_s'] / r['nodes'], r['node_cpu_s'], (r['ctl_cpu_s'] + r['node_cpu_s']) / r['wall_s'],
            r['ctl_maxrss_mb'], r['ctl_tree_rss_peak_mb'], r['load_before'].split()[0], '' if r['ok'] else ' FAILED'))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == '_measure':
        print(json.dumps(measure(json.loads(argv[2]), json.loads(argv[3]), argv[1])))
        return 0
    if argv and argv[0] == '--table':     # tables from earlier --json files, no runs
        results = []
        for path in argv[1:]:
            with open(path) as f:
                results += [json.loads(line) for line in f if line.strip()]
        print_table(results)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[1, 10, 50, 100, 200])
    parser.add_argument('--plugins', nargs='+', default=['ssh', 'paramiko_ssh'], choices=['ssh', 'paramiko_ssh'])
    parser.add_argument('--playbooks', nargs='+', default=['diagnose', 'remediate-check', 'remediate-apply'], choices=list(PLAYBOOKS))
    parser.add_argument('--variants', nargs='+', default=['baseline'], choices=list(VARIANTS),
                        help='knob variants (each with every plugin, size and playbook given; default baseline)')
    parser.add_argument('--fixes', nargs='+', default=DEFAULT_FIXES, help='netmedic_fixes for remediate_node (default: %(default)s)')
    parser.add_argument('--json', help='append every run as one JSON line to this file (tables later: --table FILE...)')
    parser.add_argument('--keep', action='store_true', help='leave the fleet up afterwards (default: fleetctl down)')
    parser.add_argument('--workdir', help='logs, inventories, reports (default: a new temporary directory)')
    args = parser.parse_args(argv)
    if 'paramiko_ssh' in args.plugins:
        out = subprocess.run([FLEETCTL, 'paramiko-venv'], capture_output=True, text=True, check=True)
        args.paramiko_bin = out.stdout.strip().splitlines()[-1]
    workdir = args.workdir or tempfile.mkdtemp(prefix='netmedic-bench-fleet-')
    os.makedirs(os.path.join(workdir, 'report'), mode=0o700, exist_ok=True)
    head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=ROOT, check=False).stdout.strip()
    dirty = subprocess.run(['git', 'status', '--short', '--', 'playbooks', 'plugins', 'roles'], capture_output=True, text=True,
                           cwd=ROOT, check=False).stdout.strip()
    args.tree = head + ('+uncommitted' if dirty else '')
    print('bench_fleet: workdir %s, tree %s, load average %s, %d CPUs' % (workdir, args.tree, load_average(), os.cpu_count()), flush=True)
    # never shrinks a fleet that is already bigger (several bench runs in a row with --keep)
    have = len(fleetctl.existing_nodes())
    subprocess.run([FLEETCTL, 'up', '--nodes', str(max(*args.sizes, have))], check=True)
    results = []
    try:
        for variant in args.variants:
            for plugin in args.plugins:
                for playbook in args.playbooks if not VARIANTS[variant].get('_adhoc_setup') else ['diagnose']:
                    for n in args.sizes:
                        res = run_one(args, workdir, plugin, n, playbook, variant)
                        results.append(res)
                        if args.json:
                            with open(args.json, 'a') as f:
                                f.write(json.dumps(res) + '\n')
    finally:
        if not args.keep:
            subprocess.run([FLEETCTL, 'down'], check=False)
    print_table(results)
    return 0 if all(r['ok'] for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
