# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Processes of a pod that the container runtime no longer knows (catalog N-9).

- ``/proc/<pid>/cgroup``: ``0::/kubepods/besteffort/pod<uid>/<container id>`` (cgroup v2,
  cgroupfs driver), ``0::/kubepods.slice/.../kubepods-besteffort-pod<uid_with_underscores>.slice/
  cri-containerd-<id>.scope`` (systemd driver), or ``<n>:<controllers>:<path>`` lines (v1);
- ``/proc/<pid>/net/{tcp,tcp6,udp,udp6}``: the sockets of the process's network namespace,
  ``sl local_address rem_address st ... inode`` with hex ``addr:port``; ``st`` ``0A`` = LISTEN;
- ``/proc/<pid>/fd/*`` -> ``socket:[<inode>]`` ties a socket to the process.

Pure functions take text; :func:`scan` reads a ``/proc`` tree (``root`` for tests).
:func:`plan` decides (pure); :func:`signal_planned` is the only function that acts.

Issue #10 hole 2: CRI-O's ``conmon`` runs in ``crio-conmon-<id>.scope`` next to the
container's ``crio-<id>.scope``; it is the runtime's own monitor, never a container, so it
is never stale.  A listing with no container at all, or a pod none of whose processes the
runtime lists, is what a wrong runtime or namespace looks like: :func:`plan` refuses.
A process is signalled through a pidfd opened first and checked second (start time and
cgroup), so a PID reused after the plan can never receive the signal.
"""

import errno
import os
import re
import signal
import uuid

_ID_RE = re.compile(r'^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$')
_PREFIXES = ('cri-containerd-', 'docker-', 'crio-', 'libpod-')
# Runtime monitors that live in the pod's cgroup (CRI-O's conmon_cgroup "pod"): never a container.
_MONITOR_PREFIXES = ('crio-conmon-', 'conmon-', 'libpod-conmon-')
_TCP_STATES = {'01': 'ESTABLISHED', '0A': 'LISTEN', '06': 'TIME_WAIT', '08': 'CLOSE_WAIT'}


class PodProcError(ValueError):
    pass


def validate_uid(uid):
    """A pod UID (``metadata.uid``): a UUID in its canonical lower-case form."""
    text = str(uid or '').strip()
    try:
        canonical = str(uuid.UUID(text))
    except ValueError:
        canonical = None
    if canonical != text:
        raise PodProcError('pod_uid must be a pod UID like 3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8, got %r' % (uid,))
    return text


def parse_cgroup(text):
    """``/proc/<pid>/cgroup`` -> cgroup paths (one per hierarchy line)."""
    paths = []
    for line in (text or '').splitlines():
        parts = line.split(':', 2)
        if len(parts) == 3 and parts[2]:
            paths.append(parts[2])
    return paths


def pod_cgroup(paths, uid):
    """The first path that belongs to pod ``uid`` (either driver's spelling), or None."""
    needles = ('pod' + uid, 'pod' + uid.replace('-', '_'))
    for path in paths:
        for part in path.split('/'):
            if any(part == n or part.endswith('-' + n + '.slice') or part == n + '.slice' for n in needles):
                return path
    return None


def _leaf(path, uid):
    """The cgroup component right below the pod's own cgroup, without ``.scope``; None if none."""
    parts = [p for p in path.split('/') if p]
    needles = ('pod' + uid, 'pod' + uid.replace('-', '_'))
    for i, part in enumerate(parts):
        if any(part == n or part.endswith('-' + n + '.slice') or part == n + '.slice' for n in needles):
            if i + 1 >= len(parts):
                return None
            leaf = parts[i + 1]
            return leaf[:-len('.scope')] if leaf.endswith('.scope') else leaf
    return None


def is_runtime_monitor(path, uid):
    """True for a runtime's monitor process cgroup in the pod (CRI-O ``crio-conmon-<id>.scope``)."""
    leaf = _leaf(path, uid)
    return bool(leaf) and leaf.startswith(_MONITOR_PREFIXES)


def container_id(path, uid):
    """Container ID from the pod's cgroup path: the component below the pod's own cgroup.

    None when the process sits in the pod cgroup itself (no container to compare), and
    for a runtime monitor's cgroup (:func:`is_runtime_monitor`: ``crio-conmon-<id>``
    names no container; stripping ``crio-`` would give ``conmon-<id>``, never listed).
    """
    leaf = _leaf(path, uid)
    if leaf is None or is_runtime_monitor(path, uid):
        return None
    for prefix in _PREFIXES:
        if leaf.startswith(prefix):
            leaf = leaf[len(prefix):]
            break
    return leaf if _ID_RE.match(leaf) else None


def _port(hexaddr):
    return int(hexaddr.rsplit(':', 1)[1], 16)


def parse_net(text, proto):
    """``/proc/<pid>/net/tcp`` (etc.) -> ``{inode: {'proto', 'port', 'state'}}``."""
    sockets = {}
    for line in (text or '').splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            port = _port(fields[1])
            inode = int(fields[9])
        except (ValueError, IndexError):
            continue
        state = _TCP_STATES.get(fields[3], fields[3]) if proto.startswith('tcp') else ('UNCONN' if fields[3] == '07' else fields[3])
        sockets[inode] = {'proto': proto, 'port': port, 'state': state}
    return sockets


def stat_starttime(text):
    """Field 22 of ``/proc/<pid>/stat`` (clock ticks after boot): with the PID it names one process."""
    tail = (text or '').rsplit(')', 1)[-1].split()
    # tail[0] is field 3 (state); starttime is field 22.
    return int(tail[19]) if len(tail) > 19 else None


def stat_state(text):
    tail = (text or '').rsplit(')', 1)[-1].split()
    return tail[0] if tail else None


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (IOError, OSError):
        return None


def process(pid, root='/proc'):
    """``{'pid', 'comm', 'cmdline', 'cgroups', 'starttime', 'state'}`` or None when it is gone."""
    base = os.path.join(root, str(pid))
    stat = _read(os.path.join(base, 'stat'))
    cgroup = _read(os.path.join(base, 'cgroup'))
    if stat is None or cgroup is None:
        return None
    cmdline = _read(os.path.join(base, 'cmdline')) or ''
    return {
        'pid': int(pid),
        'comm': (_read(os.path.join(base, 'comm')) or '').strip(),
        'cmdline': ' '.join(a for a in cmdline.split('\0') if a),
        'cgroups': parse_cgroup(cgroup),
        'starttime': stat_starttime(stat),
        'state': stat_state(stat),
    }


def sockets_of(pid, root='/proc'):
    """Sockets the process holds, with ports, from its own network namespace's tables."""
    base = os.path.join(root, str(pid))
    table = {}
    for proto in ('tcp', 'tcp6', 'udp', 'udp6'):
        table.update(parse_net(_read(os.path.join(base, 'net', proto)), proto))
    held = []
    try:
        fds = os.listdir(os.path.join(base, 'fd'))
    except OSError:
        return held
    for fd in fds:
        try:
            target = os.readlink(os.path.join(base, 'fd', fd))
        except OSError:
            continue
        if target.startswith('socket:[') and target.endswith(']'):
            inode = int(target[8:-1])
            if inode in table and table[inode] not in held:
                held.append(table[inode])
    return sorted(held, key=lambda s: (s['proto'], s['port']))


def scan(uid, root='/proc'):
    """Every process in pod ``uid``'s cgroups: process() plus ``cgroup`` and ``container_id``."""
    found = []
    for name in os.listdir(root):
        if not name.isdigit():
            continue
        info = process(name, root)
        if info is None or info['state'] == 'Z':
            continue
        path = pod_cgroup(info['cgroups'], uid)
        if path is None:
            continue
        info['cgroup'] = path
        info['container_id'] = container_id(path, uid)
        info['monitor'] = is_runtime_monitor(path, uid)
        found.append(info)
    return sorted(found, key=lambda p: p['pid'])


def classify(processes, live_ids):
    """Split into stale (container unknown to the runtime), owned, monitors (the runtime's own
    conmon) and uncertain (no container ID)."""
    live = set(live_ids)
    result = {'stale': [], 'owned': [], 'uncertain': [], 'monitors': []}
    for proc in processes:
        cid = proc['container_id']
        if proc.get('monitor'):
            result['monitors'].append(proc)
        elif cid is None:
            result['uncertain'].append(proc)
        elif cid in live:
            result['owned'].append(proc)
        else:
            result['stale'].append(proc)
    return result


def same_process(before, now):
    """PID reuse guard: same start time and same cgroup."""
    return now is not None and now['starttime'] == before['starttime'] and now['cgroups'] == before['cgroups'] and now['state'] != 'Z'


def holds_port(proc, port):
    return any(sock['port'] == port for sock in proc.get('sockets') or [])


def plan(processes, live_ids, port=None):
    """Decide (pure): which processes are stale, and whether acting on them must be refused.

    ``processes``: :func:`scan` entries (with ``sockets`` when ``port`` is given);
    ``live_ids``: every sandbox and container ID the runtime listed.  Returns the
    :func:`classify` groups, ``stale`` narrowed to holders of ``port``, and
    ``refused``: a reason (str) or None.  Refused when the runtime listed nothing, or
    when the pod has stale processes but not one the runtime owns (its sandbox's pause
    process is listed while the pod lives): a wrong runtime, endpoint or namespace
    makes every process look stale.
    """
    live_ids = set(live_ids)
    groups = classify(processes, live_ids)
    stale = groups['stale']
    if port is not None:
        stale = [p for p in stale if holds_port(p, port)]
    refused = None
    if not live_ids:
        refused = ('the runtime listed no container at all: every process would look stale (wrong runtime, '
                   'endpoint or namespace?)')
    elif groups['stale'] and not groups['owned']:
        refused = ('no process of the pod belongs to a container the runtime lists (%d listed), not even its sandbox: '
                   'a wrong runtime, endpoint or namespace looks the same' % len(live_ids))
    return dict(groups, stale=stale, refused=refused)


class SignalUnavailable(PodProcError):
    """pidfd_open/pidfd_send_signal are missing (Python < 3.9 or Linux < 5.3)."""


PIDFD_UNAVAILABLE = ('pidfd_open/pidfd_send_signal are not available (Python 3.9 and Linux 5.3 or later are needed): '
                     'without them a PID reused between the check and the signal could be hit, so nothing is signalled')


def pidfd_available():
    return hasattr(os, 'pidfd_open') and hasattr(signal, 'pidfd_send_signal')


def signal_planned(planned, sig, root='/proc', pidfd_open=None, send=None):
    """Send ``sig`` to the process ``planned`` (a :func:`process` entry) only if it is still that process.

    The pidfd is opened FIRST and the process re-read SECOND: if the start time and cgroup
    still match, the pidfd refers to the planned process and cannot be redirected to a
    reused PID (a pidfd follows one process, not a number).  Returns ``'sent'``,
    ``'gone'`` (it exited) or ``'changed'`` (another process has the PID now, or it is a
    zombie).  Raises SignalUnavailable when pidfds are not available.
    """
    pidfd_open = pidfd_open or getattr(os, 'pidfd_open', None)
    send = send or getattr(signal, 'pidfd_send_signal', None)
    if pidfd_open is None or send is None:
        raise SignalUnavailable(PIDFD_UNAVAILABLE)
    try:
        fd = pidfd_open(planned['pid'])
    except ProcessLookupError:
        return 'gone'
    except OSError as e:
        if e.errno == errno.ENOSYS:
            raise SignalUnavailable(PIDFD_UNAVAILABLE)
        raise
    try:
        if not same_process(planned, process(planned['pid'], root)):
            return 'changed'
        try:
            send(fd, sig)
        except ProcessLookupError:
            return 'gone'
        return 'sent'
    finally:
        os.close(fd)


# --- the whole N-9 run (stale_pod_process is a thin wrapper) ----------------------------

DEFAULT_RUNTIME_TIMEOUT = 30


class StaleError(PodProcError):
    """The run stops; ``data`` is the partial result, ``changed`` whether anything was signalled."""

    def __init__(self, msg, data=None, changed=False):
        super(StaleError, self).__init__(msg)
        self.msg = msg
        self.data = data or {}
        self.changed = changed


def view(proc):
    keys = ('pid', 'comm', 'cmdline', 'container_id', 'cgroup', 'sockets')
    return {k: proc.get(k) for k in keys}


def validate(params):
    """Bad input raises PodProcError before anything is read; returns the pod UID."""
    from ansible_collections.netmedic.k8s.plugins.module_utils import runtime

    uid = validate_uid(params['pod_uid'])
    if params.get('port') is not None and not 1 <= params['port'] <= 65535:
        raise PodProcError('port must be between 1 and 65535, got %d' % params['port'])
    if not 0 <= params['wait'] <= 300:
        raise PodProcError('wait must be between 0 and 300 seconds, got %d' % params['wait'])
    timeout = params.get('runtime_timeout', DEFAULT_RUNTIME_TIMEOUT)
    if not 1 <= timeout <= 600:
        raise PodProcError('runtime_timeout must be between 1 and 600 seconds, got %d' % timeout)
    if params.get('runtime_endpoint') and runtime.endpoint_path(params['runtime_endpoint']) is None:
        raise PodProcError('runtime_endpoint %r is not a unix socket path or unix:// URL' % params['runtime_endpoint'])
    if not params.get('namespace'):
        raise PodProcError('namespace must not be empty')
    return uid


def _list(runner, info, params):
    from ansible_collections.netmedic.k8s.plugins.module_utils import runtime

    return runtime.list_live_ids(runner, info['name'], info['cli'], info['endpoint'], params['namespace'],
                                 params.get('runtime_timeout', DEFAULT_RUNTIME_TIMEOUT))['ids']


class StaleRun(object):
    """The N-9 run as the module lifecycle's steps (stale_pod_process calls them one by one): :meth:`validate`,
    :meth:`read` (runtime, the pod's processes, the runtime's list),
    :meth:`plan` (the result data; a refusal raises StaleError), :meth:`apply` (signal ``targets``) and
    :meth:`verify` (wait, re-scan).  ``data`` is the result data so far.

    ``fs`` (a HostFS) is where the runtime is detected (runtime.resolve, the same
    detection as cni_ipam_gc); ``root`` the /proc tree; ``pidfd_open``/``send`` replace
    the pidfd calls in tests.  Every step raises StaleError.
    """

    def __init__(self, runner, params, check_mode, fs, root='/proc', pidfd_open=None, send=None,
                 sleep=None, clock=None):
        import time

        self.runner = runner
        self.params = params
        self.check_mode = check_mode
        self.fs = fs
        self.root = root
        self.pidfd_open = pidfd_open
        self.send = send
        self.sleep = sleep or time.sleep
        self.clock = clock or time.monotonic
        self.uid = None
        self.info = None
        self.processes = []
        self.live = []
        self.targets = []
        self.sent = []
        self.live_now = []
        self.data = {}

    def validate(self):
        """Bad input raises PodProcError (not StaleError) before anything is read."""
        self.uid = validate(self.params)

    def read(self):
        from ansible_collections.netmedic.k8s.plugins.module_utils import runtime

        params = self.params
        try:
            self.info = runtime.resolve(self.runner, self.fs, params['runtime'], params.get('runtime_endpoint'), 'auto',
                                        params['namespace'])
        except runtime.ResolveError as e:
            raise StaleError('%s; without the runtime\'s list no process can be called stale (nothing was changed)' % e.msg)
        # Read: the pod's processes first, then the runtime's list (a container created in between is listed).
        self.processes = scan(self.uid, self.root)
        try:
            self.live = _list(self.runner, self.info, params)
        except runtime.ListingError as e:
            raise StaleError('%s; without the runtime\'s list no process can be called stale (nothing was changed)' % e)
        for proc in self.processes:
            proc['sockets'] = sockets_of(proc['pid'], self.root) if proc['container_id'] or proc.get('monitor') else []

    def plan(self):
        params, uid, info, live = self.params, self.uid, self.info, self.live
        decided = plan(self.processes, live, params.get('port'))
        stale = decided['stale']
        targets = stale if params['state'] == 'killed' else []
        data = self.data = {
            'runtime': {k: info.get(k) for k in ('name', 'source', 'cli', 'endpoint', 'namespace')},
            'stale': [view(s) for s in stale],
            'owned': [view(s) for s in decided['owned']],
            'uncertain': [view(s) for s in decided['uncertain']],
            'monitors': [view(s) for s in decided['monitors']],
            'signalled': [s['pid'] for s in targets],
            'runtime_containers': len(live),
            'before': {'stale': [s['pid'] for s in stale]},
            'after': {'stale': [s['pid'] for s in stale if s not in targets]},
            'warnings': [],
        }
        if decided['refused']:
            data['signalled'] = []
            data['after'] = dict(data['before'])
            raise StaleError('refusing to call processes of pod %s stale: %s. Nothing was signalled (nothing was changed)'
                             % (uid, decided['refused']), data)
        if decided['uncertain']:
            data['warnings'].append('%d process(es) of the pod have no container ID in their cgroup path and are left alone: %s'
                                    % (len(decided['uncertain']), [s['pid'] for s in decided['uncertain']]))
        if stale and params['state'] == 'report':
            data['warnings'].append('%d process(es) of pod %s belong to containers the runtime does not know: %s '
                                    '(state=killed stops them)'
                                    % (len(stale), uid, ', '.join('%d %s' % (s['pid'], s['comm']) for s in stale)))
        data['changed'] = bool(targets)
        self.targets = targets

    def apply(self):
        from ansible_collections.netmedic.k8s.plugins.module_utils import runtime

        params, data = self.params, self.data
        # Without pidfds a reused PID could be hit: refuse before anything is sent.
        if (self.pidfd_open is None or self.send is None) and not pidfd_available():
            raise StaleError(PIDFD_UNAVAILABLE + ' (nothing was changed)', dict(data, signalled=[], after=data['before']))
        try:
            self.live_now = _list(self.runner, self.info, params)
        except runtime.ListingError as e:
            raise StaleError('%s; nothing was signalled (nothing was changed)' % e, dict(data, signalled=[], after=data['before']))
        sent = self.sent
        for proc in self.targets:
            if proc['container_id'] in self.live_now:
                data['warnings'].append('pid %d was not signalled: its container is listed now' % proc['pid'])
                continue
            try:
                outcome = signal_planned(proc, _SIGNALS[params['signal']], self.root, self.pidfd_open, self.send)
            except SignalUnavailable as e:
                data['signalled'] = [s['pid'] for s in sent]
                raise StaleError(str(e), data, changed=bool(sent))
            except OSError as e:
                data['warnings'].append('pid %d: %s' % (proc['pid'], e))
                continue
            if outcome == 'sent':
                sent.append(proc)
            else:
                data['warnings'].append('pid %d was not signalled: it %s' % (
                    proc['pid'], 'exited' if outcome == 'gone' else 'is another process now (PID reused) or a zombie'))
        data['signalled'] = [s['pid'] for s in sent]
        data['changed'] = bool(sent)

    def verify(self):
        """Wait for the signalled processes to exit, then re-scan."""
        params, data, sent, root = self.params, self.data, self.sent, self.root
        deadline = self.clock() + params['wait']
        while True:
            alive = [s for s in sent if same_process(s, process(s['pid'], root))]
            if not alive or self.clock() >= deadline:
                break
            self.sleep(0.2)
        remaining = classify(scan(self.uid, root), self.live_now)['stale']
        if params.get('port') is not None:
            for proc in remaining:
                proc['sockets'] = sockets_of(proc['pid'], root)
            remaining = [s for s in remaining if holds_port(s, params['port'])]
        data['after'] = {'stale': [s['pid'] for s in remaining]}
        if alive:
            raise StaleError('still running %d s after SIG%s: %s (signal=KILL forces them)'
                             % (params['wait'], params['signal'], ', '.join('%d %s' % (s['pid'], s['comm']) for s in alive)),
                             data, changed=bool(sent))


_SIGNALS = {'TERM': signal.SIGTERM, 'KILL': signal.SIGKILL}
