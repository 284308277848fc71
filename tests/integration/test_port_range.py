"""port_range (catalog N-3) through Ansible, with both kernel values and /etc/sysctl.d sandboxed.

The sandbox bind-mounts plain files over /proc/sys/net/ipv4/ip_local_port_range and
ip_local_reserved_ports, so the module does its real reads and writes there; the host
kernel's values are never written. The real-kernel run of the same module is in
tests/labvm/test_port_range.py.
"""

import os

import pytest

LOCAL = '/proc/sys/net/ipv4/ip_local_port_range'
RESERVED = '/proc/sys/net/ipv4/ip_local_reserved_ports'
DROPIN = '90-netmedic-ports.conf'


@pytest.fixture
def node(sandbox):
    """A GKE-like node whose ephemeral range 1024-65535 overlaps 30000-32767; one port reserved already."""
    sandbox.local = sandbox.file(LOCAL, '1024\t65535\n')
    sandbox.reserved = sandbox.file(RESERVED, '10250\n')
    sandbox.sysctl_d = sandbox.directory('/etc/sysctl.d')
    sandbox.file('/etc/sysctl.conf', '# empty\n')
    return sandbox


def state(node):
    path = node.sysctl_d / DROPIN
    return (node.local.read_text().strip(), node.reserved.read_text().strip(), path.read_text() if path.exists() else None)


def test_reserve_check_mode_then_apply_then_idempotent(node):
    checked = node.run('port_range', {'persist': True}, check=True, diff=True)
    assert not checked.failed, checked.output
    assert checked['changed'] is True
    assert checked['decision'] == 'reserve'
    assert checked['overlap'] == ['30000-32767']
    assert checked['overlap_ports'] == 2768
    assert checked['conflict_before'] is True
    assert checked['conflict_after'] is False
    assert checked['before'] == {'ip_local_port_range': '1024 65535', 'ip_local_reserved_ports': '10250', 'persisted': {}}
    assert checked['after']['ip_local_reserved_ports'] == '10250,30000-32767'
    assert checked['diff'][0]['before'] == 'net.ipv4.ip_local_reserved_ports = 10250\n'
    assert checked['diff'][0]['after'] == 'net.ipv4.ip_local_reserved_ports = 10250,30000-32767\n'
    assert checked['diff'][1]['before'] == ''
    assert 'net.ipv4.ip_local_reserved_ports = 10250,30000-32767' in checked['diff'][1]['after']
    assert state(node) == ('1024\t65535', '10250', None)
    assert os.listdir(node.sysctl_d) == []

    applied = node.run('port_range', {'persist': True})
    assert not applied.failed, applied.output
    assert applied['changed'] is True
    local, reserved, dropin = state(node)
    assert (local, reserved) == ('1024\t65535', '10250,30000-32767')
    assert 'net.ipv4.ip_local_reserved_ports = 10250,30000-32767\n' in dropin
    assert applied['after']['ip_local_reserved_ports'] == '10250,30000-32767'
    assert applied['conflict_after'] is False
    assert applied['backups'] == []

    again = node.run('port_range', {'persist': True})
    assert not again.failed, again.output
    assert again['changed'] is False
    assert again['decision'] == 'keep'
    assert again['overlap'] == ['30000-32767']  # still overlapping, but reserved
    assert again['conflict_before'] is False
    assert state(node)[1] == '10250,30000-32767'


def test_move_to_the_largest_clear_part(node):
    result = node.run('port_range', {'method': 'move'}, diff=True)
    assert not result.failed, result.output
    assert result['decision'] == 'move'
    assert node.local.read_text().strip() == '32768 65535'
    assert node.reserved.read_text().strip() == '10250'
    assert 'net.ipv4.ip_local_port_range = 32768 65535\n' in (node.sysctl_d / DROPIN).read_text()
    assert result['conflict_after'] is False
    again = node.run('port_range', {'method': 'move'})
    assert again['changed'] is False, again


