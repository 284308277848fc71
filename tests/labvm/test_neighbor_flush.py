"""neighbor_flush (catalog N-6) across real nodes on the lab's shared L2 segment (eth1).

A VIP (10.77.0.100) lives on lab-node-2, lab-node-1 learns its MAC, then the VIP moves to
lab-node-3 without a gratuitous ARP: lab-node-1 keeps the old MAC (the seed's stale entry,
pinned as PERMANENT so the kernel cannot repair it on its own during the test). Every
claim is checked with `ip` / `ping` over SSH, independently of the module.
"""

import pytest

NODE, OLD, NEW = 'lab-node-1', 'lab-node-2', 'lab-node-3'
VIP = '10.77.0.100'


@pytest.fixture(scope='module')
def moved_vip(lab, lab_reset, ssh):
    lab_reset()
    macs = {n: lab['hostvars'][n]['lab_l2_mac'] for n in (OLD, NEW)}
    ssh(OLD, 'ip addr add %s/24 dev eth1' % VIP)
    ssh(NODE, 'ping -c 1 -W 3 %s >/dev/null' % VIP)
    ssh(OLD, 'ip addr del %s/24 dev eth1' % VIP)
    ssh(NEW, 'ip addr add %s/24 dev eth1' % VIP)
    return macs


def neigh_of(ssh, ip=VIP, node=NODE):
    return ssh(node, 'ip neigh show to %s dev eth1' % ip).stdout.strip()


def test_stale_vip_entry_is_found_by_probe_and_removed(moved_vip, run_module, ssh):
    ssh(NODE, 'ip neigh replace %s lladdr %s nud permanent dev eth1' % (VIP, moved_vip[OLD]))
    assert neigh_of(ssh) == '%s lladdr %s PERMANENT' % (VIP, moved_vip[OLD])
    # the fault: traffic to the VIP goes to the old node and is lost
    assert ssh(NODE, 'ping -c 1 -W 2 %s' % VIP, check=False).returncode != 0

    checked = run_module(NODE, 'neighbor_flush', {'address': VIP, 'probe': True, 'device': 'eth1'}, check=True, diff=True)
    assert not checked.failed, checked.output
    assert checked['changed'] is True
    assert checked['probe'] == {VIP: {'device': 'eth1', 'macs': [moved_vip[NEW]], 'conflict': False}}
    assert checked['removed'][0]['method'] == 'del'
    assert neigh_of(ssh) == '%s lladdr %s PERMANENT' % (VIP, moved_vip[OLD]), 'check mode changed the table'

    applied = run_module(NODE, 'neighbor_flush', {'address': VIP, 'probe': True, 'device': 'eth1'})
    assert not applied.failed, applied.output
    assert applied['changed'] is True
    # fault gone: the VIP answers, and the node learned the new owner's MAC
    ssh(NODE, 'ping -c 1 -W 3 %s >/dev/null' % VIP)
    assert 'lladdr %s ' % moved_vip[NEW] in neigh_of(ssh) + ' '

    again = run_module(NODE, 'neighbor_flush', {'address': VIP, 'probe': True, 'device': 'eth1'})
    assert not again.failed, again.output
    assert again['changed'] is False


def test_expected_mac_on_a_dynamic_entry(moved_vip, run_module, ssh):
    ssh(NODE, 'ip neigh replace %s lladdr %s nud stale dev eth1' % (VIP, moved_vip[OLD]))
    result = run_module(NODE, 'neighbor_flush', {'address': VIP, 'expected_mac': moved_vip[NEW]})
    assert not result.failed, result.output
    assert [r['method'] for r in result['removed']] == ['flush']
    assert moved_vip[OLD] not in neigh_of(ssh)
    again = run_module(NODE, 'neighbor_flush', {'address': VIP, 'expected_mac': moved_vip[NEW]})
    assert again['changed'] is False, again


def test_two_owners_are_a_conflict_and_nothing_changes(moved_vip, run_module, ssh):
    ssh(OLD, 'ip addr add %s/24 dev eth1' % VIP)  # now both answer
    try:
        ssh(NODE, 'ip neigh replace %s lladdr 02:00:00:00:00:99 nud permanent dev eth1' % VIP)
        result = run_module(NODE, 'neighbor_flush', {'address': VIP, 'probe': True, 'device': 'eth1'})
        assert not result.failed, result.output
        assert result['changed'] is False
        assert result['conflict'] is True
        assert sorted(result['probe'][VIP]['macs']) == sorted(moved_vip.values())
        assert neigh_of(ssh) == '%s lladdr 02:00:00:00:00:99 PERMANENT' % VIP
    finally:
        ssh(OLD, 'ip addr del %s/24 dev eth1' % VIP, check=False)
