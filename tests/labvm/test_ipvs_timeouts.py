"""ipvs_timeouts (catalog N-5) on a real Debian 6.1 kernel, including a real reboot.

The reboot test also proves the persistence of ipvs_modules and port_range (one reboot,
~70 s, for all three): after the node comes back, /proc/modules is read *before* ipvsadm
runs (ipvsadm would load ip_vs itself), so the modules must have been loaded by
systemd-modules-load; the reserved ports must come from the sysctl.d drop-in.
"""

import pytest

NODE = 'lab-node-3'
UNIT = 'netmedic-ipvs-timeouts.service'
ARGS = {'tcp': 900, 'tcpfin': 120, 'udp': 10}


@pytest.fixture(scope='module')
def clean(lab, lab_reset):
    lab_reset()
    return lab


def timeouts(ssh, node=NODE):
    return ssh(node, 'ipvsadm -L --timeout').stdout.strip()


def enabled(ssh, node=NODE):
    return ssh(node, 'systemctl is-enabled %s 2>&1; true' % UNIT).stdout.strip()


def test_requires_ip_vs_loaded(clean, run_module, ssh):
    result = run_module('lab-node-2', 'ipvs_timeouts', ARGS, check=True)
    assert result.failed and 'ip_vs is not loaded' in result['msg']
    # ipvsadm was not run: it would have loaded ip_vs
    assert ssh('lab-node-2', 'grep -c "^ip_vs " /proc/modules; true').stdout.strip() == '0'


def test_check_mode_apply_idempotent_and_cluster_version_advice(clean, run_module, ssh):
    loaded = run_module(NODE, 'ipvs_modules', {'schedulers': ['rr']})
    assert not loaded.failed, loaded.output
    assert timeouts(ssh) == 'Timeout (tcp tcpfin udp): 900 120 300'

    checked = run_module(NODE, 'ipvs_timeouts', dict(ARGS, cluster_version='1.16.9'), check=True, diff=True)
    assert not checked.failed, checked.output
    assert checked['changed'] is True
    assert checked['before'] == {'tcp': 900, 'tcpfin': 120, 'udp': 300, 'unit_enabled': False}
    assert checked['after'] == {'tcp': 900, 'tcpfin': 120, 'udp': 10, 'unit_enabled': True}
    assert checked['recommended_fix'] == 'N-5'
    assert not checked.get('warnings')
    assert checked['diff'][0]['after'] == 'Timeout (tcp tcpfin udp): 900 120 10\n'
    assert 'ExecStart=/usr/sbin/ipvsadm --set 900 120 10' in checked['diff'][1]['after']
    assert timeouts(ssh) == 'Timeout (tcp tcpfin udp): 900 120 300'
    assert enabled(ssh) != 'enabled'
    assert ssh(NODE, 'test -e /etc/systemd/system/%s; echo $?' % UNIT).stdout.strip() == '1'

    applied = run_module(NODE, 'ipvs_timeouts', dict(ARGS, cluster_version='1.16.9'))
    assert not applied.failed, applied.output
    assert applied['changed'] is True
    assert applied['ipvsadm_before'] == 'Timeout (tcp tcpfin udp): 900 120 300'
    assert applied['ipvsadm_after'] == 'Timeout (tcp tcpfin udp): 900 120 10'
    assert timeouts(ssh) == 'Timeout (tcp tcpfin udp): 900 120 10'
    assert enabled(ssh) == 'enabled'

    again = run_module(NODE, 'ipvs_timeouts', dict(ARGS, cluster_version='1.16.9'))
    assert not again.failed, again.output
    assert again['changed'] is False

    newer = run_module(NODE, 'ipvs_timeouts', dict(ARGS, cluster_version='v1.24.9-gke.3200'), check=True)
    assert newer['recommended_fix'] == 'C-3'
    assert any('ipvs.udpTimeout' in w and 'C-3' in w for w in newer.get('warnings', []))


def test_both_fixes_survive_a_real_reboot(clean, run_module, ssh):
    # Follows the previous test on the same node: ip_vs_rr persisted, unit enabled, udp=10.
    assert enabled(ssh) == 'enabled', 'run with test_check_mode_apply_idempotent_and_cluster_version_advice first'
    reserved = run_module(NODE, 'port_range', {'method': 'reserve'})
    assert not reserved.failed, reserved.output
    assert ssh(NODE, 'echo 10250 > /proc/sys/net/ipv4/ip_local_reserved_ports; cat /proc/sys/net/ipv4/ip_local_reserved_ports').stdout.strip() == '10250'
    rebooted = run_module(NODE, 'ansible.builtin.reboot', {'reboot_timeout': 600}, timeout=900)
    assert not rebooted.failed, rebooted.output
    out = ssh(NODE, 'grep -o "^ip_vs[a-z_]* " /proc/modules | sort | tr -d " " | tr "\\n" " "; echo; '
                    'systemctl is-active %s; ipvsadm -L --timeout; cat /proc/sys/net/ipv4/ip_local_reserved_ports' % UNIT).stdout.splitlines()
    assert set(out[0].split()) >= {'ip_vs', 'ip_vs_rr'}, out
    assert out[1] == 'active', out
    assert out[2] == 'Timeout (tcp tcpfin udp): 900 120 10', out
    assert out[3] == '30000-32767', out  # from the drop-in (the runtime-only 10250 is gone with the reboot)
    # and nothing to do afterwards
    again = run_module(NODE, 'ipvs_timeouts', ARGS)
    assert not again.failed and again['changed'] is False, again.output
    modules = run_module(NODE, 'ipvs_modules', {'schedulers': ['rr']})
    assert not modules.failed and modules['changed'] is False, modules.output
