"""The Molecule scenario cannot pass vacuously (issue 12, finding 4c).

Its plays target ``lab-node-1``. With an inventory that lacks that host, Ansible's default
is a warning and a skipped play, so every play would be skipped and the scenario would
pass having tested nothing. The scenario's own environment (molecule.yml provisioner.env;
molecule does not read ansible.cfg) makes a host-pattern mismatch an error. Checked with
``ansible-playbook --list-hosts`` (no VM, no molecule run) and that same environment.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / 'extensions' / 'molecule' / 'conntrack_tuning'
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name('ansible-playbook'))
NODE_PLAYBOOKS = ['prepare.yml', 'converge.yml', 'side_effect.yml', 'verify.yml']


def scenario_env():
    """molecule.yml's provisioner.env, without the entries molecule expands at run time."""
    env = yaml.safe_load((SCENARIO / 'molecule.yml').read_text())['provisioner']['env']
    return {k: str(v) for k, v in env.items() if '${' not in str(v)}


def list_hosts(tmp_path, playbooks, hosts):
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'all': {'hosts': {h: {'ansible_host': '192.0.2.10'} for h in hosts}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'), ANSIBLE_NOCOLOR='1', **scenario_env())
    return subprocess.run([ANSIBLE_PLAYBOOK, '--list-hosts', '-i', str(inventory)] + [str(SCENARIO / p) for p in playbooks],
                          env=env, capture_output=True, text=True, timeout=120, check=False, cwd=str(SCENARIO))


def test_issue12_4c_scenario_sets_host_pattern_mismatch_error():
    assert scenario_env().get('ANSIBLE_HOST_PATTERN_MISMATCH') == 'error'


@pytest.mark.parametrize('playbook', NODE_PLAYBOOKS)
def test_issue12_4c_playbook_fails_when_the_inventory_lacks_its_host(tmp_path, playbook):
    proc = list_hosts(tmp_path, [playbook], ['some-other-node'])
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert 'Could not match supplied host pattern' in proc.stderr and 'lab-node-1' in proc.stderr, proc.stderr


def test_issue12_4c_playbooks_list_their_host_when_present(tmp_path):
    proc = list_hosts(tmp_path, NODE_PLAYBOOKS, ['lab-node-1'])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plays = sum(len(yaml.safe_load((SCENARIO / p).read_text())) for p in NODE_PLAYBOOKS)
    assert proc.stdout.count('hosts (1):') == plays >= len(NODE_PLAYBOOKS), proc.stdout
