"""playbooks/tasks/validate_spec.yml in a node play keeps each host's facts its own (issue 12 item 4).

Found on the VM lab (tests/labvm/test_diagnose_findings.py): after validate_spec.yml's run_once tasks in a play over
several nodes, ansible-core (2.21.5 here) had given every host one shared fact store, so diagnose.yml's per-node
node_network_facts left every host with the last node's ansible_facts - each node of the report showed one node's
findings. This reproduces it without VMs: three local hosts, the real validate_spec.yml and diagnose spec, then a
stand-in facts module that returns each host's own name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FACTS_MODULE = textwrap.dedent("""\
    #!/usr/bin/python
    from ansible.module_utils.basic import AnsibleModule
    module = AnsibleModule(argument_spec=dict(name=dict(type='str', required=True)))
    module.exit_json(changed=False, ansible_facts={'netmedic': {'who': module.params['name']}})
    """)

PLAY = textwrap.dedent("""\
    - name: Check the variables as diagnose.yml does (run_once tasks over the nodes)
      hosts: nodes
      gather_facts: false
      tasks:
        - name: Check the variables against playbooks/specs/diagnose.yml
          ansible.builtin.include_tasks: tasks/validate_spec.yml
          vars:
            netmedic_spec_name: diagnose

    - name: A facts module on every node
      hosts: nodes
      gather_facts: false
      tasks:
        - name: Facts
          stand_in_facts:
            name: "{{ inventory_hostname }}"
        - name: Every host's facts as the controller sees them
          run_once: true
          ansible.builtin.debug:
            msg: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, ['ansible_facts', 'netmedic', 'who']))) }}"
    """)


def test_issue12_validate_spec_leaves_each_node_its_own_facts(tmp_path):
    (tmp_path / 'tasks').symlink_to(ROOT / 'playbooks' / 'tasks')
    (tmp_path / 'specs').symlink_to(ROOT / 'playbooks' / 'specs')
    (tmp_path / 'library').mkdir()
    (tmp_path / 'library' / 'stand_in_facts.py').write_text(FACTS_MODULE)
    (tmp_path / 'play.yml').write_text(PLAY)
    hosts = {name: {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable} for name in ('n1', 'n2', 'n3')}
    (tmp_path / 'inventory.json').write_text(json.dumps({'nodes': {'hosts': hosts}}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'),
               ANSIBLE_STDOUT_CALLBACK='ansible.posix.json', ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'), NETMEDIC_REPORT_DIR=str(tmp_path / 'report'))
    proc = subprocess.run([str(Path(sys.executable).with_name('ansible-playbook')), '-i', str(tmp_path / 'inventory.json'),
                           str(tmp_path / 'play.yml')], env=env, capture_output=True, text=True, timeout=300, check=False,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    data = json.JSONDecoder().raw_decode(proc.stdout, proc.stdout.index('{'))[0]
    seen = [host['msg'] for play in data['plays'] for task in play['tasks'] if task['task']['name'] == "Every host's facts as the controller sees them"
            for host in task['hosts'].values()]
    assert seen == [{'n1': 'n1', 'n2': 'n2', 'n3': 'n3'}], seen
