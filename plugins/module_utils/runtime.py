# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container runtime detection (containerd, CRI-O, Docker).

Catalog N-1 compares IPAM allocations with the runtime's containers (``ctr -n
k8s.io c ls`` for containerd, ``crictl`` for CRI-O/containerd, ``docker ps`` for
Docker), so the fix modules must know which runtime the kubelet talks to.  The
kubelet's ``--container-runtime-endpoint`` (flag or ``containerRuntimeEndpoint`` in
its config file) decides; without it the runtime sockets present on the node
do, and a node with several sockets (Docker ships its own containerd) is flagged
``ambiguous``.
"""

from __future__ import annotations

import re

# name, sockets (first existing wins), CLIs that can list its containers
RUNTIMES = (
    ('containerd', ('/run/containerd/containerd.sock', '/var/run/containerd/containerd.sock'), ('ctr', 'crictl')),
    ('crio', ('/var/run/crio/crio.sock', '/run/crio/crio.sock'), ('crictl',)),
    ('docker', ('/var/run/docker.sock', '/run/docker.sock', '/var/run/cri-dockerd.sock', '/run/cri-dockerd.sock'), ('docker',)),
)
# When sockets alone decide: the CRI runtimes before Docker (whose engine runs its
# own containerd, so the containerd socket exists there too).
SOCKET_PRECEDENCE = ('crio', 'containerd', 'docker')
KUBELET_CONFIG = '/var/lib/kubelet/config.yaml'

_CONFIG_RE = re.compile(r'^\s*containerRuntimeEndpoint\s*:\s*["\']?(?P<ep>[^"\'\s#]+)', re.M)


def endpoint_path(endpoint):
    """``unix:///run/containerd/containerd.sock`` -> ``/run/containerd/containerd.sock``."""
    if not endpoint:
        return None
    endpoint = endpoint.strip()
    if endpoint.startswith('unix://'):
        endpoint = endpoint[len('unix://'):]
    return endpoint if endpoint.startswith('/') else None


def endpoint_from_kubelet_args(argv):
    """The ``--container-runtime-endpoint`` of a kubelet command line (list), or None."""
    argv = list(argv or [])
    for i, arg in enumerate(argv):
        if arg.startswith('--container-runtime-endpoint='):
            return arg.split('=', 1)[1]
        if arg == '--container-runtime-endpoint' and i + 1 < len(argv):
            return argv[i + 1]
    return None


def endpoint_from_kubelet_config(text):
    """``containerRuntimeEndpoint`` of a KubeletConfiguration YAML, or None."""
    match = _CONFIG_RE.search(text or '')
    return match.group('ep') if match else None


def runtime_of_socket(path):
    """Which runtime a socket path belongs to (by the known paths, then by name)."""
    if not path:
        return None
    for name, sockets, _clis in RUNTIMES:
        if path in sockets:
            return name
    base = path.rsplit('/', 1)[-1]
    for name in ('containerd', 'crio', 'docker'):
        if name in base:
            return name
    return None


def detect(socket_exists, which, kubelet_endpoint=None):
    """Detect the runtime.

    ``socket_exists(path)`` and ``which(cli)`` (absolute path or None) are callables
    so that callers decide how the node is looked at.  Returns ``{'name', 'source'
    (kubelet|socket|None), 'endpoint', 'ambiguous', 'runtimes': [{'name', 'socket',
    'socket_present', 'clis': {cli: path}}]}``.
    """
    runtimes = []
    for name, sockets, clis in RUNTIMES:
        present = [s for s in sockets if socket_exists(s)]
        runtimes.append({
            'name': name,
            'socket': present[0] if present else sockets[0],
            'socket_present': bool(present),
            'clis': {cli: which(cli) for cli in clis},
        })
    with_socket = [r['name'] for r in runtimes if r['socket_present']]
    result = {'name': None, 'source': None, 'endpoint': kubelet_endpoint, 'ambiguous': False, 'runtimes': runtimes}
    from_kubelet = runtime_of_socket(endpoint_path(kubelet_endpoint))
    if from_kubelet:
        result.update(name=from_kubelet, source='kubelet')
        return result
    for name in SOCKET_PRECEDENCE:
        if name in with_socket:
            result.update(name=name, source='socket', ambiguous=len(with_socket) > 1)
            break
    return result


# --- listing what the runtime knows (catalog N-1 garbage collection) ---------------
#
# A host-local allocation file names the container ID the CNI ADD was made for: the pod
# sandbox's ID under the CRI runtimes, the infra ("pause") container's full ID under
# dockershim.  One listing per run must therefore cover sandboxes AND containers, and it
# must never be mistaken for "nothing runs" when it could not be made.

DEFAULT_CONTAINERD_NAMESPACE = 'k8s.io'
LIST_CLIS = {'containerd': ('ctr', 'crictl'), 'crio': ('crictl',), 'docker': ('docker',)}
# containerd identifiers (identifiers.Validate): alphanumerics separated by '.', '_', '-';
# CRI, Docker and CRI-O IDs are 64 hex digits, which the same pattern accepts.
_ID_RE = re.compile(r'^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$')
MAX_ID_LENGTH = 76


