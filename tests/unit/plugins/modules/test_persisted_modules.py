"""The sysctl-like modules with a node whose kernel has loadable modules (issue #10 hole 8 and N-2).

This CI host's kernel has no ``/proc/modules`` and no IPVS, so the paths that need a
loadable ``nf_conntrack`` or ``ip_vs`` run here in-process against a fake node:
``/proc/modules`` is a real file recorded on a Debian 6.1 VM, the kernel values live in a
dict behind ``sysctl.read_value``/``write_value``, ``modprobe`` is faked behind the real
Runner, and the persisted files are real files in a temporary directory, written
through the module's real code (AnsibleModule's ``backup_local``/``atomic_move``).
The same scenarios on a real kernel, across a reboot, are in tests/labvm.
"""

from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.netmedic.k8s.plugins.module_utils import ipvs, kmod
from ansible_collections.netmedic.k8s.plugins.module_utils.node import sysctl
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandResult, Runner
from ansible_collections.netmedic.k8s.plugins.modules import conntrack_limit, ipvs_modules, ipvs_timeouts

from ..conftest import FIXTURES

MAX_KEY = 'net.netfilter.nf_conntrack_max'


def run_main(module, args, capsys, check=False):
    if check:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def node(tmp_path, monkeypatch):
    """/proc/modules with nf_conntrack and ip_vs loaded as modules; kernel values in a dict."""
    proc_modules = tmp_path / 'proc-modules'
    proc_modules.write_text((FIXTURES / 'proc' / 'modules-ipvs-in-use.txt').read_text())
    monkeypatch.setattr(kmod, 'PROC_MODULES', str(proc_modules))
    kernel = {MAX_KEY: '65536', 'net.netfilter.nf_conntrack_count': '10'}
    monkeypatch.setattr(sysctl, 'read_value', lambda key, root=sysctl.PROC_SYS: kernel.get(key))
    monkeypatch.setattr(sysctl, 'write_value', lambda key, value, root=sysctl.PROC_SYS: kernel.__setitem__(key, str(value)))
    read_only = set()   # keys this fake node's kernel does not let the module write
    monkeypatch.setattr(sysctl, 'writable', lambda key, root=sysctl.PROC_SYS: key not in read_only, raising=False)
    commands = []

    def run(self, args, check=True, data=None):
        commands.append(list(args))
        if args[:2] == ['modprobe', '-n']:
            return CommandResult(args, 0, '', '')
        if args[0] == 'modprobe':  # "load" it: /proc/modules lists it from now on
            with open(str(proc_modules), 'a') as f:
                f.write('%s 16384 0 - Live 0xffffffffc0000000\n' % args[1])
            return CommandResult(args, 0, '', '')
        raise AssertionError('unexpected command %r' % (args,))

    monkeypatch.setattr(Runner, 'run', run)
    monkeypatch.setattr(Runner, 'has', lambda self, name: True)
    # a fake node's binaries, never this machine's (tests/unit/conftest.py refuses the real lookup)
    monkeypatch.setattr(Runner, 'which', lambda self, name: '/usr/sbin/' + name)

    class Node(object):
        pass
    n = Node()
    n.tmp, n.kernel, n.commands, n.proc_modules, n.read_only = tmp_path, kernel, commands, proc_modules, read_only
    return n


def test_issue14_n2_read_only_conntrack_max_in_a_network_namespace_is_refused_in_check_mode_too(node, capsys):
    """Found on the fleet lab (issue 14 item 1): on a node that is a network namespace of its own (a container, a
    fleet node) the kernel makes nf_conntrack_max read-only; check mode said it would raise it, the real run then failed
    on the write (safely). Both now refuse before anything, saying why; an already-right value stays ok."""
    node.read_only.add(MAX_KEY)
    dropin = node.tmp / 'sysctl.d' / '90-netmedic-conntrack.conf'
    args = {'max': 200000, 'persist_file': str(dropin), 'module_load_file': str(node.tmp / 'load.conf')}
    for check in (True, False):
        out = run_main(conntrack_limit, args, capsys, check=check)
        assert out.get('failed') and out['changed'] is False, out
        assert 'read-only' in out['msg'] and 'nothing was changed' in out['msg'], out['msg']
        assert node.kernel[MAX_KEY] == '65536' and not dropin.exists()
    same = run_main(conntrack_limit, dict(args, max=65536, persist=False), capsys)
    assert not same.get('failed') and same['changed'] is False, same


