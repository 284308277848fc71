"""``python -m lab.kubedouble serve`` and state persistence across restarts."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from lab.kubedouble import KubeDouble

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / 'lab' / 'seed' / 'cluster.yaml'


def _serve(tmp_path, *extra):
    kubeconfig = tmp_path / 'kubeconfig'
    proc = subprocess.Popen([sys.executable, '-m', 'lab.kubedouble', 'serve', '--seed', str(SEED),
                             '--kubeconfig', str(kubeconfig), '--tick', '0.05', '--start-delay', '0.05', *extra],
                            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    banner = proc.stdout.readline()
    assert banner.startswith('kubedouble serving http://127.0.0.1:'), proc.stderr.read()
    return proc, kubeconfig


def test_serve_writes_kubeconfig_overrides_nodes_and_stops_on_sigterm(tmp_path):
    proc, kubeconfig = _serve(tmp_path, '--nodes', 'vm-a=192.168.50.2,vm-b=192.168.50.3', '--token', 's3cret',
                              '--version', 'v1.28.3')
    try:
        config = yaml.safe_load(kubeconfig.read_text())
        assert config['users'][0]['user'] == {'token': 's3cret'}
        assert (kubeconfig.stat().st_mode & 0o777) == 0o600
        api = k8s_config.new_client_from_config(str(kubeconfig))
        nodes = k8s.CoreV1Api(api).list_node().items
        assert {(n.metadata.name, n.status.addresses[0].address) for n in nodes} == {
            ('vm-a', '192.168.50.2'), ('vm-b', '192.168.50.3')}
        assert k8s.VersionApi(api).get_code().git_version == 'v1.28.3'
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_state_dir_survives_restart(tmp_path):
    state = tmp_path / 'state'
    first = KubeDouble(seed=SEED, state_dir=state, tick=0.03, start_delay=0.03).start()
    try:
        created = first.store.create('configmaps', 'default', {'metadata': {'name': 'kept'}, 'data': {'a': '1'}})
        first.wait_for(lambda s: len(s.list('pods')[0]) == 20 and all(
            p['status']['phase'] == 'Running' for p in s.list('pods')[0]))
    finally:
        first.stop()
    rv = int(first.store.resource_version)
    second = KubeDouble(seed=None, state_dir=state, tick=0.03).start()
    try:
        kept = second.store.get('configmaps', 'default', 'kept')
        assert kept['metadata']['uid'] == created['metadata']['uid']
        assert second.store.version == 'v1.24.9-gke.3200'
        pods, _rest = second.store.list('pods')
        assert len(pods) == 20 and second.store.logs[pods[0]['metadata']['uid']]
        time.sleep(0.1)                                   # controllers find nothing to do on restored state
        again = second.store.create('configmaps', 'default', {'metadata': {'name': 'next'}})
        assert int(again['metadata']['resourceVersion']) == rv + 1
    finally:
        second.stop()
    assert (state / 'state.json').exists()