class ListingError(Exception):
    """The runtime could not be asked, or its answer cannot be trusted."""


def parse_id_list(text, what='runtime listing'):
    """IDs printed one per line (``ctr c ls -q``, ``crictl pods -q``, ``docker ps -q``).

    Blank lines are ignored.  Anything that is not a bare ID (a table header, a
    warning printed on stdout, a truncated line) raises ListingError: the caller must
    not guess which containers are alive.
    """
    ids = []
    for number, raw in enumerate((text or '').splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if len(line) > MAX_ID_LENGTH or not _ID_RE.match(line):
            raise ListingError('%s: line %d is not a container ID: %r' % (what, number, raw[:120]))
        ids.append(line)
    return ids


def list_commands(name, cli, endpoint=None, namespace=DEFAULT_CONTAINERD_NAMESPACE, timeout=30):
    """Argument lists whose combined output is every sandbox and container ID.

    ``name``: containerd, crio or docker; ``cli``: ctr, crictl or docker;
    ``endpoint``: the runtime socket (path or ``unix://`` URL) or None for the CLI's
    default.  containerd's ``ctr`` lists sandboxes too (a CRI sandbox is a containerd
    container, the pause container), so one command suffices; crictl needs
    ``pods -q`` and ``ps -a -q`` (every state, exited included); Docker lists the
    infra containers with the others, ``--no-trunc`` for the full 64-digit IDs.
    """
    if cli not in LIST_CLIS.get(name, ()):
        raise ValueError('%s cannot list %s containers' % (cli, name))
    path = endpoint_path(endpoint) if endpoint else None
    if endpoint and path is None:
        raise ValueError('runtime endpoint %r is not a unix socket path or unix:// URL' % endpoint)
    if cli == 'ctr':
        args = ['ctr']
        if path:
            args += ['--address', path]
        args += ['--timeout', '%ds' % timeout, '--namespace', namespace, 'containers', 'ls', '-q']
        return [args]
    if cli == 'crictl':
        base = ['crictl']
        if path:
            base += ['--runtime-endpoint', 'unix://' + path]
        base += ['--timeout', '%ds' % timeout]
        return [base + ['pods', '-q'], base + ['ps', '-a', '-q']]
    args = ['docker']
    if path:
        args += ['--host', 'unix://' + path]
    return [args + ['ps', '-a', '-q', '--no-trunc']]


def choose_cli(name, which, preferred=None):
    """The CLI to list ``name``'s containers with: ``preferred`` or the first installed one."""
    candidates = LIST_CLIS.get(name, ())
    if preferred and preferred != 'auto':
        if preferred not in candidates:
            raise ValueError('%s cannot list %s containers (use one of: %s)' % (preferred, name, ', '.join(candidates)))
        return preferred if which(preferred) else None
    for cli in candidates:
        if which(cli):
            return cli
    return None


def list_live_ids(runner, name, cli, endpoint=None, namespace=DEFAULT_CONTAINERD_NAMESPACE, timeout=30):
    """Run :func:`list_commands` through ``runner``; returns ``{'ids': set, 'commands': [...]}``.

    Raises ListingError when a binary is missing, a command exits non-zero or prints
    something that is not an ID: "could not list" is never "nothing listed".
    """
    # Imported here: runner has no dependency on this module and unit tests use both.
    from ansible_collections.netmedic.k8s.plugins.module_utils.runner import CommandError

    ids = set()
    commands = []
    for args in list_commands(name, cli, endpoint, namespace, timeout):
        try:
            res = runner.run(args)
        except CommandError as e:
            raise ListingError('cannot list %s containers: %s' % (name, e.msg))
        listed = parse_id_list(res.stdout, ' '.join(args))
        commands.append({'cmd': list(res.cmd), 'rc': res.rc, 'count': len(listed)})
        ids.update(listed)
    return {'ids': ids, 'commands': commands}


def kubelet_endpoint(fs):
    """The kubelet's runtime endpoint from its command line, else its config file.

    Returns ``(endpoint, where)`` or ``(None, None)``; ``fs`` is a HostFS.
    """
    try:
        pids = [p for p in fs.listdir('/proc') if p.isdigit()]
    except OSError:
        pids = []
    for pid in pids:
        try:
            if (fs.read_text('/proc/%s/comm' % pid) or '').strip() != 'kubelet':
                continue
            argv = (fs.read_text('/proc/%s/cmdline' % pid) or '').split('\0')
        except (IOError, OSError):
            continue
        endpoint = endpoint_from_kubelet_args(argv)
        if endpoint:
            return endpoint, 'kubelet command line (pid %s)' % pid
    try:
        text = fs.read_text(KUBELET_CONFIG)
    except (IOError, OSError):
        text = None
    endpoint = endpoint_from_kubelet_config(text)
    if endpoint:
        return endpoint, KUBELET_CONFIG
    return None, None
