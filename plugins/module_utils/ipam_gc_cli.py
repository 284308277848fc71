# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Catalog N-1's garbage collection without Ansible: the entry point of the C-8 DaemonSet's pod.

The ``ipam_cleanup_daemonset`` role ships this file and every module_utils file it imports
(:data:`SHIPPED`, byte for byte) in a ConfigMap, mounted as the package tree
``ansible_collections/netmedic/k8s/plugins/module_utils``, and runs::

    PYTHONPATH=/netmedic python3 -B -m ansible_collections.netmedic.k8s.plugins.module_utils.ipam_gc_cli ...

so the pod runs the same :func:`ipam_gc.run_gc` as the ``cni_ipam_gc`` module (exact ID match,
only IP-named files, host-local's lock, dual-stack together, refusal when nothing stays live,
verified moves to a backup with a manifest).  Python 3 standard library only.

One pass (``--interval 0``) or a loop (every ``--interval`` seconds).  Each pass prints one JSON
line: the module's result (:func:`ipam_gc.finish`) plus ``time``, ``dry_run``, ``warnings`` and
``pruned`` (backup runs removed by retention).  Exit codes: 0 done, 1 a pass failed (one-pass
mode) or ``--max-failures`` passes failed in a row (loop mode; the kubelet restarts the
container, which also re-mounts a runtime socket that was re-created), 2 bad input (nothing read
or changed).

The data directories are restricted to host-local's (:data:`HOST_LOCAL_DATA_DIRS`) unless
``--allow-other-data-dir`` is given: never widen what the user did not ask.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time

from ansible_collections.netmedic.k8s.plugins.module_utils import ipam, ipam_gc
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import SBIN_DIRS, Runner, execute

# This file and everything it imports, in the order the ConfigMap lists them.  The unit tests
# run the entry point from a directory holding only these files with site-packages disabled,
# so a new import that is not shipped fails there, not in a pod.  ConfigMap keys allow no '/':
# the role names node/runner.py's key node.runner.py (the mount path keeps the folder).
SHIPPED = ('ipam_gc_cli.py', 'ipam_gc.py', 'ipam.py', 'runtime.py', 'node/runner.py', 'node/hostfs.py', 'reportfiles.py')
PACKAGE_PATH = 'ansible_collections/netmedic/k8s/plugins/module_utils'
MODULE = 'ansible_collections.netmedic.k8s.plugins.module_utils.ipam_gc_cli'
HOST_LOCAL_DATA_DIRS = ipam.DEFAULT_DATA_DIRS
# The run directories run_gc creates: <UTC time>-<pid>, holding manifest.json.


class BadInput(Exception):
    pass


class _Binaries(object):
    """What Runner needs of a module: finding binaries on PATH and the sbin directories."""

    def get_bin_path(self, name, required=False, opt_dirs=None):
        path = os.pathsep.join([os.environ.get('PATH', '/usr/bin:/bin')] + list(opt_dirs or SBIN_DIRS))
        return shutil.which(name, path=path)


def parser():
    p = argparse.ArgumentParser(prog='ipam_gc_cli', description='Collect leaked host-local IP allocations (catalog N-1, C-8).')
    p.add_argument('--data-dir', action='append', required=True,
                   help='host-local dataDir holding one directory per network (repeatable)')
    p.add_argument('--network', action='append', default=[], help='network directory name (repeatable; none: all)')
    p.add_argument('--allow-other-data-dir', action='store_true',
                   help='accept a data dir other than %s' % ' or '.join(HOST_LOCAL_DATA_DIRS))
    p.add_argument('--runtime', choices=['auto', 'containerd', 'crio', 'docker'], default='auto')
    p.add_argument('--runtime-cli', choices=['auto', 'ctr', 'crictl', 'docker'], default='auto')
    p.add_argument('--runtime-endpoint', default=None)
    p.add_argument('--namespace', default='k8s.io')
    p.add_argument('--runtime-timeout', type=int, default=30)
    p.add_argument('--grace-period', type=int, default=600, help='seconds')
    p.add_argument('--lock-timeout', type=int, default=30)
    p.add_argument('--backup-dir', required=True)
    p.add_argument('--allow-all', action='store_true')
    p.add_argument('--keep-count', type=int, default=0, help='backup runs kept (newest); 0 keeps all')
    p.add_argument('--keep-days', type=int, default=0, help='backup runs older than this are removed; 0 keeps all')
    p.add_argument('--dry-run', action='store_true', help='check mode: read and report, change nothing')
    p.add_argument('--diff', action='store_true', help='add the diff view to each result')
    p.add_argument('--interval', type=int, default=0, help='seconds between passes; 0 runs one pass')
    p.add_argument('--max-failures', type=int, default=3, help='loop mode: exit 1 after this many failed passes in a row')
    return p


