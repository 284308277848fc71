"""A fake node for module_utils and module tests: recorded tool output behind the real Runner."""

from __future__ import annotations

import os
import shutil
import socket
import tarfile
import tempfile
from pathlib import Path

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import Runner

FIXTURES = Path(__file__).resolve().parents[1] / 'fixtures'


class FakeModule(object):
    """What Runner needs from AnsibleModule: binaries on the node and their recorded replies.

    ``replies`` maps an argument tuple (without the binary's directory) to
    ``(rc, stdout, stderr)``; a command with no reply fails the test.
    """

    def __init__(self, binaries, replies):
        self.binaries = dict(binaries)
        self.replies = dict(replies)
        self.calls = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return self.binaries.get(name)

    def run_command(self, cmd, **kwargs):
        key = (cmd[0].rsplit('/', 1)[-1],) + tuple(cmd[1:])
        self.calls.append(key)
        assert kwargs.get('use_unsafe_shell') is False
        if key not in self.replies:
            raise AssertionError('unexpected command %r' % (key,))
        return self.replies[key]


def extract_host_local(dest):
    """Unpack the real host-local data directory (see fixtures/README.md) under ``dest``.

    It is kept as a tarball: its files end lines with CRLF and IPv6 allocations are
    named with colons, which the sanity tests reject in a plain tree.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(str(FIXTURES / 'host-local' / 'networks.tar.gz')) as tar:
        # The 'data' filter refuses absolute/escaping members and keeps bytes and mode bits.
        tar.extractall(str(dest), filter='data')
    return dest / 'networks'


@pytest.fixture
def host_local_networks(tmp_path):
    """Path of the unpacked ``networks`` directory (``cb0``, ``gke-pod-network``)."""
    return extract_host_local(tmp_path / 'host-local')


def fixture_text(relpath):
    return (FIXTURES / relpath).read_text()


def fixture_reply(stem):
    """``(rc, stdout, stderr)`` recorded as ``<stem>.rc/.stdout/.stderr``."""
    rc = int((FIXTURES / (stem + '.rc')).read_text().strip().split('=')[1])
    return rc, (FIXTURES / (stem + '.stdout')).read_text(), (FIXTURES / (stem + '.stderr')).read_text()


STANDARD_BINARIES = {
    'ip': '/usr/sbin/ip',
    'dmesg': '/usr/bin/dmesg',
    'journalctl': '/usr/bin/journalctl',
    'ipvsadm': '/usr/sbin/ipvsadm',
    'ctr': '/usr/bin/ctr',
}


def standard_replies():
    return {
        ('dmesg',): (0, fixture_text('dmesg/debian-6.1-table-full.txt'), ''),
        ('ipvsadm', '-L', '--timeout'): (0, fixture_text('ipvsadm/timeout-default.txt'), ''),
        ('ip', '-j', '-d', 'link', 'show'): (0, fixture_text('ip/link-cbr0-down.json'), ''),
        ('ip', '-j', 'neigh', 'show'): (0, fixture_text('ip/neigh-states.json'), ''),
    }


@pytest.fixture
def make_runner():
    def _make(binaries=None, replies=None):
        module = FakeModule(STANDARD_BINARIES if binaries is None else binaries,
                            standard_replies() if replies is None else replies)
        runner = Runner(module)
        runner.fake = module
        return runner
    return _make


class NodeTree(object):
    """A node's file system under a temporary root, filled from the fixtures."""

    def __init__(self, root):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / 'run').mkdir(exist_ok=True)
        (root / 'var').mkdir(exist_ok=True)
        # Debian: /var/run is an absolute symlink to /run (resolved inside the root).
        (root / 'var' / 'run').symlink_to('/run')

    def write(self, node_path, content):
        target = self.root / node_path.lstrip('/')
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        return target

    def copy(self, fixture, node_path):
        return self.write(node_path, (FIXTURES / fixture).read_bytes())

    def host_local(self, network, node_path):
        """Copy one real host-local network directory (``cb0``, ``gke-pod-network``) to ``node_path``."""
        source = extract_host_local(Path(tempfile.mkdtemp(prefix='nm-hl-'))) / network
        target = self.root / node_path.lstrip('/')
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(str(source), str(target))
        shutil.rmtree(str(source.parent.parent))
        return target

    def socket(self, node_path):
        target = self.root / node_path.lstrip('/')
        target.parent.mkdir(parents=True, exist_ok=True)
        # Bind at a short path (AF_UNIX paths are limited to 107 bytes), then move it.
        short = tempfile.mkdtemp(prefix='nm')
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(os.path.join(short, 's'))
        finally:
            sock.close()
        os.rename(os.path.join(short, 's'), str(target))
        os.rmdir(short)
        return target

    def sysctl(self, key, value):
        return self.write('/proc/sys/' + key.replace('.', '/'), '%s\n' % value)


@pytest.fixture
def node(tmp_path):
    """A Debian 6.1 node: conntrack 16/16, IPVS with services, /run on tmpfs, resolv.conf."""
    tree = NodeTree(tmp_path / 'root')
    tree.sysctl('net.netfilter.nf_conntrack_max', 16)
    tree.sysctl('net.netfilter.nf_conntrack_count', 16)
    tree.sysctl('net.netfilter.nf_conntrack_buckets', 4096)
    tree.write('/sys/module/nf_conntrack/parameters/hashsize', '4096\n')
    tree.sysctl('net.ipv4.ip_local_port_range', '32768\t60999')
    tree.sysctl('net.ipv4.ip_local_reserved_ports', '')
    tree.copy('proc/net-ip_vs-services.txt', '/proc/net/ip_vs')
    tree.copy('proc/modules-ipvs-in-use.txt', '/proc/modules')
    tree.copy('proc/mounts-vm-run-tmpfs.txt', '/proc/mounts')
    tree.copy('resolv/host-etc-resolv.conf', '/etc/resolv.conf')
    return tree
