# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kubernetes API client for cluster modules (catalog C-*, D-*).

Connection options and ``K8S_AUTH_*`` variables match kubernetes.core (see the
``netmedic.k8s.k8s_auth`` doc fragment).  Errors are turned into one message that
names the verb, the object and the API's own reason.  "Not found" is the only
error a caller may read as "absent"; anything else fails, so a read that could not
be made is never mistaken for an empty result.
"""

from __future__ import annotations

import json
import time
import traceback

from ansible.module_utils.basic import env_fallback

try:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException
    HAS_K8S = True
    K8S_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported through missing_required_lib
    HAS_K8S = False
    K8S_IMPORT_ERROR = traceback.format_exc()

    class ApiException(Exception):  # type: ignore[no-redef]
        """Stand-in so ``except ApiException`` stays valid without the client."""

    class ConfigException(Exception):  # type: ignore[no-redef]
        """Stand-in so ``except ConfigException`` stays valid without the client."""


def _env(name):
    return dict(fallback=(env_fallback, [name]))


AUTH_ARG_SPEC = dict(
    kubeconfig=dict(type='raw', no_log=False, **_env('K8S_AUTH_KUBECONFIG')),
    context=dict(type='str', **_env('K8S_AUTH_CONTEXT')),
    host=dict(type='str', **_env('K8S_AUTH_HOST')),
    api_key=dict(type='str', no_log=True, **_env('K8S_AUTH_API_KEY')),
    username=dict(type='str', **_env('K8S_AUTH_USERNAME')),
    password=dict(type='str', no_log=True, **_env('K8S_AUTH_PASSWORD')),
    client_cert=dict(type='path', aliases=['cert_file'], **_env('K8S_AUTH_CERT_FILE')),
    client_key=dict(type='path', aliases=['key_file'], no_log=False, **_env('K8S_AUTH_KEY_FILE')),
    ca_cert=dict(type='path', aliases=['ssl_ca_cert'], **_env('K8S_AUTH_SSL_CA_CERT')),
    validate_certs=dict(type='bool', aliases=['verify_ssl'], **_env('K8S_AUTH_VERIFY_SSL')),
    proxy=dict(type='str', **_env('K8S_AUTH_PROXY')),
    no_proxy=dict(type='str', **_env('K8S_AUTH_NO_PROXY')),
    impersonate_user=dict(type='str', **_env('K8S_AUTH_IMPERSONATE_USER')),
    impersonate_groups=dict(type='list', elements='str', **_env('K8S_AUTH_IMPERSONATE_GROUPS')),
)


class K8sError(Exception):
    def __init__(self, msg, status=None, reason=None):
        super(K8sError, self).__init__(msg)
        self.msg = msg
        self.status = status
        self.reason = reason


def api_error(exc, doing):
    """K8sError for an ApiException (or another client error) raised while ``doing``."""
    status = getattr(exc, 'status', None)
    reason = getattr(exc, 'reason', None)
    detail = None
    body = getattr(exc, 'body', None)
    if body:
        try:
            data = json.loads(body)
            detail = data.get('message')
            reason = data.get('reason') or reason
        except (ValueError, TypeError, AttributeError):
            detail = str(body)[:500]
    if status is None:
        return K8sError('%s failed: %s' % (doing, exc))
    return K8sError('%s failed: HTTP %s %s%s' % (doing, status, reason or '', (': ' + detail) if detail else ''),
                    status=status, reason=reason)


def configuration(params):
    """A ``kubernetes.client.Configuration`` from the module's connection options."""
    cfg = k8s.Configuration()
    kubeconfig = params.get('kubeconfig')
    context = params.get('context')
    try:
        if isinstance(kubeconfig, dict):
            k8s_config.load_kube_config_from_dict(kubeconfig, context=context, client_configuration=cfg)
        elif kubeconfig:
            k8s_config.load_kube_config(config_file=str(kubeconfig), context=context, client_configuration=cfg)
        elif not params.get('host'):
            try:
                k8s_config.load_incluster_config(client_configuration=cfg)
            except ConfigException:
                k8s_config.load_kube_config(context=context, client_configuration=cfg)
    except (ConfigException, IOError, OSError) as e:
        raise K8sError('could not load the Kubernetes connection configuration: %s' % (e,))
    if params.get('host'):
        cfg.host = params['host']
    if params.get('api_key'):
        cfg.api_key = {'authorization': 'Bearer %s' % params['api_key']}
    if params.get('username'):
        cfg.username = params['username']
    if params.get('password'):
        cfg.password = params['password']
    if params.get('username') and params.get('password'):
        cfg.api_key = {'authorization': cfg.get_basic_auth_token()}
    if params.get('client_cert'):
        cfg.cert_file = params['client_cert']
    if params.get('client_key'):
        cfg.key_file = params['client_key']
    if params.get('ca_cert'):
        cfg.ssl_ca_cert = params['ca_cert']
    if params.get('validate_certs') is not None:
        cfg.verify_ssl = params['validate_certs']
    if params.get('proxy'):
        cfg.proxy = params['proxy']
    if params.get('no_proxy'):
        cfg.no_proxy = params['no_proxy']
    return cfg


