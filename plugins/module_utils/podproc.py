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
"""

import os
import re

_UID_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
_ID_RE = re.compile(r'^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$')
_PREFIXES = ('cri-containerd-', 'docker-', 'crio-', 'libpod-')
_TCP_STATES = {'01': 'ESTABLISHED', '0A': 'LISTEN', '06': 'TIME_WAIT', '08': 'CLOSE_WAIT'}


class PodProcError(ValueError):
    pass


def validate_uid(uid):
    """A pod UID (``metadata.uid``): lower-case UUID."""
    text = str(uid or '').strip()
    if not _UID_RE.match(text):
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


def container_id(path, uid):
    """Container ID from the pod's cgroup path: the component below the pod's own cgroup.

    None when the process sits in the pod cgroup itself (no container to compare).
    """
    parts = [p for p in path.split('/') if p]
    needles = ('pod' + uid, 'pod' + uid.replace('-', '_'))
    for i, part in enumerate(parts):
        if any(part == n or part.endswith('-' + n + '.slice') or part == n + '.slice' for n in needles):
            if i + 1 >= len(parts):
                return None
            leaf = parts[i + 1]
            if leaf.endswith('.scope'):
                leaf = leaf[:-len('.scope')]
            for prefix in _PREFIXES:
                if leaf.startswith(prefix):
                    leaf = leaf[len(prefix):]
                    break
            return leaf if _ID_RE.match(leaf) else None
    return None


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
        found.append(info)
    return sorted(found, key=lambda p: p['pid'])


def classify(processes, live_ids):
    """Split into stale (container unknown to the runtime), owned, and uncertain (no container ID)."""
    live = set(live_ids)
    result = {'stale': [], 'owned': [], 'uncertain': []}
    for proc in processes:
        cid = proc['container_id']
        if cid is None:
            result['uncertain'].append(proc)
        elif cid in live:
            result['owned'].append(proc)
        else:
            result['stale'].append(proc)
    return result


def same_process(before, now):
    """PID reuse guard: same start time and same cgroup."""
    return now is not None and now['starttime'] == before['starttime'] and now['cgroups'] == before['cgroups'] and now['state'] != 'Z'
