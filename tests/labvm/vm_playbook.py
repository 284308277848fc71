"""One way for the VM-lab tests to run a playbook: the lab's VMs as the nodes, localhost (the cluster plays) against an
API double, the JSON callback, the repository's collection and config, reports and temporary files under the test's
``tmp_path``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LABCTL = ROOT / 'lab' / 'vm' / 'labctl'


def labctl(*args):
    """``lab/vm/labctl <args>`` (fault injection and the like); its stdout, the test failing with its output otherwise."""
    proc = subprocess.run([str(LABCTL), *args], capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, f'labctl {" ".join(args)} failed:\n{proc.stdout}\n{proc.stderr}'
    return proc.stdout


def ssh_kv(ssh, node, script):
    """Run ``script`` on ``node`` (the ``ssh`` fixture) and read its ``key=value`` lines into a dict."""
    return dict(line.split('=', 1) for line in ssh(node, script).stdout.splitlines() if '=' in line)


def vm_playbook(lab, tmp_path, double, playbook, *extra, env=None):
    """``(cmd, env)`` for ``ansible-playbook <extra> playbooks/<playbook>`` over the lab inventory plus localhost."""
    local = tmp_path / 'localhost.yml'
    local.write_text(yaml.safe_dump({'all': {'hosts': {'localhost': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}))
    # double=None: a node-only playbook (diagnose, remediate_node) that talks to no API server.
    kube = {} if double is None else {'K8S_AUTH_KUBECONFIG': str(double.kubeconfig_path)}
    full_env = dict(os.environ, **kube, ANSIBLE_STDOUT_CALLBACK='ansible.posix.json',
                    ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_NOCOLOR='1', ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'),
                    ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'),
                    NETMEDIC_REPORT_DIR=str(tmp_path / 'report'), TMPDIR=str(tmp_path), **(env or {}))
    cmd = [str(Path(sys.executable).with_name('ansible-playbook')), '-i', lab['inventory'], '-i', str(local),
           '-e', 'netmedic_change_id=CHG-LABVM-TEST'] + list(extra) + [str(ROOT / 'playbooks' / playbook)]
    return cmd, full_env


class PlaybookRun:
    """One ``ansible-playbook`` run: ``rc``, the JSON callback's document (``data``), the raw ``output``."""

    def __init__(self, rc, data, output):
        self.rc, self.data, self.output = rc, data, output

    @property
    def stats(self):
        """``{host: {ok, changed, failures, unreachable, skipped, ...}}`` from the JSON callback."""
        return self.data.get('stats', {})

    def results(self, task_name):
        """``{host: result}`` of every task whose name (role prefix dropped) is ``task_name``, merged over plays."""
        found = {}
        for play in self.data.get('plays', []):
            for task in play['tasks']:
                if task['task']['name'].split(' : ')[-1] == task_name:
                    found.update(task['hosts'])
        return found

    def tail(self, chars=8000):
        return self.output[-chars:]


def run_vm_playbook(lab, tmp_path, double, playbook, *extra, env=None, timeout=900):
    """Run :func:`vm_playbook`'s command; a ``PlaybookRun`` (fails the test when there is no JSON document)."""
    cmd, full_env = vm_playbook(lab, tmp_path, double, playbook, *extra, env=env)
    proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False, cwd=str(ROOT))
    output = proc.stdout + proc.stderr
    try:
        # The JSON document first; other enabled callbacks may print lines after it.
        data = json.JSONDecoder().raw_decode(proc.stdout, proc.stdout.index('{'))[0]
    except ValueError as exc:
        raise AssertionError('ansible-playbook %s printed no JSON document (rc=%s)\n%s' % (playbook, proc.returncode, output[-8000:])) from exc
    return PlaybookRun(proc.returncode, data, output)
