"""W-3's reboot after an iptables fallback (issue 9 finding 5, catalog C-2) end to end on the lab: a REAL reboot.

As in test_ipvs_scheduler_e2e.py, playbooks/ipvs_scheduler_change.yml loads ip_vs_lc on lab-node-1 and lab-node-2
only (N-4), and the API double's kube-proxy asks the real VM (``VMNodeState``) whether the module is loaded: node 3
logs "Can't use the IPVS proxier ... Using iptables Proxier.", the ConfigMap is rolled back, and then - the new part -
role node_rotation cordons and drains lab-node-3 and its default hook (roles/node_rotation/examples/provider_reboot.yml)
reboots that VM through the lab inventory. A kubelet stand-in copies each VM's /proc/sys/kernel/random/boot_id into
its Node's status.nodeInfo.bootID, as the kubelet does, so the role sees the node come back. Asserted: the VM's boot
ID really changed on node 3 only, the node is uncordoned, the ConfigMap holds the exact old bytes, no Lease is left.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.kubedouble import KubeDouble  # noqa: E402
from lab.vmstate import VMNodeState  # noqa: E402
from tests.labvm.vm_playbook import vm_playbook  # noqa: E402

NS = 'kube-system'
LEASES = ('netmedic-kube-proxy', 'netmedic-node-rotation', 'netmedic-node-disruption')


def _boot_id(ssh, node):
    return ssh(node, 'cat /proc/sys/kernel/random/boot_id', timeout=20).stdout.strip()


def _kubelet_stand_in(double, ssh, nodes, stop):
    """Every 3 s: each reachable VM's boot ID into its Node's status (a VM that is rebooting is skipped)."""
    while not stop.wait(3):
        for node in nodes:
            try:
                boot = _boot_id(ssh, node)
            except (AssertionError, subprocess.TimeoutExpired, OSError):   # the VM is rebooting: next round
                continue
            if boot and double.store.get('nodes', None, node)['status']['nodeInfo'].get('bootID') != boot:
                double.store.patch('nodes', None, node, 'application/merge-patch+json',
                                   {'status': {'nodeInfo': {'bootID': boot}}}, subresource='status')


def _play(lab, tmp_path, double):
    cmd, env = vm_playbook(
        lab, tmp_path, double, 'ipvs_scheduler_change.yml',
        '-e', 'ipvs_scheduler_name=lc', '-e', 'ipvs_scheduler_timeout=120',
        '-e', 'netmedic_targets=%s:%s' % (lab['nodes'][0], lab['nodes'][1]),
        '-e', '{"node_rotation_poll_interval": 5, "node_rotation_ready_timeout": 600, "node_rotation_provider_timeout": 600,'
        ' "node_rotation_drain_timeout": 120, "node_rotation_health_timeout": 120}',
        env={'ANSIBLE_HOST_KEY_CHECKING': 'False'})
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, check=False)
    try:
        messages = json.dumps(json.loads(proc.stdout))
    except ValueError:
        messages = proc.stdout
    return proc.returncode, messages + proc.stderr


def test_w3_iptables_fallback_reboots_that_vm_for_real(lab, ssh, lab_reset, tmp_path):
    first, second, third = lab['nodes'][:3]
    lab_reset()
    for node in (first, second, third):
        ssh(node, 'modprobe ip_vs_rr && modprobe -r ip_vs_lc 2>/dev/null; ! grep -q "^ip_vs_lc " /proc/modules')
    boots = {n: _boot_id(ssh, n) for n in (first, second, third)}
    state = VMNodeState(lab['inventory'])
    stop = threading.Event()
    try:
        with KubeDouble(seed=ROOT / 'lab' / 'seed' / 'cluster.yaml', node_state=state, tick=0.1, start_delay=0.1) as double:
            double.kubeconfig_path = double.write_kubeconfig(tmp_path / 'kubeconfig')
            kubelet = threading.Thread(target=_kubelet_stand_in, args=(double, ssh, (first, second, third), stop), daemon=True)
            kubelet.start()
            text = double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf']
            rc, output = _play(lab, tmp_path, double)
            stop.set()
            kubelet.join(timeout=60)
            restored = double.store.get('configmaps', NS, 'kube-proxy-worker')['data']['config.conf']
            nodes = {n: double.store.get('nodes', None, n) for n in (first, second, third)}
            leases = {name: double.store.find('leases', NS, name) for name in LEASES}
        after = {n: _boot_id(ssh, n) for n in (first, second, third)}
    finally:
        stop.set()
        lab_reset()
    assert rc != 0 and 'rolled back' in output, output                         # the rollout still fails ...
    assert restored == text                                                     # ... after the exact rollback,
    assert after[third] != boots[third], '%s did not really reboot: %s' % (third, output[-6000:])  # ... node 3 rebooted,
    assert after[first] == boots[first] and after[second] == boots[second]      # ... and no other node
    assert nodes[third]['status']['nodeInfo']['bootID'] == after[third]
    assert all(not nodes[n]['spec'].get('unschedulable') for n in nodes), nodes  # uncordoned
    assert 'was rebooted (catalog C-2' in output, output
    assert leases == dict.fromkeys(LEASES), leases
    assert not state.errors, state.errors
