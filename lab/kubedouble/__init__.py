"""A Kubernetes API server double for netmedic.k8s tests and the lab (see lab/README.md)."""

from .double import KubeDouble
from .errors import ApiError
from .logs import DEFAULT_MODULES, CrashLoop, StaticNodeState, kube_proxy_log, make_log_provider
from .seed import DEFAULT_VERSION, load_seed, make_node, parse_nodes
from .store import Store

__all__ = [
    'DEFAULT_MODULES',
    'DEFAULT_VERSION',
    'ApiError',
    'CrashLoop',
    'KubeDouble',
    'StaticNodeState',
    'Store',
    'kube_proxy_log',
    'load_seed',
    'make_log_provider',
    'make_node',
    'parse_nodes',
]
