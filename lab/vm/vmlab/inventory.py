"""The Ansible inventory of the running nodes (STATE/inventory.yml)."""

import json
import os

from .config import CONTAINER_IMAGE, L2_PREFIX, STATE
from .ssh import CONTROL_DIR, SHARED_OPTS


def inventory_path():
    return os.path.join(STATE, 'inventory.yml')


def write_inventory(nodes):
    q = json.dumps  # JSON scalars are valid YAML scalars
    key = os.path.join(nodes[0]['image'], 'id_ed25519') if nodes else ''
    # The shared connection's options (vmlab/ssh.py): Ansible, labctl and the tests' ssh fixture use one connection per
    # node; Ansible adds no ControlPath of its own when one is given here (ansible.cfg's ssh_args come first and say
    # the same ControlMaster and ControlPersist).
    os.makedirs(CONTROL_DIR, mode=0o700, exist_ok=True)
    ssh_args = (
        '-o ServerAliveInterval=5 -o ServerAliveCountMax=3 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes '
        + ' '.join(SHARED_OPTS)
    )
    lines = [
        '# Written by lab/vm/labctl (`labctl up`/`reset`); regenerated on every run.',
        'all:',
        '  vars:',
        '    ansible_user: root',
        f'    ansible_ssh_private_key_file: {q(key)}',
        '    ansible_python_interpreter: /usr/bin/python3',
        f'    ansible_ssh_common_args: {q(ssh_args)}',
        '    ansible_pipelining: true',
        f'    lab_container_image: {q(CONTAINER_IMAGE)}',
        f'    lab_l2_prefix: {q(L2_PREFIX + "0/24")}',
        '  children:',
        '    lab_nodes:',
        '      hosts:',
    ]
    for n in nodes:
        lines += [
            f'        {n["name"]}:',
            '          ansible_host: 127.0.0.1',
            f'          ansible_port: {n["port"]}',
            f'          lab_l2_ip: {q(n["l2_ip"])}',
            f'          lab_l2_dev: {q(n["l2_dev"])}',
            f'          lab_l2_mac: {q(n["l2_mac"])}',
        ]
    path = inventory_path()
    with open(path + '.tmp', 'w') as fh:
        fh.write('\n'.join(lines) + '\n')
    os.rename(path + '.tmp', path)
    return path