def test_issue10_n2_loadable_nf_conntrack_is_persisted_in_modules_load_d(node, capsys):
    dropin = node.tmp / 'sysctl.d' / '90-netmedic-conntrack.conf'
    load = node.tmp / 'modules-load.d' / 'netmedic-nf_conntrack.conf'
    args = {'max': 200000, 'persist_file': str(dropin), 'module_load_file': str(load)}

    checked = run_main(conntrack_limit, args, capsys, check=True)
    assert checked['changed'] is True
    assert checked['module_load'] == {'nf_conntrack': 'module', 'file': str(load), 'before': [], 'after': ['nf_conntrack']}
    assert not dropin.exists() and not load.exists()
    assert node.kernel[MAX_KEY] == '65536'

    applied = run_main(conntrack_limit, args, capsys)
    assert not applied.get('failed'), applied
    assert node.kernel[MAX_KEY] == '200000'
    assert load.read_text().startswith('# Managed by netmedic.k8s (conntrack_limit); catalog N-2.\n')
    assert kmod.parse_modules_load(load.read_text()) == ['nf_conntrack']
    assert sysctl.parse_conf(dropin.read_text()) == {MAX_KEY: '200000'}
    # the test's files are outside the boot directories: said, not hidden
    assert sum('does not apply after a reboot' in str(w) for w in applied['warnings']) == 2, applied['warnings']

    again = run_main(conntrack_limit, args, capsys)
    assert again['changed'] is False, again
    assert again['module_load']['after'] == ['nf_conntrack']


def test_issue10_h8_n2_foreign_modules_load_file_only_gets_nf_conntrack_appended(node, capsys):
    load = node.tmp / 'modules.conf'
    load.write_text('# /etc/modules: kernel modules to load at boot time.\nbr_netfilter\n')
    args = {'max': 200000, 'persist_file': str(node.tmp / 'x.conf'), 'module_load_file': str(load)}
    applied = run_main(conntrack_limit, args, capsys)
    assert not applied.get('failed'), applied
    assert load.read_text() == '# /etc/modules: kernel modules to load at boot time.\nbr_netfilter\nnf_conntrack\n'
    assert [b['of'] for b in applied['backups']] == [str(load)]


def test_issue10_n2_module_load_file_name_checked_before_anything(node, capsys):
    result = run_main(conntrack_limit, {'max': 200000, 'module_load_file': '/etc/modules-load.d/conntrack'}, capsys)
    assert result['failed'] is True and result['changed'] is False
    assert 'module_load_file must end in .conf' in result['msg']
    assert node.kernel[MAX_KEY] == '65536'


def test_issue13_conntrack_second_file_fails_drop_in_put_back_kernel_restored(node, capsys, monkeypatch):
    """Failure injection: the modules-load.d file cannot be moved into place (disk full)."""
    from ansible.module_utils.basic import AnsibleModule
    real_move = AnsibleModule.atomic_move

    def atomic_move(self, src, dest, *a, **kw):
        if dest.endswith('netmedic-nf_conntrack.conf'):
            raise OSError(28, 'No space left on device')
        return real_move(self, src, dest, *a, **kw)
    monkeypatch.setattr(AnsibleModule, 'atomic_move', atomic_move)
    dropin = node.tmp / 'sysctl.d' / '90-netmedic-conntrack.conf'
    load = node.tmp / 'modules-load.d' / 'netmedic-nf_conntrack.conf'
    args = {'max': 200000, 'persist_file': str(dropin), 'module_load_file': str(load)}
    result = run_main(conntrack_limit, args, capsys)
    assert result['failed'] is True
    assert node.kernel[MAX_KEY] == '65536'
    assert not dropin.exists()
    assert result['rolled_back'] == ['%s removed' % dropin, 'kernel value restored: %s = 65536' % MAX_KEY]
    assert result['changed'] is False
    assert 'could not write %s: [Errno 28] No space left on device' % load in result['msg']
    assert 'nothing was left changed' in result['msg']
    assert os.listdir(str(node.tmp / 'modules-load.d')) == []  # no temporary file left behind


