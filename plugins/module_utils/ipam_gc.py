# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of catalog N-1's garbage collection (the cni_ipam_gc module is a thin wrapper).

validate -> find the network directories -> choose the runtime -> list it WITHOUT
host-local's lock -> lock -> (apply) list again under the lock -> read -> plan
(``ipam.plan_gc``, pure) -> check-mode stop -> move to the backup -> read back ->
manifest.  :class:`GCRun` holds these steps (the module's lifecycle steps call them one by
one, with :meth:`GCRun.locked` as its held resource); :func:`run_gc` runs them in that order
for every other entry point (the C-8 pod's ``ipam_gc_cli``, the benchmarks) and returns the
result data or raises GCError with the partial result.  Every file operation goes through a
HostFS.  See docs/cni_ipam_gc.md.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import time

from ansible_collections.netmedic.k8s.plugins.module_utils import ipam, runtime
from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS


class GCError(Exception):
    """The run stops; ``data`` is what the result reports alongside the message."""

    def __init__(self, msg, data=None):
        super(GCError, self).__init__(msg)
        self.msg = msg
        self.data = data or {}


_LOCAL = HostFS('/')


def _under(path, parent, store):
    path = store.realpath(path)
    parent = store.realpath(parent)
    return path == parent or path.startswith(parent.rstrip('/') + '/')


def validate(params, store=None):
    """Bad input fails here, before the node is read or changed (``store``: the HostFS of the paths)."""
    store = store or _LOCAL
    for key in ('grace_period', 'lock_timeout'):
        if params[key] < 0:
            raise GCError('%s must be 0 or more, got %d' % (key, params[key]))
    if params['runtime_timeout'] <= 0:
        raise GCError('runtime_timeout must be at least 1, got %d' % params['runtime_timeout'])
    if not params['data_dir']:
        raise GCError('data_dir must name at least one directory')
    for path in params['data_dir'] + [params['backup_dir']]:
        if not path or not os.path.isabs(path):
            raise GCError('%r is not an absolute path' % (path,))
    for name in params['networks']:
        if not name or name in ('.', '..') or '/' in name or '\0' in name:
            raise GCError('invalid network name %r (a directory name under data_dir is expected)' % (name,))
    for path in params['data_dir']:
        try:
            inside = _under(params['backup_dir'], path, store)
        except OSError as e:        # a symbolic link loop: where the backup would go is not certain
            raise GCError('cannot resolve backup_dir %s or data_dir %s: %s' % (params['backup_dir'], path, e))
        if inside:
            raise GCError('backup_dir %s is inside data_dir %s: choose a directory outside the CNI data directories'
                          % (params['backup_dir'], path))
    if params['runtime_endpoint'] and runtime.endpoint_path(params['runtime_endpoint']) is None:
        raise GCError('runtime_endpoint %r is not a unix socket path or unix:// URL' % params['runtime_endpoint'])
    if params['runtime'] != 'auto' and params['runtime_cli'] != 'auto':
        clis = runtime.clis_for(params['runtime'], params['runtime_endpoint'])
        if params['runtime_cli'] not in clis:
            raise GCError('runtime_cli %s cannot list %s containers%s (use one of: %s)'
                          % (params['runtime_cli'], params['runtime'],
                             ' through cri-dockerd' if runtime.is_cri_dockerd(params['runtime_endpoint']) else '',
                             ', '.join(clis)))
    if not params['namespace']:
        raise GCError('namespace must not be empty')


def find_networks(params, store=None):
    """``[{'name', 'data_dir', 'path'}]`` to examine, the requested names not found, and the
    directories that are not host-local networks (never locked, read further or written)."""
    store = store or _LOCAL
    found = []
    not_networks = []
    seen = set()
    for data_dir in params['data_dir']:
        if not store.isdir(data_dir):
            continue
        real = store.realpath(data_dir)
        if real in seen:
            continue
        seen.add(real)
        for name in store.listdir(data_dir):
            path = os.path.join(data_dir, name)
            if store.isdir(path) and not store.islink(path) and (not params['networks'] or name in params['networks']):
                if ipam.looks_like_network(path, fs=store):
                    found.append({'name': name, 'data_dir': data_dir, 'path': path})
                else:
                    not_networks.append(path)
    names = {n['name'] for n in found}
    missing = [n for n in params['networks'] if n not in names]
    return found, missing, not_networks


def resolve_runtime(runner, params, fs):
    """Which runtime, CLI and endpoint to list with (runtime.resolve); GCError when it is not certain."""
    try:
        return runtime.resolve(runner, fs, params['runtime'], params['runtime_endpoint'], params['runtime_cli'],
                               params['namespace'])
    except runtime.ResolveError as e:
        raise GCError('%s (nothing was changed)' % e.msg, {'runtime': e.info} if e.info else None)


def list_runtime(runner, info, params, nets, under_lock):
    """One bounded listing (``runtime_timeout`` for all its commands); GCError when it cannot be made."""
    try:
        return runtime.list_live_ids(runner, info['name'], info['cli'], info['endpoint'], params['namespace'],
                                     params['runtime_timeout'])
    except runtime.ListingError as e:
        raise GCError('%s%s; live allocations cannot be told from leaked ones, nothing was changed'
                      % (e, ' (listed again under host-local\'s lock, which is released)' if under_lock else ''),
                      {'networks': [_net_result(n, None) for n in nets], 'runtime': info})


def _net_result(net, plan):
    # Without a plan (the run stopped before reading), the counts are unknown: null, not 0.
    return {
        'name': net['name'], 'data_dir': net['data_dir'], 'path': net['path'],
        'allocated': plan['allocated'] if plan else None, 'live': plan['live'] if plan else None,
        'young': plan['young'] if plan else [], 'unknown': plan['unknown'] if plan else [],
        'leaked': plan['leaked'] if plan else [], 'removed': [], 'remaining': [],
        'backup_dir': None, 'refused': plan['refused'] if plan else False, 'lock': net.get('lock'),
    }


def summary(results):
    return {
        'allocated': sum(n['allocated'] or 0 for n in results),
        'live': sum(n['live'] or 0 for n in results),
        'young': sum(len(n['young']) for n in results),
        'unknown': sum(len(n['unknown']) for n in results),
        'leaked': sum(len(n['leaked']) for n in results),
        'removed': sum(len(n['removed']) for n in results),
    }


def _mirror(run_dir, path):
    return os.path.join(run_dir, os.path.normpath(path).lstrip('/'))


class GCRun(object):
    """One run, step by step; :func:`run_gc` shows the order, and the module drives the same steps.

    ``fs``: the HostFS the runtime is detected through (the node's root); ``store``: the HostFS the
    data and backup directories are read and written through (their paths are this machine's;
    default ``/``); ``now``: the clock (seconds since the epoch), default the time of :meth:`plan`.
    Every step raises GCError with the partial result in its ``data`` when the run must fail.
    After :meth:`read`, ``nets`` is empty when there is nothing to examine (``data`` is the result).
    """

    def __init__(self, runner, params, check_mode, fs=None, now=None, store=None):
        self.runner = runner
        self.params = params
        self.check_mode = check_mode
        self.fs = fs or HostFS('/')
        self.store = store or _LOCAL
        self.now = now
        self.data = {'networks': [], 'runtime': None, 'backup_dir': None, 'moved': [], 'remaining': [],
                     'missing_networks': [], 'not_networks': [], 'summary': summary([]), 'warnings': []}
        self.nets = []
        self.info = None
        self.live_ids = set()
        self.results = []
        self.todo = []
        self.run_dir = None
        self.clock = None
        self.failure = None

    def validate(self):
        validate(self.params, self.store)

    def read(self):
        """Find the networks, choose the runtime and list it WITHOUT host-local's lock."""
        params, data = self.params, self.data
        try:
            nets, missing, not_networks = find_networks(params, self.store)
        except (IOError, OSError) as e:
            raise GCError('cannot list the network directories: %s; nothing was changed' % e)
        data['missing_networks'] = missing
        data['not_networks'] = not_networks
        for name in missing:
            data['warnings'].append('network %s was not found in %s (as a directory holding host-local allocations)'
                                    % (name, ', '.join(params['data_dir'])))
        if params['grace_period'] < 60:
            data['warnings'].append('grace_period %d s: a pod being created right now can look leaked for a moment '
                                    '(its sandbox is listed only after its network is set up)' % params['grace_period'])
        if not nets:
            data['changed'] = False
            return
        self.nets = nets
        self.info = info = resolve_runtime(self.runner, params, self.fs)
        data['runtime'] = info
        # 1. List the runtime WITHOUT host-local's lock: a hung or failing runtime fails the run
        #    (within runtime_timeout) while the plugin can still allocate and release.
        first = list_runtime(self.runner, info, params, nets, under_lock=False)
        self.live_ids = set(first['ids'])
        info['commands'] = list(first['commands'])

    @contextlib.contextmanager
    def locked(self):
        """Hold host-local's lock of every network (a fixed order, as the plugin takes one at a time)
        while the block runs (:meth:`plan` through :meth:`verify`); every lock taken is released
        however the block or the locking itself ends.  Check mode never creates a lock file."""
        nets, info, store = self.nets, self.info, self.store
        held = []
        try:
            for net in sorted(nets, key=lambda n: n['path']):
                path = os.path.join(net['path'], ipam.LOCK)
                lock_missing = not store.lexists(path)
                try:
                    fd, waited = ipam.lock_network(net['path'], self.params['lock_timeout'], create=not self.check_mode,
                                                   fs=store)
                except ipam.LockTimeout as e:
                    raise GCError('%s; nothing was changed' % e, {'networks': [_net_result(n, None) for n in nets],
                                                                  'runtime': info})
                except (IOError, OSError) as e:
                    raise GCError('cannot lock %s: %s; nothing was changed' % (path, e),
                                  {'networks': [_net_result(n, None) for n in nets], 'runtime': info})
                held.append(fd)
                # A network without host-local's lock file gets one (empty, as the plugin creates it): reported.
                net['lock'] = {'path': path, 'held': fd is not None, 'waited': round(waited, 3),
                               'created': lock_missing and not self.check_mode, 'missing': lock_missing}
            yield
        finally:
            for fd in held:
                ipam.unlock_network(fd, fs=store)

    def plan(self):
        """Under the lock: list again (apply only), read, plan (pure), refuse, name the backups.

        Ends the run's data when nothing is to be moved or in check mode (``todo`` says what
        :meth:`apply` would move)."""
        params, data, nets, info = self.params, self.data, self.nets, self.info
        # 3. Before acting, list again while no allocation can be made or released (bounded by
        #    runtime_timeout: the lock is never held longer for it).  A container listed in either
        #    listing is live.  Check mode acts on nothing, so it does not hold the lock for a listing.
        if not self.check_mode:
            second = list_runtime(self.runner, info, params, nets, under_lock=True)
            self.live_ids |= second['ids']
            info['commands'] += second['commands']
        info['listed'] = len(self.live_ids)

        scans = []
        for net in nets:
            try:
                scan = ipam.read_allocations(net['path'], fs=self.store)
            except (IOError, OSError) as e:
                raise GCError('cannot read %s: %s; nothing was changed' % (net['path'], e))
            scans.append({'path': net['path'], 'allocations': scan['allocations']})
        self.clock = clock = time.time() if self.now is None else self.now
        plans = ipam.plan_gc(scans, self.live_ids, clock, params['grace_period'])
        self.results = results = [_net_result(net, plan) for net, plan in zip(nets, plans)]
        data['networks'] = results
        if params['allow_all']:
            for res in results:
                res['refused'] = False
        refused = [res for res in results if res['refused']]
        if refused:
            data['summary'] = summary(results)
            raise GCError('refusing to collect: in %s no allocation belongs to a container the runtime listed (%d listed), so '
                          'every allocation old enough would be removed - an empty or wrong runtime listing looks the same. '
                          'Check runtime/namespace/runtime_endpoint, or set allow_all=true if those pods are really gone. '
                          'Nothing was changed.' % (', '.join(r['path'] for r in refused), info['listed']), data)

        self.run_dir = run_dir = os.path.join(params['backup_dir'], '%s-%d' % (
            time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(clock)), os.getpid()))
        for res in results:
            if res['leaked']:
                res['backup_dir'] = _mirror(run_dir, res['path'])
                for item in res['leaked']:
                    item['backup'] = _mirror(run_dir, item['path'])
                    self.todo.append((res, item))
        if self.todo:
            data['backup_dir'] = run_dir
        if self.check_mode or not self.todo:
            for res in results:
                res['removed'] = [item['path'] for item in res['leaked']]
            data['summary'] = summary(results)
            data['changed'] = bool(self.todo) or self._locks_missing()

    def _locks_missing(self):
        return any(n['lock']['missing'] for n in self.nets)

    def apply(self):
        """Move the leaked files to this run's backup directory: one file at a time, stop at the first error."""
        params, data, store = self.params, self.data, self.store
        try:
            store.makedirs(params['backup_dir'], 0o700, exist_ok=True)
            store.mkdir(self.run_dir, 0o700)        # this run's directory: never reuse an existing one
            for res in self.results:
                if res['leaked']:
                    store.makedirs(res['backup_dir'], 0o700)
        except (IOError, OSError) as e:
            raise GCError('cannot create the backup directory %s: %s; nothing was changed' % (self.run_dir, e), data)
        for res, item in self.todo:
            if self.failure:
                res['remaining'].append(item['path'])
                continue
            try:
                method = ipam.move_to_backup(item['path'], item['backup'], sync_dirs=False, fs=store)
            except (IOError, OSError) as e:
                self.failure = 'moving %s to %s failed: %s' % (item['path'], item['backup'], e)
                res['remaining'].append(item['path'])
                continue
            res['removed'].append(item['path'])
            data['moved'].append({'path': item['path'], 'backup': item['backup'], 'method': method})

    def verify(self):
        """Read back (every moved file gone from the network, present in the backup), write the manifest;
        GCError when a move failed or did not hold."""
        data, store, info = self.data, self.store, self.info
        for m in data['moved']:
            if store.lexists(m['path']) or not store.isfile(m['backup']):
                self.failure = self.failure or 'after moving, %s %s and %s %s' % (
                    m['path'], 'still exists' if store.lexists(m['path']) else 'is gone',
                    m['backup'], 'exists' if store.isfile(m['backup']) else 'is missing')
        data['remaining'] = [p for res in self.results for p in res['remaining']]
        data['summary'] = summary(self.results)
        data['changed'] = bool(data['moved']) or self._locks_missing()
        try:
            self._write_manifest({'catalog': 'N-1', 'module': 'netmedic.k8s.cni_ipam_gc', 'time': int(self.clock),
                                  'runtime': {k: info.get(k) for k in ('name', 'cli', 'endpoint', 'namespace', 'listed')},
                                  'moved': data['moved'], 'remaining': data['remaining'],
                                  'leaked': [dict(item, network=res['path']) for res, item in self.todo]})
        except (IOError, OSError) as e:
            data['warnings'].append('could not write %s/manifest.json: %s (the moved files are there)' % (self.run_dir, e))
        if self.failure:
            raise GCError('%s; %d file(s) moved (listed in moved), %d leaked file(s) remain in place (listed in remaining)'
                          % (self.failure, len(data['moved']), len(data['remaining'])), data)

    def _write_manifest(self, manifest):
        # Informational (the run directory mirrors the original paths): written atomically, not fsynced.
        tmp = os.path.join(self.run_dir, '.manifest.json.tmp')
        self.store.write_text(tmp, json.dumps(manifest, indent=2, sort_keys=True))
        self.store.rename(tmp, os.path.join(self.run_dir, 'manifest.json'))


