"""HTTP routing: Kubernetes REST paths onto store, eviction and log operations."""

from __future__ import annotations

import contextlib
import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml

from . import errors, rbac, resources
from .patching import APPLY_PATCH, PATCH_TYPES
from .policy import evict
from .resources import BY_PATH, POD

LOG = logging.getLogger(__name__)
JSON = 'application/json'
TEXT = 'text/plain; charset=utf-8'
PUBLIC_PATHS = ('/version', '/healthz', '/livez', '/readyz')


def _dry_run(query, options=None):
    values = [query['dryRun']] if 'dryRun' in query else list((options or {}).get('dryRun') or [])
    for value in values:
        if value != 'All':
            raise errors.bad_request('Invalid dryRun value: Unsupported value: "%s": supported values: "All"' % value)
    return bool(values)


def _delete_options(query, body):
    """DeleteOptions as the real kube-apiserver reads them: from the body when there is one, else from the query.

    A DELETE with a body (even ``{}``) ignores the query's ``dryRun``/``propagationPolicy`` (measured against
    v1.37.2, issue 15: ``delete_namespaced_pod(body=..., dry_run='All')`` deletes the pod).
    """
    if body:
        options = Api._json(body)
        return options, _dry_run({}, options)
    options = {key: query[key] for key in ('propagationPolicy', 'gracePeriodSeconds') if key in query}
    return options, _dry_run(query)


def _grace_period(options):
    """DeleteOptions.gracePeriodSeconds as an int (the query sends it as text), None when not given."""
    value = options.get('gracePeriodSeconds')
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise errors.bad_request('invalid gracePeriodSeconds: %r' % (value,)) from exc


def _strip_type(obj):
    obj = dict(obj)
    obj.pop('kind', None)
    obj.pop('apiVersion', None)
    return obj


