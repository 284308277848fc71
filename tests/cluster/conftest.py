"""Fixtures for the read-only cluster suite (tests/cluster/README.md).

``cluster`` is either the cluster named by ``NETMEDIC_TEST_KUBECONFIG`` (and optionally
``NETMEDIC_TEST_CONTEXT``), or, when that variable is unset, the lab's Kubernetes API double
started from ``lab/seed/cluster.yaml`` (so CI runs the same suite).  The check-mode suite only
reads; the behaviour and apply tests (test_behaviour.py, test_apply_real.py) write, so they run on
the double and on a real cluster only when ``NETMEDIC_TEST_WRITABLE=1`` says it is a disposable
one (the lab's own control plane, lab/k8s/k8sctl; `make realcluster-test` sets it).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_configure(config):
    config.addinivalue_line('markers', 'cluster: a test of tests/cluster (added at collection): one that runs on a real '
                                       'kube-apiserver as on the double')
    config.addinivalue_line('markers', 'double_strict(reason): a tests/cluster test that asserts more on the API double '
                                       'than a real server lets it (nothing else writes there); `make apidouble` runs '
                                       'it on the double as well: -m "not cluster or double_strict"')


def pytest_collection_modifyitems(config, items):
    """Mark every item of this folder ``cluster``; a ``double_strict`` marker must say why."""
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(item.path).resolve().parent != here:
            continue
        item.add_marker(pytest.mark.cluster)
        strict = item.get_closest_marker('double_strict')
        if strict is not None and not (strict.args and str(strict.args[0]).strip()):
            raise pytest.UsageError('%s: @pytest.mark.double_strict needs the reason as its argument' % item.nodeid)


SEED = ROOT / 'lab' / 'seed' / 'cluster.yaml'
# The real kube-apiserver's audit log (JSON lines; `make realcluster-test` starts it with lab/k8s/audit-policy.yaml):
# the ``audit`` fixture reads the requests of a test's window from it. Unset: tests that need it are skipped (named).
AUDIT_LOG = os.environ.get('NETMEDIC_TEST_AUDIT_LOG')
# User agent of the suite's own client (Cluster.api), so its reads and plants are told apart from the modules'.
TEST_AGENT = 'netmedic-tests'
# Requests that are neither the modules' nor the test's: the simulated kubelets (lab/k8s/nodesim.py).
OTHER_AGENTS = ('netmedic-nodesim',)
# Seconds every request of the fixtures' own reads may take (a stalled server fails the test, it never hangs the stage).
REQUEST_TIMEOUT = 30
# apiVersion of each kind the tests read or copy through ``Cluster.find/items/create``.
KIND_VERSIONS = {'ConfigMap': 'v1', 'Pod': 'v1', 'Node': 'v1', 'Namespace': 'v1', 'ServiceAccount': 'v1', 'Secret': 'v1',
                 'Service': 'v1', 'Event': 'v1', 'DaemonSet': 'apps/v1', 'Deployment': 'apps/v1', 'ReplicaSet': 'apps/v1',
                 'PodDisruptionBudget': 'policy/v1', 'Lease': 'coordination.k8s.io/v1',
                 'Role': 'rbac.authorization.k8s.io/v1', 'RoleBinding': 'rbac.authorization.k8s.io/v1',
                 'ClusterRole': 'rbac.authorization.k8s.io/v1', 'ClusterRoleBinding': 'rbac.authorization.k8s.io/v1'}


class Timed:
    """A generated ``kubernetes`` API class whose every call carries ``_request_timeout`` (REQUEST_TIMEOUT unless the
    caller gives one): a stalled server fails the test with a timeout instead of hanging the stage."""

    def __init__(self, api):
        self._api = api

    def __getattr__(self, name):
        attr = getattr(self._api, name)
        if not callable(attr) or name.startswith('_'):
            return attr

        def call(*args, **kwargs):
            kwargs.setdefault('_request_timeout', REQUEST_TIMEOUT)
            return attr(*args, **kwargs)
        return call


@dataclasses.dataclass
class Cluster:
    kubeconfig: Path
    context: str | None
    is_double: bool
    api: k8s.ApiClient
    double: object = None
    _dynamic: object = dataclasses.field(default=None, repr=False)

    # The generated API classes the tests call, each call with a timeout (Timed).
    core = property(lambda self: Timed(k8s.CoreV1Api(self.api)))
    apps = property(lambda self: Timed(k8s.AppsV1Api(self.api)))
    policy = property(lambda self: Timed(k8s.PolicyV1Api(self.api)))
    coordination = property(lambda self: Timed(k8s.CoordinationV1Api(self.api)))
    apis = property(lambda self: Timed(k8s.ApisApi(self.api)))

    @property
    def writable(self):
        """May tests write here: the double, or a real cluster declared disposable (NETMEDIC_TEST_WRITABLE=1)."""
        return self.is_double or os.environ.get('NETMEDIC_TEST_WRITABLE') == '1'

    @property
    def server(self):
        return 'double' if self.is_double else 'real'

    @property
    def kubeconfig_path(self):
        """The name tests/lab's runners (playbook_run.run_playbook, tests/harness.py) read a target's kubeconfig by."""
        return self.kubeconfig

    # -- reads through the API, the same on both servers (issue 15: what tests/lab read from the double's store) ---

    def _resource(self, kind):
        from kubernetes.dynamic import DynamicClient

        if self._dynamic is None:
            self._dynamic = DynamicClient(self.api)
        api_version = KIND_VERSIONS[kind]
        return self._dynamic.resources.get(api_version=api_version, kind=kind)

    def find(self, kind, namespace, name):
        """The object as a plain dict (camelCase, as served), or None when the server answers 404; any other error raises."""
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return self._resource(kind).get(name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT).to_dict()
        except NotFoundError:
            return None

    def get(self, kind, namespace, name):
        """The object as a plain dict; fails the test when it does not exist."""
        obj = self.find(kind, namespace, name)
        assert obj is not None, '%s %s/%s does not exist on the %s server' % (kind, namespace, name, self.server)
        return obj

    def items(self, kind, namespace=None, label_selector=None):
        """Every object of ``kind`` (in ``namespace``; all namespaces when None), as plain dicts, sorted by name."""
        listed = self._resource(kind).get(namespace=namespace, label_selector=label_selector,
                                          _request_timeout=REQUEST_TIMEOUT).to_dict()
        return sorted(listed['items'], key=lambda o: (o['metadata'].get('namespace') or '', o['metadata']['name']))

    def replace(self, obj):
        """PUT ``obj`` (a dict read by ``get``, edited) back; returns what the server stored."""
        meta = obj['metadata']
        return self._resource(obj['kind']).replace(body=obj, name=meta['name'], namespace=meta.get('namespace'),
                                                   _request_timeout=REQUEST_TIMEOUT).to_dict()

    def edit(self, kind, namespace, name, change, attempts=5):
        """Read, ``change(obj)`` in place, PUT; on 409 (a controller wrote the object in between: the DaemonSet
        controller updates status right after a create) read again and retry, like client-go's RetryOnConflict; the
        last attempt's 409 is raised. Returns what the server stored."""
        from kubernetes.dynamic.exceptions import ConflictError

        assert attempts >= 1, attempts
        for attempt in range(attempts):
            obj = self.get(kind, namespace, name)
            change(obj)
            try:
                return self.replace(obj)
            except ConflictError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError('unreachable')

    def create(self, obj, namespace=None):
        """POST ``obj`` (into ``namespace`` when given, else its own); returns what the server stored."""
        namespace = namespace or obj['metadata'].get('namespace')
        return self._resource(obj['kind']).create(body=obj, namespace=namespace, _request_timeout=REQUEST_TIMEOUT).to_dict()


