"""Role netmedic.k8s.ipam_cleanup_daemonset (catalog C-8) on the double and on the real kube-apiserver (issue 15).

Ported from tests/lab/test_ipam_cleanup_daemonset.py (issue 15 item 4; none of its cases needed the double).
Issue 10 hole 1: the DaemonSet's shell script removed every regular file older than the grace period in whatever
directory it was given (``/var/lib/kubelet`` lost ``config.yaml``), without an IP-name filter, host-local's lock, a
backup or a refusal when nothing is live, and its pod mounted all of ``/run/containerd`` from a tag-addressed image.
Now the pod runs cni_ipam_gc's own code: the ConfigMap holds the collection's module_utils byte for byte (so it cannot
drift), only the runtime socket, the IPAM directory and the backup directory are mounted, the image is pinned by
digest, and an IPAM directory outside host-local's data directories is refused before any write.

The role is applied through ansible-playbook (kubernetes.core.k8s) into a namespace of the test's own
(``ipam_cleanup_daemonset_namespace``, default kube-system); what was stored is read back through the API. On the
real server the DaemonSet controller makes the pods and lab/k8s/nodesim.py runs them on the three simulated nodes;
admission stores what the server defaults (the test compares what the role set). The shipped code itself runs in
tests/unit/plugins/module_utils/test_ipam_gc_cli.py and tests/integration/test_ipam_gc_cli.py (cni_ipam_gc's fault
matrix), and on real containerd in tests/labvm/test_ipam_cleanup_daemonset.py; the last test here runs the stored
pod's own command line and ConfigMap files in a mount namespace laid out as its volumes say.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.cluster.conftest import wait

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = str(ROOT / 'collections')
MODULE_UTILS = ROOT / 'plugins' / 'module_utils'
NAME = 'cleanup-ipam-dir'
DIGEST = 'sha256:' + '3f' * 32
IMAGE = 'registry.example/netmedic/gc-tools@' + DIGEST
SHIPPED = ('ipam_gc_cli.py', 'ipam_gc.py', 'ipam.py', 'runtime.py', 'node/runner.py', 'node/hostfs.py', 'reportfiles.py')
PACKAGE = 'ansible_collections/netmedic/k8s/plugins/module_utils'
NODES = ['lab-node-1', 'lab-node-2', 'lab-node-3']
KINDS = ('ServiceAccount', 'ConfigMap', 'DaemonSet')


@pytest.fixture
def run(playbook):
    return lambda cluster, tasks: playbook(cluster, tasks, extra_env={'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS})


def role(ns, variables=None, **extra):
    entry = {'ansible.builtin.import_role': {'name': 'netmedic.k8s.ipam_cleanup_daemonset'}}
    entry['vars'] = dict({'ipam_cleanup_daemonset_image': IMAGE, 'ipam_cleanup_daemonset_namespace': ns}, **(variables or {}))
    entry.update(extra)
    return entry


def objects(cluster, ns):
    return {kind: cluster.find(kind, ns, NAME) for kind in KINDS}


def pod_spec(cluster, ns):
    return objects(cluster, ns)['DaemonSet']['spec']['template']['spec']


def _running(cluster, ns):
    """The DaemonSet's three pods Running, and its status counting them for the current generation (the controller
    writes the status after the pods: a resourceVersion read before that moves under the test)."""
    pods = [p for p in cluster.items('Pod', ns, label_selector='app.kubernetes.io/name=%s' % NAME)
            if not p['metadata'].get('deletionTimestamp')]
    ds = cluster.get('DaemonSet', ns, NAME)
    status = ds.get('status') or {}
    settled = status.get('observedGeneration') == ds['metadata']['generation'] and all(
        status.get(k) == 3 for k in ('desiredNumberScheduled', 'currentNumberScheduled', 'numberReady', 'updatedNumberScheduled',
                                     'numberAvailable'))
    return pods if len(pods) == 3 and all(p['status'].get('phase') == 'Running' for p in pods) and settled else None


def test_present_idempotent_check_mode_and_absent(writable, scratch, run):
    cluster, ns = writable, scratch
    rc, results, output = run(cluster, yaml.safe_dump([role(ns, check_mode=True)]))
    assert rc == 0, output
    assert all(obj is None for obj in objects(cluster, ns).values()), 'check mode created objects'

    rc, results, output = run(cluster, yaml.safe_dump([role(ns, {'ipam_cleanup_daemonset_grace_minutes': 15})]))
    assert rc == 0, output
    made = objects(cluster, ns)
    assert made['ServiceAccount']['automountServiceAccountToken'] is False
    spec = made['DaemonSet']['spec']['template']['spec']
    container = spec['containers'][0]
    assert '--grace-period=900' in container['command']
    assert container['securityContext']['capabilities'] == {'drop': ['ALL']}
    assert container['securityContext']['readOnlyRootFilesystem'] is True
    assert container['securityContext']['allowPrivilegeEscalation'] is False
    assert spec['automountServiceAccountToken'] is False and spec['hostNetwork'] is True
    assert not spec.get('hostPID') and not container['securityContext'].get('privileged')

    pods = wait('three %s pods Running and the DaemonSet status counting them' % NAME, lambda: _running(cluster, ns))
    assert sorted(p['spec']['nodeName'] for p in pods) == NODES
    settled = objects(cluster, ns)['DaemonSet']['metadata']
    assert settled['generation'] == made['DaemonSet']['metadata']['generation']     # only the status moved since
    rc, results, output = run(cluster, yaml.safe_dump([role(ns, {'ipam_cleanup_daemonset_grace_minutes': 15})]))
    assert rc == 0, output
    assert not any(r.get('changed') for r in results.values()), 'second run changed something'
    assert objects(cluster, ns)['DaemonSet']['metadata']['resourceVersion'] == settled['resourceVersion']
    assert {k: o['metadata']['resourceVersion'] for k, o in objects(cluster, ns).items() if k != 'DaemonSet'} == \
        {k: o['metadata']['resourceVersion'] for k, o in made.items() if k != 'DaemonSet'}

    # A changed setting in check mode: reported as a change, nothing written.
    rc, results, output = run(cluster, yaml.safe_dump([role(ns, {'ipam_cleanup_daemonset_grace_minutes': 20}, check_mode=True)]))
    assert rc == 0, output
    (daemonset,) = [r for name, r in results.items() if name.endswith('DaemonSet')]
    assert daemonset.get('changed') is True
    assert '--grace-period=900' in pod_spec(cluster, ns)['containers'][0]['command']
    assert objects(cluster, ns)['DaemonSet']['metadata']['generation'] == settled['generation']

    rc, results, output = run(cluster, yaml.safe_dump([role(ns, {'ipam_cleanup_daemonset_state': 'absent',
                                                                 'ipam_cleanup_daemonset_image': ''})]))
    assert rc == 0, output
    assert all(obj is None for obj in objects(cluster, ns).values())


def test_issue10_h1_pod_runs_cni_ipam_gc_code_shipped_byte_for_byte(writable, scratch, run):
    """Hole 1: the pod ran a second, weaker implementation (a shell loop with rm). Now the ConfigMap
    holds exactly the module_utils files cni_ipam_gc runs, mounted as their package tree."""
    cluster, ns = writable, scratch
    rc, _results, output = run(cluster, yaml.safe_dump([role(ns)]))
    assert rc == 0, output
    data = objects(cluster, ns)['ConfigMap']['data']
    assert sorted(data) == sorted(n.replace('/', '.') for n in SHIPPED)
    for name in SHIPPED:
        assert data[name.replace('/', '.')] == (MODULE_UTILS / name).read_text(), '%s in the ConfigMap differs from the collection' % name
    spec = pod_spec(cluster, ns)
    container = spec['containers'][0]
    assert container['command'][:6] == ['python3', '-S', '-E', '-B', '-m',
                                        'ansible_collections.netmedic.k8s.plugins.module_utils.ipam_gc_cli']
    assert container['workingDir'] == '/netmedic'
    code = {v['name']: v for v in spec['volumes']}['code']['configMap']
    assert code['items'] == [{'key': n.replace('/', '.'), 'path': '%s/%s' % (PACKAGE, n)} for n in SHIPPED]
    mounts = {m['name']: m for m in container['volumeMounts']}
    assert mounts['code'] == {'name': 'code', 'mountPath': '/netmedic', 'readOnly': True}
    args = container['command'][6:]
    assert args == ['--data-dir=/var/lib/cni/networks', '--network=gke-pod-network',
                    '--backup-dir=/var/lib/netmedic/backups/ipam_cleanup_daemonset', '--keep-count=50', '--keep-days=14',
                    '--runtime=containerd', '--runtime-endpoint=/run/containerd/containerd.sock', '--runtime-cli=auto',
                    '--namespace=k8s.io', '--runtime-timeout=30', '--lock-timeout=30', '--grace-period=600', '--interval=120']
    assert '--allow-all' not in args and '--allow-other-data-dir' not in args
    annotation = objects(cluster, ns)['DaemonSet']['spec']['template']['metadata']['annotations']['netmedic.k8s/code-sha256']
    assert len(annotation) == 64


def test_issue10_h1_only_the_socket_ipam_and_backup_dirs_are_mounted(writable, scratch, run):
    """Hole 1: a read-only mount of /run/containerd does not stop connect() on the socket, and exposes
    containerd's whole state directory. Only the socket file (type Socket) is mounted now."""
    cluster, ns = writable, scratch
    rc, _results, output = run(cluster, yaml.safe_dump([role(ns, {'ipam_cleanup_daemonset_dry_run': True})]))
    assert rc == 0, output
    spec = pod_spec(cluster, ns)
    host = {v['name']: v['hostPath'] for v in spec['volumes'] if 'hostPath' in v}
    assert host == {
        'host-ipam': {'path': '/var/lib/cni/networks/gke-pod-network', 'type': 'Directory'},
        'runtime-socket': {'path': '/run/containerd/containerd.sock', 'type': 'Socket'},
        'backup': {'path': '/var/lib/netmedic/backups/ipam_cleanup_daemonset', 'type': 'DirectoryOrCreate'},
    }
    mounts = {m['name']: m['mountPath'] for m in spec['containers'][0]['volumeMounts']}
    assert mounts['runtime-socket'] == '/run/containerd/containerd.sock'
    assert mounts['host-ipam'] == '/var/lib/cni/networks/gke-pod-network'
    assert '--dry-run' in spec['containers'][0]['command']
    assert spec['containers'][0]['image'] == IMAGE