def run_gc(runner, params, check_mode, fs=None, now=None, store=None):
    """The whole module minus AnsibleModule; returns the result data (``changed`` included).

    Raises GCError (with the partial result in ``data``) when the run must fail.  host-local's
    lock is held from before the second listing through the moves and the manifest, and always
    released (:meth:`GCRun.locked`).
    """
    run = GCRun(runner, params, check_mode, fs=fs, now=now, store=store)
    run.validate()
    run.read()
    if not run.nets:
        return run.data
    with run.locked():
        run.plan()
        if check_mode or not run.todo:
            return run.data
        run.apply()
        run.verify()
    return run.data


def diffs(data):
    """Per network, the leaked allocations (before) and where they go (after): the ``--diff`` view."""
    out = []
    for res in data['networks']:
        if not res['leaked']:
            continue
        before = ''.join('%s\t%s\t%s\n' % (i['ip'], i['container_id'], i['ifname'] or '-') for i in res['leaked'])
        out.append({'before': before, 'after': '',
                    'before_header': '%s (leaked allocations)' % res['path'],
                    'after_header': '%s (after: moved to %s)' % (res['path'], res['backup_dir'])})
    return out


def finish(data, failed, check_mode, want_diff=False):
    """The result of one run as reported to the user (cni_ipam_gc and the C-8 pod's entry point).

    ``data``: what :func:`run_gc` returned or GCError carried; ``failed``: the GCError's message
    or None.  Returns ``(result, warnings)``; a failed result has ``failed: true`` and ``msg``.
    """
    data = dict(data)
    data.setdefault('networks', [])
    for key in ('moved', 'remaining', 'missing_networks', 'not_networks'):
        data.setdefault(key, [])
    data.setdefault('backup_dir', None)
    data.setdefault('runtime', None)
    data['summary'] = summary(data['networks'])
    warnings = data.pop('warnings', [])
    created = any((n.get('lock') or {}).get('created') for n in data['networks'])
    data['changed'] = bool(data['moved']) or created or (check_mode and failed is None and bool(data.get('changed')))
    data['catalog'] = ['N-1']
    data['before'] = {n['path']: n['allocated'] for n in data['networks']}
    data['after'] = {n['path']: None if n['allocated'] is None else n['allocated'] - len(n['removed'])
                     for n in data['networks']}
    data['backups'] = [{'path': m['backup'], 'of': m['path']} for m in data['moved']]
    if want_diff:
        data['diff'] = diffs(data) if failed is None else []
    if failed:
        data['failed'] = True
        data['msg'] = failed
    return data, warnings


