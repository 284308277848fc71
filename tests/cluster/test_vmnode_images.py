"""lab/k8s/vmnode.py's images and kube-proxy DaemonSet (issue 15 item 3). Offline: no VM, no apiserver, no host tool.

- the DaemonSet runs kube-proxy from its own image (localhost/netmedic/kube-proxy:lab), not a busybox container that
  chroots into the node's root (what the lab did until 2026-12-04), with the mounts kubeadm's DaemonSet has;
- the docker-archive writer (shared by the pause and kube-proxy images) writes what `ctr images import` reads: a
  manifest naming the tag, a config whose diff_id is the layer's sha256;
- a directory layer is reproducible (same tree, same bytes) and keeps symlinks (iptables -> xtables-nft-multi).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def vmnode(lab_vmnode):
    return lab_vmnode


def test_kube_proxy_daemonset_runs_the_kube_proxy_image(vmnode):
    cm, ds = vmnode.kube_proxy_objects()
    spec = ds['spec']['template']['spec']
    (container,) = spec['containers']
    assert container['image'] == vmnode.KUBE_PROXY_IMAGE == 'localhost/netmedic/kube-proxy:lab'
    assert container['imagePullPolicy'] == 'Never'
    argv = container['command'] + container['args']
    assert argv[0] == '/usr/local/bin/kube-proxy'
    assert not any('chroot' in a or a.startswith('sh') for a in argv), argv
    assert '--config=/var/lib/kube-proxy/config.conf' in argv
    assert spec['hostNetwork'] is True and container['securityContext'] == {'privileged': True}
    mounts = {m['name']: m for m in container['volumeMounts']}
    volumes = {v['name']: v for v in spec['volumes']}
    assert set(mounts) == set(volumes)
    assert volumes['kube-proxy'] == {'name': 'kube-proxy', 'configMap': {'name': cm['metadata']['name']}}
    assert mounts['kube-proxy']['mountPath'] == '/var/lib/kube-proxy'
    # the kubeconfig the ConfigMap names is mounted from the node at that path
    kubeconfig = yaml.safe_load(cm['data']['config.conf'])['clientConnection']['kubeconfig']
    assert mounts['kubeconfig']['mountPath'] == kubeconfig == volumes['kubeconfig']['hostPath']['path']
    assert mounts['lib-modules']['readOnly'] is True and volumes['lib-modules']['hostPath']['path'] == '/lib/modules'
    assert volumes['xtables-lock']['hostPath'] == {'path': '/run/xtables.lock', 'type': 'FileOrCreate'}
    assert not any(v.get('hostPath', {}).get('path') == '/' for v in spec['volumes'])   # no node root in the pod


def _read_archive(path):
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile('manifest.json'))
        (entry,) = manifest
        config = json.load(tar.extractfile(entry['Config']))
        layer = tar.extractfile(entry['Layers'][0]).read()
    return entry, config, layer


def test_docker_archive_is_what_ctr_import_reads(vmnode, tmp_path):
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode='w') as tar:
        info = tarfile.TarInfo('hello')
        info.size = 2
        tar.addfile(info, io.BytesIO(b'hi'))
    dest = str(tmp_path / 'img.tar')
    assert vmnode.docker_archive(dest, 'localhost/x:y', layer.getvalue(), {'Entrypoint': ['/hello']}) == dest
    assert not os.path.exists(dest + '.tmp')
    entry, config, got = _read_archive(dest)
    assert entry['RepoTags'] == ['localhost/x:y']
    assert got == layer.getvalue()
    assert config['rootfs'] == {'type': 'layers', 'diff_ids': ['sha256:' + hashlib.sha256(got).hexdigest()]}
    assert entry['Config'] == hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest() + '.json'
    assert config['config'] == {'Entrypoint': ['/hello']} and config['os'] == 'linux'


def test_dir_layer_is_reproducible_and_keeps_symlinks(vmnode, tmp_path):
    root = tmp_path / 'root'
    (root / 'usr' / 'sbin').mkdir(parents=True)
    (root / 'usr' / 'sbin' / 'xtables-nft-multi').write_bytes(b'\x7fELF')
    (root / 'usr' / 'sbin' / 'xtables-nft-multi').chmod(0o755)
    os.symlink('xtables-nft-multi', root / 'usr' / 'sbin' / 'iptables')
    (root / 'etc').mkdir()
    (root / 'etc' / 'protocols').write_text('tcp 6 TCP\n')
    first = vmnode.dir_layer(str(root))
    os.utime(root / 'etc' / 'protocols', (1, 1))          # another mtime, same tree
    assert vmnode.dir_layer(str(root)) == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == sorted(members)
    link = members['usr/sbin/iptables']
    assert link.issym() and link.linkname == 'xtables-nft-multi'
    assert members['usr/sbin/xtables-nft-multi'].mode & 0o111
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}


def test_put_reads_and_replaces_again_after_a_conflict(vmnode, monkeypatch):
    """make realnode-test failed so (2026-12-04): the DaemonSet controller wrote kube-proxy's status between put's
    read and its PUT, and the 409 stopped the second node's kube-proxy step."""
    calls = []
    answers = iter([(200, {'metadata': {'resourceVersion': '1'}}), (409, {'message': 'the object has been modified'}),
                    (200, {'metadata': {'resourceVersion': '2'}}), (200, {})])

    def api(path, method='GET', body=None, **_kw):
        calls.append((method, path, (body or {}).get('metadata', {}).get('resourceVersion')))
        return next(answers)
    monkeypatch.setattr(vmnode.k8sctl, 'api', api)
    vmnode.put('/apis/apps/v1/namespaces/kube-system/daemonsets', {'metadata': {'name': 'kube-proxy'}})
    path = '/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy'
    assert calls == [('GET', path, None), ('PUT', path, '1'), ('GET', path, None), ('PUT', path, '2')]