def test_whole_data_dir_and_crio(writable, scratch, run):
    cluster, ns = writable, scratch
    rc, _results, output = run(cluster, yaml.safe_dump([role(ns, {
        'ipam_cleanup_daemonset_ipam_dir': '/var/run/cni/networks/', 'ipam_cleanup_daemonset_runtime': 'crio',
        'ipam_cleanup_daemonset_runtime_socket': '/var/run/crio/crio.sock'})]))
    assert rc == 0, output
    spec = pod_spec(cluster, ns)
    args = spec['containers'][0]['command']
    assert '--data-dir=/var/run/cni/networks' in args and not [a for a in args if a.startswith('--network')]
    assert '--runtime=crio' in args and '--runtime-endpoint=/var/run/crio/crio.sock' in args
    host = {v['name']: v['hostPath']['path'] for v in spec['volumes'] if 'hostPath' in v}
    assert host['host-ipam'] == '/var/run/cni/networks' and host['runtime-socket'] == '/var/run/crio/crio.sock'


def test_other_data_dir_needs_the_override(writable, scratch, run):
    cluster, ns = writable, scratch
    rc, _results, output = run(cluster, yaml.safe_dump([role(ns, {'ipam_cleanup_daemonset_ipam_dir': '/var/lib/flannel/networks',
                                                                  'ipam_cleanup_daemonset_allow_other_ipam_dir': True})]))
    assert rc == 0, output
    args = pod_spec(cluster, ns)['containers'][0]['command']
    assert '--data-dir=/var/lib/flannel/networks' in args and '--allow-other-data-dir' in args