def _host_local_dir(path):
    norm = os.path.normpath(path)
    return norm in HOST_LOCAL_DATA_DIRS


def params_of(args):
    """argparse namespace -> run_gc's params; BadInput before anything is read."""
    for key in ('interval', 'keep_count', 'keep_days'):
        if getattr(args, key) < 0:
            raise BadInput('--%s must be 0 or more' % key.replace('_', '-'))
    if args.max_failures < 1:
        raise BadInput('--max-failures must be at least 1')
    for path in args.data_dir:
        if not os.path.isabs(path) or '..' in path.split('/'):
            raise BadInput('--data-dir %r is not an absolute path without ..' % path)
        if not args.allow_other_data_dir and not _host_local_dir(path):
            raise BadInput('--data-dir %s is not a host-local data directory (%s); pass --allow-other-data-dir to '
                           'accept it' % (path, ', '.join(HOST_LOCAL_DATA_DIRS)))
    if os.path.normpath(args.backup_dir) == '/':
        raise BadInput('--backup-dir must not be /')
    params = {
        'data_dir': list(args.data_dir), 'networks': list(args.network), 'runtime': args.runtime,
        'runtime_cli': args.runtime_cli, 'runtime_endpoint': args.runtime_endpoint, 'namespace': args.namespace,
        'runtime_timeout': args.runtime_timeout, 'grace_period': args.grace_period, 'backup_dir': args.backup_dir,
        'allow_all': args.allow_all, 'lock_timeout': args.lock_timeout,
    }
    try:
        ipam_gc.validate(params)
    except ipam_gc.GCError as e:
        raise BadInput(e.msg)
    return params


def prune(backup_dir, keep_count, keep_days, dry_run, now=None, protect=()):
    """Retention of run directories in ``backup_dir`` (:func:`ipam_gc.prune_run_dirs`, shared with the module):
    ``{'removed': [...], 'errors': [...]}``."""
    done = ipam_gc.prune_run_dirs(backup_dir, keep_count, keep_days, protect=protect, check_mode=dry_run, now=now)
    return {'removed': done['removed'], 'errors': done['errors']}


def one_pass(params, args, runner):
    """One GC pass and the retention after it; returns the printed result."""
    try:
        data = ipam_gc.run_gc(runner, params, args.dry_run)
        failed = None
    except ipam_gc.GCError as e:
        data, failed = e.data, e.msg
    result, warnings = ipam_gc.finish(data, failed, args.dry_run, want_diff=args.diff)
    protect = [os.path.basename(result['backup_dir'])] if result.get('backup_dir') else []
    try:
        pruned = prune(params['backup_dir'], args.keep_count, args.keep_days, args.dry_run, protect=protect)
    except OSError as e:
        pruned = {'removed': [], 'errors': [str(e)]}
    result.update(time=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), dry_run=args.dry_run,
                  warnings=warnings, pruned=pruned['removed'], prune_errors=pruned['errors'])
    return result


def main(argv=None, out=None):
    out = out or sys.stdout
    args = parser().parse_args(argv)
    try:
        params = params_of(args)
    except BadInput as e:
        out.write(json.dumps({'failed': True, 'msg': '%s; nothing was read or changed' % e, 'changed': False}) + '\n')
        out.flush()
        return 2
    runner = Runner(_Binaries(), timeout=max(1, args.runtime_timeout), execute=execute)
    stop = threading.Event()
    if args.interval:
        # SIGTERM (pod deletion) ends the loop between passes; a pass in progress finishes
        # (the DaemonSet's termination grace period covers its listing and lock timeouts).
        signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    failures = 0
    while True:
        result = one_pass(params, args, runner)
        out.write(json.dumps(result, sort_keys=True) + '\n')
        out.flush()
        failures = failures + 1 if result.get('failed') else 0
        if not args.interval:
            return 1 if result.get('failed') else 0
        if failures >= args.max_failures:
            return 1
        if stop.wait(args.interval):
            return 0


if __name__ == '__main__':
    raise SystemExit(main())
