"""netmedic.k8s.node_hosts: the Node-name -> inventory-host lookup W-3's reboot and the reboot provider hook share."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.netmedic.k8s.plugins.filter.node_hosts import FilterModule, node_hosts


def test_node_name_from_netmedic_node_name_else_inventory_name():
    hostvars = {'lab-node-1': {'netmedic_node_name': 'cn-hz.10.0.0.1'}, 'lab-node-2': {}}
    assert node_hosts(['lab-node-1', 'lab-node-2', 'ghost'], hostvars) == {
        'cn-hz.10.0.0.1': 'lab-node-1', 'lab-node-2': 'lab-node-2', 'ghost': 'ghost'}


def test_two_hosts_claiming_one_node_fail_with_both_names():
    hostvars = {'a': {'netmedic_node_name': 'n1'}, 'b': {'netmedic_node_name': 'n1'}}
    with pytest.raises(AnsibleFilterError, match=r'inventory hosts a and b are both Node n1'):
        node_hosts(['a', 'b'], hostvars)


def test_not_a_list_fails():
    with pytest.raises(AnsibleFilterError, match='expects a list of inventory hosts'):
        node_hosts('lab-node-1', {})


def test_registered():
    assert FilterModule().filters()['node_hosts'] is node_hosts