def test_move_to_explicit_range_and_replaced_dropin_is_backed_up(node):
    old = '# hand-made\nnet.ipv4.ip_local_port_range = 1024 65535\n'
    (node.sysctl_d / DROPIN).write_text(old)
    result = node.run('port_range', {'method': 'move', 'move_to': '40000-60999'})
    assert not result.failed, result.output
    assert node.local.read_text().strip() == '40000 60999'
    assert result['before']['persisted'] == {'net.ipv4.ip_local_port_range': '1024 65535'}
    (backup,) = result['backups']
    assert backup['of'] == '/etc/sysctl.d/' + DROPIN
    assert (node.sysctl_d / os.path.basename(backup['path'])).read_text() == old


def test_no_overlap_move_keeps_the_kernel_range(node):
    node.local.write_text('32768\t60999\n')
    result = node.run('port_range', {'method': 'move', 'persist': False})
    assert not result.failed, result.output
    assert result['changed'] is False
    assert result['overlap'] == []
    assert result['conflict_before'] is False
    assert state(node) == ('32768\t60999', '10250', None)


def test_later_boot_file_that_would_undo_the_fix_is_reported(node):
    (node.sysctl_d / '99-tuning.conf').write_text('net.ipv4.ip_local_reserved_ports = 10250\n')
    result = node.run('port_range', {'persist': True}, check=True)
    assert result['overridden_by'] == [{'path': '/etc/sysctl.d/99-tuning.conf', 'value': '10250'}]
    assert any('99-tuning.conf' in w for w in result.get('warnings', []))


@pytest.mark.parametrize('args, words', [
    ({'nodeport_range': '30000'}, 'start-end'),
    ({'nodeport_range': '32767-30000'}, 'greater than'),
    ({'nodeport_range': '0-100'}, 'outside 1-65535'),
    ({'nodeport_range': '30000-70000'}, 'outside 1-65535'),
    ({'nodeport_range': '30000-32767,40000'}, 'start-end'),
    ({'method': 'move', 'move_to': '31000-40000'}, 'overlaps the NodePort range'),
    ({'method': 'move', 'move_to': '100-20000'}, 'ip_unprivileged_port_start'),
    ({'method': 'reserve', 'nodeport_range': '1024-65000'}, 'usable ephemeral ports'),
    ({'persist_file': '/etc/sysctl.d/ports.txt'}, '.conf'),
])
def test_bad_input_fails_before_any_change(node, args, words):
    result = node.run('port_range', args)
    assert result.failed
    assert result['changed'] is False
    assert words in result['msg']
    assert state(node) == ('1024\t65535', '10250', None)
    assert os.listdir(node.sysctl_d) == []


def test_switching_method_warns_that_the_other_key_leaves_the_dropin(node):
    # A drop-in an earlier port_range run wrote (its header): regenerated whole. A file without
    # the header would only have the key edited in place (issue 10 hole 8, test below).
    (node.sysctl_d / DROPIN).write_text('# Managed by netmedic.k8s (port_range); catalog N-3.\n'
                                        'net.ipv4.ip_local_reserved_ports = 10250,30000-32767\n')
    result = node.run('port_range', {'method': 'move'})
    assert not result.failed, result.output
    assert any('no longer applied at boot' in w for w in result.get('warnings', []))
    assert (node.sysctl_d / DROPIN).read_text().count('= ') == 1


def test_issue10_h8_foreign_persist_file_keeps_every_other_line(node):
    """port_range with a file it does not own edits only ip_local_reserved_ports, keeps the rest, backs it up."""
    foreign = ('# tuning by the platform team\nnet.ipv4.ip_forward = 1\n'
               'net.ipv4.ip_local_reserved_ports = 10250\nfs.inotify.max_user_instances = 8192\n')
    path = node.sysctl_d / '99-sysctl.conf'
    path.write_text(foreign)
    applied = node.run('port_range', {'persist_file': '/etc/sysctl.d/99-sysctl.conf'})
    assert not applied.failed, applied.output
    assert path.read_text() == foreign.replace('ports = 10250\n', 'ports = 10250,30000-32767\n')
    assert applied['persist_mode'] == 'edit_owned_keys'
    assert (node.sysctl_d / os.path.basename(applied['backups'][0]['path'])).read_text() == foreign
    assert node.reserved.read_text().strip() == '10250,30000-32767'
    again = node.run('port_range', {'persist_file': '/etc/sysctl.d/99-sysctl.conf'})
    assert not again.failed and again['changed'] is False, again.output
