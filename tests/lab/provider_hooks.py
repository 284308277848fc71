"""Provider-hook stand-ins for node_rotation (W-1, and W-3's reboot after a fallback) against the API double.

The real hook reboots or replaces a machine; on the double "the machine came back" is a new boot ID in the Node's
status, which is what node_rotation waits for (the kubelet reports it after a real reboot). One writer of that task file
for every test that rotates nodes."""

from __future__ import annotations


def boot_id_hook(prefix, what='the machine comes back with a new boot ID'):
    """A task file (text) that sets the rotated Node's bootID to ``<prefix>-<node>`` through the double's API."""
    return """\
- name: Provider stand-in - %s
  ansible.builtin.uri:
    url: "{{ test_api }}/api/v1/nodes/{{ node_rotation_node }}/status"
    method: PATCH
    headers:
      Authorization: "Bearer {{ test_token }}"
      Content-Type: application/merge-patch+json
    body_format: json
    body: {status: {nodeInfo: {bootID: "%s-{{ node_rotation_node }}"}}}
""" % (what, prefix)