def test_issue10_h8_ipvs_modules_keeps_a_shared_modules_load_file(node, capsys):
    """ACK's file with comments: only the missing ip_vs_nq is appended, everything else kept."""
    ack = node.tmp / 'ack-ipvs-modules.conf'
    original = '# loaded by ACK\nip_vs\n; round robin\nip_vs_rr\n'
    ack.write_text(original)
    result = run_main(ipvs_modules, {'schedulers': ['rr', 'nq'], 'persist_file': str(ack)}, capsys)
    assert not result.get('failed'), result
    assert ack.read_text() == original + 'ip_vs_nq\n'
    assert result['persist_mode'] == 'edit_owned_keys'
    assert ['modprobe', 'ip_vs_nq'] in node.commands
    backup = result['backups'][0]['path']
    with open(backup) as f:
        assert f.read() == original


def test_issue10_h8_ipvs_timeouts_refuses_a_unit_it_did_not_write(node, capsys, monkeypatch):
    proc_ip_vs = node.tmp / 'ip_vs'
    proc_ip_vs.write_text('IP Virtual Server version 1.2.1 (size=4096)\n')
    monkeypatch.setattr(ipvs, 'PROC_IP_VS', str(proc_ip_vs))
    unit = node.tmp / 'netmedic-ipvs-timeouts.service'
    unit.write_text('[Service]\nExecStart=/usr/local/bin/site-tuning\n')
    monkeypatch.setattr(Runner, 'run', lambda self, args, check=True, data=None: node.commands.append(list(args)) or CommandResult(
        args, 0 if args[1] != 'is-enabled' else 1, 'Timeout (tcp tcpfin udp): 900 120 300\n' if args[0] == 'ipvsadm' else 'disabled\n', ''))
    monkeypatch.setattr(Runner, 'which', lambda self, name: '/usr/sbin/' + name)
    result = run_main(ipvs_timeouts, {'udp': 10, 'unit_file': str(unit)}, capsys)
    assert result['failed'] is True and result['changed'] is False
    assert 'was not written by netmedic.k8s (ipvs_timeouts)' in result['msg']
    assert unit.read_text() == '[Service]\nExecStart=/usr/local/bin/site-tuning\n'
    assert os.listdir(str(node.tmp)).count('netmedic-ipvs-timeouts.service') == 1
    assert all(c[:2] in (['ipvsadm', '-L'], ['systemctl', 'is-enabled']) for c in node.commands), node.commands


def test_issue13_ipvs_modules_modprobe_fails_midway_reports_what_stays_loaded(node, capsys, monkeypatch):
    """Through the shared transaction: ip_vs_mh loaded, ip_vs_nq fails; nothing unloaded, no boot file written."""
    from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandError
    real_run = Runner.run

    def run(self, args, check=True, data=None):
        if args == ['modprobe', 'ip_vs_nq']:
            raise CommandError(args, 1, '', 'modprobe: ERROR: could not insert ip_vs_nq: Cannot allocate memory')
        return real_run(self, args, check=check, data=data)
    monkeypatch.setattr(Runner, 'run', run)
    boot = node.tmp / 'netmedic-ipvs.conf'
    result = run_main(ipvs_modules, {'schedulers': ['mh', 'nq'], 'persist_file': str(boot)}, capsys)
    assert result['failed'] is True
    assert 'could not modprobe ip_vs_nq' in result['msg'] and 'Cannot allocate memory' in result['msg']
    assert result['left_changed'] == ['ip_vs_mh = loaded (cannot be undone)']
    assert result['changed'] is True
    assert not boot.exists()
    assert 'ip_vs_mh 16384' in node.proc_modules.read_text()  # it really stays loaded
