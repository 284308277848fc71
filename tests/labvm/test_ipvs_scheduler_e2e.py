"""Catalog W-3 end to end on the lab: real VM kernels + the API double (issue: cluster remediations).

playbooks/ipvs_scheduler_change.yml runs ``ipvs_modules`` (N-4) on lab-node-1 and lab-node-2 only,
then the role ``ipvs_scheduler`` against the API double, whose simulated kube-proxy asks the real
VM of the same name (``lab.vmstate.VMNodeState``: ``/proc/modules`` over SSH) whether
``ip_vs_lc`` is loaded. Nodes 1 and 2 succeed; node 3, whose kernel never loaded the module,
logs the documented failure; the role restores the ConfigMap exactly and restarts kube-proxy
everywhere with the old scheduler.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.kubedouble import KubeDouble  # noqa: E402
from lab.vmstate import VMNodeState  # noqa: E402
from tests.labvm.vm_playbook import vm_playbook  # noqa: E402

NS = 'kube-system'


def _play(lab, tmp_path, double):
    cmd, env = vm_playbook(
        lab, tmp_path, double, 'ipvs_scheduler_change.yml',
        '-e', 'ipvs_scheduler_name=lc', '-e', 'ipvs_scheduler_timeout=120',
        '-e', 'netmedic_targets=%s:%s' % (lab['nodes'][0], lab['nodes'][1]),
        # The reboot after the fallback is test_w3_fallback_reboot_e2e.py's (it needs a kubelet stand-in for bootID).
        '-e', 'netmedic_reboot_on_fallback=false')
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    data = json.loads(proc.stdout)
    tasks = {}
    for play in data['plays']:
        for task in play['tasks']:
            for host, res in task['hosts'].items():
                tasks.setdefault(task['task']['name'].split(' : ')[-1], {})[host] = res
    return proc.returncode, tasks, proc.stdout + proc.stderr


def test_scheduler_change_follows_the_real_kernels_and_rolls_back(lab, ssh, lab_reset, tmp_path):
    first, second, third = lab['nodes'][:3]
    lab_reset()
    for node in (first, second, third):
        # An IPVS-mode node as kube-proxy leaves it: ip_vs + the current scheduler (rr) loaded, lc not.
        ssh(node, 'modprobe ip_vs_rr && modprobe -r ip_vs_lc 2>/dev/null; ! grep -q "^ip_vs_lc " /proc/modules')
    state = VMNodeState(lab['inventory'])
    try:
        with KubeDouble(seed=ROOT / 'lab' / 'seed' / 'cluster.yaml', node_state=state, tick=0.1, start_delay=0.1) as double:
            double.kubeconfig_path = double.write_kubeconfig(tmp_path / 'kubeconfig')
            text = double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf']
            rc, tasks, output = _play(lab, tmp_path, double)
            restored = double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf']
            pods, _rv = double.store.list('pods', NS, label_selector='k8s-app=kube-proxy-worker')
            logs = {p['spec']['nodeName']: ''.join(double.store.logs[p['metadata']['uid']].values()) for p in pods}
        loaded = {node: 'ip_vs_lc' in (state.modules_loaded(node) or set()) for node in (first, second, third)}
    finally:
        lab_reset()
    assert rc != 0, output                                                      # the workflow stops ...
    assert loaded == {first: True, second: True, third: False}                 # N-4 ran on nodes 1 and 2 only
    # Role verified_rollout restarts one node per task (issue 9 finding 13): 'Restart and verify (C-7) - <ds> on <node>'.
    steps = [hosts['localhost'] for name, hosts in tasks.items()
             if name.startswith('Restart and verify (C-7) - kube-proxy-worker on ') and 'localhost' in hosts]
    assert [e['node'] for r in steps for e in r.get('restarted') or []] == [first, second]   # ... success where lc is loaded,
    failed = [r for r in steps if r.get('failed')]
    assert len(failed) == 1 and failed[0]['failed_node']['node'] == third     # ... failure where it is not,
    assert 'ip_vs_lc' in failed[0]['failed_node']['line'], failed[0]['failed_node']
    assert restored == text                                                     # ... and the caller rolled back
    assert all('Using ipvs Proxier.' in logs[n] for n in (first, second, third)), logs
    assert 'rolled back' in tasks['Stop the workflow']['localhost']['msg']
    assert not state.errors, state.errors