def _all_pods_running(store):
    pods, _rv = store.list('pods')
    return bool(pods) and all(p['status'].get('phase') == 'Running' for p in pods)


class Audit:
    """The requests made since the fixture started, in the double's audit shape (``verb``, ``apiGroup``, ``resource``,
    ``subresource``, ``namespace``, ``name``, ``user``, ``allowed``, ``dryRun``), on either server.

    The double records every request it serves (the suite's own included: take the fixture after the test's plants).
    The real server's come from its audit log (``AUDIT_LOG``): the admin user's completed requests, without the
    suite's own client (``TEST_AGENT``) and nodesim's. Reading ends at a marker request of the fixture's own (a GET
    of a name nothing has), so every earlier request is in the file when it is read.
    """

    def __init__(self, cluster):
        self.cluster = cluster
        if cluster.is_double:
            if cluster.double.audit is None:
                pytest.fail('the double was started without audit=True')
            self.start = len(cluster.double.audit)
        else:
            if not AUDIT_LOG:
                pytest.skip('needs the real server\'s audit log: NETMEDIC_TEST_AUDIT_LOG (make realcluster-test sets it, '
                            'with lab/k8s/audit-policy.yaml)')
            if not os.path.isfile(AUDIT_LOG):
                pytest.fail('NETMEDIC_TEST_AUDIT_LOG=%s is not a file: was the API server started with an audit policy?' % AUDIT_LOG)
            if os.environ.get('PYTEST_XDIST_WORKER'):
                pytest.fail('the audit window of one test would hold another worker\'s requests: run the real-server '
                            'suite without pytest-xdist (-n)')
            self.start = os.path.getsize(AUDIT_LOG)

    def entries(self):
        if self.cluster.is_double:
            return list(self.cluster.double.audit[self.start:])
        first, events = self._through_marker(self.start)
        # The server writes a request's event once its response went out: a module's last request may be written
        # after the first marker's. A second marker, sent once the first is in the file, is written after all of them;
        # what was received before the first marker belongs to the window, wherever it sits in the file.
        _second, events = self._through_marker(self.start)
        cut = first['requestReceivedTimestamp']
        found = []
        for event in events:
            ref = event.get('objectRef') or {}
            agent = event.get('userAgent') or ''
            if (not ref.get('resource') or agent.startswith((TEST_AGENT,) + OTHER_AGENTS)
                    or event.get('requestReceivedTimestamp', '') >= cut):
                continue
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(event.get('requestURI', '')).query)
            dry_run = 'dryRun' in query
            if event['verb'] in ('delete', 'deletecollection') and event.get('requestObject') is not None:
                dry_run = bool(event['requestObject'].get('dryRun'))   # a body's DeleteOptions win over the query
            found.append({'verb': event['verb'], 'apiGroup': ref.get('apiGroup', ''), 'resource': ref['resource'],
                          'subresource': ref.get('subresource', ''), 'namespace': ref.get('namespace', ''),
                          'name': ref.get('name', ''), 'user': event['user']['username'],
                          'allowed': (event.get('annotations') or {}).get('authorization.k8s.io/decision') == 'allow',
                          'dryRun': dry_run, 'code': (event.get('responseStatus') or {}).get('code')})
        return found

    def _through_marker(self, start):
        """Send a marker request (a GET of a name nothing has, by the suite's own client) and read the log from
        ``start`` until its event is there: ``(marker event, every complete event read)``."""
        marker = 'netmedic-audit-mark-' + uuid.uuid4().hex[:12]
        assert self.cluster.find('Namespace', None, marker) is None
        deadline = time.monotonic() + 30
        while True:
            with open(AUDIT_LOG, 'rb') as handle:
                handle.seek(start)
                data = handle.read()
            # only whole lines: the server may be half-way through writing the last one
            events = [json.loads(line) for line in data[:data.rfind(b'\n') + 1].splitlines() if line.strip()]
            mark = next((e for e in events if (e.get('objectRef') or {}).get('name') == marker), None)
            if mark is not None:
                return mark, events
            assert time.monotonic() < deadline, 'the audit log never showed the marker request %s' % marker
            time.sleep(0.2)