class Api:
    """Turns (method, path, query, content type, body) into (code, payload, content type)."""

    def __init__(self, store):
        self.store = store
        self.audit = None     # a list: every resource request's attributes, user and decision are appended

    def _authorize(self, identity, method, rt, namespace, name, sub, query):
        """Raise 403 unless ``identity`` (None = admin) may make this request; record it in ``audit``."""
        attrs = rbac.Attributes(rbac.request_verb(method, name, query), rt.group, rt.plural, sub or '',
                                namespace or '', name or '')
        allowed = identity is None or rbac.authorize(self.store, identity, attrs)
        if self.audit is not None:
            entry = dict(attrs.as_dict(), user=identity.name if identity else 'admin', allowed=allowed,
                         dryRun='dryRun' in query)
            self.audit.append(entry)
        if not allowed:
            raise rbac.forbidden(identity, attrs)
        return entry if self.audit is not None else None

    def handle(self, method, path, query, content_type, body, identity=None):
        parts = [p for p in path.split('/') if p]
        if path in PUBLIC_PATHS[1:]:
            return 200, 'ok', TEXT
        if parts == ['version']:
            return 200, resources.version_info(self.store.version), JSON
        if parts == ['api']:
            return 200, resources.api_versions(), JSON
        if parts == ['apis']:
            return 200, resources.api_group_list(), JSON
        if len(parts) == 2 and parts[0] == 'apis' and resources.api_group(parts[1]):
            return 200, resources.api_group(parts[1]), JSON
        if len(parts) >= 2 and parts[0] == 'api':
            group, version, rest = '', parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == 'apis':
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise errors.path_not_found(path)
        if not rest:
            doc = resources.api_resource_list(group, version)
            if doc is None or method != 'GET':
                raise errors.path_not_found(path)
            return 200, doc, JSON
        namespace = None
        if rest[0] == 'namespaces' and len(rest) >= 3 and (group, version, rest[2]) in BY_PATH:
            namespace, rest = rest[1], rest[2:]
        rt = BY_PATH.get((group, version, rest[0]))
        if rt is None or len(rest) > 3 or (namespace and not rt.namespaced):
            raise errors.path_not_found(path)
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        entry = self._authorize(identity, method, rt, namespace, name, sub, query)
        if entry is not None and method == 'DELETE' and body:
            # Record the dry run the request gets: a DELETE with a body takes its DeleteOptions from the body alone
            # (_delete_options), so a query dryRun beside one is a real deletion (review finding, issue 15).
            with contextlib.suppress(Exception):   # a body that is not JSON is refused below; the record keeps the query's
                entry['dryRun'] = bool((self._json(body) or {}).get('dryRun'))
        if name is None:
            answer = self._collection(method, rt, namespace, query, body)
            if entry is not None and method == 'GET':
                # What a list cost: objects returned, the page size asked for, whether it was selected.
                entry.update(items=len(answer[1]['items']), limit=int(query.get('limit') or 0),
                             selector=bool(query.get('labelSelector') or query.get('fieldSelector')))
            return answer
        if rt.namespaced and namespace is None:
            raise errors.path_not_found(path)
        if sub is None or (sub == 'status' and rt.status):
            return self._item(method, rt, namespace, name, sub, query, content_type, body)
        if rt is POD and sub == 'log' and method == 'GET':
            return 200, self._log(namespace, name, query), TEXT
        if rt is POD and sub == 'eviction' and method == 'POST':
            eviction = self._json(body)
            return 201, evict(self.store, namespace, name, eviction, _dry_run(query, eviction.get('deleteOptions'))), JSON
        if sub in rt.subresources or sub == 'status':
            raise errors.method_not_allowed()
        raise errors.path_not_found(path)

    @staticmethod
    def _json(body):
        if not body:
            return {}
        try:
            return json.loads(body)
        except ValueError as exc:
            raise errors.bad_request("couldn't get version/kind; json parse error: %s" % exc) from exc

    def _collection(self, method, rt, namespace, query, body):
        if method == 'GET':
            if query.get('watch') in ('true', '1'):
                raise errors.bad_request('watch is not supported by the kubedouble API server double')
            limit = int(query.get('limit') or 0)
            start = int(query.get('continue') or 0) if limit else 0
            items, rv, total = self.store.list_page(rt, namespace, query.get('labelSelector'),
                                                    query.get('fieldSelector'), start, limit)
            meta = {'resourceVersion': rv}
            if limit and start + limit < total:
                meta['continue'] = str(start + limit)
                meta['remainingItemCount'] = total - start - limit
            return 200, {'kind': rt.kind + 'List', 'apiVersion': rt.api_version, 'metadata': meta,
                         'items': [_strip_type(i) for i in items]}, JSON
        if method == 'POST':
            if rt.namespaced and namespace is None:
                raise errors.method_not_allowed()
            return 201, self.store.create(rt, namespace, self._json(body), dry_run=_dry_run(query)), JSON
        if method == 'DELETE':
            options, dry_run = _delete_options(query, body)
            items, _rest = self.store.list(rt, namespace, query.get('labelSelector'), query.get('fieldSelector'))
            deleted = [self.store.delete(rt, i['metadata'].get('namespace'), i['metadata']['name'], dry_run=dry_run,
                                         propagation=options.get('propagationPolicy'), grace_period=_grace_period(options))
                       for i in items]
            return 200, {'kind': rt.kind + 'List', 'apiVersion': rt.api_version,
                         'metadata': {'resourceVersion': self.store.resource_version},
                         'items': [_strip_type(i) for i in deleted]}, JSON
        raise errors.method_not_allowed()

    def _item(self, method, rt, namespace, name, sub, query, content_type, body):
        if method == 'GET':
            return 200, self.store.get(rt, namespace, name), JSON
        if method == 'PUT':
            return 200, self.store.update(rt, namespace, name, self._json(body), dry_run=_dry_run(query),
                                          subresource=sub), JSON
        if method == 'PATCH':
            ctype = (content_type or '').split(';')[0].strip()
            if ctype not in PATCH_TYPES:
                raise errors.ApiError(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format - '
                                      'accepted media types include: %s' % ', '.join(PATCH_TYPES))
            try:
                patch = yaml.safe_load(body) if ctype == APPLY_PATCH else json.loads(body or b'null')
            except (ValueError, yaml.YAMLError) as exc:
                raise errors.bad_request('error decoding patch: %s' % exc) from exc
            existed = ctype == APPLY_PATCH and self.store.find(rt, namespace, name) is not None
            result = self.store.patch(rt, namespace, name, ctype, patch, dry_run=_dry_run(query), subresource=sub,
                                      field_manager=query.get('fieldManager'))
            return (201 if ctype == APPLY_PATCH and not existed else 200), result, JSON
        if method == 'DELETE' and sub is None:
            options, dry_run = _delete_options(query, body)
            deleted = self.store.delete(rt, namespace, name, dry_run=dry_run, propagation=options.get('propagationPolicy'),
                                        preconditions=options.get('preconditions'), grace_period=_grace_period(options))
            if rt is POD or deleted['metadata'].get('deletionTimestamp'):
                return 200, deleted, JSON
            details = {'name': name, 'kind': rt.plural, 'uid': deleted['metadata']['uid']}
            if rt.group:
                details['group'] = rt.group
            return 200, {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Success',
                         'details': details}, JSON
        raise errors.method_not_allowed()

    def _log(self, namespace, name, query):
        pod = self.store.get(POD, namespace, name)
        names = [c['name'] for c in pod['spec']['containers']]
        container = query.get('container')
        if not container:
            if len(names) > 1:
                raise errors.bad_request('a container name must be specified for pod %s, choose one of: [%s]'
                                         % (name, ' '.join(names)))
            container = names[0]
        if container not in names:
            raise errors.bad_request('container %s is not valid for pod %s' % (container, name))
        logs = self.store.logs.get(pod['metadata']['uid'])
        if logs is None:
            raise errors.bad_request('container "%s" in pod "%s" is waiting to start: ContainerCreating'
                                     % (container, name))
        statuses = {s['name']: s for s in pod['status'].get('containerStatuses') or []}
        if query.get('previous') == 'true' and not statuses.get(container, {}).get('lastState', {}).get('terminated'):
            raise errors.bad_request('previous terminated container "%s" in pod "%s" not found' % (container, name))
        lines = logs.get(container, '').splitlines(keepends=True)
        if query.get('tailLines'):
            lines = lines[-int(query['tailLines']):] if int(query['tailLines']) > 0 else []
        if query.get('timestamps') == 'true':
            stamp = pod['status'].get('startTime', '')
            lines = ['%s %s' % (stamp, line) for line in lines]
        text = ''.join(lines)
        if query.get('limitBytes'):
            text = text[:int(query['limitBytes'])]
        return text


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'kubedouble/1'

    def log_message(self, fmt, *args):
        LOG.debug('%s %s', self.address_string(), fmt % args)

    def _dispatch(self, method):
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        extra = {}
        try:
            for fault in list(self.server.faults):
                fault(method, url.path, query)    # may raise ApiError (429, 5xx, ...) to inject a failure
            identity = self._authenticate(url.path)
            code, payload, ctype = self.server.api.handle(method, url.path, query, self.headers.get('Content-Type'), body,
                                                          identity=identity)
        except errors.ApiError as exc:
            code, payload, ctype, extra = exc.code, exc.status(), JSON, exc.headers
        except Exception as exc:
            LOG.exception('kubedouble: %s %s failed', method, self.path)
            self.server.failures.append(exc)
            code, payload, ctype = 500, errors.ApiError(500, 'InternalError', 'Internal error occurred: %s' % exc).status(), JSON
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(data)))
        self.send_header('Cache-Control', 'no-cache, private')
        for header, value in extra.items():
            self.send_header(header, value)
        self.end_headers()
        self.wfile.write(data)

    def _authenticate(self, path):
        """None for the admin (or with auth off), else the non-admin ``rbac.Identity``; 401 for anything else."""
        token = self.server.token
        if token is None:
            return None
        header = self.headers.get('Authorization') or ''
        if not header and path in PUBLIC_PATHS:
            return None
        if header == 'Bearer %s' % token:
            return self._impersonated(None)
        bearer = header[len('Bearer '):] if header.startswith('Bearer ') else None
        if bearer and bearer in self.server.identities:
            return self._impersonated(self.server.identities[bearer])
        raise errors.unauthorized()

    def _impersonated(self, identity):
        """``Impersonate-User``/``Impersonate-Group``: the admin may act as anyone; others need ``impersonate``."""
        user = self.headers.get('Impersonate-User')
        if not user:
            return identity
        groups = [g.strip() for value in self.headers.get_all('Impersonate-Group') or [] for g in value.split(',')
                  if g.strip()]
        if identity is not None:
            wanted = [rbac.Attributes('impersonate', '', 'users', name=user)]
            wanted += [rbac.Attributes('impersonate', '', 'groups', name=g) for g in groups]
            for attrs in wanted:
                if not rbac.authorize(self.server.api.store, identity, attrs):
                    raise rbac.forbidden(identity, attrs)
        if user.startswith('system:serviceaccount:') and user.count(':') == 3 and not groups:
            _s, _sa, namespace, name = user.split(':')
            return rbac.serviceaccount_identity(namespace, name)
        return rbac.user_identity(user, groups)

    def do_GET(self):
        self._dispatch('GET')

    def do_POST(self):
        self._dispatch('POST')

    def do_PUT(self):
        self._dispatch('PUT')

    def do_PATCH(self):
        self._dispatch('PATCH')

    def do_DELETE(self):
        self._dispatch('DELETE')


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, store, token):
        super().__init__(address, _Handler)
        self.api = Api(store)
        self.token = token
        self.identities = {}  # non-admin bearer token -> rbac.Identity (authorized by RBAC)
        self.failures = []    # unexpected exceptions answered with 500
        self.faults = []      # test hooks: fault(method, path, query) runs before each request and may raise ApiError
