"""playbooks/ip_masq_agent.yml (catalog C-4) against the API double: the double-only case, a rollout that does not
complete (the new agent crash-loops) rolled back from the DaemonSet backup.

The portable cases (the edit, the verified RollingUpdate rollout, idempotence, the addon-manager refusal, bad input
and a held Lease) run on both servers in tests/cluster/test_ip_masq_agent_playbook.py (issue 15).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.kubedouble.logs import CrashLoop, make_log_provider
from tests.lab.playbook_run import run_playbook

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'ip_masq_agent.yml'
NS = 'kube-system'
NEW = 'registry.lab.invalid/ip-masq-agent:v2.11.0'
UPGRADE = ['-e', 'netmedic_masq_image=%s' % NEW]


@pytest.fixture
def run(tmp_path):
    return lambda double, *extra, check=False: run_playbook(double, tmp_path, PLAYBOOK, *extra, check=check)


def agent(double):
    return double.store.get('daemonsets', NS, 'ip-masq-agent')['spec']['template']['spec']['containers'][0]


@pytest.mark.double_only("kubelet: the new agent pod crash-loops on the new configuration (the double's log provider raises CrashLoop); simulated "
                         'nodes start every pod Running and Ready')
def test_c4_rollout_that_does_not_complete_is_rolled_back_from_the_backup(make_double, run):
    default = make_log_provider()

    def provider(pod, store):
        if pod['spec']['containers'][0].get('image') == NEW:
            raise CrashLoop('F1202 ip-masq-agent test fault\n')
        return default(pod, store)

    double = make_double(log_provider=provider)
    before = agent(double)
    rc, _tasks, output = run(double, *UPGRADE, '-e', 'netmedic_masq_rollout_timeout=20')
    assert rc != 0, output
    assert 'Rolled back' in output, output
    restored = agent(double)
    assert (restored['image'], restored['args']) == (before['image'], before['args'])   # exactly the backed-up fields
    assert double.store.find('leases', NS, 'netmedic-ip-masq-agent') is None
