"""redact: which keys are credentials, and masking in data and text (issue #10 hole 4)."""

from __future__ import annotations

import json

import pytest
import yaml

from ansible_collections.netmedic.k8s.plugins.module_utils import redact

SECRET = 'lab-Acc3ssSecret-0001'


@pytest.mark.parametrize('key', [
    'access_secret', 'access_key', 'access_key_id', 'accessKeySecret', 'AccessKeyId', 'secret', 'password', 'passwd',
    'api_key', 'apiKey', 'apikey', 'token', 'bearer_token', 'client-key-data', 'privateKey', 'ssh_key', 'credentials',
    'PSK', 'K8S_AUTH_API_KEY', 'K8S_AUTH_PASSWORD', 'db.password', 'Authorization', 'auth', 'secretAccessKey',
])
def test_issue10_h4_credential_keys(key):
    assert redact.is_secret_key(key)


@pytest.mark.parametrize('key', [
    'max_pool_size', 'min_pool_size', 'vswitches', 'eni_tags', 'security_group', 'service_cidr', 'credential_path',
    'secretName', 'secretKeyRef', 'token_file', 'key', 'keys', 'monkey', 'vswitch_selection_policy', 'version',
    'K8S_AUTH_KUBECONFIG', 'hairpinMode', 'udpTimeout', 'maxPerCore', 'client_key_file', 'tokenTTL',
])
def test_issue10_h4_harmless_keys(key):
    assert not redact.is_secret_key(key)


def test_issue10_h4_json_string_value_masked_in_place():
    conf = {'version': '1', 'max_pool_size': 5, 'access_key': 'LTAI5tKeyId0001', 'access_secret': SECRET,
            'vswitches': {'cn-hangzhou-i': ['vsw-1']}, 'credential_path': '/var/addon/token-config'}
    data = {'eni_conf': json.dumps(conf, indent=2), 'disable_network_policy': 'false'}
    out = redact.redact(data)
    assert SECRET not in json.dumps(out) and 'LTAI5tKeyId0001' not in json.dumps(out)
    masked = json.loads(out['eni_conf'])            # still valid JSON, same layout, harmless keys untouched
    assert masked == dict(conf, access_key=redact.MASK, access_secret=redact.MASK)
    assert out['eni_conf'].count('\n') == data['eni_conf'].count('\n')
    assert data['eni_conf'] == json.dumps(conf, indent=2)          # the input is not changed


def test_issue10_h4_nested_dicts_lists_yaml_and_lines():
    kubeconfig = {'users': [{'name': 'admin', 'user': {'token': 'tok-0123456789', 'client-key-data': 'S0VZ'}}],
                  'clusters': [{'name': 'lab', 'cluster': {'server': 'https://10.0.0.1:6443'}}]}
    text = yaml.safe_dump({'auth': {'password': 'hunter2-long'}, 'replicas': 3})
    out = redact.redact({'kubeconfig': kubeconfig, 'cfg': text, 'cmd': ['run', '--token=tok-0123456789'],
                         'env': 'A=1\nAPI_TOKEN=abcdefgh\nB=2\n', 'enabled_token': True})
    user = out['kubeconfig']['users'][0]
    assert user == {'name': 'admin', 'user': {'token': redact.MASK, 'client-key-data': redact.MASK}}
    assert out['kubeconfig']['clusters'] == kubeconfig['clusters']
    assert yaml.safe_load(out['cfg']) == {'auth': {'password': redact.MASK}, 'replicas': 3}
    assert out['cmd'] == ['run', '--token="%s"' % redact.MASK]
    assert out['env'] == 'A=1\nAPI_TOKEN="%s"\nB=2\n' % redact.MASK
    assert out['enabled_token'] is True                        # booleans are never secrets


def test_issue10_h4_value_found_under_a_key_is_masked_elsewhere_too():
    data = {'before': {'access_secret': SECRET}, 'msg': 'could not use %s' % SECRET}
    assert redact.secret_values(data) == {SECRET}
    assert redact.redact(data) == {'before': {'access_secret': redact.MASK}, 'msg': 'could not use %s' % redact.MASK}


def test_issue10_h4_extra_values_and_short_values():
    out = redact.redact({'msg': 'token abc and pass-0001', 'password': 'abc'}, extra_values=['pass-0001'])
    assert out == {'msg': 'token abc and %s' % redact.MASK, 'password': redact.MASK}


class _Module(object):
    def __init__(self, params, spec, no_log_values):
        self.params, self.argument_spec, self.no_log_values = params, spec, set(no_log_values)


def test_issue10_h4_inline_kubeconfig_keeps_only_credentials_in_no_log_values():
    kubeconfig = {'apiVersion': 'v1', 'current-context': 'default',
                  'users': [{'name': 'default', 'user': {'token': 'tok-0123456789'}}]}
    spec = {'kubeconfig': {'no_log': True}, 'api_key': {'no_log': True}, 'name': {}}
    module = _Module({'kubeconfig': kubeconfig, 'api_key': 'default', 'name': 'x'}, spec,
                     ['v1', 'default', 'tok-0123456789'])
    redact.narrow_kubeconfig_no_log(module)
    assert module.no_log_values == {'tok-0123456789', 'default'}       # 'default' is also api_key's value
    path = _Module({'kubeconfig': '/root/.kube/config'}, spec, ['/root/.kube/config'])
    redact.narrow_kubeconfig_no_log(path)
    assert path.no_log_values == set()


def test_issue10_h4_yaml_block_scalars_and_pem_private_keys():
    pem = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0lab\nAbCdEf0123\n-----END RSA PRIVATE KEY-----'
    text = ('name: lab\nauth:\n  password: |\n    line-one-s3cret\n    line-two-s3cret\n  user: admin\n'
            'tls_key: |\n  %s\nmtu: 1450\n' % pem.replace('\n', '\n  '))
    out = redact.redact({'conf': text, 'note': 'see %s' % pem})
    assert 'line-one-s3cret' not in repr(out) and 'MIIEowIBAAKCAQEA0lab' not in repr(out)
    assert yaml.safe_load(out['conf']) == {'name': 'lab', 'auth': {'password': redact.MASK + '\n', 'user': 'admin'},
                                           'tls_key': redact.MASK + '\n', 'mtu': 1450}
    assert out['note'] == 'see %s' % redact.MASK
