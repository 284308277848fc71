"""Role netmedic.k8s.ipam_cleanup_daemonset (catalog C-8) against the API double, and its script on a scratch directory.

The role is applied through ansible-playbook (kubernetes.core.k8s): check mode writes nothing,
present creates the ServiceAccount, script ConfigMap and DaemonSet (whose pods run on every node),
a second run changes nothing, bad settings fail before any write, absent removes everything.
The cleanup script itself runs here with bash and a stand-in ``ctr`` that prints a fixed container
list (or fails), on a directory laid out like host-local's.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = str(ROOT / 'collections')
SCRIPT = ROOT / 'roles' / 'ipam_cleanup_daemonset' / 'files' / 'cleanup-ipam.sh'
NAME = 'cleanup-ipam-dir'
LIVE = 'c0ffee' + '0' * 58
DEAD = 'deadbeef' + '1' * 56


@pytest.fixture
def run(playbook):
    return lambda double, tasks: playbook(double, tasks, extra_env={'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS})


def role(_label, variables=None, **extra):
    entry = {'ansible.builtin.import_role': {'name': 'netmedic.k8s.ipam_cleanup_daemonset'}}
    if variables:
        entry['vars'] = variables
    entry.update(extra)
    return entry


def objects(double):
    return {kind: double.store.find(kind, 'kube-system', NAME) for kind in ('serviceaccounts', 'configmaps', 'daemonsets')}


def test_present_idempotent_check_mode_and_absent(double, run):
    rc, results, output = run(double, yaml.safe_dump([role('check', check_mode=True)]))
    assert rc == 0, output
    assert all(obj is None for obj in objects(double).values()), 'check mode created objects'

    rc, results, output = run(double, yaml.safe_dump([role('present', {'ipam_cleanup_daemonset_grace_minutes': 15})]))
    assert rc == 0, output
    made = objects(double)
    assert made['serviceaccounts']['automountServiceAccountToken'] is False
    assert made['configmaps']['data']['cleanup-ipam.sh'] == SCRIPT.read_text()
    spec = made['daemonsets']['spec']['template']['spec']
    container = spec['containers'][0]
    assert {e['name']: e['value'] for e in container['env']}['GRACE_MINUTES'] == '15'
    assert container['securityContext']['capabilities'] == {'drop': ['ALL']}
    assert container['securityContext']['readOnlyRootFilesystem'] is True
    assert spec['automountServiceAccountToken'] is False and spec['hostNetwork'] is True
    assert {v['name']: v for v in spec['volumes']}['host-ctr']['hostPath']['path'] == '/run/containerd'

    def running(store):
        pods, _rv = store.list('pods', 'kube-system', label_selector='app.kubernetes.io/name=%s' % NAME)
        return pods if len(pods) == 3 and all(p['status'].get('phase') == 'Running' for p in pods) else None

    assert sorted(p['spec']['nodeName'] for p in double.wait_for(running)) == ['lab-node-1', 'lab-node-2', 'lab-node-3']
    rv = double.store.resource_version
    rc, results, output = run(double, yaml.safe_dump([role('again', {'ipam_cleanup_daemonset_grace_minutes': 15})]))
    assert rc == 0, output
    assert not any(r.get('changed') for r in results.values()), 'second run changed something'
    assert objects(double)['daemonsets']['metadata']['resourceVersion'] == made['daemonsets']['metadata']['resourceVersion']
    assert int(double.store.resource_version) >= int(rv)

    rc, results, output = run(double, yaml.safe_dump([role('absent', {'ipam_cleanup_daemonset_state': 'absent'})]))
    assert rc == 0, output
    assert all(obj is None for obj in objects(double).values())


@pytest.mark.parametrize('variables', [
    {'ipam_cleanup_daemonset_ipam_dir': 'var/lib/cni'},
    {'ipam_cleanup_daemonset_ipam_dir': '/var/lib/../etc'},
    {'ipam_cleanup_daemonset_interval_seconds': 1},
    {'ipam_cleanup_daemonset_grace_minutes': 0},
    {'ipam_cleanup_daemonset_state': 'gone'},
])
def test_bad_settings_fail_before_any_write(double, run, variables):
    rc, results, output = run(double, yaml.safe_dump([role('bad', variables)]))
    assert rc == 2, output
    failed = [r for r in results.values() if r.get('failed')]
    assert len(failed) == 1, output
    assert 'nothing was changed' in failed[0]['msg'] or 'argument' in failed[0]['msg'].lower(), failed[0]['msg']
    assert all(obj is None for obj in objects(double).values())


# -- the script ---------------------------------------------------------------------------------

def fake_ctr(tmp_path, listing, rc=0):
    path = tmp_path / 'bin' / 'ctr'
    path.parent.mkdir(exist_ok=True)
    path.write_text('#!/bin/bash\nprintf "%%s" %s\nexit %d\n' % ("'" + listing + "'", rc))
    path.chmod(0o755)
    return path


def ipam_dir(tmp_path):
    net = tmp_path / 'gke-pod-network'
    net.mkdir()
    old = time.time() - 3600
    files = {'10.8.3.2': LIVE + '\r\neth0\r\n', 'fd00:10:8:3::2': LIVE + '\r\neth0\r\n',
             '10.8.3.4': DEAD + '\r\neth0\r\n', 'fd00:10:8:3::4': DEAD + '\r\neth0\r\n',
             '10.8.3.5': DEAD[:-1] + '2\r\neth0\r\n',          # differs only in the last character: not live
             'lock': '', 'last_reserved_ip.0': '10.8.3.5'}
    for name, text in files.items():
        (net / name).write_text(text)
        os.utime(net / name, (old, old))
    young = net / '10.8.3.6'
    young.write_text(DEAD + '\n')                              # a fresh allocation: inside the grace period
    return net


def run_script(net, ctr):
    env = dict(os.environ, IPAM_DIR=str(net), CTR=str(ctr), RUN_ONCE='1', GRACE_MINUTES='10')
    return subprocess.run(['bash', str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False)


def test_script_removes_only_old_allocations_of_dead_containers(tmp_path):
    net = ipam_dir(tmp_path)
    proc = run_script(net, fake_ctr(tmp_path, LIVE + '\n' + 'a' * 64 + '\n'))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in net.iterdir()) == ['10.8.3.2', '10.8.3.6', 'fd00:10:8:3::2', 'last_reserved_ip.0', 'lock']
    assert 'removed 3, kept 2' in proc.stdout


@pytest.mark.parametrize('listing, rc, message', [
    ('', 1, 'cannot list containers'),
    ('', 0, 'the runtime listed no containers'),
])
def test_script_deletes_nothing_when_the_runtime_cannot_be_listed(tmp_path, listing, rc, message):
    net = ipam_dir(tmp_path)
    before = sorted(p.name for p in net.iterdir())
    proc = run_script(net, fake_ctr(tmp_path, listing, rc))
    assert proc.returncode == 0, proc.stderr
    assert message in proc.stdout
    assert sorted(p.name for p in net.iterdir()) == before
