"""netmedic.k8s.conntrack_limit (catalog N-2) against a real kernel on a lab VM.

Every expectation is checked twice: in the module's result and by an independent read
over SSH (``sysctl -n`` and ``cat`` of the drop-in), so a module that reports one thing
and does another fails. Each test starts from the clean saved state (``lab_reset``,
~6-9 s) instead of undoing changes by hand; the reboot test is the only one that
reboots, and it writes no file by hand: the module's own drop-in and modules-load.d
file must bring the value back (catalog N-2).
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

KEY = 'net.netfilter.nf_conntrack_max'
DROPIN = '/etc/sysctl.d/90-netmedic-conntrack.conf'
NODE_INDEX = 0  # lab-node-1


@pytest.fixture
def node(lab, lab_reset, ssh):
    """A clean node with nf_conntrack loaded (a fresh node has no table until it is)."""
    lab_reset()
    name = lab['nodes'][NODE_INDEX]
    ssh(name, 'modprobe nf_conntrack')
    return name


class State(NamedTuple):
    kernel: int  # sysctl -n
    text: str | None  # the drop-in's content, None when it does not exist
    boot_id: str

    @property
    def seen(self):
        """What the module may change: kernel value and drop-in."""
        return (self.kernel, self.text)


def read_state(ssh, node):
    """Independent read of the kernel value, the drop-in and the boot id."""
    out = ssh(node, f'sysctl -n {KEY}; cat /proc/sys/kernel/random/boot_id; '
                    f'if [ -e {DROPIN} ]; then echo ---file; cat {DROPIN}; fi').stdout
    lines = out.split('\n')
    text = out.split('---file\n', 1)[1] if '---file\n' in out else None
    return State(int(lines[0]), text, lines[1])


def persisted(text):
    """The value of KEY in a sysctl.d file's text, as systemd-sysctl reads it."""
    values = [line.split('=', 1)[1].strip() for line in (text or '').splitlines()
              if '=' in line and line.split('=', 1)[0].strip() == KEY and not line.lstrip().startswith(('#', ';'))]
    return int(values[-1]) if values else None


def test_check_mode_changes_nothing(node, run_module, ssh):
    kernel, text = read_state(ssh, node).seen
    assert text is None, f'{DROPIN} exists on a clean node:\n{text}'
    target = kernel * 2

    res = run_module(node, 'conntrack_limit', {'max': target}, check=True, diff=True)

    assert not res.failed, res.output
    assert res['changed'] is True
    assert res['decision'] == 'raise'
    assert res['before'] == {'max': kernel, 'persisted': None}
    assert res['after'] == {'max': target, 'persisted': target}
    diffs = res.get('diff') or []
    assert any(f'{KEY} = {target}' in (d.get('after') or '') for d in diffs), diffs
    assert read_state(ssh, node).seen == (kernel, None), 'check mode changed the kernel value or wrote the drop-in'


def test_apply_sets_kernel_and_file_then_is_idempotent(node, run_module, ssh):
    kernel = read_state(ssh, node).kernel
    target = kernel * 2

    first = run_module(node, 'conntrack_limit', {'max': target})
    assert not first.failed, first.output
    assert first['changed'] is True and first['decision'] == 'raise'
    now, text = read_state(ssh, node).seen
    assert now == target
    assert persisted(text) == target, text

    second = run_module(node, 'conntrack_limit', {'max': target})
    assert not second.failed, second.output
    assert second['changed'] is False
    assert second['decision'] == 'keep'
    assert second['backups'] == []
    assert read_state(ssh, node).seen == (target, text)


def test_auto_is_memtotal_over_32(node, run_module, ssh):
    mem_kb = int(ssh(node, "awk '/^MemTotal:/ {print $2}' /proc/meminfo").stdout)
    expected = mem_kb // 32
    kernel = read_state(ssh, node).kernel
    assert expected > kernel, f'auto ({expected}) would not raise the default {kernel}: the scenario proves nothing'

    res = run_module(node, 'conntrack_limit', {'max': 'auto'})

    assert not res.failed, res.output
    assert res['desired'] == expected
    now, text = read_state(ssh, node).seen
    assert (now, persisted(text)) == (expected, expected)


