"""conntrack_limit through Ansible, with the kernel value and /etc/sysctl.d sandboxed.

The real-kernel variant of these scenarios (value and file across a reboot) runs on
the lab VMs; here the host kernel is never written.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

MAX = '/proc/sys/net/netfilter/nf_conntrack_max'
COUNT = '/proc/sys/net/netfilter/nf_conntrack_count'
DROPIN = '/etc/sysctl.d/90-netmedic-conntrack.conf'
MEMINFO = 'MemTotal:        4194304 kB\nMemFree:         1000000 kB\n'
AUTO = 4194304 // 32  # 131072


@pytest.fixture
def node(sandbox):
    """A node with nf_conntrack_max=65536, 4 GiB of memory and an empty sysctl.d."""
    sandbox.max = sandbox.file(MAX, '65536\n')
    sandbox.file(COUNT, '1200\n')
    sandbox.file('/proc/meminfo', MEMINFO)
    sandbox.sysctl_d = sandbox.directory('/etc/sysctl.d')
    sandbox.file('/etc/sysctl.conf', '# empty\n')
    return sandbox


def kernel(node):
    return int(node.max.read_text())


def dropin(node):
    path = node.sysctl_d / os.path.basename(DROPIN)
    return path.read_text() if path.exists() else None


def test_check_mode_changes_nothing_then_apply_then_idempotent(node):
    checked = node.run('conntrack_limit', {'max': 'auto'}, check=True, diff=True)
    assert not checked.failed, checked.output
    assert checked['changed'] is True
    assert checked['decision'] == 'raise'
    assert checked['desired'] == AUTO
    assert checked['before'] == {'max': 65536, 'persisted': None}
    assert checked['after'] == {'max': AUTO, 'persisted': AUTO}
    assert checked['usage'] == {'count': 1200, 'max': 65536, 'percent': 1.8}
    # The diff shows both the kernel value and the new file.
    assert 'net.netfilter.nf_conntrack_max = 65536' in checked['diff'][0]['before']
    assert 'net.netfilter.nf_conntrack_max = %d' % AUTO in checked['diff'][0]['after']
    assert checked['diff'][1]['before'] == ''
    # ... and nothing was written.
    assert kernel(node) == 65536
    assert dropin(node) is None
    assert os.listdir(node.sysctl_d) == []

    applied = node.run('conntrack_limit', {'max': 'auto'})
    assert not applied.failed, applied.output
    assert applied['changed'] is True
    assert kernel(node) == AUTO
    assert 'net.netfilter.nf_conntrack_max = %d\n' % AUTO in dropin(node)
    assert applied['after'] == {'max': AUTO, 'persisted': AUTO}
    assert applied['backups'] == []  # nothing was replaced

    again = node.run('conntrack_limit', {'max': 'auto'})
    assert not again.failed, again.output
    assert again['changed'] is False
    assert again['decision'] == 'keep'
    assert kernel(node) == AUTO


def test_explicit_value_and_replaced_file_is_backed_up(node):
    old = '# hand-written\nnet.netfilter.nf_conntrack_max = 70000\n'
    (node.sysctl_d / os.path.basename(DROPIN)).write_text(old)
    result = node.run('conntrack_limit', {'max': 200000})
    assert not result.failed, result.output
    assert result['before']['persisted'] == 70000
    assert kernel(node) == 200000
    assert len(result['backups']) == 1
    backup = result['backups'][0]['path']
    assert result['backups'][0]['of'] == DROPIN
    # The backup lives next to the file (inside the sandboxed directory).
    assert (node.sysctl_d / os.path.basename(backup)).read_text() == old


def test_decrease_refused_by_default(node):
    result = node.run('conntrack_limit', {'max': 1000}, diff=True)
    assert not result.failed, result.output
    assert result['changed'] is False
    assert result['decision'] == 'refuse_lower'
    assert any('left unchanged' in w for w in result.get('warnings', []))
    assert kernel(node) == 65536
    assert dropin(node) is None


def test_decrease_when_allowed(node):
    result = node.run('conntrack_limit', {'max': 1000, 'allow_decrease': True})
    assert not result.failed, result.output
    assert result['changed'] is True
    assert result['decision'] == 'lower'
    assert kernel(node) == 1000
    assert '= 1000' in dropin(node)


def test_runtime_only_leaves_files_alone(node):
    result = node.run('conntrack_limit', {'max': 100000, 'persist': False})
    assert not result.failed, result.output
    assert kernel(node) == 100000
    assert dropin(node) is None
    assert os.listdir(node.sysctl_d) == []


def test_later_boot_file_that_would_undo_the_fix_is_reported(node):
    (node.sysctl_d / '99-tuning.conf').write_text('net.netfilter.nf_conntrack_max = 131072\n')
    result = node.run('conntrack_limit', {'max': 500000}, check=True)
    assert result['overridden_by'] == [{'path': '/etc/sysctl.d/99-tuning.conf', 'value': '131072'}]
    assert any('99-tuning.conf' in w for w in result.get('warnings', []))


@pytest.mark.parametrize('bad', [-5, 0, '0', 'lots', '12k', '', '1.5', True, 2 ** 31])
def test_bad_max_fails_before_any_change(node, bad):
    result = node.run('conntrack_limit', {'max': bad})
    assert result.failed
    assert result['changed'] is False
    assert 'max' in result['msg']
    assert kernel(node) == 65536
    assert os.listdir(node.sysctl_d) == []


def test_bad_persist_file_name_fails_before_any_change(node):
    result = node.run('conntrack_limit', {'max': 100000, 'persist_file': '/etc/sysctl.d/netmedic.txt'})
    assert result.failed
    assert '.conf' in result['msg']
    assert kernel(node) == 65536


def test_kube_proxy_on_the_node_is_warned_about(node, tmp_path):
    fake = tmp_path / 'kube-proxy'
    shutil.copy('/bin/sleep', fake)
    proc = subprocess.Popen([str(fake), '60'])
    try:
        result = node.run('conntrack_limit', {'max': 'auto'}, check=True)
    finally:
        proc.kill()
        proc.wait()
    assert result['kube_proxy_running'] is True
    assert any('maxPerCore' in w for w in result.get('warnings', []))


def test_module_not_loaded_fails_clearly(tmp_path, sandbox):
    # Hide the whole netfilter directory: as on a node without nf_conntrack.
    sandbox.directory('/proc/sys/net/netfilter')
    sysctl_d = sandbox.directory('/etc/sysctl.d')
    result = sandbox.run('conntrack_limit', {'max': 'auto'})
    assert result.failed
    assert 'not loaded' in result['msg']
    assert os.listdir(sysctl_d) == []


FOREIGN = ('# /etc/sysctl.conf - Configuration file for setting system variables\n'
           'net.ipv4.ip_forward=1\n'
           '  net.bridge.bridge-nf-call-iptables = 1\n'
           '; an old tuning\n'
           'net.netfilter.nf_conntrack_max=70000\n'
           'fs.inotify.max_user_watches = 524288\n')


def test_issue10_h8_foreign_persist_file_keeps_every_other_line(node):
    """A file without netmedic's header: only nf_conntrack_max is edited, the rest kept byte for byte."""
    path = node.sysctl_d / '99-sysctl.conf'
    path.write_text(FOREIGN)
    checked = node.run('conntrack_limit', {'max': 200000, 'persist_file': '/etc/sysctl.d/99-sysctl.conf'}, check=True, diff=True)
    assert not checked.failed, checked.output
    assert path.read_text() == FOREIGN  # check mode wrote nothing
    expected = FOREIGN.replace('nf_conntrack_max=70000', 'nf_conntrack_max=200000')
    assert checked['diff'][1]['after'] == expected

    applied = node.run('conntrack_limit', {'max': 200000, 'persist_file': '/etc/sysctl.d/99-sysctl.conf'})
    assert not applied.failed, applied.output
    assert applied['changed'] is True
    assert path.read_text() == expected
    assert kernel(node) == 200000
    assert applied['persist_mode'] == 'edit_owned_keys'
    assert [b['of'] for b in applied['backups']] == ['/etc/sysctl.d/99-sysctl.conf']
    assert (node.sysctl_d / os.path.basename(applied['backups'][0]['path'])).read_text() == FOREIGN

    again = node.run('conntrack_limit', {'max': 200000, 'persist_file': '/etc/sysctl.d/99-sysctl.conf'})
    assert not again.failed, again.output
    assert again['changed'] is False
    assert path.read_text() == expected


