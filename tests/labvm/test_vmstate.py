"""The API double's kube-proxy logs follow the real kernel of the lab VMs (catalog C-2, C-1).

A KubeDouble runs with ``lab.vmstate.VMNodeState``: when the simulated kube-proxy pod on a node
starts with ``ipvs.scheduler: lc``, it says ``Using ipvs Proxier.`` only if that VM really has
``ip_vs_lc`` loaded, and otherwise prints the documented failure naming the missing module.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.kubedouble import KubeDouble  # noqa: E402
from lab.vmstate import VMNodeState  # noqa: E402

SEED = ROOT / 'lab' / 'seed' / 'cluster.yaml'
NS = 'kube-system'
KP = 'k8s-app=kube-proxy-worker'


def _proxy_pod(double, node):
    pods, _rv = double.store.list('pods', NS, label_selector=KP, field_selector='spec.nodeName=%s' % node)
    return pods[0] if pods else None


def _wait(predicate, timeout=120, what='condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail('timed out waiting for %s' % what)


def test_kube_proxy_log_follows_the_vm_kernel_modules(lab, ssh, lab_reset):
    first, second = lab['nodes'][0], lab['nodes'][1]
    ssh(first, 'modprobe ip_vs && modprobe ip_vs_lc && grep -q "^ip_vs_lc " /proc/modules')
    ssh(second, 'modprobe -r ip_vs_lc 2>/dev/null; ! grep -q "^ip_vs_lc " /proc/modules')
    state = VMNodeState(lab['inventory'])
    assert 'ip_vs_lc' in state.modules_loaded(first)
    assert 'ip_vs_lc' not in state.modules_loaded(second)
    assert state.modules_loaded('no-such-node') is None
    try:
        with KubeDouble(seed=SEED, node_state=state, tick=0.1, start_delay=0.1) as double:
            cm = double.store.get('configmaps', NS, 'kube-proxy-worker')
            cm['data']['config.conf'] = cm['data']['config.conf'].replace('scheduler: rr', 'scheduler: lc')
            double.store.update('configmaps', NS, 'kube-proxy-worker', cm)
            for node in (first, second):
                old = _wait(lambda node=node: _proxy_pod(double, node), what='kube-proxy pod on %s' % node)
                double.store.delete('pods', NS, old['metadata']['name'])
                _wait(lambda node=node, old=old: (_proxy_pod(double, node) or {}).get('metadata', {}).get('uid')
                      not in (None, old['metadata']['uid'])
                      and _proxy_pod(double, node)['status'].get('phase') == 'Running',
                      what='new kube-proxy pod on %s' % node)
            logs = {node: double.store.logs[_proxy_pod(double, node)['metadata']['uid']] for node in (first, second)}
    finally:
        lab_reset()
    assert 'Using ipvs Proxier.' in str(logs[first]), logs[first]
    assert "Can't use the IPVS proxier" in str(logs[second]) and 'ip_vs_lc' in str(logs[second]), logs[second]
    assert 'Using ipvs Proxier.' not in str(logs[second])
    assert not state.errors, state.errors
