"""Fixtures for the Kubernetes API double's own tests.

``double`` starts a KubeDouble from ``lab/seed/cluster.yaml`` on a free port with fast controller
timings, waits until the seeded pods run, writes a kubeconfig and points TMPDIR at a private
directory (kubernetes.core caches discovery in ``$TMPDIR/k8srcp-*.json``).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.kubedouble import KubeDouble, StaticNodeState  # noqa: E402
from lab.kubedouble.policy import pod_ready  # noqa: E402
from tests.lab.playbook_run import run_playbook, short_tmp_path, write_play  # noqa: E402

SEED = ROOT / 'lab' / 'seed' / 'cluster.yaml'
FAST = {'tick': 0.02, 'start_delay': 0.02}


# -- why each test runs only against the API double (issue 15 item 4) ------------------------------
#
# tests/cluster runs on the lab's real kube-apiserver (lab/k8s/k8sctl, nodes simulated by lab/k8s/nodesim.py) and,
# its double_strict tests, on the double too; this directory runs on the double only. Every test module says why in a module-level
# ``DOUBLE_ONLY = '<kind>: <why>'``; a test whose reason differs from its module's carries
# ``@pytest.mark.double_only('<kind>: <why>')``. Collection fails on a test module without a reason
# (tests/lab/README.md has the table). A test that could run on the real server belongs in tests/cluster: there is
# no "not ported yet" kind any more (issue 15: all were ported on 2026-12-03).
DOUBLE_ONLY_KINDS = {
    'fault': "forces an error or a race through the double (its fault hook, or a concurrent write landed between a "
             "module's read and its write); a real server gives these only under real load or a real race",
    'kubelet': 'needs node, kubelet or agent behaviour the simulated nodes lack (pod logs, crash loops, kernel modules, '
               'a node that stays NotReady or comes back with a new boot ID, pod addresses from a real CNI plugin)',
    'version': 'needs a server of another version (the double reports the seed\'s v1.24.9-gke.3200 or one given; '
               'the lab\'s real server is v1.37.2)',
    'store': 'sets through the double\'s store what no client may set on a real server',
    'multicluster': 'needs several independent clusters at once',
    'no-cluster': 'talks to no API server at all (or the double only hands out a kubeconfig nothing uses)',
}


def double_only_reason(item):
    """``(kind, why)`` of a tests/lab item: its ``double_only`` marker, else its module's DOUBLE_ONLY; None if neither."""
    marker = item.get_closest_marker('double_only')
    text = marker.args[0] if marker is not None and marker.args else getattr(item.module, 'DOUBLE_ONLY', None)
    if not isinstance(text, str) or ':' not in text:
        return None
    kind, why = (part.strip() for part in text.split(':', 1))
    return (kind, why) if kind in DOUBLE_ONLY_KINDS and why else None


def pytest_configure(config):
    config.addinivalue_line('markers', "double_only(reason): why this tests/lab test runs only against the API double "
                                       "('<kind>: <why>', kinds in tests/lab/conftest.py DOUBLE_ONLY_KINDS)")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    missing = sorted({str(Path(item.path).relative_to(ROOT)) for item in items
                      if Path(item.path).resolve().parent == here and double_only_reason(item) is None})
    if missing:
        raise pytest.UsageError(
            'tests/lab: no valid reason why these run only against the API double (issue 15 item 4): %s. Give the module '
            "DOUBLE_ONLY = '<kind>: <why>' (or a test @pytest.mark.double_only('<kind>: <why>')), kind one of %s; "
            'see tests/lab/README.md' % (', '.join(missing), ', '.join(sorted(DOUBLE_ONLY_KINDS))))