BAD = [
    # issue 10 hole 1: the directory whose config.yaml the old script removed
    ({'ipam_cleanup_daemonset_ipam_dir': '/var/lib/kubelet'}, 'must be a host-local data directory'),
    ({'ipam_cleanup_daemonset_ipam_dir': '/var/lib/cni'}, 'must be a host-local data directory'),
    ({'ipam_cleanup_daemonset_ipam_dir': '/var/lib/cni/networks/a/b'}, 'must be a host-local data directory'),
    ({'ipam_cleanup_daemonset_ipam_dir': '/', 'ipam_cleanup_daemonset_allow_other_ipam_dir': True}, 'host-local'),
    ({'ipam_cleanup_daemonset_ipam_dir': '/var', 'ipam_cleanup_daemonset_allow_other_ipam_dir': True}, 'host-local'),
    ({'ipam_cleanup_daemonset_ipam_dir': 'var/lib/cni/networks'}, 'host-local'),
    ({'ipam_cleanup_daemonset_ipam_dir': '/var/lib/cni/networks/../../kubelet'}, 'host-local'),
    # issue 10 hole 1: image pinned by digest, tags refused
    ({'ipam_cleanup_daemonset_image': 'gcr.io/gke-networking-test-images/ubuntu-test:2022'}, 'pinned by digest'),
    ({'ipam_cleanup_daemonset_image': 'busybox'}, 'pinned by digest'),
    ({'ipam_cleanup_daemonset_image': 'repo/img:1.0@' + DIGEST}, 'pinned by digest'),
    ({'ipam_cleanup_daemonset_image': 'repo/img@sha256:abc'}, 'pinned by digest'),
    ({'ipam_cleanup_daemonset_image': ''}, 'pinned by digest'),
    ({'ipam_cleanup_daemonset_backup_dir': '/var/lib/cni/networks/backup'}, 'under /var/lib/netmedic/'),
    ({'ipam_cleanup_daemonset_backup_dir': '/var/lib/netmedic/../kubelet'}, 'under /var/lib/netmedic/'),
    ({'ipam_cleanup_daemonset_backup_keep_count': -1}, 'keep_count'),
    ({'ipam_cleanup_daemonset_runtime_socket': '/run/containerd'}, 'runtime_socket'),
    ({'ipam_cleanup_daemonset_containerd_dir': '/run/containerd'}, 'no longer supported'),
    ({'ipam_cleanup_daemonset_interval_seconds': 1}, 'interval_seconds'),
    ({'ipam_cleanup_daemonset_grace_minutes': 0}, 'grace_minutes'),
    ({'ipam_cleanup_daemonset_runtime_timeout': 0}, 'runtime_timeout'),
    ({'ipam_cleanup_daemonset_state': 'gone'}, 'argument'),
    ({'ipam_cleanup_daemonset_runtime': 'rkt'}, 'argument'),
]


