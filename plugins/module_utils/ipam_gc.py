# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of catalog N-1's garbage collection (the cni_ipam_gc module is a thin wrapper).

validate -> find the network directories -> choose the runtime -> list it WITHOUT
host-local's lock -> lock -> (apply) list again under the lock -> read -> plan
(``ipam.plan_gc``, pure) -> check-mode stop -> move to the backup -> read back ->
manifest.  :func:`run_gc` returns the result data or raises GCError with the partial
result.  See docs/cni_ipam_gc.md.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import time

from ansible_collections.netmedic.k8s.plugins.module_utils import ipam, runtime
from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS


class GCError(Exception):
    """The run stops; ``data`` is what the result reports alongside the message."""

    def __init__(self, msg, data=None):
        super(GCError, self).__init__(msg)
        self.msg = msg
        self.data = data or {}


def _under(path, parent):
    path = os.path.realpath(path)
    parent = os.path.realpath(parent)
    return path == parent or path.startswith(parent.rstrip('/') + '/')


def validate(params):
    """Bad input fails here, before the node is read or changed."""
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
        if _under(params['backup_dir'], path):
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


def find_networks(params):
    """``[{'name', 'data_dir', 'path'}]`` to examine, the requested names not found, and the
    directories that are not host-local networks (never locked, read further or written)."""
    found = []
    not_networks = []
    seen = set()
    for data_dir in params['data_dir']:
        if not os.path.isdir(data_dir):
            continue
        real = os.path.realpath(data_dir)
        if real in seen:
            continue
        seen.add(real)
        for name in sorted(os.listdir(data_dir)):
            path = os.path.join(data_dir, name)
            if os.path.isdir(path) and not os.path.islink(path) and (not params['networks'] or name in params['networks']):
                if ipam.looks_like_network(path):
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


def _make_run_dir(run_dir):
    """Create this run's directory; never reuse an existing one."""
    os.mkdir(run_dir, 0o700)


def _write_manifest(run_dir, data):
    # Informational (the run directory mirrors the original paths): written atomically, not fsynced.
    tmp = os.path.join(run_dir, '.manifest.json.tmp')
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.rename(tmp, os.path.join(run_dir, 'manifest.json'))


def run_gc(runner, params, check_mode, fs=None, now=None):
    """The whole module minus AnsibleModule; returns the result data (``changed`` included).

    Raises GCError (with the partial result in ``data``) when the run must fail.
    """
    validate(params)
    fs = fs or HostFS('/')
    data = {'networks': [], 'runtime': None, 'backup_dir': None, 'moved': [], 'remaining': [],
            'missing_networks': [], 'not_networks': [], 'summary': summary([]), 'warnings': []}
    try:
        nets, missing, not_networks = find_networks(params)
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
        return data

    info = resolve_runtime(runner, params, fs)
    data['runtime'] = info
    # 1. List the runtime WITHOUT host-local's lock: a hung or failing runtime fails the run
    #    (within runtime_timeout) while the plugin can still allocate and release.
    first = list_runtime(runner, info, params, nets, under_lock=False)
    live_ids = set(first['ids'])
    info['commands'] = list(first['commands'])
    held = []
    try:
        # 2. host-local's lock of every network, in a fixed order (the plugin takes one at a time).
        #    Check mode never creates a lock file.
        for net in sorted(nets, key=lambda n: n['path']):
            lock_missing = not os.path.lexists(os.path.join(net['path'], ipam.LOCK))
            try:
                fd, waited = ipam.lock_network(net['path'], params['lock_timeout'], create=not check_mode)
            except ipam.LockTimeout as e:
                raise GCError('%s; nothing was changed' % e, {'networks': [_net_result(n, None) for n in nets],
                                                              'runtime': info})
            except (IOError, OSError) as e:
                raise GCError('cannot lock %s: %s; nothing was changed' % (os.path.join(net['path'], ipam.LOCK), e),
                              {'networks': [_net_result(n, None) for n in nets], 'runtime': info})
            held.append(fd)
            # A network without host-local's lock file gets one (empty, as the plugin creates it): reported.
            net['lock'] = {'path': os.path.join(net['path'], ipam.LOCK), 'held': fd is not None, 'waited': round(waited, 3),
                           'created': lock_missing and not check_mode, 'missing': lock_missing}

        # 3. Before acting, list again while no allocation can be made or released (bounded by
        #    runtime_timeout: the lock is never held longer for it).  A container listed in either
        #    listing is live.  Check mode acts on nothing, so it does not hold the lock for a listing.
        if not check_mode:
            second = list_runtime(runner, info, params, nets, under_lock=True)
            live_ids |= second['ids']
            info['commands'] += second['commands']
        info['listed'] = len(live_ids)

        scans = []
        for net in nets:
            try:
                scan = ipam.read_allocations(net['path'])
            except (IOError, OSError) as e:
                raise GCError('cannot read %s: %s; nothing was changed' % (net['path'], e))
            scans.append({'path': net['path'], 'allocations': scan['allocations']})
        clock = time.time() if now is None else now
        plans = ipam.plan_gc(scans, live_ids, clock, params['grace_period'])
        results = [_net_result(net, plan) for net, plan in zip(nets, plans)]
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

        run_dir = os.path.join(params['backup_dir'], '%s-%d' % (time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(clock)), os.getpid()))
        todo = []
        for res in results:
            if res['leaked']:
                res['backup_dir'] = _mirror(run_dir, res['path'])
                for item in res['leaked']:
                    item['backup'] = _mirror(run_dir, item['path'])
                    todo.append((res, item))
        if todo:
            data['backup_dir'] = run_dir
        locks_missing = any(n['lock']['missing'] for n in nets)
        if check_mode or not todo:
            for res in results:
                res['removed'] = [item['path'] for item in res['leaked']]
            data['summary'] = summary(results)
            data['changed'] = bool(todo) or locks_missing
            return data

        # Apply: one file at a time, stop at the first error.
        try:
            os.makedirs(params['backup_dir'], 0o700, exist_ok=True)
            _make_run_dir(run_dir)
            for res in results:
                if res['leaked']:
                    os.makedirs(res['backup_dir'], 0o700)
        except (IOError, OSError) as e:
            raise GCError('cannot create the backup directory %s: %s; nothing was changed' % (run_dir, e), data)
        failure = None
        for res, item in todo:
            if failure:
                res['remaining'].append(item['path'])
                continue
            try:
                method = ipam.move_to_backup(item['path'], item['backup'], sync_dirs=False)
            except (IOError, OSError) as e:
                failure = 'moving %s to %s failed: %s' % (item['path'], item['backup'], e)
                res['remaining'].append(item['path'])
                continue
            res['removed'].append(item['path'])
            data['moved'].append({'path': item['path'], 'backup': item['backup'], 'method': method})
        # Read back: every moved file is gone from the network and present in the backup.
        for m in data['moved']:
            if os.path.lexists(m['path']) or not os.path.isfile(m['backup']):
                failure = failure or 'after moving, %s %s and %s %s' % (
                    m['path'], 'still exists' if os.path.lexists(m['path']) else 'is gone',
                    m['backup'], 'exists' if os.path.isfile(m['backup']) else 'is missing')
        data['remaining'] = [p for res in results for p in res['remaining']]
        data['summary'] = summary(results)
        data['changed'] = bool(data['moved']) or locks_missing
        try:
            _write_manifest(run_dir, {'catalog': 'N-1', 'module': 'netmedic.k8s.cni_ipam_gc', 'time': int(clock),
                                      'runtime': {k: info.get(k) for k in ('name', 'cli', 'endpoint', 'namespace', 'listed')},
                                      'moved': data['moved'], 'remaining': data['remaining'],
                                      'leaked': [dict(item, network=res['path']) for res, item in todo]})
        except (IOError, OSError) as e:
            data['warnings'].append('could not write %s/manifest.json: %s (the moved files are there)' % (run_dir, e))
        if failure:
            raise GCError('%s; %d file(s) moved (listed in moved), %d leaked file(s) remain in place (listed in remaining)'
                          % (failure, len(data['moved']), len(data['remaining'])), data)
        return data
    finally:
        for fd in held:
            ipam.unlock_network(fd)


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


