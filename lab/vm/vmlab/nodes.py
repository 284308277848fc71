"""The nodes' runtime state under STATE: names, paths, the per-node JSON, liveness."""

import contextlib
import json
import os
import re

from .common import LabError
from .config import PROC_PREFIX, STATE


def node_name(i):
    return f'lab-node-{i}'


def node_paths(i):
    base = os.path.join(STATE, f'node-{i}')
    return {
        'json': base + '.json',
        'pid': base + '.pid',
        'qmp': base + '.qmp',
        'console': base + '.console.log',
        'disk': base + '.qcow2',
    }


def load_nodes():
    nodes = []
    if not os.path.isdir(STATE):
        return nodes
    for name in os.listdir(STATE):
        if re.fullmatch(r'node-\d+\.json', name):
            with contextlib.suppress(OSError, ValueError), open(os.path.join(STATE, name)) as fh:
                nodes.append(json.load(fh))
    return sorted(nodes, key=lambda n: n['index'])


def save_node(node):
    path = node_paths(node['index'])['json']
    with open(path + '.tmp', 'w') as fh:
        json.dump(node, fh, indent=2)
    os.rename(path + '.tmp', path)


def pid_alive(pid):
    if not pid:
        return False
    try:
        with open(f'/proc/{pid}/comm') as fh:
            return fh.read().strip().startswith(PROC_PREFIX[:15])
    except OSError:
        return False


def read_pid(i):
    with contextlib.suppress(OSError, ValueError), open(node_paths(i)['pid']) as fh:
        return int(fh.read().strip())
    return None


def running_nodes():
    return [n for n in load_nodes() if pid_alive(n.get('pid'))]


def find_node(spec):
    m = re.fullmatch(r'(?:lab-)?(?:node-?)?(\d+)', spec)
    if not m:
        raise LabError(f'unknown node {spec!r} (use lab-node-2, node-2 or 2)')
    i = int(m.group(1))
    for n in load_nodes():
        if n['index'] == i:
            return n
    raise LabError(f'{node_name(i)} is not up')