@pytest.mark.parametrize('variables, message', BAD, ids=[str(sorted(v.items())) for v, _m in BAD])
def test_bad_settings_fail_before_any_write(writable, scratch, run, variables, message):
    cluster, ns = writable, scratch
    rc, results, output = run(cluster, yaml.safe_dump([role(ns, variables)]))
    assert rc == 2, output
    failed = [r for r in results.values() if r.get('failed')]
    assert len(failed) == 1, output
    assert message in failed[0]['msg'], failed[0]['msg']
    assert 'nothing was changed' in failed[0]['msg'] or 'argument' in failed[0]['msg'].lower(), failed[0]['msg']
    assert all(obj is None for obj in objects(cluster, ns).values())


# -- the stored pod, run here --------------------------------------------------------------------

LIVE = 'c0ffee' + '0' * 58
DEAD = 'deadbeef' + '1' * 56
POD_SCRIPT = r'''
set -e
mount --make-rprivate /
# The pod's view: tmpfs over /var/lib and /run (nothing of the host's is visible or written), the
# hostPath volumes as bind mounts at the paths the manifest names.
mount -t tmpfs tmpfs /var/lib
mount -t tmpfs tmpfs /run
mkdir -p "$NET" "$BACKUP" "$(dirname "$SOCK")"
mount --bind "$SANDBOX/net" "$NET"
mount --bind "$SANDBOX/backup" "$BACKUP"
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$SOCK"
cd "$SANDBOX/code"
exec setpriv --no-new-privs --bounding-set=-all --inh-caps=-all -- "$@"
'''


