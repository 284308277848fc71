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

import contextlib
import errno
import json
import posixpath
import re
from collections import OrderedDict

from ansible_collections.netmedic.k8s.plugins.module_utils import ipam
from ansible_collections.netmedic.k8s.plugins.module_utils.node import hostfs
from ansible_collections.netmedic.k8s.plugins.module_utils.node.hostfs import HostFS

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
# Sharing makes them ONE store, under host-local's own locks:
#
#   1. for every network directory: flock <old>/<net>/lock (old-configuration allocators wait), then
#      <new>/<net>/lock (new ones wait);
#   2. copy every allocation and last_reserved_ip file into <new>/<net> (O_EXCL: an address already
#      taken there by another container is a conflict -> fail before anything is copied or linked);
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
#
# The steps, as the module lifecycle drives them (flannel_ipam_store; share_ipam_dir/share_dir run
# them in one call):
#
#   read      read_ipam_dir / read_flannel_dir: what the old path is (link_state) and what it holds
#   held      lock_ipam_networks: step 1, from before the plan until after the read-back
#   plan      read_ipam_networks (the files, under the locks) -> plan_ipam_share (pure);
#             plan_flannel_share (pure); conflict_error: a conflict refuses before any change
#   apply     apply_ipam_share (steps 2-3), apply_flannel_share
#   verify    verify_share: the link read back, every copied file in the tmpfs directory
#
# Every file operation goes through a HostFS (``fs``; default the machine's root ``/``), so a test
# runs them on a tree under a temporary root or hands in a recording one.

STORE_SUFFIX = '.netmedic-disk-store'
_LINK_SUFFIX = '.netmedic-link'
RENAME_EXCHANGE = hostfs.RENAME_EXCHANGE
NO_EXCHANGE = 'renameat2 is not available in this C library (glibc 2.28 or later is needed); nothing was changed'

_LOCAL = HostFS('/')


def _fs(fs):
    return _LOCAL if fs is None else fs


def exchange_paths(a, b, fs=None):
    """Atomically swap two paths on one file system (renameat2 RENAME_EXCHANGE)."""
    fs = _fs(fs)
    if not fs.can_exchange():
        raise FlannelError(NO_EXCHANGE)
    fs.exchange(a, b)


def _kept_name(fs, old):
    kept = old + STORE_SUFFIX
    n = 1
    while fs.lexists(kept):
        n += 1
        kept = '%s%s.%d' % (old, STORE_SUFFIX, n)
    return kept


def link_state(old, new, fs=None):
    """``'absent'``, ``'shared'`` (a link to ``new``), ``'disk'`` (a real directory); anything else raises."""
    fs = _fs(fs)
    if fs.islink(old):
        target = fs.readlink(old)
        if fs.realpath(old) == fs.realpath(new) or target == new:
            return 'shared'
        raise FlannelError('%s is a symbolic link to %s, not to %s; refusing to touch it' % (old, target, new))
    if not fs.lexists(old):
        return 'absent'
    if not fs.isdir(old):
        raise FlannelError('%s is not a directory; refusing to touch it' % old)
    return 'disk'


def _read(fs, path):
    return fs.read_head(path, -1)


def _copy_exclusive(fs, src, dst):
    """Create ``dst`` with ``src``'s bytes and times; False when ``dst`` already exists."""
    try:
        ipam.copy_exclusive(src, dst, 0o644, fs=fs)
    except OSError as e:
        if e.errno == errno.EEXIST:
            return False
        raise
    return True


def _files(fs, directory):
    """Names of the regular files in ``directory`` (links and directories left out), sorted."""
    return sorted(e.name for e in fs.scandir(directory) if e.is_file(follow_symlinks=False))


def _ipam_entries(fs, net_dir):
    """Names to carry over: allocation files and last_reserved_ip.* (regular files only)."""
    return [name for name in _files(fs, net_dir)
            if name.startswith(ipam.LAST_RESERVED_PREFIX) or ipam.is_allocation_name(name)]


