"""Benchmark: netmedic.k8s.cni_ipam_gc vs the source document's cleanup.sh (catalog N-1).

    .venv/bin/python bench/bench_cni_ipam_gc.py [--sizes 254 65000] [--leak-percent 2] [--repeat 3]

For each size it prepares one node state - a host-local ``gke-pod-network`` directory with
SIZE allocation files (dual-stack pods: a v4 and a v6 file each, ``<id>\\r\\neth0`` as the real
plugin writes them, all 3 hours old, plus ``lock`` and ``last_reserved_ip.0/1``) and a stand-in
``ctr`` that prints the live containers (``-q``: IDs; otherwise the ``CONTAINER IMAGE RUNTIME``
table) - then, on identical fresh copies of it:

* ``cleanup.sh``: bench/cleanup.sh (the document's script), run once per size;
* ``module``: the module as Ansible runs it on a node, minus the controller: ``python
  cni_ipam_gc.py args.json`` (interpreter start, AnsibleModule, the work); median of --repeat;
* ``run_gc``: the module's work alone, ``cni_ipam_gc.run_gc()`` in this process through the
  shared Runner (the stand-in ctr is still a real process); median of --repeat.

It reports the times and the ratios, checks that every tool removed exactly the same files
from the directory, and reports the module's time per file (linear growth: the per-file cost
stays flat from 254 to 65,000). It is a measurement, not a test: it exits non-zero only when
the removed files differ or a tool fails. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLLECTIONS = REPO / 'collections'
MODULE = REPO / 'plugins' / 'modules' / 'cni_ipam_gc.py'
CLEANUP = REPO / 'bench' / 'cleanup.sh'
NETWORK = 'gke-pod-network'
AGE = 3 * 3600

STANDIN_CTR = """#!/bin/sh
# stand-in for `ctr`: `-q` prints IDs (ctr containers ls -q), otherwise the table (ctr c ls)
for a in "$@"; do
    if [ "$a" = "-q" ]; then exec cat "{state}/ids"; fi
