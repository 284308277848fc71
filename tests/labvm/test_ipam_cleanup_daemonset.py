"""The C-8 DaemonSet's code on a real lab node: the ConfigMap's files, the VM's python3, real containerd.

Issue 10 hole 1: the DaemonSet ran a second implementation (a shell loop with ``rm``). Its pod now
runs ``ipam_gc_cli`` over the collection's module_utils, byte for byte. This test copies exactly
those files (``ipam_gc_cli.SHIPPED``) to ``lab-node-1`` and runs the pod's command line there,
as the pod runs it: ``python3 -S -E -B -m ...ipam_gc_cli`` from the package tree, in a private
mount namespace where the network and backup directories are separate bind mounts (as hostPath
volumes are, so moves cross mount points), with every capability dropped (``setpriv``: the pod's
``capabilities: drop [ALL]``, ``allowPrivilegeEscalation: false``).

The node is prepared by cni_ipam_gc's own lab fixture (imported, not copied): a dual-stack
``gke-pod-network`` written by the real host-local plugin for three live containers (running,
stopped task, no task), two leaked IDs and a young one. Then: containerd stopped (pass fails,
nothing moved), an empty namespace (refused), a dry run (nothing moved), a pass (exactly the
leaked pairs moved, v4 and v6 together, read back from the backup), and a second pass
(``changed: false``).
"""

from __future__ import annotations

import base64
import io
import json
import shlex
import tarfile
from pathlib import Path

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import ipam_gc_cli

from . import test_cni_ipam_gc as matrix
from .test_cni_ipam_gc import LEAKED, LIVE, NET, NODE, YOUNG, _state

node = matrix.node  # cni_ipam_gc's lab fixture, shared

ROOT = Path(__file__).resolve().parents[2]
CODE = '/tmp/netmedic-c8'
BACKUP = '/var/lib/netmedic/backups/ipam_cleanup_daemonset'
SOCKET = '/run/containerd/containerd.sock'


def _tarball():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz') as tar:
        for name in ipam_gc_cli.SHIPPED:
            tar.add(str(ROOT / 'plugins' / 'module_utils' / name), arcname='%s/%s' % (ipam_gc_cli.PACKAGE_PATH, name))
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope='module')
def shipped(node, ssh):
    out = ssh(NODE, 'set -e; rm -rf {c}; mkdir -p {c}; echo {b} | base64 -d | tar -xz -C {c}; python3 -V; '
                    'command -v setpriv unshare ctr; find {c} -type f | wc -l'.format(c=CODE, b=_tarball())).stdout
    assert out.split()[0] == 'Python', out
    assert out.split()[-1] == str(len(ipam_gc_cli.SHIPPED)), out
    return out


def _pass(ssh, *extra):
    args = ['--data-dir=/var/lib/cni/networks', '--network=gke-pod-network', '--backup-dir=' + BACKUP,
            '--keep-count=50', '--keep-days=14', '--runtime=containerd', '--runtime-endpoint=' + SOCKET,
            '--runtime-cli=auto', '--runtime-timeout=10', '--lock-timeout=10', '--grace-period=600'] + list(extra)
    cmd = ['python3', '-S', '-E', '-B', '-m', ipam_gc_cli.MODULE] + args
    inner = ('set -e; mount --make-rprivate /; mkdir -p {b}; mount --bind {n} {n}; mount --bind {b} {b}; cd {c}; '
             'exec setpriv --no-new-privs --bounding-set=-all --inh-caps=-all -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin {cmd}'
             .format(b=BACKUP, n=NET, c=CODE, cmd=' '.join(shlex.quote(a) for a in cmd)))
    proc = ssh(NODE, 'unshare -m sh -c %s' % shlex.quote(inner), check=False, timeout=180)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{')]
    assert len(lines) == 1, (proc.returncode, proc.stdout, proc.stderr)
    result = json.loads(lines[0])
    assert (proc.returncode != 0) == bool(result.get('failed')), (proc.returncode, result, proc.stderr)
    return result


def test_issue10_h1_runtime_down_fails_and_moves_nothing(node, shipped, ssh):
    ssh(NODE, 'systemctl stop containerd')
    try:
        result = _pass(ssh)
        assert _state(ssh) == node['files']
    finally:
        ssh(NODE, 'systemctl start containerd && sleep 2 && ctr -n k8s.io c ls -q >/dev/null')
    assert result['failed'] and 'cannot list containerd containers' in result['msg'], result
    assert result['moved'] == []


def test_issue10_h1_empty_namespace_is_refused(node, shipped, ssh):
    result = _pass(ssh, '--namespace=netmedic-empty')
    assert result['failed'] and 'refusing to collect' in result['msg'], result
    assert _state(ssh) == node['files']


def test_issue10_h1_dry_run_moves_nothing(node, shipped, ssh):
    result = _pass(ssh, '--dry-run')
    assert not result.get('failed'), result
    (net,) = result['networks']
    assert net['live'] == 6 and net['allocated'] == 12
    leaked = sorted(f for c in LEAKED for f in node['owners'][c])
    assert sorted(i['path'].rsplit('/', 1)[1] for i in net['leaked']) == leaked
    assert result['runtime']['cli'] in ('ctr', 'crictl') and result['runtime']['endpoint'] == SOCKET
    assert _state(ssh) == node['files']


def test_issue10_h1_pass_moves_exactly_the_leaked_pairs_without_capabilities(node, shipped, ssh):
    result = _pass(ssh)
    assert not result.get('failed'), result
    leaked = sorted(f for c in LEAKED for f in node['owners'][c])
    assert sorted(m['path'].rsplit('/', 1)[1] for m in result['moved']) == leaked
    # separate bind mounts, as hostPath volumes: the move crosses mount points (copy, fsync, unlink)
    assert {m['method'] for m in result['moved']} == {'copy'}
    after = _state(ssh)
    assert sorted(set(node['files']) - set(after)) == leaked
    for f in [f for c in LIVE + [YOUNG] for f in node['owners'][c]] + ['lock', 'last_reserved_ip.0', 'last_reserved_ip.1']:
        assert after[f] == node['files'][f]
    listing = ssh(NODE, 'cd %s && for f in */var/lib/cni/networks/gke-pod-network/*; do echo "$f $(head -n1 "$f" | tr -d "\\r")"; '
                  'done; ls */manifest.json' % BACKUP).stdout.splitlines()
    moved = {line.split()[0].rsplit('/', 1)[1]: line.split()[1] for line in listing if ' ' in line}
    assert moved == {f: node['files'][f] for f in leaked}
    again = _pass(ssh)
    assert not again.get('failed') and again['changed'] is False and again['moved'] == [], again
    assert _state(ssh) == after