RUN_DIR_NAME = r'^(?P<stamp>\d{8}T\d{6}Z)-\d+$'     # <backup_dir>/<UTC time>-<pid>/ as run_gc names them


def is_owned_run(path, fs=None):
    """A run directory :func:`run_gc` made: it holds run_gc's manifest of catalog N-1."""
    try:
        text = (fs or _LOCAL).read_head(os.path.join(path, 'manifest.json'), -1)
        return json.loads(text).get('catalog') == 'N-1'
    except (IOError, OSError, ValueError, AttributeError):
        return False


def _stamp_time(stamp):
    """``YYYYmmddTHHMMSSZ`` as an aware UTC datetime; ValueError when it is no date.

    Built field by field instead of ``datetime.strptime``, whose first call imports ``_strptime``
    (calendar, locale, its regular expressions): start-up time of every module run (issue 14).
    """
    return datetime.datetime(int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[9:11]), int(stamp[11:13]),
                             int(stamp[13:15]), tzinfo=datetime.timezone.utc)


def prune_run_dirs(backup_dir, keep_count=0, keep_days=0, protect=(), check_mode=False, now=None, fs=None):
    """Retention for the per-run backup directories under ``backup_dir`` (issue 10 hole 11), for every entry point.

    Only real directories named as :func:`run_gc` names them and holding its manifest are candidates (never a
    symlink, a file, another name or a directory without run_gc's manifest); the newest one is always kept, as is
    anything in ``protect`` (paths or names, e.g. the run being written). Removes the others beyond ``keep_count``
    newest or older than ``keep_days`` (``reportfiles.plan_retention``; 0 disables either, both 0 removes nothing).
    Returns ``{'removed': [paths], 'kept': [paths], 'errors': ['path: reason']}``; in check mode ``removed`` is what
    would go. A directory that cannot be removed is an error entry, the others are still pruned.
    Every file operation goes through ``fs`` (a HostFS, default ``/``).
    """
    fs = fs or _LOCAL
    pattern = re.compile(RUN_DIR_NAME)
    out = {'removed': [], 'kept': [], 'errors': []}
    if not fs.isdir(backup_dir) or fs.islink(backup_dir):
        return out
    runs = []
    for name in fs.listdir(backup_dir):
        path = os.path.join(backup_dir, name)
        match = pattern.match(name)
        if not match or fs.islink(path) or not fs.isdir(path) or not is_owned_run(path, fs):
            continue
        when = _stamp_time(match.group('stamp'))
        runs.append((name, when))
    if len(runs) < 2 or (not keep_count and not keep_days):
        # The newest run is always kept: with fewer than two there is nothing to weigh.
        out['kept'] = [os.path.join(backup_dir, n) for n, _w in runs]
        return out
    newest = max(runs, key=lambda r: (r[1], r[0]))[0]
    keep = {newest} | {os.path.basename(str(p).rstrip('/')) for p in protect}
    # Imported here: only a run that has backups to weigh needs it (module start-up, issue 14).
    from ansible_collections.netmedic.k8s.plugins.module_utils import reportfiles

    now = now or datetime.datetime.now(datetime.timezone.utc)
    remove = reportfiles.plan_retention(runs, now, keep_count=keep_count, keep_days=keep_days, protect=keep)
    gone = set()
    for name in remove:
        path = os.path.join(backup_dir, name)
        if not check_mode:
            try:
                fs.rmtree(path)
            except OSError as e:
                out['errors'].append('%s: %s' % (path, e))
                continue
        gone.add(name)
        out['removed'].append(path)
    out['kept'] = [os.path.join(backup_dir, n) for n, _w in runs if n not in gone]
    return out
