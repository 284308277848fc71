"""Scratch network namespaces for integration tests (neighbor_flush, pod_bridge).

``Segment`` builds a small L2 segment: a hub namespace with bridge ``br0`` and one
namespace per member, each joined by a veth pair with a fixed MAC and address.
Modules run inside a member namespace through ``ip netns exec`` (the ansible process and
the module are in that namespace, nothing else on the host is touched). Every
namespace is deleted afterwards.
"""

import json
import os
import subprocess


def sh(*args, check=True):
    proc = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError('%s failed (rc=%s): %s' % (' '.join(args), proc.returncode, proc.stderr))
    return proc


class Namespaces(object):
    def __init__(self, tag):
        self.prefix = 'nm%d%s' % (os.getpid() % 100000, tag)
        self.names = []

    def add(self, suffix):
        name = self.prefix + suffix
        sh('ip', 'netns', 'add', name)
        self.names.append(name)
        sh('ip', '-n', name, 'link', 'set', 'lo', 'up')
        return name

    def ip(self, ns, *args, check=True):
        return sh('ip', '-n', ns, *args, check=check)

    def json(self, ns, *args):
        out = self.ip(ns, '-j', *args).stdout.strip()
        return json.loads(out) if out else []

    def wrapper(self, ns):
        return ['ip', 'netns', 'exec', ns]

    def cleanup(self):
        for name in reversed(self.names):
            sh('ip', 'netns', 'del', name, check=False)


class Segment(Namespaces):
    """hub (bridge br0) + members; member i has dev ``eth1`` with MAC 02:00:00:00:00:0i."""

    def __init__(self, tag):
        super(Segment, self).__init__(tag)
        self.hub = self.add('hub')
        self.ip(self.hub, 'link', 'add', 'br0', 'type', 'bridge')
        self.ip(self.hub, 'link', 'set', 'br0', 'up')
        self.members = {}

    def member(self, index, address):
        ns = self.add('m%d' % index)
        port = 'p%d' % index
        self.ip(self.hub, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth1', 'netns', ns)
        self.ip(self.hub, 'link', 'set', port, 'master', 'br0', 'up')
        self.ip(ns, 'link', 'set', 'eth1', 'address', '02:00:00:00:00:%02x' % index)
        self.ip(ns, 'addr', 'add', address + '/24', 'dev', 'eth1')
        self.ip(ns, 'link', 'set', 'eth1', 'up')
        self.members[index] = ns
        return ns