done
exec cat "{state}/table"
"""


def pod_id(i):
    return '%016x' % (0x9E3779B97F4A7C15 * (i + 1) % (1 << 64)) * 4


def prepare(root, size, leak_percent):
    """The node state: template directory, stand-in ctr; returns what is leaked."""
    pods = size // 2
    template = root / 'template' / NETWORK
    template.mkdir(parents=True)
    state = root / 'runtime'
    bindir = root / 'bin'
    state.mkdir()
    bindir.mkdir()
    leaked_every = max(1, round(100.0 / leak_percent)) if leak_percent > 0 else 0
    live, leaked_files = [], []
    t = time.time() - AGE
    for i in range(pods):
        cid = pod_id(i)
        v4 = '10.%d.%d.%d' % (8 + (i + 2) // 65536, ((i + 2) // 256) % 256, (i + 2) % 256)
        v6 = 'fd00:10:8::%x' % (i + 2)
        for name in (v4, v6):
            path = template / name
            path.write_bytes(cid.encode() + b'\r\neth0')
            os.utime(str(path), (t, t))
        if leaked_every and i % leaked_every == leaked_every - 1:
            leaked_files += [v4, v6]
        else:
            live.append(cid)
    (template / 'lock').write_bytes(b'')
    (template / 'last_reserved_ip.0').write_text(v4)
    (template / 'last_reserved_ip.1').write_text(v6)
    ids = ''.join('%s\n' % c for c in sorted(live))
    (state / 'ids').write_text(ids)
    width = 68
    rows = ''.join('%s%s%s\n' % (c.ljust(width), 'registry.k8s.io/pause:3.8'.ljust(34), 'io.containerd.runc.v2    ') for c in sorted(live))
    (state / 'table').write_text('%s%s%s\n' % ('CONTAINER'.ljust(width), 'IMAGE'.ljust(34), 'RUNTIME                  ') + rows)
    ctr = bindir / 'ctr'
    ctr.write_text(STANDIN_CTR.format(state=state))
    ctr.chmod(0o755)
    return {'template': template, 'bin': bindir, 'pods': pods, 'files': pods * 2, 'live': len(live), 'leaked': sorted(leaked_files)}


def fresh_copy(node, dest):
    net = dest / 'networks' / NETWORK
    shutil.copytree(str(node['template']), str(net))  # copy2: contents and mtimes
    return net


def removed(node, net):
    return sorted(set(os.listdir(str(node['template']))) - set(os.listdir(str(net))))


def env_with(node):
    env = dict(os.environ)
    env['PATH'] = '%s:%s' % (node['bin'], env.get('PATH', '/usr/bin:/bin'))
    env['LC_ALL'] = 'C'
    return env


def run_cleanup(node, work, timeout):
    net = fresh_copy(node, work)
    env = env_with(node)
    env['IPAM_DIR'] = str(net)
    start = time.perf_counter()
    try:
        proc = subprocess.run(['bash', str(CLEANUP)], env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {'seconds': None, 'timed_out': timeout, 'removed': None}
    elapsed = time.perf_counter() - start
    return {'seconds': elapsed, 'rc': proc.returncode, 'stderr': proc.stderr[-2000:], 'removed': removed(node, net)}


def module_args(net, backup):
    return {'data_dir': [str(net.parent)], 'networks': [NETWORK], 'runtime': 'containerd',
            'runtime_endpoint': '/run/containerd/containerd.sock', 'backup_dir': str(backup)}


def run_module_process(node, work):
    net = fresh_copy(node, work)
    args = work / 'args.json'
    args.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': module_args(net, work / 'backup')}))
    env = env_with(node)
    env['PYTHONPATH'] = str(COLLECTIONS)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(MODULE), str(args)], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        result = {'failed': True, 'msg': 'no JSON: rc=%s %s %s' % (proc.returncode, proc.stdout[-500:], proc.stderr[-1500:])}
    return {'seconds': elapsed, 'failed': bool(result.get('failed')), 'msg': result.get('msg'),
            'moved': len(result.get('moved', [])), 'removed': removed(node, net)}


class _Shim(object):
    """What the shared Runner needs from AnsibleModule, with subprocess."""

    def __init__(self, env):
        self.env = env

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return shutil.which(name, path=self.env['PATH'])

    def run_command(self, cmd, check_rc=False, data=None, environ_update=None, use_unsafe_shell=False, timeout=None):
        env = dict(self.env)
        env.update(environ_update or {})
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=timeout)
        return proc.returncode, proc.stdout, proc.stderr


def run_in_process(node, work):
    sys.path.insert(0, str(COLLECTIONS))
    from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import Runner
    from ansible_collections.netmedic.k8s.plugins.modules import cni_ipam_gc

    net = fresh_copy(node, work)
    params = {k: v.get('default') for k, v in cni_ipam_gc.ARGUMENT_SPEC.items()}
    params.update(module_args(net, work / 'backup'))
    runner = Runner(_Shim(env_with(node)))
    start = time.perf_counter()
    data = cni_ipam_gc.run_gc(runner, params, False)
    elapsed = time.perf_counter() - start
    return {'seconds': elapsed, 'failed': False, 'moved': len(data['moved']), 'removed': removed(node, net)}


def median_run(fn, node, root, tag, repeat):
    runs = []
    for i in range(repeat):
        work = root / ('%s-%d' % (tag, i))
        work.mkdir()
        runs.append(fn(node, work))
        shutil.rmtree(str(work))
    return runs, statistics.median(r['seconds'] for r in runs)


def fmt(seconds):
    if seconds is None:
        return 'n/a'
    return '%.3f s' % seconds if seconds >= 0.1 else '%.1f ms' % (seconds * 1000)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    ap.add_argument('--sizes', type=int, nargs='+', default=[254, 65000], help='allocation files per run (even numbers)')
    ap.add_argument('--leak-percent', type=float, default=2.0, help='share of pods that are leaked (default 2)')
    ap.add_argument('--repeat', type=int, default=3, help='runs of the module per size (median reported)')
    ap.add_argument('--cleanup-timeout', type=float, default=3600.0, help='give up on cleanup.sh after this many seconds')
    ap.add_argument('--workdir', default=None, help='where to build the node states (default: a temporary directory in /tmp)')
    ap.add_argument('--json', default=None, help='also write the results to this file')
    opts = ap.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix='nm-bench-', dir=opts.workdir))
    results = []
    ok = True
    try:
        for size in opts.sizes:
            root = base / str(size)
            root.mkdir()
            node = prepare(root, size, opts.leak_percent)
            print('== %d allocation files (%d dual-stack pods, %d live, %d leaked files)'
                  % (node['files'], node['pods'], node['live'], len(node['leaked'])), flush=True)
            mod_runs, mod_s = median_run(run_module_process, node, root, 'module', opts.repeat)
            print('   module (python cni_ipam_gc.py):  %s  (median of %d)' % (fmt(mod_s), opts.repeat), flush=True)
            gc_runs, gc_s = median_run(run_in_process, node, root, 'run_gc', opts.repeat)
            print('   run_gc (in process):             %s  (median of %d)' % (fmt(gc_s), opts.repeat), flush=True)
            work = root / 'cleanup'
            work.mkdir()
            cl = run_cleanup(node, work, opts.cleanup_timeout)
            print('   cleanup.sh:                      %s' % (fmt(cl['seconds']) if cl['seconds'] else '> %.0f s (timed out)' % opts.cleanup_timeout),
                  flush=True)
            shutil.rmtree(str(work))
            entry = {'files': node['files'], 'pods': node['pods'], 'live': node['live'], 'leaked_files': len(node['leaked']),
                     'module_s': mod_s, 'run_gc_s': gc_s, 'cleanup_s': cl['seconds'], 'cleanup_timed_out': cl.get('timed_out'),
                     'module_runs_s': [r['seconds'] for r in mod_runs], 'run_gc_runs_s': [r['seconds'] for r in gc_runs]}
            for r in mod_runs:
                if r['failed']:
                    ok = False
                    print('   MODULE FAILED: %s' % r['msg'])
            expected = node['leaked']
            same = all(r['removed'] == expected for r in mod_runs + gc_runs)
            entry['module_removed_expected'] = same
            if not same:
                ok = False
                print('   MODULE REMOVED OTHER FILES than the leaked ones')
            if cl['removed'] is not None:
                entry['same_files_removed'] = cl['removed'] == mod_runs[0]['removed']
                entry['cleanup_rc'] = cl['rc']
                print('   removed: cleanup.sh %d files, module %d files, identical: %s'
                      % (len(cl['removed']), len(mod_runs[0]['removed']), entry['same_files_removed']))
                if not entry['same_files_removed'] or cl['rc'] != 0:
                    ok = False
                    print('   cleanup.sh rc=%s stderr: %s' % (cl['rc'], cl['stderr']))
                entry['speedup_module'] = cl['seconds'] / mod_s
                entry['speedup_run_gc'] = cl['seconds'] / gc_s
                print('   speed-up: %.0fx (module process), %.0fx (run_gc)' % (entry['speedup_module'], entry['speedup_run_gc']))
            else:
                entry['same_files_removed'] = None
                entry['speedup_module_at_least'] = opts.cleanup_timeout / mod_s
                print('   speed-up: more than %.0fx (cleanup.sh did not finish; files not compared)' % entry['speedup_module_at_least'])
            entry['module_us_per_file'] = mod_s / node['files'] * 1e6
            entry['run_gc_us_per_file'] = gc_s / node['files'] * 1e6
            results.append(entry)
            shutil.rmtree(str(root))
        if len(results) > 1:
            a, b = results[0], results[-1]
            growth = b['files'] / a['files']
            print('== growth %d -> %d files (x%.0f): run_gc x%.1f (%.1f -> %.1f us/file), module x%.1f, cleanup.sh %s'
                  % (a['files'], b['files'], growth, b['run_gc_s'] / a['run_gc_s'], a['run_gc_us_per_file'], b['run_gc_us_per_file'],
                     b['module_s'] / a['module_s'],
                     ('x%.0f' % (b['cleanup_s'] / a['cleanup_s'])) if b['cleanup_s'] and a['cleanup_s'] else 'n/a'))
        if opts.json:
            Path(opts.json).write_text(json.dumps({'leak_percent': opts.leak_percent, 'results': results}, indent=2))
    finally:
        shutil.rmtree(str(base), ignore_errors=True)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
