from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils.node import files as node_files
from ansible_collections.netmedic.k8s.plugins.module_utils.node import sysctl


class FakeModule(object):
    """The two AnsibleModule methods write_file_atomic uses, with their real semantics."""

    def __init__(self):
        self.backups = []

    def backup_local(self, path):
        dest = path + '.bak~'
        with open(path) as src, open(dest, 'w') as dst:
            dst.write(src.read())
        self.backups.append(dest)
        return dest

    def atomic_move(self, src, dest):
        os.rename(src, dest)


def test_key_to_path():
    assert sysctl.key_to_path('net.netfilter.nf_conntrack_max') == '/proc/sys/net/netfilter/nf_conntrack_max'
    for bad in ('', '../etc/passwd', '/etc', 'net..x', '.net'):
        with pytest.raises(ValueError, match='invalid sysctl key:'):
            sysctl.key_to_path(bad)


def test_read_and_write_value(tmp_path):
    (tmp_path / 'net' / 'ipv4').mkdir(parents=True)
    # The kernel prints vectors tab separated.
    (tmp_path / 'net' / 'ipv4' / 'ip_local_port_range').write_text('32768\t60999\n')
    assert sysctl.read_value('net.ipv4.ip_local_port_range', root=str(tmp_path)) == '32768 60999'
    assert sysctl.read_value('net.ipv4.missing', root=str(tmp_path)) is None
    sysctl.write_value('net.ipv4.ip_local_port_range', '  40000   60999 ', root=str(tmp_path))
    assert (tmp_path / 'net' / 'ipv4' / 'ip_local_port_range').read_text() == '40000 60999\n'


def test_read_real_proc_value():
    # The real kernel file of this machine: a vector of two numbers.
    value = sysctl.read_value('net.ipv4.ip_local_port_range')
    low, high = (int(x) for x in value.split(' '))
    assert 0 < low < high <= 65535


def test_parse_conf():
    text = ('# comment\n; also a comment\n\nnet.netfilter.nf_conntrack_max = 1\n'
            '-net.ipv4.ip_local_port_range=40000\t60999\nnet/ipv4/ip_forward = 1\nnot a setting\n'
            'net.netfilter.nf_conntrack_max = 2\n')
    assert sysctl.parse_conf(text) == {
        'net.netfilter.nf_conntrack_max': '2',
        'net.ipv4.ip_local_port_range': '40000 60999',
        'net.ipv4.ip_forward': '1',
    }


def test_render_dropin_roundtrip():
    text = sysctl.render_dropin([('net.netfilter.nf_conntrack_max', 131072)], 'conntrack_limit', 'N-2')
    assert text.startswith('# Managed by netmedic.k8s (conntrack_limit); catalog N-2.')
    assert sysctl.parse_conf(text) == {'net.netfilter.nf_conntrack_max': '131072'}


def _tree(tmp_path):
    etc = tmp_path / 'etc' / 'sysctl.d'
    usr = tmp_path / 'usr' / 'lib' / 'sysctl.d'
    etc.mkdir(parents=True)
    usr.mkdir(parents=True)
    conf = tmp_path / 'etc' / 'sysctl.conf'
    return etc, usr, conf


def test_boot_order_masks_and_sorts(tmp_path):
    etc, usr, conf = _tree(tmp_path)
    (usr / '50-default.conf').write_text('a = 1\n')
    (usr / '10-x.conf').write_text('a = 2\n')
    (etc / '10-x.conf').write_text('a = 3\n')  # masks the /usr/lib one
    (etc / 'README').write_text('not a conf\n')
    conf.write_text('a = 4\n')
    order = sysctl.boot_order([str(etc), str(usr)], str(conf))
    assert order == [str(etc / '10-x.conf'), str(usr / '50-default.conf'), str(conf)]
    # Debian's 99-sysctl.conf -> ../sysctl.conf is not counted twice.
    os.symlink('../sysctl.conf', str(etc / '99-sysctl.conf'))
    order = sysctl.boot_order([str(etc), str(usr)], str(conf))
    assert order[-1] == str(etc / '99-sysctl.conf')
    assert str(conf) not in order


def test_persisted_values_and_overriders(tmp_path):
    etc, usr, conf = _tree(tmp_path)
    key = 'net.netfilter.nf_conntrack_max'
    (usr / '50-default.conf').write_text('%s = 1000\n' % key)
    own = etc / '90-netmedic-conntrack.conf'
    own.write_text('%s = 131072\n' % key)
    (etc / '95-same.conf').write_text('%s = 131072\n' % key)
    (etc / '99-later.conf').write_text('%s = 65536\n' % key)
    conf.write_text('%s=262144\n' % key)
    dirs = [str(etc), str(usr)]
    assert sysctl.persisted_values(key, dirs, str(conf)) == [
        (str(usr / '50-default.conf'), '1000'), (str(own), '131072'), (str(etc / '95-same.conf'), '131072'),
        (str(etc / '99-later.conf'), '65536'), (str(conf), '262144')]
    # Earlier files do not matter, equal values do not matter.
    assert sysctl.overriders(key, str(own), 131072, dirs, str(conf)) == [
        {'path': str(etc / '99-later.conf'), 'value': '65536'}, {'path': str(conf), 'value': '262144'}]
    # The answer is the same before our file exists.
    own.unlink()
    assert [o['path'] for o in sysctl.overriders(key, str(own), 131072, dirs, str(conf))] == [
        str(etc / '99-later.conf'), str(conf)]


def test_write_file_atomic_backs_up_what_it_replaces(tmp_path):
    module = FakeModule()
    path = tmp_path / 'sysctl.d' / '90-x.conf'
    assert node_files.write_file_atomic(module, str(path), 'a = 1\n') is None  # creates the directory
    assert path.read_text() == 'a = 1\n'
    assert oct(path.stat().st_mode & 0o777) == '0o644'
    backup = node_files.write_file_atomic(module, str(path), 'a = 2\n')
    assert backup == str(path) + '.bak~'
    assert Path(backup).read_text() == 'a = 1\n'
    assert path.read_text() == 'a = 2\n'
    # No temporary files are left behind.
    assert sorted(os.listdir(path.parent)) == ['90-x.conf', '90-x.conf.bak~']


def test_write_file_atomic_cleans_up_on_failure(tmp_path):
    class Broken(FakeModule):
        def atomic_move(self, src, dest):
            raise OSError('disk full')
    with pytest.raises(OSError, match='disk full'):
        node_files.write_file_atomic(Broken(), str(tmp_path / 'x.conf'), 'a = 1\n')
    assert os.listdir(tmp_path) == []