def _network_names(fs, data_dir):
    return sorted(e.name for e in fs.scandir(data_dir)
                  if e.is_dir(follow_symlinks=False) and ipam.looks_like_network(posixpath.join(data_dir, e.name), fs=fs))


def _swap_in_link(fs, old, new):
    """Exchange ``old`` (a directory) with a link to ``new``; returns where the directory is kept."""
    parent, base = posixpath.split(old.rstrip('/'))
    tmp = posixpath.join(parent, '.%s%s' % (base, _LINK_SUFFIX))
    if fs.islink(tmp):
        fs.unlink(tmp)
    fs.symlink(new, tmp)
    try:
        exchange_paths(tmp, old, fs)
    except Exception:
        fs.unlink(tmp)
        raise
    kept = _kept_name(fs, old)
    fs.rename(tmp, kept)
    fs.fsync_dir(parent)
    return kept


# --- host-local's dataDir ------------------------------------------------------------------------

def read_ipam_dir(old, new, fs=None):
    """read: ``{'path', 'shared_with', 'state' (link_state), 'networks'}``; ``networks``: the host-local network
    directories of a disk store (listed without the locks; one created later is carried over after the swap).
    Raises FlannelError for an old path that is neither, or (before any change is planned) without renameat2."""
    fs = _fs(fs)
    state = link_state(old, new, fs)
    if state != 'shared' and not fs.can_exchange():
        raise FlannelError(NO_EXCHANGE)
    return {'path': old, 'shared_with': new, 'state': state, 'networks': _network_names(fs, old) if state == 'disk' else []}


class NetworkLocks(object):
    """host-local's locks held for a share: each network's disk lock, then its tmpfs lock (see step 1)."""

    def __init__(self, lock_timeout, fs=None):
        self.fs = _fs(fs)
        self.lock_timeout = lock_timeout
        self.fds = []
        self.waited = 0.0

    def pair(self, old_net, new_net):
        """Lock ``old_net`` (creating its lock file, as host-local does), create ``new_net`` and lock it too."""
        fd, waited = ipam.lock_network(old_net, self.lock_timeout, create=True, fs=self.fs)
        self.fds.append(fd)
        self.waited += waited
        if not self.fs.isdir(new_net):
            self.fs.makedirs(new_net, 0o755, exist_ok=True)
        fd, waited = ipam.lock_network(new_net, self.lock_timeout, create=True, fs=self.fs)
        self.fds.append(fd)
        self.waited += waited

    def release(self):
        while self.fds:
            ipam.unlock_network(self.fds.pop(), fs=self.fs)


@contextlib.contextmanager
def lock_ipam_networks(store, lock_timeout, check_mode=False, fs=None):
    """held: the locks of every network of a disk store (``store`` from read_ipam_dir), released on leaving
    whatever the exit; yields the NetworkLocks (apply locks a network created meanwhile with it). Check mode
    and a store that is not on disk take no lock and create nothing. LockTimeout after ``lock_timeout``
    seconds for one lock (those taken are released)."""
    locks = NetworkLocks(lock_timeout, fs)
    try:
        if store['state'] == 'disk' and not check_mode:
            if not locks.fs.isdir(store['shared_with']):
                locks.fs.makedirs(store['shared_with'], 0o755, exist_ok=True)
            for name in store['networks']:
                locks.pair(posixpath.join(store['path'], name), posixpath.join(store['shared_with'], name))
        yield locks
    finally:
        locks.release()


