"""N-1 on a REAL node: a pod the real kubelet started (bridge + host-local CNI) and cni_ipam_gc beside it (issue 15).

The other lab tests of ``cni_ipam_gc`` (tests/labvm/test_cni_ipam_gc.py) make the allocations with the real host-local
plugin for containers made with ``ctr``. Here the kubelet v1.37.2 of a lab VM joined as a real node makes them: an
ordinary (not hostNetwork) pod pinned to the first real node gets its sandbox from containerd's CRI plugin and its
address from the node's CNI configuration (``/etc/cni/net.d/10-netmedic.conflist``: bridge ``cni0`` + host-local,
network ``netmedic-pods``). The test reads back what the real components did:

- the pod's IP is in the node's host-local range and its allocation file names the pod's sandbox, which containerd's
  ``k8s.io`` namespace lists; the node reaches the pod over ``cni0`` (``ping``);
- one allocation left behind by a sandbox that no longer exists (the fault of N-1: an ID containerd does not list) is
  planted beside it; ``netmedic.k8s.cni_ipam_gc`` in check mode reports exactly that file as leaked and the pod's as
  live, and changes nothing; applied, it moves only that file to its backup; the pod still answers; a second run
  changes nothing;
- deleting the pod releases its address through the real CNI DEL (the file goes away).
"""

from __future__ import annotations

import ipaddress
import json
import shlex

import pytest

from tests.realnode.conftest import _poll, waiter

NS = 'default'
POD = 'netmedic-pod-network'
NETWORK = 'netmedic-pods'
NET_DIR = '/var/lib/cni/networks/' + NETWORK
CONFLIST = '/etc/cni/net.d/10-netmedic.conflist'
PAUSE_IMAGE = 'localhost/netmedic/pause:lab'
BACKUP = '/var/lib/netmedic/backups/cni_ipam_gc-realnode'
LEAKED_ID = ('dead' * 16)
ARGS = {'networks': [NETWORK], 'grace_period': 600, 'backup_dir': BACKUP}


def _pod_manifest(node):
    return {
        'apiVersion': 'v1', 'kind': 'Pod',
        'metadata': {'name': POD, 'namespace': NS, 'labels': {'app': POD}},
        'spec': {
            'nodeName': node, 'automountServiceAccountToken': False, 'terminationGracePeriodSeconds': 0,
            'tolerations': [{'operator': 'Exists'}],
            'containers': [{'name': 'pause', 'image': PAUSE_IMAGE, 'imagePullPolicy': 'Never'}],
        },
    }


def _files(ssh, node):
    """{file name: first line} of the network's host-local directory, read over ssh."""
    out = ssh(node, 'cd %s && for f in *; do printf "%%s\\t%%s\\n" "$f" "$(head -n1 "$f" | tr -d "\\r")"; done' % NET_DIR,
              timeout=60).stdout
    return dict(line.split('\t', 1) for line in out.splitlines() if '\t' in line)


def _wait(probe, what, timeout):
    """``probe()`` until it is truthy, with the suite's poll loop (conftest ``_poll``: module_utils/k8s/waiter)."""
    try:
        return _poll(probe, bool, timeout)
    except waiter.WaitTimeout as exc:
        raise AssertionError('%s not reached after %ss (last: %r)' % (what, timeout, exc.last)) from None


def _delete_pod(real):
    from kubernetes.client.exceptions import ApiException
    try:
        real.core.delete_namespaced_pod(POD, NS, grace_period_seconds=0, _request_timeout=30)
    except ApiException as exc:
        if exc.status != 404:
            raise


def _pod_gone(real):
    from kubernetes.client.exceptions import ApiException
    try:
        real.core.read_namespaced_pod(POD, NS, _request_timeout=30)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


@pytest.fixture(scope='module')
def pod(real, ssh):
    """The pod Running on the first real node with its IP; the planted leak removed and the pod deleted after."""
    node = real.nodes[0]
    _delete_pod(real)
    _wait(lambda: _pod_gone(real), 'the old test pod gone', 120)
    real.core.create_namespaced_pod(NS, _pod_manifest(node), _request_timeout=30)
    try:
        def running():
            p = real.core.read_namespaced_pod(POD, NS, _request_timeout=30)
            return p if p.status.phase == 'Running' and p.status.pod_ip else None
        p = _wait(running, 'pod %s Running with an IP on %s' % (POD, node), 300)
        yield {'node': node, 'ip': p.status.pod_ip, 'uid': p.metadata.uid}
    finally:
        ssh(node, 'rm -rf %s; grep -l %s %s/* 2>/dev/null | xargs -r rm -f' % (BACKUP, LEAKED_ID, NET_DIR),
            timeout=60, check=False)
        _delete_pod(real)