# '1': the real cluster is the lab's own (lab/k8s/k8sctl, with its NETMEDIC_K8S_* environment): the suite may reset it.
K8SCTL_OWNED = os.environ.get('NETMEDIC_TEST_K8SCTL') == '1'
K8SCTL = ROOT / 'lab' / 'k8s' / 'k8sctl'


def run_k8sctl(*args):
    """Run ``lab/k8s/k8sctl ARGS`` (the suite's environment: its NETMEDIC_K8S_* settings); its stdout, or the test fails
    with the command's output."""
    done = subprocess.run([str(K8SCTL), *args], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, 'k8sctl %s failed (%d): %s' % (' '.join(args), done.returncode, (done.stdout + done.stderr)[-2000:])
    return done.stdout


def _lab_control_plane(cluster, why):
    """The real cluster when it is the lab's own and may be reset (``k8sctl reset`` + ``seed`` afterwards, 30-40 s);
    any other real cluster skips, naming ``why``, never a pass."""
    if os.environ.get('PYTEST_XDIST_WORKER'):
        pytest.fail('the test resets the one real control plane: run the real-server suite without pytest-xdist (-n)')
    if AUDIT_LOG and not os.environ.get('NETMEDIC_K8S_AUDIT_POLICY'):
        pytest.fail('NETMEDIC_TEST_AUDIT_LOG is set but NETMEDIC_K8S_AUDIT_POLICY is not: the reset would start the API '
                    'server without its audit log (make realcluster-test sets both)')
    if not cluster.writable or not K8SCTL_OWNED:
        pytest.skip('%s: needs the lab\'s own control plane, which the suite resets afterwards '
                    '(NETMEDIC_TEST_WRITABLE=1 NETMEDIC_TEST_K8SCTL=1: make realcluster-test)' % why)
    try:
        yield cluster
    finally:
        for command in ('reset', 'seed'):
            run_k8sctl(command)


@pytest.fixture
def fresh(cluster, tmp_path):
    """A cluster whose seed objects (kube-system's ConfigMaps, DaemonSets, Nodes) the test may change.

    On the double: a double of the test's own, from the seed, recording requests. On a real server: the module's, when
    it is the lab's (``NETMEDIC_TEST_K8SCTL=1``), reset to the clean seed after the test (``k8sctl reset`` + ``seed``,
    30-40 s), so the next test finds the seed as it was; any other real cluster skips (named), never a pass.
    """
    if cluster.is_double:
        with double_cluster(tmp_path / 'fresh.kubeconfig') as cluster_of_its_own:
            yield cluster_of_its_own
        return
    yield from _lab_control_plane(cluster, 'changes the seed\'s kube-system objects')


@pytest.fixture
def lab_control_plane(cluster):
    """The lab's own real control plane (lab/k8s/k8sctl), for a test of k8sctl itself; reset to the clean seed after
    the test. The API double has no etcd and no k8sctl: there, and on any other real cluster, the test skips (named):
    it runs in ``make realcluster-test``, never in a stage on the double."""
    if cluster.is_double:
        pytest.skip('tests lab/k8s/k8sctl on its real control plane: the API double has none (make realcluster-test)')
    yield from _lab_control_plane(cluster, 'tests lab/k8s/k8sctl')


class Identity:
    """A kubeconfig of its own for a ServiceAccount's token (``kubeconfig_path``, ``context`` None: what the runners
    take), and ``user``, the name the server knows it by."""

    def __init__(self, kubeconfig_path, user, objects):
        self.kubeconfig_path = kubeconfig_path
        self.context = None
        self.user = user
        self.objects = objects


def as_identity(cluster, manifest, tmp_path):
    """Apply ``manifest`` (rbac/<playbook>.yml: a v1 List or documents; its namespaces made) as admin and return the
    ``Identity`` of its ServiceAccount: on the double a token it registers, on the real server one from the TokenRequest
    API, authorized by RBAC on either."""
    objects = []
    for doc in yaml.safe_load_all(Path(manifest).read_text()):
        if doc:
            objects += doc['items'] if doc.get('kind') == 'List' else [doc]
    for doc in objects:
        namespace = doc['metadata'].get('namespace')
        if namespace and cluster.find('Namespace', None, namespace) is None:
            cluster.create({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': namespace}})
        cluster.create(doc)
    sa = next(o for o in objects if o['kind'] == 'ServiceAccount')['metadata']
    namespace, name = sa['namespace'], sa['name']
    server = kubeconfig_server(cluster)
    if cluster.is_double:
        token = cluster.double.add_identity(serviceaccount=(namespace, name))
    else:
        deadline = time.monotonic() + 30             # the token controller needs the ServiceAccount it just saw
        while True:
            try:
                issued = cluster.core.create_namespaced_service_account_token(
                    name, namespace, {'apiVersion': 'authentication.k8s.io/v1', 'kind': 'TokenRequest', 'spec': {'expirationSeconds': 3600}})
                break
            except k8s.ApiException as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        token = issued.status.token
    user = 'system:serviceaccount:%s:%s' % (namespace, name)
    kubeconfig = {'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'identity',
                  'clusters': [{'name': 'identity', 'cluster': server}],
                  'users': [{'name': 'identity', 'user': {'token': token}}],
                  'contexts': [{'name': 'identity', 'context': {'cluster': 'identity', 'user': 'identity'}}]}
    path = tmp_path / ('kubeconfig-%s' % name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as handle:
        yaml.safe_dump(kubeconfig, handle)
    return Identity(path, user, objects)


@pytest.fixture
def identity(tmp_path):
    """``identity(cluster, manifest)`` -> ``Identity`` (``as_identity``); what the manifests created is deleted after the
    test (on a cluster the test shares with others), the namespaces they made too. Take it after ``fresh`` (a fixture
    torn down first would have stopped that double)."""
    made = []

    def _make(cluster, manifest):
        namespaces = {doc['metadata']['name'] for doc in cluster.items('Namespace')}
        ident = as_identity(cluster, manifest, tmp_path)
        made.append((cluster, ident, namespaces))
        return ident

    yield _make
    for cluster, ident, namespaces in made:
        for doc in reversed(ident.objects):
            meta = doc['metadata']
            if cluster.find(doc['kind'], meta.get('namespace'), meta['name']) is not None:
                cluster._resource(doc['kind']).delete(name=meta['name'], namespace=meta.get('namespace'), _request_timeout=REQUEST_TIMEOUT)
        for namespace in {doc['metadata'].get('namespace') for doc in ident.objects} - namespaces - {None}:
            if cluster.find('Namespace', None, namespace) is not None:
                cluster._resource('Namespace').delete(name=namespace, _request_timeout=REQUEST_TIMEOUT)
            # A real server finishes a namespace's deletion later: the next test's manifest would find it Terminating.
            deadline = time.monotonic() + 120
            while cluster.find('Namespace', None, namespace) is not None:
                assert time.monotonic() < deadline, 'namespace %s still there 120 s after its deletion' % namespace
                time.sleep(0.5)


@pytest.fixture
def audit(writable, request):
    """``audit.entries()``: the requests since the fixture was taken (``Audit``), on the module's cluster; a test on
    ``fresh`` takes ``Audit(fresh)`` itself (this one would watch another double)."""
    if 'fresh' in request.fixturenames:
        pytest.fail('the audit fixture watches the module\'s cluster, not fresh: use Audit(fresh)')
    return Audit(writable)


@contextlib.contextmanager
def double_cluster(kubeconfig):
    """A ``Cluster`` on an API double of its own, from the seed, recording requests, its kubeconfig at ``kubeconfig``;
    stopped afterwards, failing the test when the double hit an unexpected exception."""
    from lab.kubedouble import KubeDouble

    double = KubeDouble(seed=SEED, tick=0.02, start_delay=0.02, audit=True).start()
    try:
        path = double.write_kubeconfig(kubeconfig)
        double.wait_for(_all_pods_running)
        api = k8s_config.new_client_from_config(str(path))
        api.user_agent = TEST_AGENT
        yield Cluster(kubeconfig=Path(path), context=None, is_double=True, api=api, double=double)
        api.close()
    finally:
        double.stop()
    assert not double.failures, 'the double hit unexpected exceptions: %r' % double.failures


def wait(what, check, timeout=120, interval=0.25):
    """``check()``'s first truthy value, polled every ``interval`` s; fails the test naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, 'timed out after %ss waiting for %s' % (timeout, what)
        time.sleep(interval)


@pytest.fixture
def lab_vmnode(tmp_path, monkeypatch):
    """lab/k8s/vmnode.py imported afresh, its control plane state in tmp_path: for the offline tests of the lab's real
    nodes (no VM, no apiserver)."""
    monkeypatch.setenv('NETMEDIC_K8S_STATE', str(tmp_path))
    monkeypatch.syspath_prepend(str(ROOT / 'lab' / 'k8s'))
    for name in ('vmnode', 'k8sctl'):
        sys.modules.pop(name, None)
    import vmnode
    yield vmnode
    for name in ('vmnode', 'k8sctl'):
        sys.modules.pop(name, None)


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
    """The cluster under test; a real one only when NETMEDIC_TEST_KUBECONFIG is set."""
    kubeconfig = os.environ.get('NETMEDIC_TEST_KUBECONFIG')
    context = os.environ.get('NETMEDIC_TEST_CONTEXT') or None
    if kubeconfig:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            pytest.fail('NETMEDIC_TEST_KUBECONFIG=%s is not a file' % kubeconfig)
        api = k8s_config.new_client_from_config(str(path), context=context)
        api.user_agent = TEST_AGENT
        yield Cluster(kubeconfig=path, context=context, is_double=False, api=api)
        api.close()
        return
    if context:
        pytest.fail('NETMEDIC_TEST_CONTEXT is set but NETMEDIC_TEST_KUBECONFIG is not')
    with double_cluster(tmp_path_factory.mktemp('double') / 'kubeconfig') as double:
        yield double


@pytest.fixture
def writable(cluster):
    """The cluster, when tests may write to it; a skip that names why otherwise (never a pass)."""
    if not cluster.writable:
        pytest.skip('writes to a real cluster need NETMEDIC_TEST_WRITABLE=1 (a disposable one: lab/k8s/k8sctl)')
    return cluster


@pytest.fixture
def scratch(writable):
    """A fresh namespace of the test's own, deleted afterwards (a real server finishes that later, in the background:
    its name is the test's alone, so nothing waits for it)."""
    name = 'netmedic-test-' + uuid.uuid4().hex[:8]
    core = writable.core
    core.create_namespace({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': name}})
    if not writable.is_double:
        # the ServiceAccount admission plugin refuses pods until the controller made `default`
        deadline = time.monotonic() + 30
        while not core.list_namespaced_service_account(name, field_selector='metadata.name=default').items:
            assert time.monotonic() < deadline, 'no default ServiceAccount in %s after 30 s' % name
            time.sleep(0.2)
    yield name
    core.delete_namespace(name)


def ns_task(module, name, ns, args, **extra):
    """A task ``name`` running ``module`` with ``args`` in namespace ``ns`` (its ``namespace`` option), plus task keywords
    ``extra`` (check_mode, diff, ignore_errors, register): the config modules' tests build their tasks with it."""
    return dict({'name': name, module: dict({'namespace': ns}, **args)}, **extra)


KUBE_PROXY_CONFIGMAPS = ('kube-proxy-worker', 'kube-proxy-master', 'kube-proxy')


def kube_proxy_configmaps(cluster):
    """``{name: (resourceVersion, data)}`` of the seed's kube-proxy ConfigMaps in kube-system, as the server has them."""
    return {n: (cm['metadata']['resourceVersion'], cm['data'])
            for n in KUBE_PROXY_CONFIGMAPS for cm in [cluster.get('ConfigMap', 'kube-system', n)]}


def kube_system_backups(cluster):
    """The backup ConfigMaps (label ``netmedic.k8s/backup-of``) the modules made in kube-system."""
    return cluster.items('ConfigMap', 'kube-system', label_selector='netmedic.k8s/backup-of')


@pytest.fixture
def kube_proxy_restored(spine_leases):
    """For the tests that run the kube-proxy playbooks (W-4, W-5) against the seed's own kube-system ConfigMaps to prove
    they refuse, or plant a mode in them: no backup ConfigMap before the test; afterwards the ConfigMaps' data put back
    and any backup ConfigMap a run made removed, so a regression that writes fails its own test and no later one
    (``spine_leases``: no ``kube-system/netmedic-*`` Lease before or after). Returns the cluster."""
    cluster = spine_leases
    saved = {n: cluster.get('ConfigMap', 'kube-system', n)['data'] for n in KUBE_PROXY_CONFIGMAPS}
    assert kube_system_backups(cluster) == []
    yield cluster
    errors = []
    for name, data in saved.items():          # each one, whatever happened to the others
        try:
            now = cluster.find('ConfigMap', 'kube-system', name)
            if now is None:
                cluster.create({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': name}, 'data': data},
                               'kube-system')
            elif now.get('data') != data:
                cluster.edit('ConfigMap', 'kube-system', name, lambda cm, data=data: cm.update(data=data))
        except Exception as exc:              # pylint: disable=broad-exception-caught  # reported below, after the rest
            errors.append('%s: %r' % (name, exc))
    for backup in kube_system_backups(cluster):
        cluster.core.delete_namespaced_config_map(backup['metadata']['name'], 'kube-system')
    assert not errors, 'the seed\'s kube-proxy ConfigMaps could not all be put back: %s' % errors


def seed_objects(namespace='kube-system', kinds=None, names=None):
    """The seed's (lab/seed/cluster.yaml) objects in ``namespace``, of ``kinds`` / ``names`` when given, in seed order."""
    docs = yaml.safe_load(SEED.read_text())['objects']
    return [d for d in docs if d['metadata'].get('namespace') == namespace and (kinds is None or d['kind'] in kinds)
            and (names is None or d['metadata']['name'] in names)]


def copy_seed(cluster, namespace, kinds=('ConfigMap', 'DaemonSet'), names=None):
    """Create copies of the seed's kube-system objects (``kinds``, ``names``) in ``namespace``; returns them as stored.

    A test that edits the seed's kube-system objects works on these instead: no reset of the cluster between tests
    (12-16 s on the real server), the seed stays clean for the next one, and the namespace goes with the test.
    """
    made = []
    for doc in seed_objects(kinds=kinds, names=names):
        body = copy.deepcopy(doc)
        body['metadata'] = {k: v for k, v in body['metadata'].items() if k in ('name', 'labels', 'annotations')}
        body['metadata']['namespace'] = namespace
        made.append(cluster.create(body, namespace=namespace))
    return made


def copy_accounts(cluster, namespace, kinds=('DaemonSet', 'Deployment'), source='kube-system'):
    """Create in ``namespace`` the ServiceAccounts the seed's workload templates (``kinds`` in ``source``) run as;
    returns their names.

    ``copy_seed``'s DaemonSets get pods only with them: the real server's ServiceAccount admission refuses a pod whose
    ServiceAccount does not exist (the DaemonSet controller's ``FailedCreate``: 'error looking up service account'),
    and lab/k8s/nodesim.py creates them only in the seed's own namespaces. The double refuses the same since issue 15
    (tests/cluster/test_behaviour.py, lab/kubedouble/admission.check_service_account).
    """
    names = []
    for doc in seed_objects(namespace=source, kinds=kinds):
        spec = doc['spec']['template']['spec']
        name = spec.get('serviceAccountName') or spec.get('serviceAccount')
        if name and name != 'default' and name not in names:
            cluster.create({'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': {'name': name}}, namespace=namespace)
            names.append(name)
    return names


def pod_ready(pod):
    """A pod (a dict as served) Running with condition Ready True and no deletionTimestamp."""
    status = pod.get('status') or {}
    return (not pod['metadata'].get('deletionTimestamp') and status.get('phase') == 'Running'
            and any(c.get('type') == 'Ready' and c.get('status') == 'True' for c in status.get('conditions') or []))


def daemonset_settled(cluster, namespace, name, timeout=120, updated=True):
    """Wait until DaemonSet ``namespace/name`` is rolled out and quiet: its controller observed the current generation,
    every scheduled pod is updated and Ready (the status says so and the pods, read apart, too: one live pod per
    desired node, none Terminating). Returns ``(daemonset, pods)`` as read then; fails the test with what it last saw.

    On the real server the DaemonSet controller and nodesim take seconds (a copied DaemonSet's first pods, a rollout);
    the double's controllers a tick. A test that compares the object before and after a run waits here first, so
    the controller's own status writes are over. ``updated=False``: the pods need not run the current template (an
    ``OnDelete`` DaemonSet after a template change; the controller has still observed the generation).
    """
    from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import waiter

    def probe():
        ds = cluster.get('DaemonSet', namespace, name)
        selector = ','.join('%s=%s' % kv for kv in sorted(ds['spec']['selector']['matchLabels'].items()))
        return ds, cluster.items('Pod', namespace, label_selector=selector)

    def done(value):
        ds, pods = value
        status, want = ds.get('status') or {}, (ds.get('status') or {}).get('desiredNumberScheduled')
        return (bool(want) and status.get('observedGeneration') == ds['metadata']['generation']
                and (status.get('updatedNumberScheduled') == want or not updated) and status.get('numberReady') == want
                and status.get('numberAvailable') == want and len(pods) == want and all(pod_ready(p) for p in pods))

    try:
        return waiter.wait_until(probe, done, waiter.deadline(timeout), 0.5)
    except waiter.WaitTimeout as exc:
        ds, pods = exc.last
        pytest.fail('DaemonSet %s/%s not settled after %s s: status %s, pods %s' % (
            namespace, name, timeout, ds.get('status'), [(p['metadata']['name'], p['status'].get('phase'),
                                                         p['metadata'].get('deletionTimestamp')) for p in pods]))


def kubeconfig_server(cluster):
    """The ``cluster`` entry (server, CA) of the kubeconfig context the suite uses."""
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    context = next(c['context'] for c in config['contexts'] if c['name'] == (cluster.context or config['current-context']))
    return next(c['cluster'] for c in config['clusters'] if c['name'] == context['cluster'])


def bearer(cluster, namespace, name, rules, tmp_path):
    """A ServiceAccount ``namespace/name`` bound to a Role of ``rules`` there, and its token: ``{'host', 'api_key',
    'ca_cert'}``, the connection options of a module run as that identity, not the kubeconfig's (``ca_cert`` is the
    server's CA written under ``tmp_path``; None on the double's plain-HTTP endpoint).

    The real server issues the token through the TokenRequest API (10 minutes); the double registers one for the
    ServiceAccount (``add_identity``). Both authorize its requests through the Role, by RBAC.
    """
    cluster.create({'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': {'name': name}}, namespace=namespace)
    cluster.create({'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'Role', 'metadata': {'name': name}, 'rules': rules},
                   namespace=namespace)
    cluster.create({'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'RoleBinding', 'metadata': {'name': name},
                    'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'Role', 'name': name},
                    'subjects': [{'kind': 'ServiceAccount', 'name': name, 'namespace': namespace}]}, namespace=namespace)
    server = kubeconfig_server(cluster)
    ca_cert = None
    if server.get('certificate-authority-data'):
        ca_cert = tmp_path / ('ca-%s.crt' % name)
        ca_cert.write_bytes(base64.b64decode(server['certificate-authority-data']))
        ca_cert = str(ca_cert)
    elif server.get('certificate-authority'):
        ca_cert = server['certificate-authority']
    if cluster.is_double:
        token = cluster.double.add_identity(serviceaccount=(namespace, name))
    else:
        request = {'apiVersion': 'authentication.k8s.io/v1', 'kind': 'TokenRequest', 'spec': {'expirationSeconds': 600}}
        issued = cluster.core.create_namespaced_service_account_token(name, namespace, request, _request_timeout=REQUEST_TIMEOUT)
        token = issued.status.token
    return {'host': server['server'], 'api_key': token, 'ca_cert': ca_cert}


def hold_lease(cluster, namespace, name, holder, age=10, duration=3600):
    """Plant a Lease ``namespace/name`` held by ``holder`` (renewed ``age`` s ago, for ``duration`` s) through the API,
    as another run of a workflow would have taken it; returns it as stored. A past ``renewTime`` is any client's to set."""
    import datetime

    from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import lock

    when = lock.format_time(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age))
    return cluster.create({'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease', 'metadata': {'name': name},
                           'spec': {'holderIdentity': holder, 'leaseDurationSeconds': duration, 'renewTime': when,
                                    'acquireTime': when}}, namespace=namespace)


def _delete_spine_leases(cluster):
    for lease in cluster.items('Lease', 'kube-system'):
        if lease['metadata']['name'].startswith('netmedic-'):
            cluster._resource('Lease').delete(name=lease['metadata']['name'], namespace='kube-system',
                                              _request_timeout=REQUEST_TIMEOUT)


@pytest.fixture
def spine_leases(writable):
    """The workflows' cluster locks (role change_guard: Leases ``kube-system/netmedic-<family>``, the playbooks' default
    namespace): none before the test (one left by an earlier test fails this one, naming it), all gone after it, whatever
    it planted or a run left: kube-system stays as the seed made it (the seed has no such Lease). Returns the cluster."""
    leaked = [lease['metadata']['name'] for lease in writable.items('Lease', 'kube-system')
              if lease['metadata']['name'].startswith('netmedic-')]
    assert not leaked, 'an earlier test left these Leases in kube-system: %s' % leaked    # a leak is named, not hidden
    yield writable
    _delete_spine_leases(writable)


@pytest.fixture
def nodes_uncordoned(spine_leases):
    """Every seed Node uncordoned before the test (one an earlier test left cordoned fails this one, naming it) and
    after it: a cordon the test planted or a failed run left taken off, netmedic's cordon annotation removed, the
    real node lifecycle controller's unschedulable taint waited off (tests/lab/node_rotation_run.py ``restore_nodes``);
    no ``kube-system/netmedic-*`` Lease before or after (``spine_leases``). Returns the cluster."""
    from tests.lab.node_rotation_run import NODES, UNCORDONED, node_state, restore_nodes

    names = sorted(n['metadata']['name'] for n in spine_leases.items('Node'))
    assert names == sorted(NODES), 'the seed has three Nodes; the server has %s' % names
    state = node_state(spine_leases)
    assert state == UNCORDONED, 'a Node is cordoned before the test: %s' % state
    yield spine_leases
    restore_nodes(spine_leases)


@pytest.fixture
def seeded(writable, scratch):
    """``scratch`` holding copies of the seed's kube-system ConfigMaps and DaemonSets (``copy_seed``); the namespace."""
    copy_seed(writable, scratch)
    return scratch


@pytest.fixture
def tmp_path(request, tmp_path_factory):
    """A short per-test directory, room for ansible-core's local RPC socket (playbook_run.short_tmp_path)."""
    from tests.lab.playbook_run import short_tmp_path

    return short_tmp_path(request, tmp_path_factory)


@pytest.fixture
def playbook(tmp_path):
    """``playbook(cluster, tasks, extra_env=None, check=False, timeout=600)`` -> ``(rc, {task: result}, output)``: the
    tasks (YAML text or a list) as one play on localhost through ``ansible-playbook`` against ``cluster``, with the
    tests/lab runner (playbook_run.run_playbook: the one runner); for tests about Ansible (check mode with --diff,
    no_log, the change ticket), not only about a module."""
    from tests.lab.playbook_run import run_playbook, write_play

    tmp = tmp_path / 'tmp'
    tmp.mkdir()

    def _run(cluster, tasks, extra_env=None, check=False, timeout=600):
        path = write_play(tmp_path / 'play.yml', tasks)
        return run_playbook(cluster, tmp_path, path, check=check, timeout=timeout,
                            env=dict({'TMPDIR': str(tmp)}, **(extra_env or {})))
    return _run


@pytest.fixture
def playbook_file(tmp_path):
    """``playbook_file(cluster, playbook_path, *extra_args, check=False)`` -> ``(rc, {task: result}, output)``: one of the
    collection's playbooks on localhost against ``cluster`` (its node plays match no host), through the one runner."""
    from tests.lab.playbook_run import run_playbook

    return lambda cluster, playbook, *extra, check=False: run_playbook(cluster, tmp_path, playbook, *extra, check=check, timeout=900)


@pytest.fixture
def module_tasks(tmp_path):
    """``module_tasks(cluster, tasks, extra_env=None)`` -> ``(rc, {task name: result}, output)``: each task's module
    ``main()`` in this process (tests/harness.py ``run_tasks``), over HTTP through the real client as in a playbook
    run, with ``cluster``'s kubeconfig (and context); for tests about a module, not about Ansible."""
    from tests.harness import run_tasks

    def _run(cluster, tasks, extra_env=None):
        env = dict({'ANSIBLE_COLLECTIONS_PATH': str(ROOT / 'collections'), 'K8S_AUTH_KUBECONFIG': str(cluster.kubeconfig),
                    'TMPDIR': str(tmp_path)}, **(extra_env or {}))
        if cluster.context:
            env['K8S_AUTH_CONTEXT'] = cluster.context
        return run_tasks(tasks, env=env, tmpdir=tmp_path)
    return _run
