from __future__ import annotations

from ansible_collections.netmedic.k8s.plugins.module_utils import runtime


def _detect(sockets, clis=None, endpoint=None):
    clis = clis or {}
    return runtime.detect(lambda p: p in sockets, clis.get, endpoint)


def test_nothing_found():
    result = _detect(set(), {'docker': '/usr/local/bin/docker'})
    assert result['name'] is None and result['source'] is None
    docker = next(r for r in result['runtimes'] if r['name'] == 'docker')
    # A CLI alone (no engine socket) is not a runtime.
    assert docker['clis'] == {'docker': '/usr/local/bin/docker'}
    assert docker['socket_present'] is False


def test_containerd_by_socket():
    result = _detect({'/run/containerd/containerd.sock'}, {'ctr': '/usr/bin/ctr'})
    assert (result['name'], result['source'], result['ambiguous']) == ('containerd', 'socket', False)
    containerd = result['runtimes'][0]
    assert containerd['socket'] == '/run/containerd/containerd.sock'
    assert containerd['clis'] == {'ctr': '/usr/bin/ctr', 'crictl': None}


def test_crio_and_var_run_paths():
    result = _detect({'/var/run/crio/crio.sock'})
    assert result['name'] == 'crio'


def test_docker_with_its_containerd_is_ambiguous_without_kubelet():
    result = _detect({'/run/containerd/containerd.sock', '/var/run/docker.sock'})
    assert result['name'] == 'containerd'
    assert result['ambiguous'] is True


def test_kubelet_endpoint_decides():
    result = _detect({'/run/containerd/containerd.sock', '/var/run/docker.sock'},
                     endpoint='unix:///var/run/cri-dockerd.sock')
    assert (result['name'], result['source'], result['ambiguous']) == ('docker', 'kubelet', False)
    assert _detect(set(), endpoint='unix:///run/containerd/containerd.sock')['name'] == 'containerd'
    # An endpoint of an unknown runtime falls back to the sockets.
    assert _detect({'/var/run/crio/crio.sock'}, endpoint='unix:///run/other.sock')['name'] == 'crio'


def test_kubelet_args_and_config():
    argv = ['/usr/bin/kubelet', '--config=/var/lib/kubelet/config.yaml',
            '--container-runtime-endpoint=unix:///run/containerd/containerd.sock']
    assert runtime.endpoint_from_kubelet_args(argv) == 'unix:///run/containerd/containerd.sock'
    assert runtime.endpoint_from_kubelet_args(['kubelet', '--container-runtime-endpoint', '/var/run/crio/crio.sock']) == '/var/run/crio/crio.sock'
    assert runtime.endpoint_from_kubelet_args(['kubelet']) is None
    config = 'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncontainerRuntimeEndpoint: "unix:///var/run/crio/crio.sock"\n'
    assert runtime.endpoint_from_kubelet_config(config) == 'unix:///var/run/crio/crio.sock'
    assert runtime.endpoint_from_kubelet_config('kind: KubeletConfiguration\n') is None
    assert runtime.endpoint_path('unix:///run/x.sock') == '/run/x.sock'
    assert runtime.endpoint_path('tcp://1.2.3.4:1') is None
