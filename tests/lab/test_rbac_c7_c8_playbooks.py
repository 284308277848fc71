"""Least privilege, proved for the C-7 and C-8 playbooks (issue 9: one AWX job template per fix; issue 10 hole 13):
each runs against the RBAC-enforcing API double with a token bound to exactly its rbac/<playbook>.yml grants -
check mode, then the change - with no request denied and every write made by that ServiceAccount."""

from __future__ import annotations

from pathlib import Path

import pytest

DOUBLE_ONLY = ("audit: runs under a ServiceAccount bound to its rbac/*.yml grants and asserts from the double's request record that nothing was "
               "denied and every write was that account's; the real one's audit log (k8sctl NETMEDIC_K8S_AUDIT_POLICY, off by default) is read by no test yet")

ROOT = Path(__file__).resolve().parents[2]
RBAC_DIR = ROOT / 'rbac'
PLAYBOOKS = ROOT / 'playbooks'
IMAGE = 'registry.example/netmedic/gc-tools@sha256:' + '3f' * 32

CASES = {
    'daemonset_restart': ['-e', 'netmedic_ds_name=kube-proxy-worker'],
    'ipam_cleanup_daemonset': ['-e', 'netmedic_ipam_cleanup_image=%s' % IMAGE],
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_c7_c8_playbook_runs_with_its_role(name, make_double, as_identity, playbook_file):
    double = make_double(audit=True)
    sa = as_identity(double, RBAC_DIR / ('%s.yml' % name))
    for check in (True, False):
        rc, tasks, output = playbook_file(sa, PLAYBOOKS / ('%s.yml' % name), *CASES[name], check=check)
        denied = [e for e in double.audit if not e['allowed']]
        failed = {task: r.get('msg') for task, r in tasks.items() if r.get('failed')}
        assert rc == 0, (failed, denied, output[-3000:])
    assert not [e for e in double.audit if not e['allowed']]
    user = 'system:serviceaccount:netmedic:netmedic-%s' % name.replace('_', '-')
    assert {e['user'] for e in double.audit if e['verb'] not in ('get', 'list', 'watch')} == {user}
