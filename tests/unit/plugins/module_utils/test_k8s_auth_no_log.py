"""An inline kubeconfig never reaches syslog, and only its credentials are masked in results (issue #10 hole 4)."""

from __future__ import annotations

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.result import Result

TOKEN = 'kd-token-0123456789abcdef'
INLINE = {'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'lab',
          'clusters': [{'name': 'lab', 'cluster': {'server': 'https://127.0.0.1:6443'}}],
          'contexts': [{'name': 'lab', 'context': {'cluster': 'lab', 'user': 'admin'}}],
          'users': [{'name': 'admin', 'user': {'token': TOKEN}}]}


def test_issue10_h4_inline_kubeconfig_not_logged_and_only_token_masked(monkeypatch):
    logged = []
    monkeypatch.setattr(basic.AnsibleModule, 'log', lambda self, msg, log_args=None: logged.append((msg, log_args)))
    with patch_module_args({'kubeconfig': INLINE, 'context': 'lab'}):
        module = basic.AnsibleModule(argument_spec=dict(k8s_client.AUTH_ARG_SPEC), supports_check_mode=True)
    (msg, log_args), = logged
    assert TOKEN not in msg and TOKEN not in repr(log_args) and log_args['kubeconfig'] == 'NOT_LOGGING_PARAMETER'
    Result(module, ['C-6'])                  # every module makes one right after AnsibleModule
    assert TOKEN in module.no_log_values
    assert not {'v1', 'lab', 'admin', 'Config', 'https://127.0.0.1:6443'} & module.no_log_values
