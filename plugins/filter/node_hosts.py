# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter netmedic.k8s.node_hosts (documentation: node_hosts.yml beside)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def node_hosts(hosts, hostvars):
    """{Node name: inventory host} for ``hosts``: a host's Node is its netmedic_node_name, else its inventory name.

    Two hosts that claim one Node make the answer uncertain (which one would be rebooted?): an error, never a guess.
    """
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError('netmedic.k8s.node_hosts: expects a list of inventory hosts, got %r' % (hosts,))
    found = {}
    for host in hosts:
        name = (hostvars[host].get('netmedic_node_name') if host in hostvars else None) or host
        name = str(name)
        if name in found and found[name] != host:
            raise AnsibleFilterError(
                'netmedic.k8s.node_hosts: inventory hosts %s and %s are both Node %s (netmedic_node_name); '
                'give each host its own Node name' % (found[name], host, name))
        found[name] = str(host)
    return found


class FilterModule(object):
    def filters(self):
        return {'node_hosts': node_hosts}