def read_ipam_networks(store, fs=None):
    """plan's read, under the locks: ``{network: {'disk': {name: bytes}, 'tmpfs': {name: bytes or None}}}`` -
    the files to carry over and, for those names, what the tmpfs directory holds (None: not a regular file)."""
    fs = _fs(fs)
    out = {}
    for name in store['networks']:
        old_net, new_net = posixpath.join(store['path'], name), posixpath.join(store['shared_with'], name)
        disk = {entry: _read(fs, posixpath.join(old_net, entry)) for entry in _ipam_entries(fs, old_net)}
        tmpfs = {}
        if fs.isdir(new_net):
            for entry in fs.scandir(new_net):
                if entry.name in disk:
                    tmpfs[entry.name] = _read(fs, posixpath.join(new_net, entry.name)) if entry.is_file(follow_symlinks=False) else None
        out[name] = {'disk': disk, 'tmpfs': tmpfs}
    return out


def plan_ipam_share(store, contents, link_absent=True):
    """plan (pure): the report of the share - ``path``, ``shared_with``, ``state_before``, ``state_after``,
    ``networks``, ``copied`` (to copy), ``identical``, ``conflicts`` (an address held by one container on disk
    and another on tmpfs), ``kept`` (None until applied).

    ``link_absent``: without a disk store, create the link alone (a first allocation with the old configuration
    then cannot start a second store); false leaves an absent path absent (a node already migrated).
    """
    state = store['state']
    report = {'path': store['path'], 'shared_with': store['shared_with'], 'state_before': state,
              'state_after': state if state == 'shared' or (state == 'absent' and not link_absent) else 'shared',
              'networks': list(store['networks']), 'copied': [], 'identical': [], 'conflicts': [], 'kept': None}
    for name in report['networks']:
        disk, tmpfs = contents[name]['disk'], contents[name]['tmpfs']
        for entry in sorted(disk):
            key = '%s/%s' % (name, entry)
            if entry not in tmpfs:
                report['copied'].append(key)
            elif tmpfs[entry] == disk[entry] or entry.startswith(ipam.LAST_RESERVED_PREFIX):
                report['identical'].append(key)
            else:
                report['conflicts'].append(_conflict(name, entry, disk[entry], tmpfs[entry]))
    return report


def _conflict(network, ip, disk, tmpfs):
    return {'network': network, 'ip': ip, 'disk': ipam.parse_allocation(disk),
            'tmpfs': ipam.parse_allocation(tmpfs) if tmpfs is not None else None}


def conflict_error(report):
    """The refusal for a plan with conflicts (None without): the duplicate exists already, nothing may be linked.
    Its report says what is (nothing copied, nothing linked)."""
    if not report['conflicts']:
        return None
    return FlannelError(_duplicate(report['shared_with'], report['conflicts']),
                        dict(report, copied=[], state_after=report['state_before']))


def _duplicate(new, conflicts):
    return ('%s: address(es) %s are held by one container on disk and another on tmpfs: the duplicate already exists; '
            'the disk store was left as it is (resolve by hand)' % (new, ', '.join('%s/%s' % (c['network'], c['ip']) for c in conflicts)))


def apply_ipam_share(report, locks, fs=None):
    """apply (the locks of the plan held in ``locks``): copy, swap in the link, carry over what came meanwhile.
    Updates ``report`` (``copied``, ``identical``, ``kept``, ``networks``, ``lock_waited``) and returns it; returns
    None when an absent store was created meanwhile (then share it from the start: share_ipam_dir)."""
    fs = _fs(fs)
    old, new = report['path'], report['shared_with']
    if not fs.isdir(new):
        fs.makedirs(new, 0o755, exist_ok=True)
    if report['state_before'] == 'absent':
        # No disk store yet: the link alone keeps a first allocation with the old configuration from starting one.
        try:
            fs.symlink(new, old)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise
            return None
        return report
    planned, report['copied'] = report['copied'], []
    conflicts = []
    for key in planned:
        name, entry = key.split('/', 1)
        conflicts += _carry(fs, posixpath.join(old, name), posixpath.join(new, name), [entry], report)
    if conflicts:       # not while the locks are held since the plan; never linked
        report['conflicts'] += conflicts
        report['state_after'] = report['state_before']
        raise FlannelError(_duplicate(new, conflicts), report)
    for name in report['networks']:
        fs.fsync_dir(posixpath.join(new, name))
    report['kept'] = _swap_in_link(fs, old, new)
    # A network directory host-local created in the disk store while we worked (a first allocation) is in the
    # kept directory now: carry it over too, under its lock (waits for an allocation still in progress).
    for name in _network_names(fs, report['kept']):
        if name in report['networks']:
            continue
        report['networks'].append(name)
        old_net, new_net = posixpath.join(report['kept'], name), posixpath.join(new, name)
        locks.pair(old_net, new_net)
        conflicts = _carry(fs, old_net, new_net, _ipam_entries(fs, old_net), report)
        if conflicts:
            report['conflicts'] += conflicts
            raise FlannelError('%s: address(es) %s were given twice while the stores were being joined; the '
                               'node needs attention (drain it)' % (new, ', '.join(c['ip'] for c in conflicts)), report)
    report['lock_waited'] = round(locks.waited, 3)
    return report


