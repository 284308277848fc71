"""W-4's survey guard on an old server (issue 11 item 5), on the API double only (kind `version`).

The surveys' check runs (every survey's defaults accepted, the no-node guard of W-3/W-4/W-5, the spec's ranges) run on
both servers in tests/cluster/test_awx_surveys.py (issue 15); what stays here needs a v1.16 server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READS = {'get', 'list', 'watch'}
GUARD = "netmedic_targets 'no_nodes_here' matches no node of the inventory (after --limit). Nothing was changed."


@pytest.mark.double_only('version: W-4 on a v1.16.9-aliyun.1 server (N-5 needs the nodes there); the other cases run on both '
                         'servers in tests/cluster/test_awx_surveys.py')
@pytest.mark.parametrize('name, extra, version', [
    # W-4 needs nodes for N-5 only (Kubernetes < 1.18: ipvsadm on every node); C-3 is a cluster edit alone.
    ('udp_timeout', {}, 'v1.16.9-aliyun.1'),
])
def test_kube_proxy_workflows_refuse_targets_that_match_no_node(name, extra, version, make_double, playbook_file, tmp_path):
    """Issue 11 item 5: W-3/W-4/W-5 with a netmedic_targets that matches no node took the kube-proxy Lease (and W-4/W-5
    went on to the cluster) while the node half did nothing; they stop at the shared guard
    (playbooks/tasks/require_targets.yml) before the Lease, with nothing written."""
    answers = tmp_path / 'extra.json'
    answers.write_text(json.dumps(extra))
    double = make_double(audit=True, **({'version': version} if version else {}))
    del double.audit[:]
    rc, tasks, output = playbook_file(double, ROOT / 'playbooks' / (name + '.yml'), '-e', '@%s' % answers, check=True)
    failed = [r['msg'] for r in tasks.values() if r.get('failed')]
    assert rc != 0 and failed == [GUARD], output
    assert [e for e in double.audit if e['verb'] not in READS] == [], 'nothing written, not even the Lease'
