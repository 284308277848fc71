"""terway_config's eni_conf never reaches the node's syslog (issue 10 hole 4 / C-6): the option may hold
access_key/access_secret. Only credential-like values stay masked in the result (a vSwitch ID is shown)."""

from __future__ import annotations

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.modules import terway_config

SECRET = 'LTAI-lab-secret-0123456789abcdef'
ENI_CONF = {'access_key': 'LTAI5tlabkey0000', 'access_secret': SECRET, 'vswitches': {'cn-hangzhou-i': ['vsw-lab1']}}


class Stop(Exception):
    pass


def test_issue10_c6_eni_conf_not_logged_and_only_secrets_masked(monkeypatch):
    logged, seen = [], {}
    monkeypatch.setattr(basic.AnsibleModule, 'log', lambda self, msg, log_args=None: logged.append((msg, log_args)))

    def no_cluster(params):
        seen['module_params'] = params
        raise Stop()

    monkeypatch.setattr(k8s_client, 'Cluster', no_cluster)
    original_init = basic.AnsibleModule.__init__

    def capture(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        seen['module'] = self

    monkeypatch.setattr(basic.AnsibleModule, '__init__', capture)
    with patch_module_args({'eni_conf': ENI_CONF}), pytest.raises(Stop):
        terway_config.main()
    (msg, log_args), = logged
    assert SECRET not in msg and SECRET not in repr(log_args), msg
    assert log_args['eni_conf'] == 'NOT_LOGGING_PARAMETER'
    no_log = seen['module'].no_log_values
    assert SECRET in no_log and 'LTAI5tlabkey0000' in no_log
    assert not {'vsw-lab1', 'cn-hangzhou-i'} & no_log          # readable in the result and the diff