def is_owned_run(path):
    """A run directory :func:`run_gc` made: it holds run_gc's manifest of catalog N-1."""
    try:
        with open(os.path.join(path, 'manifest.json')) as f:
            return json.load(f).get('catalog') == 'N-1'
    except (IOError, OSError, ValueError, AttributeError):
        return False


def _stamp_time(stamp):
    """``YYYYmmddTHHMMSSZ`` as an aware UTC datetime; ValueError when it is no date.

    Built field by field instead of ``datetime.strptime``, whose first call imports ``_strptime``
    (calendar, locale, its regular expressions): start-up time of every module run (issue 14).
    """
    return datetime.datetime(int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[9:11]), int(stamp[11:13]),
                             int(stamp[13:15]), tzinfo=datetime.timezone.utc)


def prune_run_dirs(backup_dir, keep_count=0, keep_days=0, protect=(), check_mode=False, now=None):
    """Retention for the per-run backup directories under ``backup_dir`` (issue 10 hole 11), for every entry point.

    Only real directories named as :func:`run_gc` names them and holding its manifest are candidates (never a
    symlink, a file, another name or a directory without run_gc's manifest); the newest one is always kept, as is
    anything in ``protect`` (paths or names, e.g. the run being written). Removes the others beyond ``keep_count``
    newest or older than ``keep_days`` (``reportfiles.plan_retention``; 0 disables either, both 0 removes nothing).
    Returns ``{'removed': [paths], 'kept': [paths], 'errors': ['path: reason']}``; in check mode ``removed`` is what
    would go. A directory that cannot be removed is an error entry, the others are still pruned.
    """
    pattern = re.compile(RUN_DIR_NAME)
    out = {'removed': [], 'kept': [], 'errors': []}
    if not os.path.isdir(backup_dir) or os.path.islink(backup_dir):
        return out
    runs = []
    for name in sorted(os.listdir(backup_dir)):
        path = os.path.join(backup_dir, name)
        match = pattern.match(name)
        if not match or os.path.islink(path) or not os.path.isdir(path) or not is_owned_run(path):
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
                shutil.rmtree(path)
            except OSError as e:
                out['errors'].append('%s: %s' % (path, e))
                continue
        gone.add(name)
        out['removed'].append(path)
    out['kept'] = [os.path.join(backup_dir, n) for n, _w in runs if n not in gone]
    return out
