"""What the real API server does to an object besides storing it: defaulting, allocation
(Service cluster IPs and node ports) and the semantic checks the JSON schema cannot express
(name format, immutable fields, selector/template agreement)."""

from __future__ import annotations

import copy
import ipaddress
import re

from . import errors
from .selectors import selector_matches

_SUBDOMAIN = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
SERVICE_CIDR = ipaddress.ip_network('10.96.0.0/12')
NODEPORT_RANGE = range(30000, 32768)


def check_name(rt, name):
    if rt.group == 'rbac.authorization.k8s.io':
        ok = name not in ('.', '..') and '/' not in name and '%' not in name
        rule = 'may not contain "/" or "%"'
    elif rt.kind == 'Namespace':
        ok = len(name) <= 63 and _LABEL.match(name)
        rule = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                "and must start and end with an alphanumeric character")
    else:
        ok = len(name) <= 253 and _SUBDOMAIN.match(name)
        rule = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                "and must start and end with an alphanumeric character")
    if not ok:
        raise errors.invalid(rt, name, [('metadata.name', 'Invalid value: "%s": %s' % (name, rule))])


def _default_container(container):
    container.setdefault('terminationMessagePath', '/dev/termination-log')
    container.setdefault('terminationMessagePolicy', 'File')
    image = container.get('image', '')
    tag = image.rsplit('/', 1)[-1]
    latest = '@' not in tag and (':' not in tag or tag.endswith(':latest'))
    container.setdefault('imagePullPolicy', 'Always' if latest else 'IfNotPresent')
    container.setdefault('resources', {})
    for port in container.get('ports') or []:
        port.setdefault('protocol', 'TCP')


def default_pod_spec(spec):
    spec.setdefault('restartPolicy', 'Always')
    spec.setdefault('dnsPolicy', 'ClusterFirst')
    spec.setdefault('schedulerName', 'default-scheduler')
    spec.setdefault('terminationGracePeriodSeconds', 30)
    spec.setdefault('securityContext', {})
    spec.setdefault('serviceAccountName', spec.get('serviceAccount') or 'default')
    spec.setdefault('serviceAccount', spec['serviceAccountName'])
    spec.setdefault('enableServiceLinks', True)
    for container in (spec.get('containers') or []) + (spec.get('initContainers') or []):
        _default_container(container)


def _default_template(obj):
    template = obj.setdefault('spec', {}).setdefault('template', {})
    default_pod_spec(template.setdefault('spec', {}))


def check_service_account(store, rt, obj):
    """ServiceAccount admission: a pod naming a ServiceAccount its namespace lacks is 403 Forbidden, named as the
    request named it (its ``generateName`` when it has no name yet: a controller's pods), nothing stored.

    Measured against kube-apiserver v1.37.2 (issue 15; tests/cluster/test_behaviour.py): a DaemonSet copied into a
    namespace without its ServiceAccount gets no pod (FailedCreate) until the account exists. Not for ``default``: the
    double makes each namespace's ``default`` account itself within a tick (controllers.py), the real server refuses
    until its controller made it.
    """
    if rt.kind != 'Pod':
        return
    spec = obj.get('spec') or {}
    account = spec.get('serviceAccountName') or spec.get('serviceAccount') or 'default'
    meta = obj['metadata']
    if account == 'default' or store.find('serviceaccounts', meta['namespace'], account) is not None:
        return
    name = meta.get('name') or meta.get('generateName') or ''
    raise errors.ApiError(403, 'Forbidden', 'pods "%s" is forbidden: error looking up service account %s/%s: serviceaccount "%s" not found'
                          % (name, meta['namespace'], account, account), {'name': name, 'kind': 'pods'})


def check_cluster_ip_free(store, rt, obj):
    """A create asking for a clusterIP some Service holds: 422 on spec.clusterIPs, as the real server says.

    The real kube-apiserver allocates the IP before it stores the object, so this comes before the
    name check: re-creating an existing Service with its own clusterIP is a 422 too, not a 409
    (measured against v1.37.2, issue 15; tests/cluster/test_behaviour.py).
    """
    if rt.key != 'services':
        return
    wanted = (obj.get('spec') or {}).get('clusterIP')
    if not wanted or wanted == 'None':
        return
    if any(s['spec'].get('clusterIP') == wanted for s in store.iter_objects('services')):
        raise errors.invalid(rt, obj['metadata'].get('name', ''), [
            ('spec.clusterIPs', 'Invalid value: ["%s"]: failed to allocate IP %s: provided IP is already allocated'
             % (wanted, wanted))])


def _dotted(value):
    return '%d.%d.%d.%d' % (value >> 24, (value >> 16) & 255, (value >> 8) & 255, value & 255)


