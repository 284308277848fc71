"""playbooks/flannel_datadir_migration.yml (catalog W-2 = N-7 across the fleet) against the API double.

The cluster half (C-5 flannel_config, the Flannel restart) runs for real against the double. The node
half needs a real node to reboot, which this machine is not: the inventory holds ``lab-node-1``
with ``connection: local`` and its "old Flannel directories" under tmp_path. Check mode runs the whole
flow; an apply run drains, archives and removes for real and then stops at the reboot, which
ansible.builtin.reboot refuses on a local connection - exercising the failure path (node left
cordoned, archive kept). The reboot and tmpfs verification on real nodes need a cluster on the VMs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from lab.kubedouble import CrashLoop, StaticNodeState, make_log_provider

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'flannel_datadir_migration.yml'
NS = 'kube-system'


def _old_dirs(tmp_path):
    dirs = [tmp_path / 'var-lib-cni' / 'networks', tmp_path / 'var-lib-cni' / 'flannel']
    (dirs[0] / 'cb0').mkdir(parents=True)
    (dirs[0] / 'cb0' / '172.20.1.5').write_text('%064x\r\neth0' % 5)
    dirs[1].mkdir(parents=True)
    (dirs[1] / 'abc123').write_text('{"cniVersion": "0.3.1"}')
    return dirs


def run(double, tmp_path, check, args=()):
    dirs = _old_dirs(tmp_path)
    inventory = {'all': {'hosts': {'lab-node-1': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
        'netmedic_flannel_old_dirs': [str(d) for d in dirs], 'netmedic_flannel_backup_dir': str(tmp_path / 'backup'),
        'netmedic_drain_timeout': 30}}},
        'localhost': {'hosts': {'localhost': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}
    inv = tmp_path / 'inventory.yml'
    inv.write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, K8S_AUTH_KUBECONFIG=str(double.kubeconfig_path), ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'),
               ANSIBLE_STDOUT_CALLBACK='ansible.posix.json', ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'), ANSIBLE_DEPRECATION_WARNINGS='0')
    env.pop('ANSIBLE_CONFIG', None)
    cmd = [str(Path(sys.executable).with_name('ansible-playbook')), '-i', str(inv), str(PLAYBOOK), '--diff',
           '-e', 'netmedic_targets=lab-node-1'] + (['--check'] if check else []) + list(args)
    proc = subprocess.run(cmd, check=False, env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    data = json.loads(proc.stdout)
    results = {}
    for play in data['plays']:
        for task in play['tasks']:
            results.setdefault(task['task']['name'], {}).update(task['hosts'])
    return proc.returncode, results, proc.stdout + proc.stderr, dirs


def _pods_on(double, node):
    pods, _rv = double.store.list('pods', None, field_selector='spec.nodeName=%s' % node)
    return {p['metadata']['uid'] for p in pods}


def test_syntax():
    proc = subprocess.run([str(Path(sys.executable).with_name('ansible-playbook')), '--syntax-check', '-i', 'localhost,',
                           str(PLAYBOOK)], check=False, capture_output=True, text=True,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections')))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_mode_changes_nothing(double, tmp_path):
    cfg = double.store.get('configmaps', NS, 'kube-flannel-cfg')
    pods = _pods_on(double, 'lab-node-1')
    rc, results, output, dirs = run(double, tmp_path, check=True)
    assert rc == 0, output
    config = results['Set the tmpfs dataDirs in kube-flannel-cfg (C-5, N-7 step 2)']['localhost']
    assert config['changed'] is True and config['configmap']['after']  # would change
    # The verified restart of role verified_rollout (the json callback names it ``verified_rollout : ...``).
    restart = next(r for name, r in results.items()
                   if name.endswith('Restart the DaemonSets node by node, verifying each new pod (C-7)'))['localhost']['results'][0]
    assert restart['changed'] is True and restart['restarted'] == []
    removed = results['Remove the old directories (archived above)']['lab-node-1']
    assert sorted(r['item'] for r in removed['results']) == sorted(str(d) for d in dirs) and removed['changed']
    assert results['Reboot the node (tmpfs starts empty, Flannel writes its new config)']['lab-node-1'].get('skipped')
    # Nothing changed: ConfigMap, pods, cordon, directories, no archive.
    assert double.store.get('configmaps', NS, 'kube-flannel-cfg') == cfg
    assert _pods_on(double, 'lab-node-1') == pods
    assert not double.store.get('nodes', None, 'lab-node-1')['spec'].get('unschedulable')
    assert all(d.is_dir() and any(d.iterdir()) for d in dirs)
    assert not (tmp_path / 'backup').exists()


def test_apply_archives_before_removing_and_stops_cordoned_at_the_reboot(double, tmp_path):
    rc, results, output, dirs = run(double, tmp_path, check=False)
    assert rc != 0, output
    conf = json.loads(double.store.get('configmaps', NS, 'kube-flannel-cfg')['data']['cni-conf.json'])
    flannel = next(p for p in conf['plugins'] if p['type'] == 'flannel') if 'plugins' in conf else conf
    assert flannel['dataDir'] == '/var/run/cni/flannel' and flannel['ipam']['dataDir'] == '/var/run/cni/networks'
    # The node was drained (its web pod evicted) and is left cordoned by the failed reboot.
    assert double.store.get('nodes', None, 'lab-node-1')['spec'].get('unschedulable') is True
    stop = results['Stop the rollout, the node stays cordoned']['lab-node-1']
    assert stop['failed'] and 'LEFT CORDONED' in stop['msg'] and 'reboot' in stop['msg'].lower(), stop
    # The old directories are gone, and only after their archive was written and verified.
    assert not any(d.exists() for d in dirs)
    (archive,) = (tmp_path / 'backup').glob('lab-node-1-cni-*.tar.gz')
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert any(n.endswith('cb0/172.20.1.5') for n in names) and any(n.endswith('flannel/abc123') for n in names), names
    assert results['Verify the archive']['lab-node-1']['stat']['size'] > 0


def _hold_with_finalizer(double, node):
    pods, _rv = double.store.list('pods', 'default', label_selector='app=web')
    pod = next(p for p in pods if p['spec'].get('nodeName') == node)
    pod['metadata']['finalizers'] = ['example.com/hold']
    double.store.update('pods', 'default', pod['metadata']['name'], pod)
    return pod['metadata']['name']


def _ensure_web_pod_on(double, node):
    """Make sure a web pod runs on ``node`` (the double's scheduler spreads three replicas over three nodes)."""
    pods, _rv = double.store.list('pods', 'default', label_selector='app=web')
    return any(p['spec'].get('nodeName') == node for p in pods)


def test_issue9_f3_pod_left_after_the_drain_timeout_stops_before_archive_and_removal(double, tmp_path):
    assert _ensure_web_pod_on(double, 'lab-node-1')
    held = _hold_with_finalizer(double, 'lab-node-1')
    rc, results, output, dirs = run(double, tmp_path, check=False, args=('-e', 'netmedic_drain_timeout=5'))
    assert rc != 0, output
    drain = results['Drain the node (evictions, PodDisruptionBudgets honoured)']['lab-node-1']
    assert drain['failed'] and 'default/%s' % held in drain['msg'] and 'still on the node' in drain['msg'], drain
    assert 'Remove the old directories (archived above)' not in results                 # nothing destructive ran
    assert all(d.is_dir() and any(d.iterdir()) for d in dirs)
    assert not (tmp_path / 'backup').exists()
    assert double.store.get('nodes', None, 'lab-node-1')['spec'].get('unschedulable') is True


def test_issue9_f9_limit_without_localhost_fails_loudly_before_any_change(double, tmp_path):
    cfg = double.store.get('configmaps', NS, 'kube-flannel-cfg')
    rc, results, output, dirs = run(double, tmp_path, check=False, args=('--limit', 'lab-node-1'))
    assert rc != 0, output
    guard = results['Refuse a --limit that leaves out the cluster play on localhost']['lab-node-1']
    assert guard['failed'] and "--limit 'lab-node-1,localhost'" in guard['msg'], guard
    assert 'Set the tmpfs dataDirs in kube-flannel-cfg (C-5, N-7 step 2)' not in results    # the cluster play was skipped
    assert "Drain the node (evictions, PodDisruptionBudgets honoured)" not in results
    assert double.store.get('configmaps', NS, 'kube-flannel-cfg') == cfg
    assert all(d.is_dir() and any(d.iterdir()) for d in dirs)
    # With localhost in the limit, the cluster play runs (check mode: nothing changes).
    (tmp_path / 'again').mkdir()
    rc, results, output, _dirs = run(double, tmp_path / 'again', check=True, args=('--limit', 'lab-node-1,localhost'))
    assert rc == 0, output
    assert results['Set the tmpfs dataDirs in kube-flannel-cfg (C-5, N-7 step 2)']['localhost']['changed'] is True


def test_issue9_f10_w2_flannel_restart_failure_rolls_back_and_stops(make_double, tmp_path):
    """Flannel's new pod on lab-node-2 crash-loops with the tmpfs config: kube-flannel-cfg is restored exactly,
    the nodes done are restarted with it, and no node is drained, archived or removed."""
    default = make_log_provider(StaticNodeState())

    def provider(pod, store):
        labels = pod['metadata'].get('labels') or {}
        cfg = store.get('configmaps', NS, 'kube-flannel-cfg')['data']['cni-conf.json']
        if labels.get('app') == 'flannel' and pod['spec'].get('nodeName') == 'lab-node-2' and '/var/run/cni/flannel' in cfg:
            raise CrashLoop('E1201 main.go:332] failed to start with the new dataDir\n')
        return default(pod, store)

    double = make_double(log_provider=provider)
    before = double.store.get('configmaps', NS, 'kube-flannel-cfg')['data']
    rc, results, output, dirs = run(double, tmp_path, check=False, args=['-e', 'netmedic_flannel_restart_timeout=5'])
    assert rc != 0, output
    assert double.store.get('configmaps', NS, 'kube-flannel-cfg')['data'] == before        # the exact backed-up bytes
    pods, _rv = double.store.list('pods', NS, label_selector='app=flannel')
    assert all(p['status'].get('conditions') and any(c['type'] == 'Ready' and c['status'] == 'True'
                                                     for c in p['status']['conditions']) for p in pods), pods
    assert not double.store.get('nodes', None, 'lab-node-1')['spec'].get('unschedulable')  # the node play never ran
    assert all(d.is_dir() and any(d.iterdir()) for d in dirs)
    stop = next(r for name, r in results.items() if name.endswith('Stop the workflow'))['localhost']
    assert 'rolled back' in stop['msg'] and 'lab-node-2' in stop['msg'], stop['msg']
