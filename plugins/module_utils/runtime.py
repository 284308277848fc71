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
import time

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
# Docker is listed with docker through the engine's socket, with crictl through cri-dockerd (clis_for).
LIST_CLIS = {'containerd': ('ctr', 'crictl'), 'crio': ('crictl',), 'docker': ('docker', 'crictl')}
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


def is_cri_dockerd(endpoint):
    """True for cri-dockerd's CRI socket (``/run/cri-dockerd.sock``): a CRI endpoint, not Docker's API."""
    path = endpoint_path(endpoint) if endpoint else None
    return bool(path) and 'cri-dockerd' in path.rsplit('/', 1)[-1]


def clis_for(name, endpoint=None):
    """The CLIs that can list ``name``'s containers through ``endpoint``.

    Docker behind cri-dockerd (Kubernetes 1.24 and later) is reached on a CRI socket,
    which only ``crictl`` speaks (its sandbox IDs are the infra containers' IDs);
    ``docker --host`` needs the engine's own socket.
    """
    if name == 'docker':
        return ('crictl',) if is_cri_dockerd(endpoint) else ('docker',)
    return LIST_CLIS.get(name, ())


def list_commands(name, cli, endpoint=None, namespace=DEFAULT_CONTAINERD_NAMESPACE, timeout=30):
    """Argument lists whose combined output is every sandbox and container ID.

    ``name``: containerd, crio or docker; ``cli``: ctr, crictl or docker;
    ``endpoint``: the runtime socket (path or ``unix://`` URL) or None for the CLI's
    default.  containerd's ``ctr`` lists sandboxes too (a CRI sandbox is a containerd
    container, the pause container), so one command suffices; crictl needs
    ``pods -q`` and ``ps -a -q`` (every state, exited included); Docker lists the
    infra containers with the others, ``--no-trunc`` for the full 64-digit IDs.
    A cri-dockerd endpoint is listed with crictl (:func:`clis_for`).
    """
    if cli not in clis_for(name, endpoint):
        if name == 'docker' and is_cri_dockerd(endpoint):
            raise ValueError('%s is cri-dockerd\'s CRI socket: list it with crictl, not %s' % (endpoint, cli))
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


def choose_cli(name, which, preferred=None, endpoint=None):
    """The CLI to list ``name``'s containers with: ``preferred`` or the first installed one."""
    candidates = clis_for(name, endpoint)
    if preferred and preferred != 'auto':
        if preferred not in candidates:
            raise ValueError('%s cannot list %s containers%s (use one of: %s)'
                             % (preferred, name, ' through cri-dockerd' if is_cri_dockerd(endpoint) else '',
                                ', '.join(candidates)))
        return preferred if which(preferred) else None
    for cli in candidates:
        if which(cli):
            return cli
    return None


def list_live_ids(runner, name, cli, endpoint=None, namespace=DEFAULT_CONTAINERD_NAMESPACE, timeout=30,
                  clock=time.monotonic):
    """Run :func:`list_commands` through ``runner``; returns ``{'ids': set, 'commands': [...]}``.

    ``timeout`` bounds the whole listing (wall clock, every command together): each
    command gets what is left, and is killed when it runs out (Runner).  Raises
    ListingError when a binary is missing, a command exits non-zero, runs out of time
    or prints something that is not an ID: "could not list" is never "nothing listed".
    """
    # Imported here: runner has no dependency on this module and unit tests use both.
    from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandError

    deadline = clock() + timeout
    ids = set()
    commands = []
    for args in list_commands(name, cli, endpoint, namespace, timeout):
        left = deadline - clock()
        if left <= 0:
            raise ListingError('cannot list %s containers: the listing took longer than runtime_timeout (%s s) '
                               'before %s' % (name, timeout, ' '.join(args)))
        try:
            res = runner.run(args, timeout=left)
        except CommandError as e:
            raise ListingError('cannot list %s containers: %s' % (name, e.msg))
        listed = parse_id_list(res.stdout, ' '.join(args))
        commands.append({'cmd': list(res.cmd), 'rc': res.rc, 'count': len(listed)})
        ids.update(listed)
    return {'ids': ids, 'commands': commands}


class ResolveError(ListingError):
    """Which runtime (or CLI) to ask is not certain; ``info`` is what is known."""

    def __init__(self, msg, info=None):
        super(ResolveError, self).__init__(msg)
        self.msg = msg
        self.info = info


def resolve(runner, fs, name='auto', endpoint=None, preferred_cli='auto', namespace=DEFAULT_CONTAINERD_NAMESPACE):
    """The runtime, CLI and endpoint to list with: one detection for every module.

    ``name`` ``auto`` follows the kubelet's runtime endpoint (command line, then its
    config file), else the one runtime socket present; several sockets without a
    kubelet setting, or none, raise ResolveError, as does a missing CLI.  Returns
    ``{'name', 'source', 'cli', 'endpoint' (a path or None), 'namespace'}``.
    """
    info = {'name': name, 'source': 'option', 'endpoint': endpoint}
    if name == 'auto':
        kubelet_ep, where = kubelet_endpoint(fs)
        detected = detect(fs.is_socket, runner.which, kubelet_ep)
        if detected['name'] is None:
            raise ResolveError('cannot tell which container runtime runs the pods: no kubelet runtime endpoint and no runtime '
                               'socket (%s); set runtime' % ', '.join(r['socket'] for r in detected['runtimes']))
        if detected['ambiguous']:
            present = [r['name'] for r in detected['runtimes'] if r['socket_present']]
            raise ResolveError('several container runtime sockets (%s) and no kubelet setting to choose: set runtime'
                               % ', '.join(present))
        name = detected['name']
        info['name'] = name
        info['source'] = where or 'socket'
        if not endpoint:
            if detected['source'] == 'kubelet':
                endpoint = kubelet_ep
            else:
                endpoint = next(r['socket'] for r in detected['runtimes'] if r['name'] == name)
    try:
        cli = choose_cli(name, runner.which, preferred_cli, endpoint)
    except ValueError as e:
        raise ResolveError(str(e), info)
    if cli is None:
        wanted = [preferred_cli] if preferred_cli and preferred_cli != 'auto' else list(clis_for(name, endpoint))
        raise ResolveError('cannot list %s containers: no CLI for %s is installed (%s), so the runtime\'s containers '
                           'cannot be known' % (name, name, ', '.join(wanted)), info)
    info.update(cli=cli, endpoint=endpoint_path(endpoint) if endpoint else None,
                namespace=namespace if cli == 'ctr' else None)
    return info


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
