"""API errors rendered as Kubernetes ``Status`` objects."""

from __future__ import annotations


class ApiError(Exception):
    """An error the double answers with a ``Status`` body and HTTP ``code``."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = dict(headers or {})    # extra response headers, e.g. Retry-After on a 429

    def status(self):
        body = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
                'message': self.message, 'reason': self.reason, 'code': self.code}
        if self.details:
            body['details'] = self.details
        return body


def _qualified(rt):
    return rt.plural if not rt.group else '%s.%s' % (rt.plural, rt.group)


def _details(rt, name, **extra):
    details = {'name': name, 'kind': rt.plural}
    if rt.group:
        details['group'] = rt.group
    details.update(extra)
    return details


def not_found(rt, name):
    return ApiError(404, 'NotFound', '%s "%s" not found' % (_qualified(rt), name), _details(rt, name))


def already_exists(rt, name):
    return ApiError(409, 'AlreadyExists', '%s "%s" already exists' % (_qualified(rt), name), _details(rt, name))


def conflict(rt, name, why='the object has been modified; please apply your changes to the latest version and try again'):
    return ApiError(409, 'Conflict', 'Operation cannot be fulfilled on %s "%s": %s' % (_qualified(rt), name, why),
                    _details(rt, name))


def precondition_failed(rt, name, field, wanted, actual):
    """A DELETE whose ``uid`` or ``resourceVersion`` precondition does not hold: 409 Conflict, worded (and with the
    kind, not the resource, in message and details) as the real kube-apiserver v1.37.2 answers it (issue 15)."""
    label = {'uid': 'UID', 'resourceVersion': 'ResourceVersion'}[field]
    hint = 'deleted and then recreated' if field == 'uid' else 'modified'
    kind = rt.kind if not rt.group else '%s.%s' % (rt.kind, rt.group)
    details = dict({'name': name, 'kind': rt.kind}, **({'group': rt.group} if rt.group else {}))
    return ApiError(409, 'Conflict', 'Operation cannot be fulfilled on %s "%s": the %s in the precondition (%s) does not match the %s in '
                    'record (%s). The object might have been %s' % (kind, name, label, wanted, label, actual, hint), details)


def invalid(rt, name, causes):
    """``causes`` is a list of ``(field, message)``; answered as 422 Invalid."""
    text = ', '.join('%s: %s' % (field, msg) if field else msg for field, msg in causes)
    details = _details(rt, name, kind=rt.kind,
                       causes=[{'reason': 'FieldValueInvalid', 'message': msg, 'field': field} for field, msg in causes])
    return ApiError(422, 'Invalid', '%s "%s" is invalid: %s' % (rt.kind, name, text), details)


def bad_request(message):
    return ApiError(400, 'BadRequest', message)


def method_not_allowed():
    return ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')


def unauthorized():
    return ApiError(401, 'Unauthorized', 'Unauthorized')


def path_not_found(path):
    return ApiError(404, 'NotFound', 'the server could not find the requested resource', {'causes': [
        {'reason': 'UnexpectedServerResponse', 'message': '404 page not found: %s' % path}]})


def too_many_requests(message, causes):
    return ApiError(429, 'TooManyRequests', message, {'causes': causes})