def _carry(fs, old_net, new_net, entries, report):
    """Copy ``entries`` of one network into ``new_net`` (both locks held); the conflicts found."""
    conflicts = []
    name = posixpath.basename(old_net)
    for entry in entries:
        src, dst = posixpath.join(old_net, entry), posixpath.join(new_net, entry)
        key = '%s/%s' % (name, entry)
        if _copy_exclusive(fs, src, dst):
            report['copied'].append(key)
            continue
        disk, tmpfs = _read(fs, src), _read(fs, dst)
        if disk == tmpfs or entry.startswith(ipam.LAST_RESERVED_PREFIX):
            report['identical'].append(key)
        else:
            conflicts.append(_conflict(name, entry, disk, tmpfs))
    return conflicts


def verify_share(report, fs=None):
    """verify: read the old path back (``state_after``) and every copied file in the tmpfs directory; the problems."""
    fs = _fs(fs)
    report['state_after'] = link_state(report['path'], report['shared_with'], fs)
    problems = []
    if report['state_after'] != 'shared':
        problems.append('%s is %s, not a link to %s' % (report['path'], report['state_after'], report['shared_with']))
    missing = [key for key in report['copied'] if not fs.isfile(posixpath.join(report['shared_with'], key))]
    if missing:
        problems.append('not in %s: %s' % (report['shared_with'], ', '.join(missing)))
    return problems


def share_ipam_dir(old, new, lock_timeout, check_mode=False, link_absent=True, fs=None):
    """host-local's disk dataDir ``old`` made one with the tmpfs dataDir ``new`` (see above), every step in one
    call.  Returns the report; raises FlannelError (with the report) for a conflict, LockTimeout for a lock.

    The dataDir itself becomes the link (not each network directory): host-local finds a container's
    addresses (GetByID, ReleaseByID on DEL) with ``filepath.Walk(<dataDir>/<network>)``, which does not
    descend into a root that is itself a symbolic link, while a link further up the path is resolved.
    ``link_absent``: see plan_ipam_share.
    """
    fs = _fs(fs)
    store = read_ipam_dir(old, new, fs)
    with lock_ipam_networks(store, lock_timeout, check_mode, fs) as locks:
        report = plan_ipam_share(store, read_ipam_networks(store, fs), link_absent)
        if check_mode or report['state_after'] == report['state_before']:
            return report
        error = conflict_error(report)
        if error is not None:
            raise error
        applied = apply_ipam_share(report, locks, fs)
        if applied is not None:
            problems = verify_share(report, fs)
            if problems:
                raise FlannelError('%s was shared but reads back wrong: %s' % (old, '; '.join(problems)), report)
            return report
    return share_ipam_dir(old, new, lock_timeout, check_mode, link_absent, fs)    # created meanwhile: share it


# --- Flannel's own dataDir (one file per container, no lock) ---------------------------------------

