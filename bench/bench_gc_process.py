#!/usr/bin/env python
"""cni_ipam_gc at the process limit: the module process against a trivial AnsibleModule (issue 14, item 3).

A measurement, not a test (nothing here runs in ``make test``). Both processes are run exactly as
Ansible runs them on a node: the AnsiballZ wrapper Ansible sent (kept with
``ANSIBLE_KEEP_REMOTE_FILES=1``), started again N times with the node's Python, so module_utils
are imported from the payload zip as in production. The trivial process is ``ansible.builtin.ping``
(an AnsibleModule that parses its arguments and exits). The two are run interleaved; the GC
module's network directory is restored from a template before each of its runs (not timed).

    .venv/bin/python bench/bench_gc_process.py                        # this machine, stand-in ctr
    .venv/bin/python bench/bench_gc_process.py --sizes 254 65000 --repeat 5
    # a lab VM: real containerd, real ctr (hold the lab lock, see bench/README.md)
    .venv/bin/python bench/bench_gc_process.py --target lab-node-1 --inventory /run/netmedic-lab/inventory.yml --ctr real

``--ctr standin``: a shell script first on PATH prints the live IDs (``sh`` + ``cat``, ~2 ms).
``--ctr real``: the node's ``ctr`` and containerd; the bench creates the live containers (without
tasks) in its own containerd namespace ``netmedic-bench`` from an image of the ``k8s.io``
namespace and removes them afterwards. Each size gets SIZE allocation files (SIZE/2 dual-stack
pods, 2 % leaked, 3 hours old) as host-local writes them. Also reported: the floor, i.e. one
``ctr containers ls -q`` process, and the ratio module/trivial. Exit status 1 when a run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORK = 'gke-pod-network'
NAMESPACE = 'netmedic-bench'
NODE_DIR = '/tmp/netmedic-gcbench'
AGE = 3 * 3600
STANDIN_CTR = '#!/bin/sh\nexec cat "%s"\n'


# -- node side (runs on the node with its Python; standard library only) ---------------------

def _pod_id(i):
    return '%016x' % (0x9E3779B97F4A7C15 * (i + 1) % (1 << 64)) * 4


def _ctr(*args, timeout=120):
    return subprocess.run(['ctr', '--namespace', NAMESPACE] + list(args), capture_output=True, text=True,
                          timeout=timeout, check=True).stdout


def node_prepare(size, ctr_mode, leak_percent=2.0):
    """Template directory of SIZE allocation files and the live containers; returns paths as JSON."""
    base = os.path.join(NODE_DIR, 's%d' % size)
    shutil.rmtree(base, ignore_errors=True)
    template = os.path.join(base, 'template', NETWORK)
    os.makedirs(template)
    os.makedirs(os.path.join(base, 'bin'))
    pods = size // 2
    every = max(1, round(100.0 / leak_percent))
    live = [_pod_id(i) for i in range(pods) if i % every != every - 1]
    stamp = time.time() - AGE
    for i in range(pods):
        for name in ('10.%d.%d.%d' % (8 + (i + 2) // 65536, ((i + 2) // 256) % 256, (i + 2) % 256),
                     'fd00:10:8::%x' % (i + 2)):
            path = os.path.join(template, name)
            with open(path, 'wb') as f:
                f.write(_pod_id(i).encode() + b'\r\neth0')
            os.utime(path, (stamp, stamp))
    for name, text in (('lock', ''), ('last_reserved_ip.0', '10.8.0.2'), ('last_reserved_ip.1', 'fd00:10:8::2')):
        with open(os.path.join(template, name), 'w') as f:
            f.write(text)
    if ctr_mode == 'standin':
        ids = os.path.join(base, 'ids')
        with open(ids, 'w') as f:
            f.write(''.join('%s\n' % c for c in live))
        ctr = os.path.join(base, 'bin', 'ctr')
        with open(ctr, 'w') as f:
            f.write(STANDIN_CTR % ids)
        os.chmod(ctr, 0o755)
    else:
        existing = set(_ctr('containers', 'ls', '-q').split())
        images = _ctr('images', 'ls', '-q').split()
        if not images:
            image = subprocess.run(['ctr', '-n', 'k8s.io', 'images', 'ls', '-q'], capture_output=True, text=True,
                                   timeout=60, check=True).stdout.split()[0]
            archive = os.path.join(NODE_DIR, 'image.tar')
            subprocess.run(['ctr', '-n', 'k8s.io', 'images', 'export', archive, image], capture_output=True,
                           timeout=300, check=True)
            subprocess.run(['ctr', '--namespace', NAMESPACE, 'images', 'import', archive], capture_output=True,
                           timeout=300, check=True)
            os.unlink(archive)
            images = [image]
        for cid in live:
            if cid not in existing:
                _ctr('containers', 'create', images[0], cid, 'true')
        for cid in existing - set(live):
            _ctr('containers', 'delete', cid)
    return {'base': base, 'template': template, 'files': pods * 2, 'live': len(live),
            'leaked_files': 2 * (pods - len(live))}


def _restore(base, template):
    work = os.path.join(base, 'networks')
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(os.path.join(base, 'backup'), ignore_errors=True)
    os.makedirs(work)
    subprocess.run(['cp', '-a', template, work], check=True, timeout=600)


def _cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv, env):
    """Wall time and CPU time (user + system of the process and the children it waited for)."""
    cpu, start = _cpu(), time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    seconds = time.perf_counter() - start
    _timed.cpu = _cpu() - cpu
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        result = {'failed': True, 'msg': 'rc=%s %s' % (proc.returncode, (proc.stdout + proc.stderr)[-800:])}
    return seconds, result


def node_time(base, template, gc, ping, repeat, ctr_mode, python):
    """Interleaved runs of the GC module, ping and the bare listing; medians and minimums in seconds."""
    env = dict(os.environ, LANG='C', LC_ALL='C')
    if ctr_mode == 'standin':
        env['PATH'] = '%s:%s' % (os.path.join(base, 'bin'), env.get('PATH', '/usr/bin:/bin'))
    listing = ['ctr', '--address', '/run/containerd/containerd.sock', '--timeout', '30s', '--namespace', NAMESPACE,
               'containers', 'ls', '-q']
    times = {'module': [], 'trivial': [], 'ctr': [], 'module_cpu': [], 'trivial_cpu': [], 'ctr_cpu': []}
    last = None
    for _i in range(repeat):
        _restore(base, template)
        seconds, last = _timed([python] + shlex.split(gc), env)
        if last.get('failed'):
            return {'failed': last.get('msg')}
        times['module'].append(seconds)
        times['module_cpu'].append(_timed.cpu)
        seconds, result = _timed([python] + shlex.split(ping), env)
        if result.get('ping') != 'pong':
            return {'failed': 'ping: %s' % result}
        times['trivial'].append(seconds)
        times['trivial_cpu'].append(_timed.cpu)
        cpu, start = _cpu(), time.perf_counter()
        subprocess.run(listing, capture_output=True, env=env, timeout=60, check=True)
        times['ctr'].append(time.perf_counter() - start)
        times['ctr_cpu'].append(_cpu() - cpu)
    moved = sum(len(n.get('leaked') or []) for n in last.get('networks') or [])
    return {'median': {k: statistics.median(v) for k, v in times.items()},
            'min': {k: min(v) for k, v in times.items()}, 'runs': times, 'moved': moved,
            'allocated': sum(n.get('allocated', 0) for n in last.get('networks') or [])}


def node_cleanup(ctr_mode, kept=()):
    for path in kept:   # the AnsiballZ wrappers' directories kept for the timing
        if os.path.basename(os.path.dirname(path)).startswith('ansible-tmp-'):
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    if ctr_mode == 'real':
        for cid in _ctr('containers', 'ls', '-q').split():
            _ctr('containers', 'delete', cid)
        for image in _ctr('images', 'ls', '-q').split():
            _ctr('images', 'remove', image)
    shutil.rmtree(NODE_DIR, ignore_errors=True)


def node_main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument('action', choices=['prepare', 'restore', 'time', 'cleanup'])
    ap.add_argument('--size', type=int)
    ap.add_argument('--ctr', default='standin')
    ap.add_argument('--base')
    ap.add_argument('--template')
    ap.add_argument('--gc')
    ap.add_argument('--ping')
    ap.add_argument('--repeat', type=int, default=11)
    ap.add_argument('--kept', nargs='*', default=[])
    args = ap.parse_args(argv)
    if args.action == 'prepare':
        out = node_prepare(args.size, args.ctr)
    elif args.action == 'restore':
        _restore(args.base, args.template)
        out = {}
    elif args.action == 'time':
        out = node_time(args.base, args.template, args.gc, args.ping, args.repeat, args.ctr, sys.executable)
    else:
        node_cleanup(args.ctr, args.kept)
        out = {}
    print(json.dumps(out))


# -- controller side --------------------------------------------------------------------------

class Target:
    """Runs the node side on localhost (connection local) or an inventory host, through ansible."""

    def __init__(self, host, inventory, ctr_mode, collections):
        self.host, self.inventory, self.ctr_mode = host, inventory, ctr_mode
        self.bin = os.path.dirname(sys.executable)
        self.env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
                        ANSIBLE_COLLECTIONS_PATH=collections,
                        ANSIBLE_STDOUT_CALLBACK='ansible.posix.json', ANSIBLE_LOAD_CALLBACK_PLUGINS='1',
                        ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_NOCOLOR='1', ANSIBLE_DEPRECATION_WARNINGS='0')
        self.helper = os.path.abspath(__file__) if host == 'localhost' else '%s/bench_gc_process.py' % NODE_DIR

    def ansible(self, module, args, verbose=False):
        argv = [os.path.join(self.bin, 'ansible'), self.host, '-m', module, '-a', json.dumps(args)]
        if self.host == 'localhost':
            argv += ['-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=%s' % sys.executable]
        else:
            argv += ['-i', self.inventory]
        if verbose:
            argv.append('-vvv')
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=1800, check=False)
        try:
            doc = json.JSONDecoder().raw_decode(proc.stdout, proc.stdout.index('{'))[0]
            result = doc['plays'][0]['tasks'][0]['hosts'][self.host]
        except (ValueError, KeyError, IndexError):
            result = {}
        return proc, result

    def helper_cmd(self, *args):
        python = sys.executable if self.host == 'localhost' else 'python3'
        proc, result = self.ansible('ansible.builtin.command', {'argv': [python, self.helper] + list(args)})
        if result.get('rc') != 0:
            raise RuntimeError('node helper %s failed: %s %s' % (args[0], result.get('msg'), (proc.stdout + proc.stderr)[-1500:]))
        return json.loads(result['stdout'])

    def ship(self):
        if self.host != 'localhost':
            self.ansible('ansible.builtin.file', {'path': NODE_DIR, 'state': 'directory', 'mode': '0700'})
            proc, result = self.ansible('ansible.builtin.copy', {'src': os.path.abspath(__file__), 'dest': self.helper})
            if result.get('failed'):
                raise RuntimeError('copy failed: %s' % (proc.stdout + proc.stderr)[-1500:])

    def wrapper(self, module, args):
        """Run the module once through ansible, keeping its AnsiballZ wrapper; returns the wrapper's path."""
        env_path = {}
        bindir = args.pop('_bin', None)
        if bindir and self.ctr_mode == 'standin' and self.host == 'localhost':
            env_path = {'PATH': '%s:%s' % (bindir, os.environ.get('PATH', ''))}
        saved = self.env
        self.env = dict(self.env, ANSIBLE_KEEP_REMOTE_FILES='1', **env_path)
        try:
            proc, _result = self.ansible(module, args, verbose=True)
        finally:
            self.env = saved
        name = module.rsplit('.', 1)[-1]
        found = re.findall(r"(/[^\s'\"]*/AnsiballZ_%s\.py)" % re.escape(name), proc.stdout + proc.stderr)
        if not found:
            raise RuntimeError('no AnsiballZ_%s.py in the output: %s' % (name, (proc.stdout + proc.stderr)[-2000:]))
        return found[-1]