def test_real_kubelet_pod_gets_its_address_from_host_local(real, pod, ssh):
    node, ip = pod['node'], pod['ip']
    conf = json.loads(ssh(node, 'cat %s' % CONFLIST, timeout=60).stdout)
    assert conf['name'] == NETWORK
    subnet = ipaddress.ip_network(conf['plugins'][0]['ipam']['ranges'][0][0]['subnet'])
    assert ipaddress.ip_address(ip) in subnet, (ip, subnet)
    files = _files(ssh, node)
    assert ip in files, files
    sandbox = files[ip]
    assert len(sandbox) == 64, files
    listed = ssh(node, 'ctr -n k8s.io containers ls -q', timeout=120).stdout.split()
    assert sandbox in listed, (sandbox, listed)
    labels = json.loads(ssh(node, 'ctr -n k8s.io containers info %s' % sandbox, timeout=120).stdout)['Labels']
    assert labels.get('io.kubernetes.pod.name') == POD and labels.get('io.kubernetes.pod.uid') == pod['uid'], labels
    assert ssh(node, 'ping -c 1 -W 5 %s' % ip, timeout=60, check=False).returncode == 0


def test_n1_gc_keeps_the_real_pods_address_and_collects_only_the_leak(real, pod, ssh, run_module):
    node, ip = pod['node'], pod['ip']
    subnet = ipaddress.ip_network(json.loads(ssh(node, 'cat %s' % CONFLIST, timeout=60).stdout)
                                  ['plugins'][0]['ipam']['ranges'][0][0]['subnet'])
    leaked_ip = str(subnet.network_address + 250)
    assert leaked_ip != ip
    # A leaked allocation as host-local writes one (the ID, then the interface), three hours old: past the grace period.
    ssh(node, 'printf "%%s\\r\\neth0" %s > %s/%s && touch -d "3 hours ago" %s/%s'
        % (LEAKED_ID, NET_DIR, leaked_ip, NET_DIR, leaked_ip), timeout=60)
    # The pod's own file is older than the grace period too, so only the runtime listing keeps it.
    ssh(node, 'touch -d "3 hours ago" %s/%s' % (NET_DIR, ip), timeout=60)
    before = _files(ssh, node)
    assert before[leaked_ip] == LEAKED_ID and ip in before

    check = run_module(node, 'cni_ipam_gc', ARGS, check=True, diff=True)
    assert not check.failed, check.output
    assert check['changed'] is True
    (net,) = check['networks']
    assert [i['path'] for i in net['leaked']] == ['%s/%s' % (NET_DIR, leaked_ip)], net
    assert net['live'] >= 1 and net['refused'] is False, net
    assert check['runtime']['name'] == 'containerd', check['runtime']
    assert _files(ssh, node) == before                                   # check mode moved nothing
    assert ssh(node, 'test -e %s' % BACKUP, timeout=60, check=False).returncode != 0

    apply = run_module(node, 'cni_ipam_gc', ARGS)
    assert not apply.failed, apply.output
    assert apply['changed'] is True
    assert [m['path'] for m in apply['moved']] == ['%s/%s' % (NET_DIR, leaked_ip)], apply['moved']
    after = _files(ssh, node)
    assert leaked_ip not in after and after[ip] == before[ip]            # the pod keeps its address
    kept = ssh(node, 'cat %s/*%s/%s' % (shlex.quote(BACKUP), NET_DIR, leaked_ip), timeout=60).stdout
    assert kept.startswith(LEAKED_ID), kept                              # backed up, not deleted
    assert ssh(node, 'ping -c 1 -W 5 %s' % ip, timeout=60, check=False).returncode == 0
    assert real.core.read_namespaced_pod(POD, NS, _request_timeout=30).metadata.uid == pod['uid']

    again = run_module(node, 'cni_ipam_gc', ARGS)
    assert not again.failed, again.output
    assert again['changed'] is False and again['moved'] == []
    assert _files(ssh, node) == after


def test_deleting_the_pod_releases_its_address_through_the_real_cni(real, pod, ssh):
    node, ip = pod['node'], pod['ip']
    assert ip in _files(ssh, node)
    _delete_pod(real)
    _wait(lambda: _pod_gone(real), 'pod %s deleted' % POD, 180)
    _wait(lambda: ip not in _files(ssh, node), 'the allocation %s released on %s' % (ip, node), 120)