def test_issue10_h8_foreign_file_without_the_key_gets_one_line_appended(node):
    path = node.sysctl_d / '99-sysctl.conf'
    path.write_text('net.ipv4.ip_forward = 1')  # no trailing newline
    applied = node.run('conntrack_limit', {'max': 200000, 'persist_file': '/etc/sysctl.d/99-sysctl.conf'})
    assert not applied.failed, applied.output
    assert path.read_text() == 'net.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_max = 200000\n'


def test_issue10_n2_built_in_nf_conntrack_needs_no_module_load_file(node):
    """This host's kernel has nf_conntrack built in (no /proc/modules): nothing to load at boot."""
    assert not os.path.exists('/proc/modules'), 'this test expects a kernel without loadable modules'
    modules_load = node.directory('/etc/modules-load.d')
    applied = node.run('conntrack_limit', {'max': 'auto'})
    assert not applied.failed, applied.output
    assert applied['module_load'] == {'nf_conntrack': 'built_in', 'file': '/etc/modules-load.d/netmedic-nf_conntrack.conf',
                                      'before': None, 'after': None}
    assert os.listdir(modules_load) == []


def test_issue13_drop_in_write_failure_restores_the_kernel_value(node):
    """/etc/sysctl.d read-only: the kernel value was set first, then put back; the result says so."""
    node.readonly('/etc/sysctl.d')
    result = node.run('conntrack_limit', {'max': 200000})
    assert result.failed
    assert 'kernel value restored: net.netfilter.nf_conntrack_max = 65536' in result['msg'], result['msg']
    assert result['changed'] is False
    assert kernel(node) == 65536
    assert dropin(node) is None
