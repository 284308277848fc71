"""W-3 (role ipvs_scheduler, the cluster half of playbooks/ipvs_scheduler_change.yml) in check mode over a node an
earlier run left cordoned for its reboot after an iptables fallback (issue 9 finding 5), on the double and on the real
kube-apiserver (issue 15).

Ported from tests/lab/test_w3_fallback_reboot.py (issue 15 item 4; its check-mode case: no restart, no log read, no
reboot; the other cases verify kube-proxy's log lines or a new boot ID, which the simulated nodes do not give, and stay
there). The role runs as the playbook's cluster play does (tests/lab/w3_run.py ``run_role``), with the reboot's
provider stand-in configured: check mode must name the node it would reboot and write nothing - the node stays cordoned
with netmedic's annotation and its boot ID, no Node is written at all (spec, labels, annotations, non-status
managedFields; on the double the resourceVersion), no Lease is taken, the seed's kube-proxy ConfigMap keeps its bytes.
The cordon is planted through the API and taken off after the test (``nodes_uncordoned``); ``spine_leases``: no
``kube-system/netmedic-*`` Lease before or after. What is asserted is read back through the API.
"""

from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import waiter
from tests.lab.node_rotation_run import NODE_RV_ON_DOUBLE, UNSCHEDULABLE_TAINT, boot_ids, node_state, node_writes
from tests.lab.w3_run import CM, CORDON_ANNOTATION, LEASES, NS, reboot_vars, run_role

HOLDER = 'w3-fallback/awx-job-54'


def _text(cluster):
    return cluster.get('ConfigMap', NS, CM)['data']['config.conf']


def _leases(cluster):
    return {name: cluster.find('Lease', NS, name) for name in LEASES}


@pytest.mark.double_strict(NODE_RV_ON_DOUBLE)
def test_issue9_f5_w3_check_mode_says_which_node_it_would_reboot(nodes_uncordoned, tmp_path):
    """Check mode with a node an earlier run left cordoned for its reboot: the run names it ("would reboot"), and
    nothing is written - the node stays cordoned with its boot ID, no Lease, the ConfigMap unchanged."""
    cluster = nodes_uncordoned
    cluster.core.patch_node('lab-node-3', {'spec': {'unschedulable': True}, 'metadata': {'annotations': {CORDON_ANNOTATION: HOLDER}}},
                            _content_type='application/merge-patch+json')
    # The node lifecycle controller adds the unschedulable taint a moment later (the double at its next tick): the
    # snapshot is taken once it is there, so "nothing written" compares like with like (review finding).
    waiter.wait_until(lambda: node_state(cluster)['lab-node-3'], lambda state: state[2] == [UNSCHEDULABLE_TAINT],
                      waiter.deadline(60), 0.5)
    assert node_state(cluster)['lab-node-3'][:2] == (True, HOLDER)
    text, boots, writes = _text(cluster), boot_ids(cluster), node_writes(cluster)
    rc, output = run_role(cluster, tmp_path, 'check', check=True, **reboot_vars(cluster, tmp_path))
    assert rc == 0, output
    assert 'would reboot' in output and 'lab-node-3' in output, output
    assert node_state(cluster)['lab-node-3'][:2] == (True, HOLDER)
    assert boot_ids(cluster) == boots
    assert node_writes(cluster) == writes
    assert _text(cluster) == text
    assert _leases(cluster) == dict.fromkeys(LEASES)