def test_lower_value_refused_unless_allowed(node, run_module, ssh):
    kernel = read_state(ssh, node).kernel
    high, low = kernel * 3, kernel * 2
    assert not run_module(node, 'conntrack_limit', {'max': high}).failed
    high_text = read_state(ssh, node).text

    refused = run_module(node, 'conntrack_limit', {'max': low})
    assert not refused.failed, refused.output
    assert refused['changed'] is False
    assert refused['decision'] == 'refuse_lower'
    assert any('allow_decrease' in w for w in refused.get('warnings', [])), refused.get('warnings')
    assert read_state(ssh, node).seen == (high, high_text), 'a refused decrease changed something'

    lowered = run_module(node, 'conntrack_limit', {'max': low, 'allow_decrease': True})
    assert not lowered.failed, lowered.output
    assert lowered['changed'] is True and lowered['decision'] == 'lower'
    now, text = read_state(ssh, node).seen
    assert (now, persisted(text)) == (low, low)
    # the replaced drop-in was backed up on the node, with the old content
    assert len(lowered['backups']) == 1, lowered['backups']
    backup = lowered['backups'][0]['path']
    assert persisted(ssh(node, f'cat {backup}').stdout) == high


def test_bad_max_fails_and_changes_nothing(node, run_module, ssh):
    before = read_state(ssh, node).seen
    for bad in ('lots', -5, 0, '12abc'):
        res = run_module(node, 'conntrack_limit', {'max': bad})
        assert res.failed, f'max={bad!r} was accepted: {res}'
        assert res.rc != 0
        assert res.get('changed') is False, res
        assert res.get('msg'), res
    assert read_state(ssh, node).seen == before


MODULES_LOAD = '/etc/modules-load.d/netmedic-nf_conntrack.conf'


def test_issue10_n2_module_load_persisted_and_value_survives_a_real_reboot_without_hand_made_files(
        node, lab_reset, run_module, ssh):
    """N-2 end to end: only the module writes files; after a real reboot the limit is back.

    On the lab's Debian kernel nf_conntrack is a loadable module; nothing else on the node
    loads it at boot (asserted first), so the value can only come back if the module's own
    modules-load.d file loads it before systemd-sysctl applies the drop-in.
    """
    listed = ssh(node, 'grep -rlsw -e nf_conntrack -e nf-conntrack /etc/modules-load.d /run/modules-load.d '
                       '/usr/lib/modules-load.d /lib/modules-load.d /etc/modules || true').stdout.split()
    assert listed == [], f'something else loads nf_conntrack at boot, the test would prove nothing: {listed}'
    assert ssh(node, 'grep -c "^nf_conntrack " /proc/modules').stdout.strip() == '1'
    start = read_state(ssh, node)
    target = start.kernel * 2 + 7
    try:
        res = run_module(node, 'conntrack_limit', {'max': target})
        assert not res.failed, res.output
        assert res['module_load'] == {'nf_conntrack': 'module', 'file': MODULES_LOAD, 'before': [], 'after': ['nf_conntrack']}
        assert ssh(node, f'grep -x nf_conntrack {MODULES_LOAD}').stdout.strip() == 'nf_conntrack'

        reboot = run_module(node, 'ansible.builtin.reboot', {'reboot_timeout': 600, 'msg': 'netmedic N-2 reboot test'}, timeout=900)
        assert not reboot.failed, reboot.output
        now, text, boot_after = read_state(ssh, node)
        assert boot_after != start.boot_id, 'the node did not really reboot (same boot_id)'
        assert now == target, f'after reboot {KEY} is {now}, expected the persisted {target}'
        assert persisted(text) == target
        again = run_module(node, 'conntrack_limit', {'max': target})
        assert not again.failed and again['changed'] is False, again.output
    finally:
        lab_reset()