def http(double, method, path, body=None, content_type='application/json', token=None):
    """Raw request: ``(status, content_type, decoded body)``; ``token=''`` sends no Authorization."""
    token = double.token if token is None else token
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(double.url + path, data=data, method=method)
    if token:
        request.add_header('Authorization', 'Bearer %s' % token)
    if data is not None:
        request.add_header('Content-Type', content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, ctype, raw = response.status, response.headers['Content-Type'], response.read()
    except urllib.error.HTTPError as exc:
        status, ctype, raw = exc.code, exc.headers['Content-Type'], exc.read()
    return status, ctype, json.loads(raw) if ctype == 'application/json' else raw.decode()


def all_pods_running(store):
    """Every pod Running and every DaemonSet's status counting its Ready pods: the controller writes the status a
    tick after the pods, and a test that snapshots a DaemonSet before that sees it change under it (test_ip_masq_agent
    ``test_bad_input_refused`` failed so: numberReady 0 -> 3 with no write by the module)."""
    pods, _rest = store.list('pods')
    if not pods or any(p['status'].get('phase') != 'Running' for p in pods):
        return False
    for ds in store.list('daemonsets')[0]:
        uid = ds['metadata']['uid']
        ready = sum(1 for p in pods if pod_ready(p) and any(o.get('uid') == uid for o in p['metadata'].get('ownerReferences') or []))
        status = ds.get('status') or {}
        if status.get('numberReady') != ready or status.get('observedGeneration') != ds['metadata'].get('generation'):
            return False
    return True


@pytest.fixture
def private_tmpdir(tmp_path, monkeypatch):
    tmp = tmp_path / 'tmp'
    tmp.mkdir()
    monkeypatch.setenv('TMPDIR', str(tmp))
    return tmp


@pytest.fixture
def make_double(tmp_path, private_tmpdir):
    """Factory: ``make_double(**KubeDouble kwargs)``; every double started is stopped afterwards."""
    started = []

    def _make(wait=True, **kwargs):
        kwargs.setdefault('seed', SEED)
        for key, value in FAST.items():
            kwargs.setdefault(key, value)
        double = KubeDouble(**kwargs).start()
        started.append(double)
        double.kubeconfig_path = double.write_kubeconfig(tmp_path / ('kubeconfig-%d' % len(started)))
        if wait and kwargs['seed'] is not None:
            double.wait_for(all_pods_running)
        return double

    yield _make
    for double in started:
        double.stop()
    for double in started:
        assert not double.failures, 'the double hit unexpected exceptions: %r' % double.failures


@pytest.fixture
def node_state():
    return StaticNodeState()


@pytest.fixture
def double(make_double, node_state):
    return make_double(node_state=node_state)


@pytest.fixture
def raw(double):
    """``raw(method, path, body=None, content_type=..., token=None)`` against ``double``."""
    return lambda *args, **kwargs: http(double, *args, **kwargs)


@pytest.fixture
def api_client(double):
    client = k8s_config.new_client_from_config(str(double.kubeconfig_path))
    yield client
    client.close()


@pytest.fixture
def core(api_client):
    return k8s.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client):
    return k8s.AppsV1Api(api_client)


@pytest.fixture
def policy(api_client):
    return k8s.PolicyV1Api(api_client)


@pytest.fixture
def playbook(tmp_path, private_tmpdir):
    """Run tasks through ``ansible-playbook`` on localhost; returns {task name: result} and rc.

    ``playbook(double, tasks, extra_env=None, check=False, timeout=300)``: the one runner (playbook_run.run_playbook);
    the timeout is a hang guard (2 xdist workers on a loaded host), not a speed limit.
    """

    def _run(double, tasks, extra_env=None, check=False, timeout=300):
        path = write_play(tmp_path / 'play.yml', tasks)
        return run_playbook(double, tmp_path, path, check=check, timeout=timeout,
                            env=dict({'TMPDIR': str(private_tmpdir)}, **(extra_env or {})))

    return _run


def _run_playbook_file(double, tmp_path, playbook, *extra, check=False):
    """Run one of the collection's playbooks on localhost against ``double`` (node plays match no host).

    Returns ``(rc, {task name: localhost result}, output)``; tests/lab/playbook_run.py is the one runner.
    """
    return run_playbook(double, tmp_path, playbook, *extra, check=check, timeout=300)


@pytest.fixture
def playbook_file(tmp_path):
    """``playbook_file(double, playbook_path, *extra_args, check=False)`` -> ``(rc, {task: result}, output)``."""
    return lambda double, playbook, *extra, check=False: _run_playbook_file(double, tmp_path, playbook, *extra, check=check)