def test_issue10_h1_rendered_pod_runs_the_shipped_code(writable, scratch, run, tmp_path):
    """The DaemonSet's own command line as the server stored it (only --interval set to one pass), with the
    ConfigMap's files laid out as its items say, without capabilities, in a mount namespace where the hostPath
    volumes are bind mounts at the manifest's paths: old leaked allocations are moved to the backup, live ones stay."""
    cluster, ns = writable, scratch
    rc, _results, output = run(cluster, yaml.safe_dump([role(ns)]))
    assert rc == 0, output
    spec = pod_spec(cluster, ns)
    container = spec['containers'][0]
    data = objects(cluster, ns)['ConfigMap']['data']
    code = tmp_path / 'code'
    for item in {v['name']: v for v in spec['volumes']}['code']['configMap']['items']:
        path = code / item['path']
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data[item['key']])
    host = {v['name']: v['hostPath']['path'] for v in spec['volumes'] if 'hostPath' in v}
    net = tmp_path / 'net'
    net.mkdir()
    (tmp_path / 'backup').mkdir()
    old = time.time() - 3600
    for name, owner in {'10.8.3.2': LIVE, 'fd00:10:8:3::2': LIVE, '10.8.3.4': DEAD, 'fd00:10:8:3::4': DEAD,
                        'lock': None, 'last_reserved_ip.0': None}.items():
        (net / name).write_text(owner + '\r\neth0' if owner else '')
        os.utime(str(net / name), (old, old))
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    (bindir / 'ctr').write_text('#!/bin/sh\necho %s\n' % LIVE)
    (bindir / 'ctr').chmod(0o755)
    argv = [a if not a.startswith('--interval=') else '--interval=0' for a in container['command']]
    argv[0] = shutil.which('python3', path='/usr/bin:/bin')
    env = {'PATH': '%s:/usr/sbin:/usr/bin:/sbin:/bin' % bindir, 'SANDBOX': str(tmp_path), 'NET': host['host-ipam'],
           'BACKUP': host['backup'], 'SOCK': host['runtime-socket']}
    proc = subprocess.run(['unshare', '-m', 'sh', '-c', POD_SCRIPT, 'pod'] + argv, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert sorted(os.path.basename(m['path']) for m in result['moved']) == ['10.8.3.4', 'fd00:10:8:3::4']
    assert {m['method'] for m in result['moved']} == {'copy'}          # separate mounts, as hostPath volumes
    assert all(m['path'].startswith(host['host-ipam'] + '/') for m in result['moved'])
    assert sorted(p.name for p in net.iterdir()) == ['10.8.3.2', 'fd00:10:8:3::2', 'last_reserved_ip.0', 'lock']
    (run_dir,) = list((tmp_path / 'backup').iterdir())
    assert (run_dir / 'manifest.json').is_file()
    mirrored = run_dir / host['host-ipam'].lstrip('/')
    assert (mirrored / '10.8.3.4').read_bytes() == (DEAD + '\r\neth0').encode()