def read_flannel_dir(old, new, fs=None):
    """read: ``{'path', 'shared_with', 'state', 'files' (regular files of a disk store), 'present' (names in new)}``."""
    fs = _fs(fs)
    state = link_state(old, new, fs)
    if state == 'disk' and not fs.can_exchange():
        raise FlannelError(NO_EXCHANGE)
    files = _files(fs, old) if state == 'disk' else []
    present = [e.name for e in fs.scandir(new)] if files and fs.isdir(new) else []
    return {'path': old, 'shared_with': new, 'state': state, 'files': files, 'present': sorted(present)}


def plan_flannel_share(store):
    """plan (pure): ``path``, ``shared_with``, ``state_before``/``state_after``, ``copied``, ``identical`` (the name is
    there already), ``kept``. Only a disk store changes."""
    report = {'path': store['path'], 'shared_with': store['shared_with'], 'state_before': store['state'],
              'state_after': 'shared' if store['state'] == 'disk' else store['state'], 'copied': [], 'identical': [],
              'kept': None}
    if store['state'] == 'disk':
        present = set(store['present'])
        report['copied'] = [n for n in store['files'] if n not in present]
        report['identical'] = [n for n in store['files'] if n in present]
    return report


def apply_flannel_share(report, fs=None):
    """apply: copy, swap in the link, copy what was written in between; ``copied``/``identical`` as done."""
    fs = _fs(fs)
    old, new = report['path'], report['shared_with']
    report['copied'], report['identical'] = [], []
    if not fs.isdir(new):
        fs.makedirs(new, 0o755, exist_ok=True)

    def carry(src_dir):
        for name in _files(fs, src_dir):
            if _copy_exclusive(fs, posixpath.join(src_dir, name), posixpath.join(new, name)):
                report['copied'].append(name)
            elif name not in report['copied'] and name not in report['identical']:
                report['identical'].append(name)

    carry(old)
    report['kept'] = _swap_in_link(fs, old, new)
    carry(report['kept'])                              # written between the copy and the swap
    return report


def share_dir(old, new, check_mode=False, fs=None):
    """Flannel's own dataDir (one file per container, no lock): copy, swap in a link, copy what came in between."""
    fs = _fs(fs)
    report = plan_flannel_share(read_flannel_dir(old, new, fs))
    if check_mode or report['state_before'] != 'disk':
        return report
    apply_flannel_share(report, fs)
    problems = verify_share(report, fs)
    if problems:
        raise FlannelError('%s was shared but reads back wrong: %s' % (old, '; '.join(problems)))
    return report


# --- state=verified (read-only) ---------------------------------------------------------------------

def verify_tmpfs(fs, ipam_dir, old_paths, expect_ips):
    """Catalog N-7 step 5, after a real allocation: ``(ok, evidence)``.

    Every address in ``expect_ips`` must be allocated (a regular file) in a network directory under
    ``ipam_dir`` that is on tmpfs, and none of ``old_paths`` may exist any more (not even as a link).
    ``fs``: a HostFS (every read and the mount table).
    """
    mounts = fs.mounts()
    networks = []
    if fs.isdir(ipam_dir):
        for name in fs.listdir(ipam_dir):
            path = posixpath.join(ipam_dir, name)
            if fs.isdir(path) and not fs.islink(path):
                info = fs.filesystem_of(path, mounts)
                networks.append({'name': name, 'path': path, 'fstype': info['fstype'], 'tmpfs': bool(info['tmpfs'])})
    found = {}
    for ip in expect_ips:
        for net in networks:
            candidate = posixpath.join(net['path'], ip)
            if fs.isfile(candidate) and not fs.islink(candidate):
                found[ip] = {'network': net['name'], 'path': candidate, 'tmpfs': net['tmpfs'],
                             'allocation': ipam.parse_allocation(_read(fs, candidate))}
                break
    left = [p for p in old_paths if fs.lexists(p)]
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
