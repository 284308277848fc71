# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kubernetes API client for cluster modules (catalog C-*, D-*).

Connection options, ``K8S_AUTH_*`` variables and the client configuration are kubernetes.core's,
imported from it (doc fragment ``kubernetes.core.k8s_auth_options``); netmedic adds only
``request_timeout``/``request_retries`` (doc fragment ``netmedic.k8s.k8s_auth``).  Errors are turned into one message that
names the verb, the object and the API's own reason.  "Not found" is the only
error a caller may read as "absent"; anything else fails, so a read that could not
be made is never mistaken for an empty result.

Every request has a timeout (``request_timeout``) and is retried, with exponential backoff, jitter
and the server's ``Retry-After``, up to ``request_retries`` times when the API answers 429 (any
verb: the request was not processed) or 5xx (reads only: a write may have landed).  The client's
own urllib3 retries are off, so a hung API server fails once, within the timeout.
"""

from __future__ import annotations

import copy
import datetime
import email.utils
import json
import random
import time
import traceback
from urllib.parse import quote

try:
    # Only the transport (ApiClient, Configuration, ApiException): the typed API classes (CoreV1Api ...)
    # import every model they name (pydantic classes), about 1.2 s of CPU per module run on this
    # machine kind, for answers this client never deserialises (issue 12: CI time).
    from kubernetes import client as k8s
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


try:
    # The auth options, their K8S_AUTH_* variables and the Configuration they build are kubernetes.core's,
    # imported (not copied), so they behave exactly as in kubernetes.core's own modules.
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC as CORE_AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s import client as core_client
    HAS_K8S_CORE = True
    K8S_CORE_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - the collection declares kubernetes.core as a dependency
    CORE_AUTH_ARG_SPEC = {}
    core_client = None
    HAS_K8S_CORE = False
    K8S_CORE_IMPORT_ERROR = traceback.format_exc()


def _auth_arg_spec():
    spec = copy.deepcopy(CORE_AUTH_ARG_SPEC)
    if 'kubeconfig' in spec:
        # An inline kubeconfig may carry a token: never in syslog (issue 10 hole 4); Result masks its credentials.
        spec['kubeconfig']['no_log'] = True
    spec['request_timeout'] = dict(type='float', default=30.0)
    spec['request_retries'] = dict(type='int', default=3)
    return spec


# kubernetes.core's auth options (doc fragment kubernetes.core.k8s_auth_options) plus netmedic's
# request_timeout/request_retries (doc fragment netmedic.k8s.k8s_auth).
AUTH_ARG_SPEC = _auth_arg_spec()

DEFAULT_POLICY = {'timeout': 30.0, 'retries': 3}
MAX_TIMEOUT = 3600.0
MAX_RETRIES = 10
BACKOFF_BASE = 0.5          # seconds before the first retry (then doubled), jittered down to half
BACKOFF_MAX = 30.0          # longest wait between two attempts
RETRY_AFTER_MAX = 60.0      # a server asking for a longer pause is not waited for: the call fails

# kind -> (API path prefix, resource, namespaced): every object netmedic reads or writes.
RESOURCES = {
    'ConfigMap': ('/api/v1', 'configmaps', True),
    'Event': ('/api/v1', 'events', True),
    'Node': ('/api/v1', 'nodes', False),
    'Pod': ('/api/v1', 'pods', True),
    'Service': ('/api/v1', 'services', True),
    'DaemonSet': ('/apis/apps/v1', 'daemonsets', True),
    'Lease': ('/apis/coordination.k8s.io/v1', 'leases', True),
    'NetworkPolicy': ('/apis/networking.k8s.io/v1', 'networkpolicies', True),
}
WRITABLE = ('ConfigMap', 'DaemonSet')
"""The kinds ``Cluster.replace``/``create``/``delete`` take (the cluster edit service's objects)."""
MERGE_PATCH = 'application/merge-patch+json'


class K8sError(Exception):
    def __init__(self, msg, status=None, reason=None):
        super(K8sError, self).__init__(msg)
        self.msg = msg
        self.status = status
        self.reason = reason


def request_policy(params):
    """``{'timeout': seconds, 'retries': n}`` from the module options; bad values raise K8sError."""
    timeout = params.get('request_timeout')
    retries = params.get('request_retries')
    timeout = DEFAULT_POLICY['timeout'] if timeout is None else timeout
    retries = DEFAULT_POLICY['retries'] if retries is None else retries
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT:
        raise K8sError('request_timeout must be a number of seconds above 0 and at most %d, got %r' % (MAX_TIMEOUT, timeout))
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise K8sError('request_retries must be an integer from 0 to %d, got %r' % (MAX_RETRIES, retries))
    return {'timeout': float(timeout), 'retries': retries}


def parse_retry_after(value, now=None):
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if value is None:
        return None
    value = str(value).strip()
    if value.isdigit() and value.isascii():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def retry_delay(status, retry_after, attempt, retries, read, rand=random.random):
    """Seconds to wait before attempt ``attempt + 1`` after an HTTP ``status`` answer, or None to give up.

    429 is retried for every verb, 5xx only for reads; at most ``retries`` retries.  The backoff
    doubles from BACKOFF_BASE up to BACKOFF_MAX with jitter (between half and all of it); a
    ``Retry-After`` (seconds, from ``parse_retry_after``) is waited for in full, unless it is longer
    than RETRY_AFTER_MAX, which gives up rather than hammer the server early.
    """
    if attempt >= retries:
        return None
    if status != 429 and not (read and status is not None and 500 <= status <= 599):
        return None
    backoff = min(BACKOFF_MAX, BACKOFF_BASE * (2 ** attempt))
    delay = backoff / 2 + rand() * backoff / 2
    if retry_after is not None:
        if retry_after > RETRY_AFTER_MAX:
            return None
        delay = max(delay, retry_after)
    return delay


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


def _core_kwargs(params):
    return {name: params.get(name) for name in CORE_AUTH_ARG_SPEC}


def configuration(params):
    """A ``kubernetes.client.Configuration`` from the module's connection options.

    kubernetes.core builds it (``_create_auth_spec``: options, else ``K8S_AUTH_*`` variables;
    ``_create_configuration``: in-cluster, kubeconfig, ``persist_config``, proxy headers), then
    netmedic's fixes are applied to that object: no urllib3 retries, and an explicit token or basic
    login replaces the kubeconfig's refresh hook instead of being overwritten by it.
    """
    if not HAS_K8S_CORE:
        raise K8sError('the kubernetes.core collection is required for the connection options: %s' % K8S_CORE_IMPORT_ERROR)
    auth = core_client._create_auth_spec(None, **_core_kwargs(params))
    # kubernetes.core loads the kubeconfig into the client's process-wide default Configuration and
    # copies it; start from a clean default and restore it, so two sources (inventory files, tests)
    # in one process never inherit each other's credentials.
    saved = k8s.Configuration._default
    k8s.Configuration._default = None
    try:
        cfg = core_client._create_configuration(auth)
    except (ConfigException, IOError, OSError, TypeError, ValueError, KeyError) as e:
        raise K8sError('could not load the Kubernetes connection configuration: %s' % (e,))
    finally:
        k8s.Configuration._default = saved
    # No hidden urllib3 retries: Cluster.call retries what is safe to retry, so a hung server fails once.
    cfg.retries = False
    explicit = None
    if auth.get('api_key'):
        explicit = 'Bearer %s' % auth['api_key']
    elif auth.get('username') and auth.get('password'):
        explicit = cfg.get_basic_auth_token()
    if explicit:
        # An explicit token (or login) is the only identity sent: drop the kubeconfig's refresh hook (it would put
        # its own token back on every request), its BearerToken entry and its client certificate (kube-apiserver
        # authenticates x509 first: with the certificate beside it, a bad or read-only token ran as the kubeconfig's
        # user; issue 15, found on the real server). A certificate given as an option itself is kept.
        cfg.refresh_api_key_hook = None
        cfg.api_key_prefix = {}
        cfg.api_key = {'authorization': explicit}
        if not auth.get('cert_file'):
            cfg.cert_file = None
            cfg.key_file = None
    return cfg


def api_client(params):
    """An ApiClient for the module options; ``Cluster.call`` takes its timeout and retries from ``netmedic_policy``.

    The impersonation headers are kubernetes.core's (``impersonate_user``/``impersonate_groups`` or
    their ``K8S_AUTH_*`` variables; one ``Impersonate-Group`` header per group).
    """
    policy = request_policy(params)
    api = k8s.ApiClient(configuration(params))
    api.netmedic_policy = policy
    headers = core_client._create_headers(None, **_core_kwargs(params))
    for header in ('Impersonate-User', 'Impersonate-Group'):
        if headers.get(header):
            core_client._set_header(api, header, headers[header])
    return api


def resource_path(kind, namespace=None, name=None, subresource=None):
    """The API path of ``kind`` (a collection, one object or one object's ``subresource``).

    A namespaced kind without ``namespace`` is its collection across all namespaces. Names are
    percent-encoded, so no name can reach another path.
    """
    if kind not in RESOURCES:
        raise K8sError('netmedic has no API path for %s (known: %s)' % (kind, ', '.join(sorted(RESOURCES))))
    prefix, resource, namespaced = RESOURCES[kind]
    parts = [prefix]
    if namespaced and namespace:
        parts += ['namespaces', quote(namespace, safe='')]
    parts.append(resource)
    if name:
        parts.append(quote(name, safe=''))
    if subresource:
        parts.append(subresource)
    return '/'.join(parts)


def _ref(kind, namespace, name):
    return '%s %s' % (kind, '%s/%s' % (namespace, name) if namespace and RESOURCES.get(kind, (0, 0, True))[2] else name)


class Cluster(object):
    """The API calls netmedic modules make, on plain dicts (camelCase, as kubectl shows them), with
    uniform errors, a timeout on every request and bounded retries (see :meth:`call`)."""

    def __init__(self, params, api=None):
        self.api = api or api_client(params)

    def call(self, doing, method, path, query=None, body=None, content_type=None, timeout=None, text=False):
        """One request: the answer's JSON as plain data (``text``: the body as text, for logs).

        ``query`` is a list of ``(name, value)``; ``timeout`` (seconds) replaces the client's
        ``request_timeout`` for this request. 429 and (for GET) 5xx answers are retried as
        :func:`retry_delay` says, except an eviction's 429 (a PodDisruptionBudget's "not now", for the
        caller to decide). A timeout is never retried. Every failure is a :class:`K8sError`.
        """
        policy = getattr(self.api, 'netmedic_policy', None) or DEFAULT_POLICY
        timeout = timeout or policy['timeout']
        read = method == 'GET'
        retries = 0 if path.endswith('/eviction') else policy['retries']
        headers = {'Accept': 'application/json'}
        if body is not None:
            headers['Content-Type'] = content_type or 'application/json'
        attempt = 0
        while True:
            try:
                request = self.api.param_serialize(method=method, resource_path=path, query_params=list(query or ()),
                                                   header_params=dict(headers), body=body, auth_settings=['BearerToken'])
                response = self.api.call_api(*request, _request_timeout=timeout)
                data = response.read()
                if not 200 <= response.status <= 299:
                    raise ApiException(http_resp=response)
                break
            except ApiException as e:
                delay = retry_delay(e.status, parse_retry_after(_header(e, 'Retry-After')), attempt, retries, read)
                if delay is None:
                    error = api_error(e, doing)
                    if attempt:
                        error.msg += ' (after %d retries)' % attempt
                        error.args = (error.msg,)
                    raise error
            except Exception as e:  # urllib3 connection errors, timeouts and the like
                if 'timeout' in type(e).__name__.lower() or 'timed out' in str(e).lower():
                    raise K8sError('%s: no answer from the Kubernetes API within request_timeout=%ss (%s)'
                                   % (doing, timeout, e), reason='Timeout')
                raise K8sError('cannot reach the Kubernetes API %s: %s' % (doing, e))
            attempt += 1
            _sleep(delay)
        if isinstance(data, bytes):
            data = data.decode('utf-8', 'replace')
        if text:
            return data
        try:
            return json.loads(data)
        except (TypeError, ValueError) as e:
            raise K8sError('%s: the API answered with something that is not JSON (%s)' % (doing, e))

    def version(self):
        """The API server's ``gitVersion`` (for example ``v1.24.9``)."""
        data = self.call('reading the cluster version', 'GET', '/version')
        if not isinstance(data, dict) or not data.get('gitVersion'):
            raise K8sError('reading the cluster version: the answer has no gitVersion')
        return data['gitVersion']

    def get(self, kind, namespace, name, timeout=None):
        """The object as a dict, or None when it does not exist (only a 404 means absent)."""
        try:
            return self.call('reading %s' % _ref(kind, namespace, name), 'GET', resource_path(kind, namespace, name), timeout=timeout)
        except K8sError as e:
            if e.status == 404:
                return None
            raise

    def replace(self, body, dry_run=False, timeout=None):
        """PUT ``body``; its ``metadata.resourceVersion`` is the precondition (a concurrent writer makes this a 409)."""
        kind, meta = _writable(body)
        return self.call('replacing %s%s' % (_ref(kind, meta.get('namespace'), meta['name']), ' (dry run)' if dry_run else ''), 'PUT',
                         resource_path(kind, meta.get('namespace'), meta['name']), query=_dry_run(dry_run), body=body, timeout=timeout)

    def create(self, body, dry_run=False, timeout=None):
        kind, meta = _writable(body)
        return self.call('creating %s%s' % (_ref(kind, meta.get('namespace'), meta['name']), ' (dry run)' if dry_run else ''), 'POST',
                         resource_path(kind, meta.get('namespace')), query=_dry_run(dry_run), body=body, timeout=timeout)

    def delete(self, kind, namespace, name, uid=None, dry_run=False, timeout=None, preconditions=None):
        """Delete one object, only while it still has ``uid``; None when it was already gone.

        ``preconditions`` replaces the uid precondition (a Lease is deleted only at the
        ``resourceVersion`` its holder read). A dry run travels in the body (see :func:`delete_options`).
        """
        body = delete_options(uid, dry_run)
        if preconditions:
            body['preconditions'] = dict(preconditions)
        try:
            return self.call('deleting %s%s' % (_ref(kind, namespace, name), ' (dry run)' if dry_run else ''), 'DELETE',
                             resource_path(kind, namespace, name), query=_dry_run(dry_run), body=body, timeout=timeout)
        except K8sError as e:
            if e.status == 404:
                return None
            raise

    def patch(self, kind, namespace, name, patch, dry_run=False, timeout=None):
        """A JSON merge patch (RFC 7386) of one object."""
        return self.call('patching %s%s' % (_ref(kind, namespace, name), ' (dry run)' if dry_run else ''), 'PATCH',
                         resource_path(kind, namespace, name), query=_dry_run(dry_run), body=patch,
                         content_type=MERGE_PATCH, timeout=timeout)

    def evict(self, pod, body, dry_run=False, timeout=None):
        """POST an Eviction of ``pod`` (a dict); a 429 is the budget's answer, raised at once (never retried).

        A dry run is also in ``body``'s ``deleteOptions`` (see :func:`delete_options`)."""
        meta = pod['metadata']
        return self.call('evicting Pod %s/%s%s' % (meta['namespace'], meta['name'], ' (dry run)' if dry_run else ''), 'POST',
                         resource_path('Pod', meta['namespace'], meta['name'], 'eviction'), query=_dry_run(dry_run),
                         body=body, timeout=timeout)


# -- Helpers for the cluster remediation modules (daemonset_restart, flannel_config, terway_config,
# -- ip_masq_agent, network_audit).  They return the API's JSON as plain dicts (camelCase keys, as
# -- kubectl shows them), so the planners in module_utils work on the same shapes as the docs.

def _writable(body):
    kind = body.get('kind')
    if kind not in WRITABLE:
        raise K8sError('netmedic cannot write a %s (supported: %s)' % (kind, ', '.join(WRITABLE)))
    return kind, body['metadata']


def _dry_run(dry_run):
    return [('dryRun', 'All')] if dry_run else None


def _header(exc, name):
    headers = getattr(exc, 'headers', None) or {}
    try:
        return headers.get(name)
    except AttributeError:
        return None


_sleep = time.sleep     # replaced by tests


def get_object(cluster, kind, namespace, name, timeout=None):
    """A DaemonSet, ConfigMap, Pod or Node as a dict, or None when it does not exist (only a 404 means absent).

    ``timeout`` (seconds) bounds the request; None keeps the client's default."""
    return cluster.get(kind, namespace, name, timeout=timeout)


def list_objects(cluster, kind, namespace=None, label_selector=None, field_selector=None, page=500, timeout=None):
    """Every object of ``kind`` (following ``continue`` tokens); any error raises, an empty list is a real answer.

    ``timeout`` (seconds) bounds each request; None keeps the client's default."""
    doing = 'listing %ss%s%s' % (kind, ' in %s' % namespace if namespace else '',
                                 ' (%s)' % label_selector if label_selector else '')
    path = resource_path(kind, namespace)
    items = []
    token = None
    while True:
        query = [('limit', page)]
        if label_selector:
            query.append(('labelSelector', label_selector))
        if field_selector:
            query.append(('fieldSelector', field_selector))
        if token:
            query.append(('continue', token))
        data = cluster.call(doing, 'GET', path, query=query, timeout=timeout)
        if not isinstance(data, dict) or not isinstance(data.get('items'), list):
            raise K8sError('%s: the answer has no items list' % doing)
        items.extend(data['items'])
        token = (data.get('metadata') or {}).get('continue')
        if not token:
            return items


def delete_options(uid=None, dry_run=False):
    """The DeleteOptions body of every delete: a uid precondition, and the dry run in the body itself.

    With a DeleteOptions body the kube-apiserver reads the options from the body only and ignores
    ``?dryRun=`` (measured on v1.37.2, issue 15): a query-only dry run deleted.
    """
    body = {'apiVersion': 'v1', 'kind': 'DeleteOptions'}
    if uid:
        body['preconditions'] = {'uid': uid}
    if dry_run:
        body['dryRun'] = ['All']
    return body


def delete_pod(cluster, namespace, name, uid=None, dry_run=False):
    """Delete one pod, only if it still has ``uid`` (a replacement with the same name is left alone).

    Returns the API's answer, or None when the pod was already gone.
    """
    return cluster.delete('Pod', namespace, name, uid=uid, dry_run=dry_run)


def read_pod_log(cluster, namespace, name, container=None, tail_lines=None):
    query = []
    if container:
        query.append(('container', container))
    if tail_lines:
        query.append(('tailLines', tail_lines))
    return cluster.call('reading the log of Pod %s/%s%s' % (namespace, name, ' container %s' % container if container else ''),
                        'GET', resource_path('Pod', namespace, name, 'log'), query=query, text=True)