def api_client(params):
    api = k8s.ApiClient(configuration(params))
    if params.get('impersonate_user'):
        api.set_default_header('Impersonate-User', params['impersonate_user'])
    if params.get('impersonate_groups'):
        # One header carrying a comma-joined list (RFC 7230 list syntax).
        api.set_default_header('Impersonate-Group', ','.join(params['impersonate_groups']))
    return api


class Cluster(object):
    """The few API calls netmedic modules make, with uniform errors."""

    def __init__(self, params, api=None):
        self.api = api or api_client(params)
        self.core = k8s.CoreV1Api(self.api)
        self.apps = k8s.AppsV1Api(self.api)

    def version(self):
        try:
            return k8s.VersionApi(self.api).get_code().git_version
        except ApiException as e:
            raise api_error(e, 'reading the cluster version')
        except Exception as e:  # urllib3 connection errors and the like
            raise K8sError('cannot reach the Kubernetes API: %s' % (e,))

    def get_configmap(self, namespace, name):
        """The ConfigMap, or None when it does not exist (any other error raises)."""
        try:
            return self.core.read_namespaced_config_map(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise api_error(e, 'reading ConfigMap %s/%s' % (namespace, name))
        except Exception as e:
            raise K8sError('cannot reach the Kubernetes API reading ConfigMap %s/%s: %s' % (namespace, name, e))

    def replace_configmap(self, cm, dry_run=False):
        """Replace with the object's resourceVersion: a concurrent writer makes this a 409."""
        kwargs = {'dry_run': 'All'} if dry_run else {}
        try:
            return self.core.replace_namespaced_config_map(cm.metadata.name, cm.metadata.namespace, cm, **kwargs)
        except ApiException as e:
            raise api_error(e, 'replacing ConfigMap %s/%s' % (cm.metadata.namespace, cm.metadata.name))

    def create_configmap(self, namespace, body, dry_run=False):
        kwargs = {'dry_run': 'All'} if dry_run else {}
        try:
            return self.core.create_namespaced_config_map(namespace, body, **kwargs)
        except ApiException as e:
            raise api_error(e, 'creating ConfigMap %s/%s' % (namespace, body['metadata']['name']))


def update_configmap_data(cluster, namespace, name, edit, dry_run=False, retries=3, delay=0.5):
    """Read-modify-write of a ConfigMap's data with optimistic concurrency.

    ``edit(data)`` returns the new data dict (or the same dict for no change) and may
    raise to refuse.  On a 409 Conflict the ConfigMap is re-read and ``edit`` runs
    again on the fresh data, up to ``retries`` times.  Returns ``(old_cm, new_data,
    written)`` where ``old_cm`` is the object the write was based on.
    """
    attempt = 0
    while True:
        cm = cluster.get_configmap(namespace, name)
        if cm is None:
            raise K8sError('ConfigMap %s/%s not found' % (namespace, name), status=404, reason='NotFound')
        old = dict(cm.data or {})
        new = edit(dict(old))
        if new == old:
            return cm, old, None
        cm.data = new
        try:
            written = cluster.replace_configmap(cm, dry_run=dry_run)
            cm.data = old
            return cm, new, written
        except K8sError as e:
            if e.status != 409 or attempt >= retries:
                raise
            attempt += 1
            time.sleep(delay * attempt)
