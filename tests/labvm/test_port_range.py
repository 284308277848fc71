"""port_range (catalog N-3) against a real kernel's sysctls in the VM lab.

Fault: the ephemeral range widened to 1024-65535 (overlapping NodePorts 30000-32767), nothing
reserved. The reboot that proves the drop-in is applied at boot is shared with ipvs_modules and
ipvs_timeouts: tests/labvm/test_ipvs_timeouts.py::test_both_fixes_survive_a_real_reboot.
"""

import pytest

NODE = 'lab-node-2'
READ = ('cat /proc/sys/net/ipv4/ip_local_port_range /proc/sys/net/ipv4/ip_local_reserved_ports; '
        'cat /etc/sysctl.d/90-netmedic-ports.conf 2>/dev/null || echo NOFILE')


@pytest.fixture(scope='module')
def fault(lab, lab_reset, ssh):
    lab_reset()
    ssh(NODE, 'echo "1024 65535" > /proc/sys/net/ipv4/ip_local_port_range; echo 10250 > /proc/sys/net/ipv4/ip_local_reserved_ports')
    return lab


def state(ssh):
    lines = ssh(NODE, READ).stdout.splitlines()
    return lines[0].split(), lines[1], '\n'.join(lines[2:])


def test_reserve_on_a_real_kernel(fault, run_module, ssh):
    assert state(ssh) == (['1024', '65535'], '10250', 'NOFILE')

    checked = run_module(NODE, 'port_range', {'method': 'reserve'}, check=True, diff=True)
    assert not checked.failed, checked.output
    assert (checked['changed'], checked['overlap'], checked['conflict_before']) == (True, ['30000-32767'], True)
    assert state(ssh) == (['1024', '65535'], '10250', 'NOFILE'), 'check mode changed the node'

    applied = run_module(NODE, 'port_range', {'method': 'reserve'})
    assert not applied.failed, applied.output
    ephemeral, reserved, dropin = state(ssh)
    assert ephemeral == ['1024', '65535']  # reserve leaves the range alone
    assert reserved == '10250,30000-32767'  # the kernel's own rendering of the merged list
    assert 'net.ipv4.ip_local_reserved_ports = 10250,30000-32767' in dropin
    assert applied['conflict_after'] is False

    again = run_module(NODE, 'port_range', {'method': 'reserve'})
    assert not again.failed, again.output
    assert again['changed'] is False


def test_move_on_a_real_kernel(fault, run_module, ssh):
    result = run_module(NODE, 'port_range', {'method': 'move', 'persist_file': '/etc/sysctl.d/91-netmedic-ephemeral.conf'})
    assert not result.failed, result.output
    assert ssh(NODE, 'cat /proc/sys/net/ipv4/ip_local_port_range').stdout.split() == ['32768', '65535']
    # the kernel refuses a range below ip_unprivileged_port_start; the module says so before trying
    refused = run_module(NODE, 'port_range', {'method': 'move', 'move_to': '500-20000'})
    assert refused.failed and 'ip_unprivileged_port_start' in refused['msg']
    assert ssh(NODE, 'cat /proc/sys/net/ipv4/ip_local_port_range').stdout.split() == ['32768', '65535']
