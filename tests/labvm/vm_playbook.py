"""One way for the VM-lab tests to run a playbook: the lab's VMs as the nodes, localhost (the cluster plays) against an
API double, the JSON callback, the repository's collection and config, reports and temporary files under the test's
``tmp_path``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def vm_playbook(lab, tmp_path, double, playbook, *extra, env=None):
    """``(cmd, env)`` for ``ansible-playbook <extra> playbooks/<playbook>`` over the lab inventory plus localhost."""
    local = tmp_path / 'localhost.yml'
    local.write_text(yaml.safe_dump({'all': {'hosts': {'localhost': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}))
    full_env = dict(os.environ, K8S_AUTH_KUBECONFIG=str(double.kubeconfig_path), ANSIBLE_STDOUT_CALLBACK='ansible.posix.json',
                    ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_NOCOLOR='1', ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'),
                    ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'),
                    NETMEDIC_REPORT_DIR=str(tmp_path / 'report'), TMPDIR=str(tmp_path), **(env or {}))
    cmd = [str(Path(sys.executable).with_name('ansible-playbook')), '-i', lab['inventory'], '-i', str(local),
           '-e', 'netmedic_change_id=CHG-LABVM-TEST'] + list(extra) + [str(ROOT / 'playbooks' / playbook)]
    return cmd, full_env
