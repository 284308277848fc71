"""Every generated AWX survey, answered with its defaults, is accepted by its playbook (issue 11 item 5), on the double
and on the real kube-apiserver (issue 15; ported from tests/lab, where it was double-only, kind `audit`).

The survey (scripts/awx_config.py) and the playbook's own check (validate_argument_spec in
playbooks/tasks/validate_spec.yml) come from one spec; this runs each playbook in check mode with exactly what AWX
would pass when every question keeps its default (types as AWX sends them: multiple choice answers are strings, lists
and dicts arrive as text), answering the required questions as a user would. The cluster must see no write other
than server-side dry runs and the Lease of the cluster lock: the ``audit`` fixture reads the double's request record
or the real server's audit log. Node plays match no host here: a node playbook must then stop at its own "matches no
node" guard, after the spec check passed (its node half has its own tests). Check runs leave the seed as it was, so
they share the cluster of the module.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location('awx_config', str(ROOT / 'scripts' / 'awx_config.py'))
awx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(awx)

# What an operator types into the required questions (AWX sends a textarea answer as a string).
# Each playbook needs one real choice beyond the defaults (what to change); the seed's ip-masq-agent is 2.10.
ANSWERS = {
    'node_rotation': {'netmedic_rotation_nodes_text': 'lab-node-1, lab-node-2', 'netmedic_rotation_external_replacement': 'true'},
    'flannel_config': {'netmedic_flannel_cni_version': '0.3.1'},
    'ip_masq_agent': {'netmedic_masq_allow_old_agent': 'true'},
    'terway_config': {'netmedic_terway_disable_network_policy': 'true'},
    'daemonset_restart': {'netmedic_ds_name': 'kube-proxy-worker'},
    'ipam_cleanup_daemonset': {'netmedic_ipam_cleanup_image': 'registry.example/netmedic/ipam-gc@sha256:' + '0' * 64},
    'ipvs_scheduler_change': {'ipvs_scheduler_name': 'lc'},
    'arp_flush': {'netmedic_vips_text': '[{"address": "10.200.0.10", "device": "eth1"}]'},
}
READS = {'get', 'list', 'watch'}
GUARD = "netmedic_targets 'no_nodes_here' matches no node of the inventory (after --limit). Nothing was changed."


def _answers(tmp_path, extra):
    path = tmp_path / 'answers.json'
    path.write_text(json.dumps(extra))
    return path


@pytest.mark.parametrize('name', sorted(p.stem for p in (ROOT / 'playbooks' / 'specs').glob('*.yml')))
def test_survey_defaults_pass_the_playbooks_own_check_in_check_mode(name, writable, audit, playbook_file, tmp_path):
    template = next(t for t in awx.build()['job_templates'] if t['name'] == 'netmedic %s (check)' % name)
    assert template['job_type'] == 'check' and awx.validate_survey(template['survey_spec']) == []
    extra = awx.extra_vars_from_defaults(template['survey_spec'])
    extra.update(ANSWERS.get(name, {}))
    extra.pop('netmedic_targets', None)          # the node plays: the fixture's pattern matches no host
    rc, tasks, output = playbook_file(writable, ROOT / 'playbooks' / (name + '.yml'), '-e', '@%s' % _answers(tmp_path, extra),
                                      check=True)
    failed = {task: r['msg'] for task, r in tasks.items() if r.get('failed')}
    # W-4 on these (>= 1.18) clusters is C-3 alone, which needs no node: the guard applies to its N-5 path only.
    if name in awx.NODE_PLAYBOOKS and name != 'udp_timeout':
        # No node in this inventory: after the spec check, the playbook's own guard stops before anything else.
        assert rc != 0 and list(failed.values()) == [GUARD], output
    else:
        assert rc == 0 and not failed, output
    validated = [r for task, r in tasks.items() if task.startswith('Check the variables')]
    assert validated and all(not r.get('failed') for r in validated), 'the spec check ran and passed'
    entries = audit.entries()
    writes = [e for e in entries if e['verb'] not in READS and not e['dryRun']]
    assert all(e['resource'] == 'leases' for e in writes), writes
    if rc == 0:
        assert [e for e in entries if e['verb'] in READS], 'the record is not blind: a check run reads the cluster'
    assert not [lease['metadata']['name'] for lease in writable.items('Lease', 'kube-system')
                if lease['metadata']['name'].startswith('netmedic-')], 'the check run left its Lease behind'


@pytest.mark.parametrize('name, extra', [
    ('ipvs_scheduler_change', {'ipvs_scheduler_name': 'lc'}),
    # W-4 needs nodes for N-5 only (Kubernetes < 1.18: ipvsadm on every node); C-3 is a cluster edit alone.
    ('udp_timeout', {'netmedic_udp_timeout_method': 'node'}),
    ('conntrack_tuning', {}),
])
def test_kube_proxy_workflows_refuse_targets_that_match_no_node(name, extra, writable, audit, playbook_file, tmp_path):
    """Issue 11 item 5: W-3/W-4/W-5 with a netmedic_targets that matches no node took the kube-proxy Lease (and W-4/W-5
    went on to the cluster) while the node half did nothing; they stop at the shared guard
    (playbooks/tasks/require_targets.yml) before the Lease, with nothing written. (The old-server case of W-4, v1.16,
    stays in tests/lab: kind `version`.)"""
    rc, tasks, output = playbook_file(writable, ROOT / 'playbooks' / (name + '.yml'), '-e', '@%s' % _answers(tmp_path, extra),
                                      check=True)
    failed = [r['msg'] for r in tasks.values() if r.get('failed')]
    assert rc != 0 and failed == [GUARD], output
    assert [e for e in audit.entries() if e['verb'] not in READS] == [], 'nothing written, not even the Lease'


@pytest.mark.parametrize('name, extra, words', [
    # ipvsadm --set takes at most 30 days (plugins/module_utils/ipvs.py MAX_TIMEOUT); kube-proxy's udpTimeout is a duration.
    ('udp_timeout', {'netmedic_udp_timeout': 2592001}, 'netmedic_udp_timeout is 2592001: it must be >= 1, <= 2592000'),
    # kube-proxy's conntrack.maxPerCore is an *int32: 2^31 would be refused by kube-proxy after the ConfigMap was written.
    ('conntrack_tuning', {'netmedic_conntrack_max_per_core': 2147483648}, '<= 2147483647'),
    ('ipvs_scheduler_change', {'ipvs_scheduler_name': 'lc', 'ipvs_scheduler_configmaps': ['Kube_Proxy']}, 'DNS-1123'),
    ('ipam_gc_fleet', {'netmedic_max_unhealthy': '30 %'}, 'a count or a percentage'),
])
def test_values_the_real_consumer_refuses_fail_the_spec_check_before_anything(
        name, extra, words, writable, audit, playbook_file, tmp_path):
    """Issue 11 item 5: validate_argument_spec checks types only; the spec's minimum/maximum/pattern (checked by
    playbooks/tasks/validate_spec.yml) refuse what kube-proxy, ipvsadm or the API would refuse, before any read."""
    rc, tasks, output = playbook_file(writable, ROOT / 'playbooks' / (name + '.yml'), '-e', '@%s' % _answers(tmp_path, extra),
                                      check=True)
    failed = [task for task, r in tasks.items() if r.get('failed')]
    assert rc != 0 and failed == ["Check the variables' ranges and forms (minimum, maximum, pattern)"], output
    # The loop's item result names the one bad option and what its consumer takes (the JSON output holds the items).
    assert words in output and 'Nothing was changed' in output, output
    assert audit.entries() == [], 'nothing read or written'