# -- non-admin identities (issue 10 hole 13: RBAC) -----------------------------------------------

class AsIdentity:
    """``double`` seen through a non-admin identity: ``kubeconfig_path`` and ``token`` are that identity's,
    everything else (``store``, ``url``, ...) is the double's, so the runners above take it as a double."""

    def __init__(self, double, token, kubeconfig_path, objects):
        self._double = double
        self.token = token
        self.kubeconfig_path = kubeconfig_path
        self.objects = objects

    def __getattr__(self, name):
        return getattr(self._double, name)


def apply_manifest(double, path):
    """Create (as admin) every object of a manifest (documents, or a v1 List), making its namespaces; returns them."""
    objects = []
    for doc in yaml.safe_load_all(Path(path).read_text()):
        if doc:
            objects += doc['items'] if doc.get('kind') == 'List' else [doc]
    for doc in objects:
        namespace = doc['metadata'].get('namespace')
        if namespace and double.store.find('namespaces', None, namespace) is None:
            double.store.create('namespaces', None, {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': namespace}})
        double.store.create(doc['kind'], namespace, doc)
    return objects


@pytest.fixture
def as_identity(tmp_path):
    """``as_identity(double, manifest=None, serviceaccount=None, user=None)``: a non-admin identity for ``double``.

    ``manifest`` (a path, e.g. ``rbac/udp_timeout.yml``) is applied as admin and the identity is its
    ServiceAccount; or give ``serviceaccount=(namespace, name)`` / ``user`` with no grants applied.
    """
    count = []

    def _make(double, manifest=None, serviceaccount=None, user=None):
        objects = apply_manifest(double, manifest) if manifest else []
        if manifest and serviceaccount is None:
            sa = next(o for o in objects if o['kind'] == 'ServiceAccount')['metadata']
            serviceaccount = (sa['namespace'], sa['name'])
        token = double.add_identity(serviceaccount=serviceaccount) if serviceaccount else double.add_identity(user=user)
        count.append(token)
        path = double.write_kubeconfig(tmp_path / ('kubeconfig-identity-%d' % len(count)), token=token)
        return AsIdentity(double, token, path, objects)

    return _make


# -- issue 12: in-process module runs, and temporary paths short enough for ansible-playbook ---------

from tests.harness import run_main, run_tasks  # noqa: E402


@pytest.fixture
def tmp_path(request, tmp_path_factory):
    """A short per-test directory, room for ansible-core's local RPC socket (playbook_run.short_tmp_path)."""
    return short_tmp_path(request, tmp_path_factory)


@pytest.fixture
def module_run(private_tmpdir):
    """``module_run(double, module, args, check_mode=False, diff=False, extra_env=None)`` -> ``(exit code, result, output)``.

    The module's ``main()`` runs in this process (``tests/harness.py``) with the kubeconfig of
    ``double`` in ``K8S_AUTH_KUBECONFIG``, as the ``playbook`` fixture hands it to Ansible; it talks
    to the double over HTTP through the real client.  ``result`` is what the task result would be.
    """
    def _run(double, module, args, check_mode=False, diff=False, extra_env=None):
        env = dict(extra_env or {}, K8S_AUTH_KUBECONFIG=str(double.kubeconfig_path), TMPDIR=str(private_tmpdir))
        return run_main(module, args, check_mode=check_mode, diff=diff, env=env)
    return _run


@pytest.fixture
def module_tasks(private_tmpdir):
    """In-process stand-in for ``playbook`` where a test is about the module, not about Ansible.

    ``module_tasks(double, tasks, extra_env=None)`` -> ``(rc, {task name: result}, output)`` like
    ``playbook``; tasks may only use name, one module, check_mode, diff, ignore_errors, register
    (anything else is refused: use ``playbook``).
    """
    def _run(double, tasks, extra_env=None):
        env = dict(extra_env or {}, K8S_AUTH_KUBECONFIG=str(double.kubeconfig_path), TMPDIR=str(private_tmpdir))
        return run_tasks(tasks, env=env)
    return _run
