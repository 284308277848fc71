"""Authentication identities and RBAC authorization, the way kube-apiserver's RBAC authorizer decides.

The admin token (``KubeDouble.token``) is a superuser (like ``system:masters``): never checked.
Any other token registered with ``KubeDouble.add_identity`` is a non-admin user whose every resource
request is authorized against the Role, ClusterRole, RoleBinding and ClusterRoleBinding objects in
the store, on the request's attributes (verb, API group, resource, subresource, name, namespace):

- verbs ``get list watch create update patch delete deletecollection`` (``*`` = all); a dry run
  needs the same verb as the real write (the real API server authorizes before it dry-runs);
- ``apiGroups`` (``""`` = core, ``*``), ``resources`` (``*``, ``pods/eviction``, ``*/status``),
  ``resourceNames`` (only a request that names an object can match a rule that lists names:
  ``list`` and ``create`` never do);
- a ClusterRoleBinding grants its ClusterRole everywhere; a RoleBinding grants its Role or
  ClusterRole in its own namespace only (a cluster-wide list needs a ClusterRoleBinding);
- subjects ``User``, ``Group`` and ``ServiceAccount`` (``system:serviceaccount:<ns>:<name>``, in
  groups ``system:serviceaccounts``, ``system:serviceaccounts:<ns>``, ``system:authenticated``).

Discovery (``/api``, ``/apis``, ``/api/v1``, ``/apis/<group>[/<version>]``, ``/version``,
``/healthz``...) is allowed to every authenticated identity, as the default ``system:discovery``
binding does.  Not emulated: aggregated ClusterRoles, ``escalate``/``bind`` checks on RBAC writes,
webhook or ABAC authorizers.  A denial is a 403 ``Status`` with the real server's message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import errors

RBAC = 'rbac.authorization.k8s.io'
AUTHENTICATED = 'system:authenticated'


@dataclass(frozen=True)
class Identity:
    name: str
    groups: tuple = field(default=())


def serviceaccount_identity(namespace, name):
    return Identity('system:serviceaccount:%s:%s' % (namespace, name),
                    ('system:serviceaccounts', 'system:serviceaccounts:%s' % namespace, AUTHENTICATED))


def user_identity(name, groups=()):
    groups = tuple(groups)
    return Identity(name, groups if AUTHENTICATED in groups else groups + (AUTHENTICATED,))


@dataclass(frozen=True)
class Attributes:
    """What a resource request asks for (kube-apiserver's ``authorizer.Attributes``)."""

    verb: str
    group: str
    resource: str
    subresource: str = ''
    namespace: str = ''
    name: str = ''

    def as_dict(self):
        return {'verb': self.verb, 'apiGroup': self.group, 'resource': self.resource,
                'subresource': self.subresource, 'namespace': self.namespace, 'name': self.name}


def request_verb(method, name, query):
    """The RBAC verb for an HTTP method on a collection (``name`` None) or an object."""
    if method == 'GET':
        if name is None:
            return 'watch' if query.get('watch') in ('true', '1') else 'list'
        return 'get'
    if method == 'POST':
        return 'create'
    if method == 'PUT':
        return 'update'
    if method == 'PATCH':
        return 'patch'
    if method == 'DELETE':
        return 'deletecollection' if name is None else 'delete'
    return method.lower()


def _subject_matches(subject, identity, binding_namespace):
    kind = subject.get('kind')
    if kind == 'User':
        return subject.get('name') == identity.name
    if kind == 'Group':
        return subject.get('name') in identity.groups
    if kind == 'ServiceAccount':
        namespace = subject.get('namespace') or binding_namespace
        return identity.name == 'system:serviceaccount:%s:%s' % (namespace, subject.get('name'))
    return False


def rule_allows(rule, attrs):
    """One PolicyRule against the request, as rbac/v1's ``RuleAllows`` does."""
    verbs = rule.get('verbs') or []
    if '*' not in verbs and attrs.verb not in verbs:
        return False
    groups = rule.get('apiGroups') or []
    if '*' not in groups and attrs.group not in groups:
        return False
    combined = attrs.resource + ('/' + attrs.subresource if attrs.subresource else '')
    resources = rule.get('resources') or []
    if not any(r == '*' or r == combined or (attrs.subresource and r == '*/' + attrs.subresource) for r in resources):
        return False
    names = rule.get('resourceNames') or []
    return not names or attrs.name in names


def _role_rules(store, kind, name, namespace):
    if kind == 'ClusterRole':
        role = store.find('clusterroles', None, name)
    elif kind == 'Role':
        role = store.find('roles', namespace, name)
    else:
        role = None
    return (role or {}).get('rules') or []


def authorize(store, identity, attrs):
    """True when some binding of ``identity`` grants ``attrs`` (a missing role grants nothing)."""
    bindings = [(b, None) for b in store.list('clusterrolebindings')[0]]
    if attrs.namespace:
        bindings += [(b, attrs.namespace) for b in store.list('rolebindings', attrs.namespace)[0]]
    for binding, namespace in bindings:
        ref = binding.get('roleRef') or {}
        if ref.get('apiGroup', RBAC) != RBAC:
            continue
        if namespace is None and ref.get('kind') != 'ClusterRole':
            continue
        if not any(_subject_matches(s, identity, namespace) for s in binding.get('subjects') or []):
            continue
        if any(rule_allows(rule, attrs) for rule in _role_rules(store, ref.get('kind'), ref.get('name'), namespace)):
            return True
    return False


def forbidden(identity, attrs):
    """The 403 the real API server answers (``responsewriters.Forbidden`` + ``NewForbidden``)."""
    resource = attrs.resource + ('/' + attrs.subresource if attrs.subresource else '')
    if attrs.namespace:
        why = 'User "%s" cannot %s resource "%s" in API group "%s" in the namespace "%s"' % (
            identity.name, attrs.verb, resource, attrs.group, attrs.namespace)
    else:
        why = 'User "%s" cannot %s resource "%s" in API group "%s" at the cluster scope' % (
            identity.name, attrs.verb, resource, attrs.group)
    qualified = attrs.resource + ('.' + attrs.group if attrs.group else '')
    subject = '%s "%s"' % (qualified, attrs.name) if attrs.name else qualified
    details = {'kind': attrs.resource}
    if attrs.name:
        details['name'] = attrs.name
    if attrs.group:
        details['group'] = attrs.group
    return errors.ApiError(403, 'Forbidden', '%s is forbidden: %s' % (subject, why), details)
