"""``KubeDouble``: store + simulated control plane + HTTP server, for tests and the lab."""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from pathlib import Path

import yaml

from .controllers import Controllers
from .logs import StaticNodeState, make_log_provider
from .rbac import serviceaccount_identity, user_identity
from .seed import DEFAULT_VERSION, load_seed, populate
from .server import HTTPServer
from .store import Store


class KubeDouble:
    """A Kubernetes API server double on ``http://host:port`` (port 0 = chosen by the OS).

    ``seed``: path, YAML text, dict or list (see ``seed.load_seed``); ``nodes``: ``[(name, ip)]``
    replacing the seed's Nodes; ``node_state``: object with ``modules_loaded(node) -> set | None``;
    ``log_provider``: ``(pod, store) -> str | dict``; ``state_dir``: persist/restore ``state.json``;
    ``token``: the admin's bearer token (random by default, ``None`` disables auth); further, non-admin
    tokens (``add_identity``) are authorized by the RBAC objects in the store (``rbac.py``).
    ``audit``: record every resource request's RBAC attributes, user and decision in ``self.audit``.
    """

    def __init__(self, seed=None, node_state=None, log_provider=None, version=None, nodes=None,
                 token='', host='127.0.0.1', port=0, tick=0.2, start_delay=0.5, state_dir=None, validate=True,
                 audit=False):
        seed = load_seed(seed)
        self.store = Store(version=version or seed.version or DEFAULT_VERSION, validate=validate)
        self.node_state = node_state if node_state is not None else StaticNodeState()
        self.log_provider = log_provider or make_log_provider(self.node_state)
        self.token = secrets.token_hex(16) if token == '' else token
        self.host, self.port = host, port
        self.state_file = Path(state_dir) / 'state.json' if state_dir else None
        if self.state_file and self.state_file.exists():
            self.store.load(json.loads(self.state_file.read_text()))
        else:
            populate(self.store, seed.objects, nodes if nodes is not None else seed.nodes)
        self.controllers = Controllers(self.store, self.log_provider, tick=tick, start_delay=start_delay)
        self.controllers.after_tick.append(self._persist)
        self._saved_rv = None
        self.identities = {}            # non-admin token -> rbac.Identity (shared with the HTTP server)
        self.audit = [] if audit else None
        self._httpd = None
        self._http_failures = []
        self._thread = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self):
        self._httpd = HTTPServer((self.host, self.port), self.store, self.token)
        self._httpd.identities = self.identities
        self._httpd.api.audit = self.audit
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={'poll_interval': 0.05},
                                        name='kubedouble-http', daemon=True)
        self._thread.start()
        self.controllers.start()
        return self

    @property
    def failures(self):
        """Unexpected exceptions so far (controller passes and requests answered with 500)."""
        return list(self.controllers.failures) + list(self._httpd.failures if self._httpd else self._http_failures)

    def stop(self):
        self.controllers.stop()
        if self._httpd is not None:
            self._http_failures = list(self._httpd.failures)
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        self._persist()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return 'http://%s:%d' % (self.host, self.port)

    # -- helpers -------------------------------------------------------------------------------

    def _persist(self):
        if self.state_file and self._saved_rv != self.store.resource_version:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self._saved_rv = self.store.resource_version
            self.store.save(self.state_file)

    def reconcile(self):
        """Run one controller pass now (deterministic tests)."""
        self.controllers.reconcile()

    def wait_for(self, predicate, timeout=10.0, interval=0.02):
        """Poll ``predicate(store)`` until it returns something truthy; return it or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self.store)
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError('kubedouble: condition not reached in %.1fs' % timeout)
            time.sleep(interval)

    def inject_fault(self, fault):
        """Run ``fault(method, path, query)`` before every request; raising ``errors.ApiError`` answers with it
        (a 429 with ``headers={'Retry-After': '1'}``, a 503, ...).  Returns a function that removes the fault."""
        self._httpd.faults.append(fault)
        return lambda: self._httpd.faults.remove(fault)

    def add_identity(self, user=None, groups=(), serviceaccount=None, token=None):
        """Register a non-admin bearer token and return it; its requests are authorized by RBAC.

        ``serviceaccount=(namespace, name)`` makes it that ServiceAccount's token (user
        ``system:serviceaccount:<ns>:<name>`` and its groups), else ``user`` with ``groups``.
        """
        if self.token is None:
            raise ValueError('kubedouble: identities need authentication (token=None disables it)')
        if (user is None) == (serviceaccount is None):
            raise ValueError('kubedouble: give exactly one of user or serviceaccount')
        identity = serviceaccount_identity(*serviceaccount) if serviceaccount else user_identity(user, groups)
        token = token or secrets.token_hex(16)
        if token == self.token:
            raise ValueError('kubedouble: an identity cannot use the admin token')
        self.identities[token] = identity
        return token

    def kubeconfig(self, namespace='default', token=None):
        """A kubeconfig for the admin, or for the non-admin ``token`` from ``add_identity``."""
        token = token or self.token
        user = {'token': token} if token else {}
        return {
            'apiVersion': 'v1', 'kind': 'Config', 'preferences': {},
            'clusters': [{'name': 'kubedouble', 'cluster': {'server': self.url}}],
            'users': [{'name': 'kubedouble-admin', 'user': user}],
            'contexts': [{'name': 'kubedouble',
                          'context': {'cluster': 'kubedouble', 'user': 'kubedouble-admin', 'namespace': namespace}}],
            'current-context': 'kubedouble',
        }

    def write_kubeconfig(self, path, namespace='default', token=None):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as handle:
            yaml.safe_dump(self.kubeconfig(namespace, token), handle, default_flow_style=False)
        return path
