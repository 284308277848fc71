# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edits of Flannel's CNI config (``kube-flannel-cfg``, key ``cni-conf.json``), catalog C-5 and N-7 step 2.

The key holds either one plugin object (``"type": "flannel"`` at the top) or a conflist
(``"plugins": [flannel, portmap]``).  Edits keep the key order and the indentation width of
the document; a document that needs no change is returned byte for byte.  Input that is not
strict JSON (the published ACK example carries ``#`` comments and a trailing comma) is refused
with its position, so nothing half-understood is ever written back.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import re
from collections import OrderedDict

from ansible_collections.netmedic.k8s.plugins.module_utils import ipam

CONFIGMAP = 'kube-flannel-cfg'
KEY = 'cni-conf.json'
POD_LABEL = ('app', ('flannel',))     # seed 002: kubectl delete pod -l app=flannel
DAEMONSET = 'kube-flannel-ds'

_CNI_VERSION_RE = re.compile(r'^\d+\.\d+\.\d+$')


class FlannelError(ValueError):
    """Bad input, or a cni-conf.json that cannot be edited safely."""

    def __init__(self, msg, report=None):
        super(FlannelError, self).__init__(msg)
        self.report = report


def load(text):
    if not isinstance(text, str) or not text.strip():
        raise FlannelError('%s is empty' % KEY)
    try:
        conf = json.loads(text, object_pairs_hook=OrderedDict)
    except ValueError as e:
        raise FlannelError('%s is not valid JSON (%s); fix it by hand first, nothing was changed' % (KEY, e))
    if not isinstance(conf, dict):
        raise FlannelError('%s must be a JSON object, got %s' % (KEY, type(conf).__name__))
    return conf


def indent_of(text):
    """The indentation width of the document's first indented line (2 when it has none)."""
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(' ')
        if stripped and len(stripped) != len(line):
            return len(line) - len(stripped)
    return 2


def dump(conf, indent=2):
    return json.dumps(conf, indent=indent, ensure_ascii=False, separators=(',', ': ')) + '\n'


def flannel_plugin(conf):
    """``(path, plugin)`` of the flannel plugin: ``plugins[i]`` of a conflist or the document itself."""
    if 'plugins' in conf:
        plugins = conf['plugins']
        if not isinstance(plugins, list):
            raise FlannelError('"plugins" must be a list')
        found = [(i, p) for i, p in enumerate(plugins) if isinstance(p, dict) and p.get('type') == 'flannel']
        if len(found) != 1:
            raise FlannelError('expected exactly one plugin of type "flannel" in "plugins", found %d' % len(found))
        return 'plugins[%d].' % found[0][0], found[0][1]
    if conf.get('type') != 'flannel':
        raise FlannelError('neither a conflist with "plugins" nor a plugin of type "flannel" (type: %r)' % (conf.get('type'),))
    return '', conf


def _insert_after(mapping, after_key, key, value):
    """Put ``key`` right after ``after_key`` (at the front when that is missing), in place."""
    items = list(mapping.items())
    position = 0
    for i, (k, _v) in enumerate(items):
        if k == after_key:
            position = i + 1
    items.insert(position, (key, value))
    mapping.clear()
    mapping.update(items)


def _abs_path(value, what):
    if not isinstance(value, str) or not value.startswith('/') or posixpath.normpath(value) != value.rstrip('/') or '..' in value.split('/'):
        raise FlannelError('%s must be a normalised absolute path such as /var/run/cni/networks, got %r' % (what, value))
    return value.rstrip('/') or '/'


def validate(settings):
    """Typed settings; unknown keys and bad values raise FlannelError."""
    out = {}
    for key, value in settings.items():
        if value is None:
            continue
        if key == 'cni_version':
            if not isinstance(value, str) or not _CNI_VERSION_RE.match(value):
                raise FlannelError('cni_version must look like 0.3.1, got %r' % (value,))
        elif key == 'hairpin_mode':
            if not isinstance(value, bool):
                raise FlannelError('hairpin_mode must be true or false, got %r' % (value,))
        elif key in ('ipam_data_dir', 'flannel_data_dir'):
            out[key] = _abs_path(value, key)
            continue
        else:
            raise FlannelError('unsupported setting %r' % key)
        out[key] = value
    if not out:
        raise FlannelError('nothing to set: give at least one of cni_version, hairpin_mode, ipam_data_dir, flannel_data_dir')
    return out


def summary(conf_or_text):
    conf = load(conf_or_text) if isinstance(conf_or_text, str) else conf_or_text
    _path, plugin = flannel_plugin(conf)
    ipam = plugin.get('ipam') if isinstance(plugin.get('ipam'), dict) else {}
    delegate = plugin.get('delegate') if isinstance(plugin.get('delegate'), dict) else {}
    return {
        'form': 'conflist' if 'plugins' in conf else 'plugin',
        'cniVersion': conf.get('cniVersion'),
        'hairpinMode': delegate.get('hairpinMode'),
        'dataDir': plugin.get('dataDir'),
        'ipam.type': ipam.get('type'),
        'ipam.dataDir': ipam.get('dataDir'),
    }


def plan(text, settings):
    """``(new_text, changes)`` for ``settings`` (see ``validate``); ``new_text is text`` when nothing changes."""
    wanted = validate(settings)
    conf = load(text)
    prefix, plugin = flannel_plugin(conf)
    changes = []

    def change(path, before, after):
        changes.append({'path': path, 'before': before, 'after': after})

    if 'cni_version' in wanted and conf.get('cniVersion') != wanted['cni_version']:
        change('cniVersion', conf.get('cniVersion'), wanted['cni_version'])
        if 'cniVersion' in conf:
            conf['cniVersion'] = wanted['cni_version']
        else:
            _insert_after(conf, 'name', 'cniVersion', wanted['cni_version'])
    if 'hairpin_mode' in wanted:
        delegate = plugin.get('delegate')
        if delegate is None:
            delegate = plugin['delegate'] = OrderedDict()
        if not isinstance(delegate, dict):
            raise FlannelError('%sdelegate must be an object' % prefix)
        if delegate.get('hairpinMode') is not wanted['hairpin_mode']:
            change(prefix + 'delegate.hairpinMode', delegate.get('hairpinMode'), wanted['hairpin_mode'])
            delegate['hairpinMode'] = wanted['hairpin_mode']
    if 'flannel_data_dir' in wanted and plugin.get('dataDir') != wanted['flannel_data_dir']:
        change(prefix + 'dataDir', plugin.get('dataDir'), wanted['flannel_data_dir'])
        plugin['dataDir'] = wanted['flannel_data_dir']
    if 'ipam_data_dir' in wanted:
        ipam = plugin.get('ipam')
        if ipam is None:
            change(prefix + 'ipam', None, {'type': 'host-local', 'dataDir': wanted['ipam_data_dir']})
            plugin['ipam'] = OrderedDict([('type', 'host-local'), ('dataDir', wanted['ipam_data_dir'])])
        elif not isinstance(ipam, dict) or ipam.get('type') != 'host-local':
            raise FlannelError('%sipam is %r, not host-local; refusing to change its dataDir'
                               % (prefix, ipam.get('type') if isinstance(ipam, dict) else ipam))
        elif ipam.get('dataDir') != wanted['ipam_data_dir']:
            change(prefix + 'ipam.dataDir', ipam.get('dataDir'), wanted['ipam_data_dir'])
            ipam['dataDir'] = wanted['ipam_data_dir']
    if not changes:
        return text, []
    return dump(conf, indent_of(text)), changes


# --- node side of N-7: one host-local store for both configurations -------------------------------
#
# Between the ConfigMap change (dataDir on tmpfs) and a node's reboot, host-local on that node may
# run with either configuration: the old one (a pod sandbox set up before Flannel rewrote
# /etc/cni/net.d, or DEL of a pod created before) or the new one.  Two stores for one address range
# would let the new, empty tmpfs store hand out an address a running pod holds (duplicate IPs).
# share_ipam_dir() makes them ONE store, under host-local's own locks:
#
#   1. for every network directory: flock <old>/<net>/lock (old-configuration allocators wait), then
#      <new>/<net>/lock (new ones wait);
#   2. copy every allocation and last_reserved_ip file into <new>/<net> (O_EXCL: an address already
#      taken there by another container is a conflict -> fail before step 3);
#   3. atomically exchange the dataDir <old> with a symbolic link to <new> (renameat2 RENAME_EXCHANGE:
#      there is no instant at which <old> is missing, so host-local's MkdirAll cannot create a second,
#      empty store there); the disk directory is kept as <old>.netmedic-disk-store, and a network
#      directory created there meanwhile is carried over under its lock;
#   4. unlock.
#
# host-local reserves an address by creating <dir>/<ip> with O_CREAT|O_EXCL, by path.  After step 3
# both configurations' paths resolve to the same directory, which holds every address in use, so
# no address can be reserved twice whichever configuration a CNI call reads - also by a process that
# was already waiting for the old lock (it writes by path, through the link).  Flannel's own dataDir
# (per-container delegate configs, read back on DEL) is shared the same way so a pod created before
# the switch is released properly after it.  The reboot of N-7 step 4 empties the tmpfs store and
# recreates every sandbox, and the playbook removes the disk paths (archived first) before it.

STORE_SUFFIX = '.netmedic-disk-store'
_LINK_SUFFIX = '.netmedic-link'
RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange_function():
    """glibc's renameat2 (2.28+); None when the C library lacks it."""
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn, ctypes


def exchange_paths(a, b):
    """Atomically swap two paths on one file system (renameat2 RENAME_EXCHANGE)."""
    found = _exchange_function()
    if found is None:
        raise FlannelError('renameat2 is not available in this C library (glibc 2.28 or later is needed); nothing was changed')
    fn, ctypes = found
    if fn(_AT_FDCWD, a.encode(), _AT_FDCWD, b.encode(), RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, 'renameat2(RENAME_EXCHANGE) %s <-> %s: %s' % (a, b, os.strerror(err)))


def _kept_name(old):
    kept = old + STORE_SUFFIX
    n = 1
    while os.path.lexists(kept):
        n += 1
        kept = '%s%s.%d' % (old, STORE_SUFFIX, n)
    return kept


def link_state(old, new):
    """``'absent'``, ``'shared'`` (a link to ``new``), ``'disk'`` (a real directory); anything else raises."""
    if os.path.islink(old):
        if os.path.realpath(old) == os.path.realpath(new) or os.readlink(old) == new:
            return 'shared'
        raise FlannelError('%s is a symbolic link to %s, not to %s; refusing to touch it' % (old, os.readlink(old), new))
    if not os.path.lexists(old):
        return 'absent'
    if not os.path.isdir(old):
        raise FlannelError('%s is not a directory; refusing to touch it' % old)
    return 'disk'


def _read(path):
    with open(path, 'rb') as f:
        return f.read()


def _copy_exclusive(src, dst):
    """Create ``dst`` with ``src``'s bytes and times; False when ``dst`` already exists."""
    try:
        ipam.copy_exclusive(src, dst, 0o644)
    except OSError as e:
        if e.errno == errno.EEXIST:
            return False
        raise
    return True


def _ipam_entries(old):
    """Names to carry over: allocation files and last_reserved_ip.* (regular files only)."""
    names = []
    for entry in os.scandir(old):
        if not entry.is_file(follow_symlinks=False):
            continue
        if entry.name.startswith(ipam.LAST_RESERVED_PREFIX) or ipam.is_allocation_name(entry.name):
            names.append(entry.name)
    return sorted(names)


def _swap_in_link(old, new):
    """Exchange ``old`` (a directory) with a link to ``new``; returns where the directory is kept."""
    parent, base = os.path.split(old.rstrip('/'))
    tmp = os.path.join(parent, '.%s%s' % (base, _LINK_SUFFIX))
    if os.path.islink(tmp):
        os.unlink(tmp)
    os.symlink(new, tmp)
    try:
        exchange_paths(tmp, old)
    except Exception:
        os.unlink(tmp)
        raise
    kept = _kept_name(old)
    os.rename(tmp, kept)
    ipam.fsync_dir(parent)
    return kept


def _copy_network(old_net, new_net, report):
    """Carry one network's allocation files into ``new_net`` (both locks held by the caller); conflicts returned."""
    conflicts = []
    name = os.path.basename(old_net)
    for entry in _ipam_entries(old_net):
        src, dst = os.path.join(old_net, entry), os.path.join(new_net, entry)
        key = '%s/%s' % (name, entry)
        if _copy_exclusive(src, dst):
            report['copied'].append(key)
        elif _read(src) == _read(dst) or entry.startswith(ipam.LAST_RESERVED_PREFIX):
            report['identical'].append(key)
        else:
            conflicts.append({'network': name, 'ip': entry, 'disk': ipam.parse_allocation(_read(src)),
                              'tmpfs': ipam.parse_allocation(_read(dst))})
    return conflicts


def _network_names(data_dir):
    return sorted(e.name for e in os.scandir(data_dir)
                  if e.is_dir(follow_symlinks=False) and ipam.looks_like_network(e.path))


def share_ipam_dir(old, new, lock_timeout, check_mode=False, link_absent=True):
    """host-local's disk dataDir ``old`` made one with the tmpfs dataDir ``new`` (see above).  Returns a report.

    The dataDir itself becomes the link (not each network directory): host-local finds a container's
    addresses (GetByID, ReleaseByID on DEL) with ``filepath.Walk(<dataDir>/<network>)``, which does not
    descend into a root that is itself a symbolic link, while a link further up the path is resolved.
    ``link_absent``: without a disk store, create the link alone (a first allocation with the old configuration
    then cannot start a second store); false leaves an absent path absent (a node already migrated).
    """
    report = {'path': old, 'shared_with': new, 'state_before': link_state(old, new), 'networks': [], 'copied': [],
              'identical': [], 'conflicts': [], 'kept': None}
    if report['state_before'] == 'shared':
        report['state_after'] = 'shared'
        return report
    if _exchange_function() is None:
        raise FlannelError('renameat2 is not available in this C library (glibc 2.28 or later is needed); nothing was changed')
    if report['state_before'] == 'absent' and not link_absent:
        report['state_after'] = 'absent'
        return report
    if report['state_before'] == 'absent':
        # No disk store yet: the link alone keeps a first allocation with the old configuration from starting one.
        if not check_mode:
            if not os.path.isdir(new):
                os.makedirs(new, 0o755)
            try:
                os.symlink(new, old)
            except OSError as e:
                if e.errno != errno.EEXIST:
                    raise
                return share_ipam_dir(old, new, lock_timeout, check_mode, link_absent)   # created meanwhile: share it
        report['state_after'] = 'shared'
        return report
    report['networks'] = _network_names(old)
    if check_mode:
        for name in report['networks']:
            new_net = os.path.join(new, name)
            present = set(os.listdir(new_net)) if os.path.isdir(new_net) else set()
            for entry in _ipam_entries(os.path.join(old, name)):
                key = '%s/%s' % (name, entry)
                if entry not in present:
                    report['copied'].append(key)
                elif _read(os.path.join(old, name, entry)) == _read(os.path.join(new_net, entry)):
                    report['identical'].append(key)
                elif ipam.is_allocation_name(entry):
                    report['conflicts'].append({'network': name, 'ip': entry})
        report['state_after'] = 'shared'
        return report
    held = []
    waited = 0.0

    def _lock_pair(old_net, new_net):
        fd, w = ipam.lock_network(old_net, lock_timeout, create=True)
        held.append(fd)
        if not os.path.isdir(new_net):
            os.makedirs(new_net, 0o755)
        fd2, w2 = ipam.lock_network(new_net, lock_timeout, create=True)
        held.append(fd2)
        return w + w2

    try:
        if not os.path.isdir(new):
            os.makedirs(new, 0o755)
        for name in report['networks']:
            waited += _lock_pair(os.path.join(old, name), os.path.join(new, name))
            report['conflicts'] += _copy_network(os.path.join(old, name), os.path.join(new, name), report)
        if report['conflicts']:
            raise FlannelError('%s: address(es) %s are held by one container on disk and another on tmpfs: the '
                               'duplicate already exists; the disk store was left as it is (resolve by hand)'
                               % (new, ', '.join('%s/%s' % (c['network'], c['ip']) for c in report['conflicts'])), report)
        for name in report['networks']:
            ipam.fsync_dir(os.path.join(new, name))
        report['kept'] = _swap_in_link(old, new)
        # A network directory host-local created in the disk store while we worked (a first allocation) is in the
        # kept directory now: carry it over too, under its lock (waits for an allocation still in progress).
        for name in _network_names(report['kept']):
            if name in report['networks']:
                continue
            report['networks'].append(name)
            waited += _lock_pair(os.path.join(report['kept'], name), os.path.join(new, name))
            conflicts = _copy_network(os.path.join(report['kept'], name), os.path.join(new, name), report)
            if conflicts:
                report['conflicts'] += conflicts
                raise FlannelError('%s: address(es) %s were given twice while the stores were being joined; the '
                                   'node needs attention (drain it)' % (new, ', '.join(c['ip'] for c in conflicts)), report)
        report['lock_waited'] = round(waited, 3)
    finally:
        for fd in reversed(held):
            ipam.unlock_network(fd)
    report['state_after'] = link_state(old, new)
    return report


def share_dir(old, new, check_mode=False):
    """Flannel's own dataDir (one file per container, no lock): copy, swap in a link, copy what came in between."""
    report = {'path': old, 'shared_with': new, 'state_before': link_state(old, new), 'copied': [], 'identical': [],
              'kept': None}
    if report['state_before'] != 'disk':
        report['state_after'] = report['state_before']
        return report
    names = sorted(e.name for e in os.scandir(old) if e.is_file(follow_symlinks=False))
    if check_mode:
        present = set(os.listdir(new)) if os.path.isdir(new) else set()
        report['copied'] = [n for n in names if n not in present]
        report['identical'] = [n for n in names if n in present]
        report['state_after'] = 'shared'
        return report
    if not os.path.isdir(new):
        os.makedirs(new, 0o755)

    def _carry(src_dir):
        for entry in sorted(os.scandir(src_dir), key=lambda e: e.name):
            if entry.is_file(follow_symlinks=False):
                if _copy_exclusive(entry.path, os.path.join(new, entry.name)):
                    report['copied'].append(entry.name)
                elif entry.name not in report['copied'] and entry.name not in report['identical']:
                    report['identical'].append(entry.name)

    _carry(old)
    report['kept'] = _swap_in_link(old, new)
    _carry(report['kept'])                              # written between the copy and the swap
    report['state_after'] = link_state(old, new)
    return report


def verify_tmpfs(fs, ipam_dir, old_paths, expect_ips):
    """Catalog N-7 step 5, after a real allocation: ``(ok, evidence)``.

    Every address in ``expect_ips`` must be allocated (a regular file) in a network directory under
    ``ipam_dir`` that is on tmpfs, and none of ``old_paths`` may exist any more (not even as a link).
    ``fs``: a HostFS (mount table).
    """
    mounts = fs.mounts()
    networks = []
    if os.path.isdir(ipam_dir):
        for name in sorted(os.listdir(ipam_dir)):
            path = os.path.join(ipam_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                info = fs.filesystem_of(path, mounts)
                networks.append({'name': name, 'path': path, 'fstype': info['fstype'], 'tmpfs': bool(info['tmpfs'])})
    found = {}
    for ip in expect_ips:
        for net in networks:
            candidate = os.path.join(net['path'], ip)
            if os.path.isfile(candidate) and not os.path.islink(candidate):
                found[ip] = {'network': net['name'], 'path': candidate, 'tmpfs': net['tmpfs'],
                             'allocation': ipam.parse_allocation(_read(candidate))}
                break
    left = [p for p in old_paths if os.path.lexists(p)]
    problems = []
    if not networks:
        problems.append('no host-local network directory under %s (nothing allocated there yet)' % ipam_dir)
    for ip in expect_ips:
        if ip not in found:
            problems.append('address %s is not allocated under %s' % (ip, ipam_dir))
        elif not found[ip]['tmpfs']:
            problems.append('%s is not on tmpfs' % found[ip]['path'])
    for p in left:
        problems.append('%s still exists' % p)
    return not problems, {'networks': networks, 'allocations': found, 'old_paths_left': left, 'problems': problems}
