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
