"""Fixtures for the Kubernetes API double's own tests.

``double`` starts a KubeDouble from ``lab/seed/cluster.yaml`` on a free port with fast controller
timings, waits until the seeded pods run, writes a kubeconfig and points TMPDIR at a private
directory (kubernetes.core caches discovery in ``$TMPDIR/k8srcp-*.json``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
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

SEED = ROOT / 'lab' / 'seed' / 'cluster.yaml'
FAST = {'tick': 0.02, 'start_delay': 0.02}


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
    pods, _rest = store.list('pods')
    return bool(pods) and all(p['status'].get('phase') == 'Running' for p in pods)


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
    """Run tasks through ``ansible-playbook`` on localhost; returns {task name: result} and rc."""

    def _run(double, tasks, extra_env=None):
        play = [{'hosts': 'localhost', 'gather_facts': False,
                 'vars': {'ansible_python_interpreter': sys.executable},
                 'tasks': yaml.safe_load(textwrap.dedent(tasks))}]
        path = tmp_path / 'play.yml'
        path.write_text(yaml.safe_dump(play))
        env = dict(os.environ, K8S_AUTH_KUBECONFIG=str(double.kubeconfig_path), TMPDIR=str(private_tmpdir),
                   ANSIBLE_STDOUT_CALLBACK='ansible.posix.json', ANSIBLE_LOAD_CALLBACK_PLUGINS='1',
                   ANSIBLE_NOCOLOR='1', ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'),
                   ANSIBLE_DEPRECATION_WARNINGS='0', ANSIBLE_PYTHON_INTERPRETER=sys.executable)
        env.update(extra_env or {})
        env.pop('ANSIBLE_CONFIG', None)
        proc = subprocess.run([str(Path(sys.executable).with_name('ansible-playbook')), '-i', 'localhost,',
                               '-c', 'local', str(path)], check=False, env=env, cwd=str(tmp_path), capture_output=True,
                              text=True, timeout=120)
        try:
            data = json.loads(proc.stdout)
        except ValueError as exc:
            raise AssertionError('no JSON from ansible-playbook (rc=%s)\n%s\n%s'
                                 % (proc.returncode, proc.stdout, proc.stderr)) from exc
        results = {t['task']['name']: t['hosts']['localhost'] for t in data['plays'][0]['tasks']}
        return proc.returncode, results, proc.stdout + proc.stderr

    return _run


def _run_playbook_file(double, tmp_path, playbook, *extra, check=False):
    """Run one of the collection's playbooks on localhost against ``double`` (node plays match no host).

    Returns ``(rc, {task name: localhost result}, output)``.
    """
    env = dict(os.environ, K8S_AUTH_KUBECONFIG=str(double.kubeconfig_path), ANSIBLE_STDOUT_CALLBACK='ansible.posix.json',
               ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_NOCOLOR='1', ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'), ANSIBLE_DEPRECATION_WARNINGS='0',
               NETMEDIC_REPORT_DIR=str(tmp_path / 'report'))
    env.pop('ANSIBLE_CONFIG', None)
    cmd = [str(Path(sys.executable).with_name('ansible-playbook')), '-i', 'localhost,', '-c', 'local',
           '-e', 'ansible_python_interpreter=%s' % sys.executable, '-e', 'netmedic_targets=no_nodes_here',
           str(playbook), *extra]
    if check:
        cmd += ['--check', '--diff']
    proc = subprocess.run(cmd, env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    data = json.loads(proc.stdout)
    tasks = {t['task']['name']: t['hosts']['localhost'] for play in data['plays'] for t in play['tasks']
             if 'localhost' in t['hosts']}
    return proc.returncode, tasks, proc.stdout + proc.stderr


@pytest.fixture
def playbook_file(tmp_path):
    """``playbook_file(double, playbook_path, *extra_args, check=False)`` -> ``(rc, {task: result}, output)``."""
    return lambda double, playbook, *extra, check=False: _run_playbook_file(double, tmp_path, playbook, *extra, check=check)