def _allocate_service(store, obj, old):
    spec = obj.setdefault('spec', {})
    spec.setdefault('type', 'ClusterIP')
    spec.setdefault('sessionAffinity', 'None')
    spec.setdefault('internalTrafficPolicy', 'Cluster')
    if old is not None and not spec.get('clusterIP'):
        spec['clusterIP'] = old['spec'].get('clusterIP')
    if not spec.get('clusterIP'):
        used = {s['spec'].get('clusterIP') for s in store.iter_objects('services')}
        # The lowest free host address after 10.96.0.1 (the kubernetes Service); candidates are formatted
        # without ipaddress objects (one object per candidate made creating N Services slow, issue 14).
        first, last = int(SERVICE_CIDR.network_address) + 2, int(SERVICE_CIDR.broadcast_address) - 1
        spec['clusterIP'] = next(ip for ip in map(_dotted, range(first, last + 1)) if ip not in used)
    if spec['clusterIP'] != 'None':
        spec.setdefault('clusterIPs', [spec['clusterIP']])
        spec.setdefault('ipFamilies', ['IPv4'])
        spec.setdefault('ipFamilyPolicy', 'SingleStack')
    old_ports = {p.get('port'): p for p in (old or {}).get('spec', {}).get('ports') or []}
    used_ports = {p.get('nodePort') for s in store.iter_objects('services') for p in s['spec'].get('ports') or []}
    for port in spec.get('ports') or []:
        port.setdefault('protocol', 'TCP')
        port.setdefault('targetPort', port.get('port'))
        if spec['type'] in ('NodePort', 'LoadBalancer') and not port.get('nodePort'):
            previous = old_ports.get(port.get('port'), {}).get('nodePort')
            port['nodePort'] = previous or next(p for p in NODEPORT_RANGE if p not in used_ports)
            used_ports.add(port['nodePort'])


def apply_defaults(store, rt, obj, old=None):
    """Fill defaulted fields the way the API server's defaulting and allocation would."""
    kind = rt.kind
    if kind == 'Pod':
        default_pod_spec(obj.setdefault('spec', {}))
        if old is None:
            obj['status'] = {'phase': 'Pending', 'qosClass': 'BestEffort'}
    elif kind == 'DaemonSet':
        _default_template(obj)
        obj['spec'].setdefault('updateStrategy', {'type': 'RollingUpdate',
                                                  'rollingUpdate': {'maxUnavailable': 1, 'maxSurge': 0}})
        obj['spec'].setdefault('revisionHistoryLimit', 10)
    elif kind in ('Deployment', 'ReplicaSet'):
        _default_template(obj)
        obj['spec'].setdefault('replicas', 1)
        if kind == 'Deployment':
            obj['spec'].setdefault('strategy', {'type': 'RollingUpdate',
                                                'rollingUpdate': {'maxUnavailable': '25%', 'maxSurge': '25%'}})
            obj['spec'].setdefault('revisionHistoryLimit', 10)
            obj['spec'].setdefault('progressDeadlineSeconds', 600)
    elif kind == 'Service':
        _allocate_service(store, obj, old)
    elif kind == 'Namespace':
        obj.setdefault('spec', {'finalizers': ['kubernetes']})
        obj.setdefault('status', {'phase': 'Active'})
        obj['metadata'].setdefault('labels', {})['kubernetes.io/metadata.name'] = obj['metadata']['name']
    elif kind == 'Node':
        obj.setdefault('spec', {})
        obj.setdefault('status', {})


def check_semantics(rt, obj, old=None):
    """Raise 422 for what the schema cannot express."""
    name = obj['metadata']['name']
    if rt.kind in ('DaemonSet', 'Deployment', 'ReplicaSet'):
        spec = obj.get('spec') or {}
        selector = spec.get('selector')
        labels = ((spec.get('template') or {}).get('metadata') or {}).get('labels') or {}
        if not selector or not (selector.get('matchLabels') or selector.get('matchExpressions')):
            raise errors.invalid(rt, name, [('spec.selector', 'Required value')])
        if not selector_matches(selector, labels):
            raise errors.invalid(rt, name, [('spec.template.metadata.labels',
                                             'Invalid value: %s: `selector` does not match template `labels`' % labels)])
        if old is not None and selector != old['spec'].get('selector'):
            raise errors.invalid(rt, name, [('spec.selector', 'Invalid value: %s: field is immutable' % selector)])
    if rt.kind == 'Service' and old is not None:
        new_ip, old_ip = obj['spec'].get('clusterIP'), old['spec'].get('clusterIP')
        if new_ip != old_ip:
            raise errors.invalid(rt, name, [('spec.clusterIP', 'Invalid value: "%s": field is immutable' % new_ip)])
    if rt.kind == 'Pod' and old is not None and _mutable_pod_view(obj['spec']) != _mutable_pod_view(old['spec']):
        raise errors.invalid(rt, name, [('spec', 'Forbidden: pod updates may not change fields other than '
                                         '`spec.containers[*].image`,`spec.initContainers[*].image`,'
                                         '`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing '
                                         'tolerations),`spec.terminationGracePeriodSeconds`')])
    if rt.kind == 'Pod' and old is not None:
        old_tol = old['spec'].get('tolerations') or []
        if any(t not in (obj['spec'].get('tolerations') or []) for t in old_tol):
            raise errors.invalid(rt, name, [('spec.tolerations', 'Forbidden: existing toleration can not be modified '
                                             'except its tolerationSeconds')])


def _mutable_pod_view(spec):
    view = copy.deepcopy(spec)
    for key in ('activeDeadlineSeconds', 'tolerations', 'terminationGracePeriodSeconds'):
        view.pop(key, None)
    for container in (view.get('containers') or []) + (view.get('initContainers') or []):
        container.pop('image', None)
    return view
