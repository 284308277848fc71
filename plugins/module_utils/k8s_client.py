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
        # An explicit token wins over the kubeconfig's: drop the kubeconfig's refresh hook (it would
        # put its own token back on every request) and its BearerToken entry.
        cfg.refresh_api_key_hook = None
        cfg.api_key_prefix = {}
        cfg.api_key = {'authorization': 'Bearer %s' % params['api_key']}
    if params.get('username'):
        cfg.username = params['username']
    if params.get('password'):
        cfg.password = params['password']
    if params.get('username') and params.get('password'):
        cfg.refresh_api_key_hook = None
        cfg.api_key_prefix = {}
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

    def replace_configmap_data(self, namespace, name, data):
        """Overwrite a ConfigMap's data unconditionally (used for netmedic's own backup objects)."""
        cm = self.get_configmap(namespace, name)
        if cm is None:
            raise K8sError('ConfigMap %s/%s not found' % (namespace, name), status=404, reason='NotFound')
        cm.data = dict(data)
        return self.replace_configmap(cm)

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


# -- Helpers for the cluster remediation modules (daemonset_restart, flannel_config, terway_config,
# -- ip_masq_agent, network_audit).  They return the API's JSON as plain dicts (camelCase keys, as
# -- kubectl shows them), so the planners in module_utils work on the same shapes as the docs.

def _raw_call(doing, fn, *args, **kwargs):
    """Call a client method without model deserialisation; the decoded JSON (or text for logs)."""
    kwargs['_preload_content'] = False
    try:
        response = fn(*args, **kwargs)
        data = response.data
    except ApiException as e:
        raise api_error(e, doing)
    except Exception as e:  # urllib3 connection errors and the like
        raise K8sError('cannot reach the Kubernetes API %s: %s' % (doing, e))
    if isinstance(data, bytes):
        data = data.decode('utf-8', 'replace')
    return data


def _json_call(doing, fn, *args, **kwargs):
    text = _raw_call(doing, fn, *args, **kwargs)
    try:
        return json.loads(text)
    except (TypeError, ValueError) as e:
        raise K8sError('%s: the API answered with something that is not JSON (%s)' % (doing, e))


def get_object(cluster, kind, namespace, name):
    """A DaemonSet, ConfigMap, Pod or Node as a dict, or None when it does not exist (only a 404 means absent)."""
    calls = {
        'DaemonSet': (cluster.apps.read_namespaced_daemon_set, True),
        'ConfigMap': (cluster.core.read_namespaced_config_map, True),
        'Pod': (cluster.core.read_namespaced_pod, True),
        'Node': (cluster.core.read_node, False),
    }
    fn, namespaced = calls[kind]
    args = (name, namespace) if namespaced else (name,)
    try:
        return _json_call('reading %s %s' % (kind, '%s/%s' % (namespace, name) if namespaced else name), fn, *args)
    except K8sError as e:
        if e.status == 404:
            return None
        raise


def list_objects(cluster, kind, namespace=None, label_selector=None, field_selector=None, page=500):
    """Every object of ``kind`` (following ``continue`` tokens); any error raises, an empty list is a real answer."""
    networking = k8s.NetworkingV1Api(cluster.api)
    calls = {
        'Pod': (cluster.core.list_namespaced_pod, cluster.core.list_pod_for_all_namespaces),
        'Node': (None, cluster.core.list_node),
        'Service': (cluster.core.list_namespaced_service, cluster.core.list_service_for_all_namespaces),
        'Event': (cluster.core.list_namespaced_event, cluster.core.list_event_for_all_namespaces),
        'ConfigMap': (cluster.core.list_namespaced_config_map, cluster.core.list_config_map_for_all_namespaces),
        'DaemonSet': (cluster.apps.list_namespaced_daemon_set, cluster.apps.list_daemon_set_for_all_namespaces),
        'NetworkPolicy': (networking.list_namespaced_network_policy, networking.list_network_policy_for_all_namespaces),
    }
    namespaced_fn, cluster_fn = calls[kind]
    doing = 'listing %ss%s%s' % (kind, ' in %s' % namespace if namespace else '',
                                 ' (%s)' % label_selector if label_selector else '')
    items = []
    token = None
    while True:
        kwargs = {'limit': page}
        if label_selector:
            kwargs['label_selector'] = label_selector
        if field_selector:
            kwargs['field_selector'] = field_selector
        if token:
            kwargs['_continue'] = token
        if namespace and namespaced_fn is not None:
            data = _json_call(doing, namespaced_fn, namespace, **kwargs)
        else:
            data = _json_call(doing, cluster_fn, **kwargs)
        if not isinstance(data, dict) or not isinstance(data.get('items'), list):
            raise K8sError('%s: the answer has no items list' % doing)
        items.extend(data['items'])
        token = (data.get('metadata') or {}).get('continue')
        if not token:
            return items


def delete_pod(cluster, namespace, name, uid=None, dry_run=False):
    """Delete one pod, only if it still has ``uid`` (a replacement with the same name is left alone).

    Returns the API's answer, or None when the pod was already gone.
    """
    body = {'apiVersion': 'v1', 'kind': 'DeleteOptions'}
    if uid:
        body['preconditions'] = {'uid': uid}
    kwargs = {'body': body}
    if dry_run:
        kwargs['dry_run'] = 'All'
    try:
        return _json_call('deleting Pod %s/%s' % (namespace, name), cluster.core.delete_namespaced_pod, name, namespace, **kwargs)
    except K8sError as e:
        if e.status == 404:
            return None
        raise


def read_pod_log(cluster, namespace, name, container=None, tail_lines=None):
    kwargs = {}
    if container:
        kwargs['container'] = container
    if tail_lines:
        kwargs['tail_lines'] = tail_lines
    return _raw_call('reading the log of Pod %s/%s%s' % (namespace, name, ' container %s' % container if container else ''),
                     cluster.core.read_namespaced_pod_log, name, namespace, **kwargs)


def replace_daemonset(cluster, body, dry_run=False):
    """Replace with the object's resourceVersion (a concurrent writer makes this a 409)."""
    meta = body['metadata']
    kwargs = {'dry_run': 'All'} if dry_run else {}
    return _json_call('replacing DaemonSet %s/%s' % (meta['namespace'], meta['name']),
                      cluster.apps.replace_namespaced_daemon_set, meta['name'], meta['namespace'], body, **kwargs)


def update_daemonset(cluster, namespace, name, edit, dry_run=False, retries=3, delay=0.5):
    """Read-modify-write of a DaemonSet (dict) with optimistic concurrency, like ``update_configmap_data``.

    ``edit(ds)`` returns the edited copy (equal to the input for no change) and may raise to refuse.
    Returns ``(old_ds, new_ds, written)``; ``written`` is None when nothing had to change.
    """
    import copy
    attempt = 0
    while True:
        old = get_object(cluster, 'DaemonSet', namespace, name)
        if old is None:
            raise K8sError('DaemonSet %s/%s not found' % (namespace, name), status=404, reason='NotFound')
        new = edit(copy.deepcopy(old))
        if new == old:
            return old, old, None
        try:
            return old, new, replace_daemonset(cluster, new, dry_run=dry_run)
        except K8sError as e:
            if e.status != 409 or attempt >= retries:
                raise
            attempt += 1
            time.sleep(delay * attempt)
