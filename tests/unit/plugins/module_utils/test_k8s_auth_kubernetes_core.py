"""Auth reused, not rewritten (issue 11 item 4): the cluster modules and the inventory plugin take
kubernetes.core's auth options, K8S_AUTH_* variables and configuration factory, so every option
behaves as in kubernetes.core; netmedic's fixes (explicit token beats the kubeconfig's refresh hook,
no hidden urllib3 retries, a timeout on every request) survive on top of it."""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import kubernetes
import pytest
import yaml
from ansible_collections.kubernetes.core.plugins.module_utils import args_common as core_args
from ansible_collections.kubernetes.core.plugins.module_utils.k8s import client as core_client

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client

ROOT = Path(__file__).resolve().parents[4]
KUBECONFIG_TOKEN = 'kubeconfig-token-abc'
INLINE = {'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'lab',
          'clusters': [{'name': 'lab', 'cluster': {'server': 'https://10.0.0.1:6443'}}],
          'contexts': [{'name': 'lab', 'context': {'cluster': 'lab', 'user': 'admin'}}],
          'users': [{'name': 'admin', 'user': {'token': KUBECONFIG_TOKEN}}]}


@pytest.fixture(autouse=True)
def _no_k8s_env(monkeypatch, tmp_path):
    for name in list(__import__('os').environ):
        if name.startswith('K8S_AUTH_'):
            monkeypatch.delenv(name)
    monkeypatch.setenv('KUBECONFIG', str(tmp_path / 'absent-kubeconfig'))
    monkeypatch.setenv('HOME', str(tmp_path))
    saved = kubernetes.client.Configuration._default
    yield
    kubernetes.client.Configuration._default = saved


def _params(**kw):
    params = dict.fromkeys(k8s_client.AUTH_ARG_SPEC)
    params.update(request_timeout=30.0, request_retries=3)
    params.update(kw)
    return params


def _strip(spec):
    """An option spec without what only says how it is logged or defaulted."""
    return {k: v for k, v in spec.items() if k not in ('no_log', 'fallback')}


def test_issue11_item4_every_kubernetes_core_auth_option_is_taken_with_its_type_and_aliases():
    ours = k8s_client.AUTH_ARG_SPEC
    missing = sorted(set(core_args.AUTH_ARG_SPEC) - set(ours))
    assert not missing, 'kubernetes.core auth options the cluster modules do not take: %s' % missing
    for name, spec in core_args.AUTH_ARG_SPEC.items():
        assert _strip(ours[name]) == _strip(spec), name
        assert bool(ours[name].get('no_log')) >= bool(spec.get('no_log')), name
    assert set(ours) - set(core_args.AUTH_ARG_SPEC) == {'request_timeout', 'request_retries'}
    # The inline kubeconfig stays out of syslog (issue 10 hole 4).
    assert ours['kubeconfig']['no_log'] is True


@pytest.mark.parametrize('env', [
    {'K8S_AUTH_PROXY_HEADERS_USER_AGENT': 'netmedic-test/1', 'K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH': 'u:p'},
    {'K8S_AUTH_VERIFY_SSL': 'off'},
    {'K8S_AUTH_VERIFY_SSL': 'no', 'K8S_AUTH_NO_PROXY': '10.0.0.0/8,.svc'},
    {'K8S_AUTH_PROXY': 'http://proxy:3128', 'K8S_AUTH_SSL_CA_CERT': '/etc/ca.pem'},
])
def test_issue11_item4_k8s_auth_variables_give_kubernetes_cores_configuration(monkeypatch, env):
    monkeypatch.setenv('K8S_AUTH_HOST', 'https://10.0.0.1:6443/')
    monkeypatch.setenv('K8S_AUTH_API_KEY', 'env-token')
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    expected = core_client._create_configuration(core_client._create_auth_spec(None))
    cfg = k8s_client.configuration(_params())
    for attr in ('host', 'verify_ssl', 'ssl_ca_cert', 'proxy', 'no_proxy', 'proxy_headers', 'api_key'):
        assert getattr(cfg, attr) == getattr(expected, attr), attr


def test_issue11_item4_impersonate_groups_are_sent_as_kubernetes_core_sends_them(monkeypatch):
    monkeypatch.setenv('K8S_AUTH_IMPERSONATE_GROUPS', 'ops,netmedic')
    api = k8s_client.api_client(_params(host='https://10.0.0.1:6443', api_key='t', impersonate_user='alice'))
    groups = sorted(v for k, v in api.default_headers.items() if str.__eq__(k, 'Impersonate-Group'))
    assert groups == ['netmedic', 'ops']
    assert api.default_headers['Impersonate-User'] == 'alice'