TRIVIAL = '''from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(data=dict(type='str', default='pong')), supports_check_mode=True)
    module.exit_json(changed=False, ping=module.params['data'])


if __name__ == '__main__':
    main()
'''


def direct_commands(target, collections, base, gc_args):
    """``python module.py args.json`` for the GC module and a ping-like trivial AnsibleModule (PYTHONPATH set)."""
    target.env['PYTHONPATH'] = collections
    target.env.pop('PYTHONDONTWRITEBYTECODE', None)
    target.env['PYTHONPYCACHEPREFIX'] = os.path.join(base, 'pycache')
    gc_args = {k: v for k, v in gc_args.items() if k != '_bin'}
    with open(os.path.join(base, 'gc.json'), 'w') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': gc_args}, f)
    with open(os.path.join(base, 'trivial.json'), 'w') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': {}}, f)
    with open(os.path.join(base, 'trivial.py'), 'w') as f:
        f.write(TRIVIAL)
    module = os.path.join(collections, 'ansible_collections', 'netmedic', 'k8s', 'plugins', 'modules', 'cni_ipam_gc.py')
    return ('%s %s' % (module, os.path.join(base, 'gc.json')),
            '%s %s' % (os.path.join(base, 'trivial.py'), os.path.join(base, 'trivial.json')))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ('prepare', 'restore', 'time', 'cleanup'):
        return node_main(argv)
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    ap.add_argument('--target', default='localhost', help='inventory host (default: this machine, connection local)')
    ap.add_argument('--inventory', help='inventory for --target (e.g. the lab VMs: /run/netmedic-lab/inventory.yml)')
    ap.add_argument('--ctr', choices=['standin', 'real'], default='standin')
    ap.add_argument('--sizes', type=int, nargs='+', default=[254])
    ap.add_argument('--mode', choices=['ansiballz', 'direct'], default='ansiballz',
                    help='ansiballz: the wrappers Ansible sent (production); direct (this machine only): '
                    'python module.py args.json with PYTHONPATH, bytecode cached, the strict floor')
    ap.add_argument('--repeat', type=int, default=11)
    ap.add_argument('--collections', default=os.path.join(ROOT, 'collections'),
                    help='collections root holding ansible_collections/netmedic/k8s (e.g. an older commit, '
                    'unpacked with git archive, to compare; default: this tree)')
    ap.add_argument('--json', help='also write the results here')
    args = ap.parse_args(argv)
    target = Target(args.target, args.inventory, args.ctr, args.collections)
    target.ship()
    rows = []
    kept = []
    failed = False
    try:
        for size in args.sizes:
            prep = target.helper_cmd('prepare', '--size', str(size), '--ctr', args.ctr)
            base = prep['base']
            gc_args = {'data_dir': [base + '/networks'], 'networks': [NETWORK], 'runtime': 'containerd',
                       'runtime_endpoint': '/run/containerd/containerd.sock', 'namespace': NAMESPACE,
                       'backup_dir': base + '/backup', '_bin': base + '/bin'}
            target.helper_cmd('restore', '--base', base, '--template', prep['template'])
            if args.mode == 'direct':
                gc, ping = direct_commands(target, args.collections, base, gc_args)
            else:
                gc = target.wrapper('netmedic.k8s.cni_ipam_gc', gc_args)
                ping = target.wrapper('ansible.builtin.ping', {'data': 'pong'})
                kept += [gc, ping]
            out = target.helper_cmd('time', '--base', base, '--template', prep['template'], '--gc', gc, '--ping', ping,
                                    '--repeat', str(args.repeat), '--ctr', args.ctr)
            if out.get('failed'):
                print('%d files: FAILED %s' % (size, out['failed']), flush=True)
                failed = True
                continue
            med, low = out['median'], out['min']
            row = {'files': size, 'ctr': args.ctr, 'target': args.target, 'mode': args.mode, 'repeat': args.repeat,
                   'live': prep['live'],
                   'collections': args.collections,
                   'moved': out['moved'], 'median': med, 'min': low,
                   'ratio_median': med['module'] / med['trivial'], 'ratio_min': low['module'] / low['trivial'],
                   'ratio_cpu': med['module_cpu'] / med['trivial_cpu']}
            rows.append(row)
            print('%6d files (%s, %s ctr, %s): wall: module %.1f ms, trivial (ping) %.1f ms, ctr listing %.1f ms '
                  '(medians of %d), module/trivial %.2fx (minimums %.2fx); CPU: module %.1f ms, trivial %.1f ms, '
                  'ctr %.1f ms, module/trivial %.2fx; moved %d files'
                  % (size, args.mode, args.ctr, args.target, med['module'] * 1000, med['trivial'] * 1000, med['ctr'] * 1000,
                     args.repeat, row['ratio_median'], row['ratio_min'], med['module_cpu'] * 1000,
                     med['trivial_cpu'] * 1000, med['ctr_cpu'] * 1000, row['ratio_cpu'], out['moved']), flush=True)
    finally:
        try:
            target.helper_cmd('cleanup', '--ctr', args.ctr, '--kept', *kept)
        except Exception as exc:  # a measurement: report, do not hide the results
            print('cleanup failed: %s' % exc, flush=True)
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        print('growth %d -> %d files (x%.0f): module x%.1f, module minus trivial x%.1f'
              % (a['files'], b['files'], b['files'] / a['files'], b['median']['module'] / a['median']['module'],
                 (b['median']['module'] - b['median']['trivial']) / max(1e-6, a['median']['module'] - a['median']['trivial'])))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
