"""Fixtures for the read-only cluster suite (tests/cluster/README.md).

``cluster`` is either the cluster named by ``NETMEDIC_TEST_KUBECONFIG`` (and optionally
``NETMEDIC_TEST_CONTEXT``), or, when that variable is unset, the lab's Kubernetes API double
started from ``lab/seed/cluster.yaml`` (so CI runs the same suite).  The check-mode suite only
reads; the behaviour and apply tests (test_behaviour.py, test_apply_real.py) write, so they run on
the double and on a real cluster only when ``NETMEDIC_TEST_WRITABLE=1`` says it is a disposable
one (the lab's own control plane, lab/k8s/k8sctl; `make realcluster-test` sets it).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SEED = ROOT / 'lab' / 'seed' / 'cluster.yaml'


@dataclasses.dataclass
class Cluster:
    kubeconfig: Path
    context: str | None
    is_double: bool
    api: k8s.ApiClient
    double: object = None

    @property
    def core(self):
        return k8s.CoreV1Api(self.api)

    @property
    def apps(self):
        return k8s.AppsV1Api(self.api)

    @property
    def policy(self):
        return k8s.PolicyV1Api(self.api)

    @property
    def writable(self):
        """May tests write here: the double, or a real cluster declared disposable (NETMEDIC_TEST_WRITABLE=1)."""
        return self.is_double or os.environ.get('NETMEDIC_TEST_WRITABLE') == '1'

    @property
    def server(self):
        return 'double' if self.is_double else 'real'


def _all_pods_running(store):
    pods, _rv = store.list('pods')
    return bool(pods) and all(p['status'].get('phase') == 'Running' for p in pods)


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
        yield Cluster(kubeconfig=path, context=context, is_double=False, api=api)
        api.close()
        return
    if context:
        pytest.fail('NETMEDIC_TEST_CONTEXT is set but NETMEDIC_TEST_KUBECONFIG is not')
    from lab.kubedouble import KubeDouble

    double = KubeDouble(seed=SEED, tick=0.02, start_delay=0.02).start()
    try:
        path = double.write_kubeconfig(tmp_path_factory.mktemp('double') / 'kubeconfig')
        double.wait_for(_all_pods_running)
        api = k8s_config.new_client_from_config(str(path))
        yield Cluster(kubeconfig=Path(path), context=None, is_double=True, api=api, double=double)
        api.close()
    finally:
        double.stop()
    assert not double.failures, 'the double hit unexpected exceptions: %r' % double.failures


@pytest.fixture
def writable(cluster):
    """The cluster, when tests may write to it; a skip that names why otherwise (never a pass)."""
    if not cluster.writable:
        pytest.skip('writes to a real cluster need NETMEDIC_TEST_WRITABLE=1 (a disposable one: lab/k8s/k8sctl)')
    return cluster


@pytest.fixture
def scratch(writable):
    """A fresh namespace of the test's own (deleted afterwards, waiting for it to go on a real server)."""
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