def test_issue11_item4_persist_config_and_inline_kubeconfig_load_like_kubernetes_core():
    cfg = k8s_client.configuration(_params(kubeconfig=copy.deepcopy(INLINE), persist_config=False))
    assert cfg.host == 'https://10.0.0.1:6443'
    assert cfg.auth_settings()['BearerToken']['value'] == 'Bearer %s' % KUBECONFIG_TOKEN
    assert cfg.retries is False


def test_issue11_item4_fixes_survive_explicit_token_beats_kubeconfig_refresh_hook_and_no_urllib3_retries():
    cfg = k8s_client.configuration(_params(kubeconfig=copy.deepcopy(INLINE), api_key='explicit'))
    assert cfg.retries is False
    assert cfg.refresh_api_key_hook is None
    assert cfg.get_api_key_with_prefix('authorization') == 'Bearer explicit'
    api = k8s_client.api_client(_params(kubeconfig=copy.deepcopy(INLINE), api_key='explicit', request_timeout=7))
    assert api.netmedic_policy == {'timeout': 7.0, 'retries': 3}
    assert api.configuration.retries is False


def test_issue11_item4_a_config_that_cannot_load_is_a_clean_error():
    with pytest.raises(k8s_client.K8sError, match='could not load the Kubernetes connection configuration'):
        k8s_client.configuration(_params(kubeconfig='/nonexistent/kubeconfig'))


def _module_doc(path):
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == 'DOCUMENTATION':
            return yaml.safe_load(node.value.value)
    return {}


def test_issue11_item4_cluster_modules_document_kubernetes_cores_auth_options():
    modules = [p for p in sorted((ROOT / 'plugins/modules').glob('*.py'))
               if 'netmedic.k8s.k8s_auth' in (_module_doc(p).get('extends_documentation_fragment') or [])]
    assert modules
    for path in modules:
        assert 'kubernetes.core.k8s_auth_options' in _module_doc(path)['extends_documentation_fragment'], path.name
    from ansible_collections.netmedic.k8s.plugins.doc_fragments.k8s_auth import ModuleDocFragment
    ours = set(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options'])
    assert ours == {'request_timeout', 'request_retries'}, 'the fragment must hold only what kubernetes.core lacks'


def test_issue11_item4_inventory_plugin_takes_the_same_auth_options_and_is_cacheable():
    from ansible.plugins.inventory import Cacheable

    from ansible_collections.netmedic.k8s.plugins.inventory import k8s_nodes
    assert issubclass(k8s_nodes.InventoryModule, Cacheable)
    doc = yaml.safe_load(k8s_nodes.DOCUMENTATION)
    fragments = doc.get('extends_documentation_fragment') or []
    assert 'inventory_cache' in fragments
    assert 'kubernetes.core.k8s_auth_options' in fragments


CERT_INLINE = copy.deepcopy(INLINE)
CERT_USER = {'client-certificate-data': 'LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==',
             'client-key-data': 'LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg=='}
CERT_INLINE['users'] = [{'name': 'admin', 'user': CERT_USER}]


@pytest.mark.parametrize('explicit', [{'api_key': 'limited-token'}, {'username': 'u', 'password': 'p'}], ids=['token', 'basic'])
def test_issue15_explicit_credentials_drop_the_kubeconfigs_client_certificate(explicit):
    """Found on the real kube-apiserver (tests/cluster/test_kube_proxy_config.py): with a kubeconfig that authenticates
    by a client certificate, an explicit api_key was sent beside the certificate, and the server (x509 first) ran the
    job as the kubeconfig's admin: a bad token passed and a read-only token wrote. The explicit credential is the only
    one sent."""
    plain = k8s_client.configuration(_params(kubeconfig=copy.deepcopy(CERT_INLINE)))
    assert plain.cert_file and plain.key_file                       # the kubeconfig's certificate, when nothing else is given
    cfg = k8s_client.configuration(_params(kubeconfig=copy.deepcopy(CERT_INLINE), **explicit))
    assert cfg.cert_file is None and cfg.key_file is None
    assert cfg.get_api_key_with_prefix('authorization').split()[0] in ('Bearer', 'Basic')


def test_issue15_explicit_client_certificate_is_kept_with_an_explicit_token(tmp_path):
    cert, key = tmp_path / 'c.crt', tmp_path / 'c.key'
    cert.write_text('cert')
    key.write_text('key')
    cfg = k8s_client.configuration(_params(kubeconfig=copy.deepcopy(CERT_INLINE), api_key='t', client_cert=str(cert),
                                           client_key=str(key)))
    assert cfg.cert_file == str(cert) and cfg.key_file == str(key)
