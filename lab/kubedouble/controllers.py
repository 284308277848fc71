"""A simulated control plane and kubelet, run every ``tick`` seconds on one thread.

Each pass, under the store lock: default ServiceAccounts, pod garbage collection (pods bound to
deleted nodes), the node lifecycle controller's taint of a cordoned Node, the kubelet ending the
graceful deletion of the pods on its (Ready) node that a DELETE, an eviction or a controller left
Terminating (a DELETE of grace 0, as a real kubelet and lab/k8s/nodesim.py do), the DaemonSet
controller (one pod per eligible node, RollingUpdate one at a time), Deployment -> ReplicaSet ->
pods, a scheduler for unbound pods, the kubelet (Pending -> Running
after ``start_delay``, logs from the log provider, readiness following node readiness) and status
of DaemonSets, Deployments, ReplicaSets and PodDisruptionBudgets. Objects are rewritten only when
something changed, so an idle cluster keeps its resourceVersion.

A pass depends only on the store and, for pods waiting out ``start_delay``, on the clock. So the
thread skips a tick when the last pass wrote nothing, left no pod waiting to start and the store's
resourceVersion has not moved since: that pass would find nothing to do either (an idle double
used to spend most of its CPU here). ``reconcile()`` called directly always runs. An object edited
in place (``store.iter_objects``) without a write is seen at the next write, or the next ``reconcile()``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import threading
import time
import uuid

from . import errors
from .logs import CrashLoop
from .policy import budget_state, pod_active, pod_ready
from .resources import CONFIGMAP, DAEMONSET, DEPLOYMENT, NAMESPACE, NODE, PDB, POD, REPLICASET, SERVICEACCOUNT
from .store import clone, now, owner_reference

LOG = logging.getLogger(__name__)

DAEMONSET_TOLERATIONS = [
    {'key': 'node.kubernetes.io/not-ready', 'operator': 'Exists', 'effect': 'NoExecute'},
    {'key': 'node.kubernetes.io/unreachable', 'operator': 'Exists', 'effect': 'NoExecute'},
    {'key': 'node.kubernetes.io/disk-pressure', 'operator': 'Exists', 'effect': 'NoSchedule'},
    {'key': 'node.kubernetes.io/memory-pressure', 'operator': 'Exists', 'effect': 'NoSchedule'},
    {'key': 'node.kubernetes.io/pid-pressure', 'operator': 'Exists', 'effect': 'NoSchedule'},
    {'key': 'node.kubernetes.io/unschedulable', 'operator': 'Exists', 'effect': 'NoSchedule'},
]
UNSCHEDULABLE_TAINT = {'key': 'node.kubernetes.io/unschedulable', 'effect': 'NoSchedule'}


def template_hash(template):
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    alphabet = 'bcdfghjklmnpqrstvwxz2456789'
    return ''.join(alphabet[b % len(alphabet)] for b in digest[:10])


def node_ready(node):
    return any(c.get('type') == 'Ready' and c.get('status') == 'True'
               for c in (node.get('status') or {}).get('conditions') or [])


def node_ip(node):
    for address in (node.get('status') or {}).get('addresses') or []:
        if address.get('type') == 'InternalIP':
            return address['address']
    return None


def tolerates(tolerations, taint):
    for tol in tolerations or []:
        exists = tol.get('operator') == 'Exists'
        key_ok = tol.get('key') == taint.get('key') or (not tol.get('key') and exists)
        value_ok = exists or tol.get('value', '') == taint.get('value', '')
        if key_ok and value_ok and (not tol.get('effect') or tol['effect'] == taint.get('effect')):
            return True
    return False


def fits(pod_spec, node, respect_cordon=True):
    """nodeSelector and NoSchedule/NoExecute taints (plus cordon unless tolerated)."""
    labels = node['metadata'].get('labels') or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get('nodeSelector') or {}).items()):
        return False
    taints = [t for t in (node['spec'].get('taints') or []) if t.get('effect') in ('NoSchedule', 'NoExecute')]
    if respect_cordon and node['spec'].get('unschedulable'):
        taints.append(UNSCHEDULABLE_TAINT)
    return all(tolerates(pod_spec.get('tolerations'), taint) for taint in taints)


def daemonset_pod_spec(template_spec):
    """The pod spec a DaemonSet pod gets: the template plus the tolerations the controller adds."""
    tolerations = list(DAEMONSET_TOLERATIONS)
    if template_spec.get('hostNetwork'):
        tolerations.append({'key': 'node.kubernetes.io/network-unavailable', 'operator': 'Exists',
                            'effect': 'NoSchedule'})
    own = template_spec.get('tolerations') or []
    return dict(template_spec, tolerations=own + [t for t in tolerations if t not in own])


def set_condition(conditions, ctype, status, reason=None, message=None):
    """Update one condition in place, keeping lastTransitionTime unless the status flips."""
    for cond in conditions:
        if cond['type'] == ctype:
            if cond['status'] != status:
                cond['lastTransitionTime'] = now()
            cond['status'] = status
            break
    else:
        cond = {'type': ctype, 'status': status, 'lastTransitionTime': now()}
        conditions.append(cond)
    for key, value in (('reason', reason), ('message', message)):
        if value is None:
            cond.pop(key, None)
        else:
            cond[key] = value


def _scaled(value, total, default):
    if value is None:
        return default
    if isinstance(value, str) and value.endswith('%'):
        return max(1, int(total * int(value[:-1]) / 100))
    return int(value)


class Controllers:
    def __init__(self, store, log_provider, tick=0.2, start_delay=0.5):
        self.store = store
        self.log_provider = log_provider
        self.tick = tick
        self.start_delay = start_delay
        self._bound_at = {}   # pod uid -> monotonic time the kubelet first saw it
        self._used_ips = None   # pod IPs in use during one pass of starting pods (see reconcile)
        self._settled_rv = None   # resourceVersion after a pass that found nothing to do (see _run)
        self._revisions = {}   # owner uid -> (its resourceVersion, template_hash of its pod template)
        self._failed_creates = set()   # (owner uid, message) of the FailedCreate events recorded (see _new_pod)
        self._stop = threading.Event()
        self._thread = None
        self.after_tick = []
        self.failures = []    # exceptions raised by controller passes (tests assert it stays empty)

    # -- thread --------------------------------------------------------------------------------

    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name='kubedouble-controllers', daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self):
        while not self._stop.wait(self.tick):
            try:
                if self._settled_rv != self.store.resource_version:
                    self.reconcile()
                for hook in self.after_tick:
                    hook()
            except Exception as exc:
                LOG.exception('kubedouble controller pass failed')
                self.failures.append(exc)

    def reconcile(self):
        """One pass. Log providers run outside the store lock (a node_state may be slow, e.g. SSH)."""
        self._settled_rv = None
        with self.store.lock:
            before = self.store.resource_version
            self._service_accounts()
            self._collect_orphans()
            self._node_lifecycle()
            self._kubelet_finish()
            for ds in self.store.iter_objects(DAEMONSET):
                self._daemonset(ds)
            for deploy in self.store.iter_objects(DEPLOYMENT):
                self._deployment(deploy)
            for rs in self.store.iter_objects(REPLICASET):
                self._replicaset(rs)
            self._schedule()
            starting, delayed = self._kubelet()
        # Pod IPs in use, read once per pass (one scan per started pod made a 30,000-pod start quadratic).
        with self.store.lock:
            self._used_ips = {p['status'].get('podIP') for p in self.store.iter_objects(POD)}
        try:
            for pod in starting:
                logs, crash = self._run_provider(pod)
                with self.store.lock:
                    self._start(pod, logs, crash)
        finally:
            self._used_ips = None
        with self.store.lock:
            self._statuses()
            if self.store.resource_version == before and not starting and not delayed:
                self._settled_rv = before

    # -- helpers -------------------------------------------------------------------------------

    def _revision(self, owner):
        """template_hash of a DaemonSet's or Deployment's pod template, computed again only when the owner changed."""
        meta = owner['metadata']
        rv, revision = self._revisions.get(meta['uid'], (None, None))
        if rv != meta['resourceVersion']:
            revision = template_hash(owner['spec']['template'])
            self._revisions[meta['uid']] = (meta['resourceVersion'], revision)
        return revision

    def _owned_pods(self, owner, terminating=False):
        """The owner's active pods (and, with ``terminating``, those being deleted as well)."""
        uid = owner['metadata']['uid']
        return [p for p in self.store.iter_objects(POD, owner['metadata']['namespace'])
                if (pod_active(p) or (terminating and p['metadata'].get('deletionTimestamp')))
                and any(r.get('uid') == uid for r in p['metadata'].get('ownerReferences') or [])]

    def _new_pod(self, owner, template, prefix, labels, node_name=None, tolerations=()):
        meta = template.get('metadata') or {}
        spec = clone(template.get('spec') or {})
        own = spec.get('tolerations') or []
        spec['tolerations'] = own + [t for t in tolerations if t not in own]
        if not spec['tolerations']:
            spec.pop('tolerations')
        if node_name:
            spec['nodeName'] = node_name
        pod = {'apiVersion': 'v1', 'kind': 'Pod', 'spec': spec, 'metadata': {
            'generateName': '%s-' % prefix, 'namespace': owner['metadata']['namespace'],
            'labels': dict(meta.get('labels') or {}, **labels), 'ownerReferences': [owner_reference(owner)]}}
        if meta.get('annotations'):
            pod['metadata']['annotations'] = dict(meta['annotations'])
        try:
            created = self.store.create(POD, None, pod, system=True)
        except errors.ApiError as exc:
            if exc.code != 403:
                raise
            # Refused by admission (a missing ServiceAccount): no pod, tried again next pass, as the real controller
            # (with a backoff) does; its FailedCreate event once per owner and message, not one per pass.
            key = (owner['metadata']['uid'], exc.message)
            if key not in self._failed_creates:
                self._failed_creates.add(key)
                self.store.record_event(owner, 'FailedCreate', 'Error creating: %s' % exc.message, event_type='Warning',
                                        component='%s-controller' % owner['kind'].lower())
            return None
        self.store.record_event(owner, 'SuccessfulCreate', 'Created pod: %s' % created['metadata']['name'],
                                component='%s-controller' % owner['kind'].lower())
        return created

    def _delete_pod(self, owner, pod):
        """A controller's DELETE: graceful like any other (Terminating until the kubelet ends it)."""
        self.store.delete(POD, pod['metadata']['namespace'], pod['metadata']['name'])
        self.store.record_event(owner, 'SuccessfulDelete', 'Deleted pod: %s' % pod['metadata']['name'],
                                component='%s-controller' % owner['kind'].lower())

    # -- controllers ---------------------------------------------------------------------------

    def _service_accounts(self):
        for ns in self.store.iter_objects(NAMESPACE):
            name = ns['metadata']['name']
            if ns.get('status', {}).get('phase') == 'Active' and not self.store.find(SERVICEACCOUNT, name, 'default'):
                self.store.create(SERVICEACCOUNT, name, {'metadata': {'name': 'default'}}, system=True)

    def _collect_orphans(self):
        nodes = {n['metadata']['name'] for n in self.store.iter_objects(NODE)}
        for pod in self.store.iter_objects(POD):
            if pod['spec'].get('nodeName') and pod['spec']['nodeName'] not in nodes:
                self.store.remove(POD, pod['metadata']['namespace'], pod['metadata']['name'])
        live = {p['metadata']['uid'] for p in self.store.iter_objects(POD)}
        self._bound_at = {uid: t for uid, t in self._bound_at.items() if uid in live}

    def _node_lifecycle(self):
        """The node lifecycle controller's taint of a cordoned Node: ``node.kubernetes.io/unschedulable:NoSchedule`` with
        its ``timeAdded`` while ``spec.unschedulable`` is true, taken off again (an emptied ``spec.taints`` with it) once
        it is not. The real controller-manager writes it a moment after the cordon (measured on v1.37.2, issue 15); the
        double only scheduled as if it were there."""
        key = UNSCHEDULABLE_TAINT['key']
        for node in list(self.store.iter_objects(NODE)):
            taints = node['spec'].get('taints') or []
            if bool(node['spec'].get('unschedulable')) == any(t.get('key') == key for t in taints):
                continue
            new = clone(node)
            if node['spec'].get('unschedulable'):
                new['spec']['taints'] = taints + [dict(UNSCHEDULABLE_TAINT, timeAdded=now())]
            else:
                rest = [t for t in taints if t.get('key') != key]
                if rest:
                    new['spec']['taints'] = rest
                else:
                    new['spec'].pop('taints', None)
            self.store.put(NODE, new)

    def _kubelet_finish(self):
        """Each Ready node's kubelet ends the graceful deletions of its pods: a DELETE of grace 0 with the
        pod's UID as precondition (the pod goes, or stays with grace 0 while a finalizer holds it). A pod
        on a NotReady node stays Terminating, as under a kubelet that is down."""
        ready = {n['metadata']['name'] for n in self.store.iter_objects(NODE) if node_ready(n)}
        for pod in list(self.store.iter_objects(POD)):
            meta = pod['metadata']
            if meta.get('deletionTimestamp') and meta.get('deletionGracePeriodSeconds') \
                    and pod['spec'].get('nodeName') in ready:
                self.store.delete(POD, meta['namespace'], meta['name'], grace_period=0, preconditions={'uid': meta['uid']})

    def _daemonset(self, ds):
        spec = ds['spec']
        template = spec['template']
        revision = self._revision(ds)
        effective = daemonset_pod_spec(template['spec'])
        pods_by_node = {}
        occupied = set()   # nodes with a pod of this DaemonSet, Terminating ones too: no new pod until it is gone
        for pod in self._owned_pods(ds, terminating=True):
            occupied.add(pod['spec'].get('nodeName'))
            if pod_active(pod):
                pods_by_node.setdefault(pod['spec'].get('nodeName'), []).append(pod)
        eligible = [n for n in self.store.iter_objects(NODE) if fits(effective, n, respect_cordon=False)]
        eligible_names = {n['metadata']['name'] for n in eligible}
        for node_name, pods in pods_by_node.items():
            extra = pods if node_name not in eligible_names else pods[1:]
            for pod in extra:
                self._delete_pod(ds, pod)
        for node in eligible:
            if node['metadata']['name'] not in occupied:
                self._new_pod(ds, template, ds['metadata']['name'],
                              {'controller-revision-hash': revision,
                               'pod-template-generation': str(ds['metadata']['generation'])},
                              node_name=node['metadata']['name'], tolerations=effective['tolerations'])
        if (spec.get('updateStrategy') or {}).get('type', 'RollingUpdate') == 'RollingUpdate':
            current = [ps[0] for name, ps in pods_by_node.items() if name in eligible_names]
            outdated = [p for p in current if p['metadata']['labels'].get('controller-revision-hash') != revision]
            max_unavailable = _scaled(((spec.get('updateStrategy') or {}).get('rollingUpdate') or {})
                                      .get('maxUnavailable'), len(eligible), 1)
            unavailable = sum(1 for p in current if not pod_ready(p)) + len(eligible_names - set(pods_by_node))
            outdated.sort(key=pod_ready)
            for pod in outdated[:max(0, max_unavailable - unavailable)]:
                self._delete_pod(ds, pod)

    def _deployment(self, deploy):
        spec = deploy['spec']
        revision = self._revision(deploy)
        name = '%s-%s' % (deploy['metadata']['name'], revision)
        owned = [rs for rs in self.store.iter_objects(REPLICASET, deploy['metadata']['namespace'])
                 if any(r.get('uid') == deploy['metadata']['uid'] for r in rs['metadata'].get('ownerReferences') or [])]
        current = next((rs for rs in owned if rs['metadata']['name'] == name), None)
        if current is None:
            template = clone(spec['template'])
            template.setdefault('metadata', {}).setdefault('labels', {})['pod-template-hash'] = revision
            selector = clone(spec['selector'])
            selector.setdefault('matchLabels', {})['pod-template-hash'] = revision
            current = self.store.create(REPLICASET, deploy['metadata']['namespace'], {
                'metadata': {'name': name, 'labels': template['metadata']['labels'],
                             'ownerReferences': [owner_reference(deploy)]},
                'spec': {'replicas': spec.get('replicas', 1), 'selector': selector, 'template': template}},
                system=True)
        replicas = spec.get('replicas', 1)
        ready_new = sum(1 for p in self._owned_pods(current) if pod_ready(p))
        for ref in {rs['metadata']['name']: rs for rs in [*owned, current]}.values():
            want = replicas if ref['metadata']['name'] == name else max(0, replicas - ready_new)
            if ref['spec'].get('replicas') != want:
                rs = clone(ref)
                rs['spec']['replicas'] = want
                self.store.put(REPLICASET, rs)

    def _replicaset(self, rs):
        pods = self._owned_pods(rs)
        want = rs['spec'].get('replicas', 1)
        for _i in range(want - len(pods)):
            self._new_pod(rs, rs['spec']['template'], rs['metadata']['name'], {})
        if len(pods) > want:
            pods.sort(key=lambda p: (bool(p['spec'].get('nodeName')), pod_ready(p)))
            for pod in pods[:len(pods) - want]:
                self._delete_pod(rs, pod)

    def _schedule(self):
        nodes = [n for n in self.store.iter_objects(NODE) if node_ready(n)]
        load = {}
        for pod in self.store.iter_objects(POD):
            load[pod['spec'].get('nodeName')] = load.get(pod['spec'].get('nodeName'), 0) + 1
        for ref in self.store.iter_objects(POD):
            if ref['spec'].get('nodeName') or not pod_active(ref) or ref['status'].get('phase') != 'Pending':
                continue
            pod = clone(ref)
            conditions = pod['status'].setdefault('conditions', [])
            candidates = [n for n in nodes if fits(pod['spec'], n)]
            if not candidates:
                set_condition(conditions, 'PodScheduled', 'False', 'Unschedulable', '0/%d nodes are available.'
                              % len(self.store.iter_objects(NODE)))
                self.store.put(POD, pod)
                continue
            node = min(candidates, key=lambda n: (load.get(n['metadata']['name'], 0), n['metadata']['name']))
            load[node['metadata']['name']] = load.get(node['metadata']['name'], 0) + 1
            pod['spec']['nodeName'] = node['metadata']['name']
            set_condition(conditions, 'PodScheduled', 'True')
            stored = self.store.put(POD, pod)
            self.store.record_event(stored, 'Scheduled', 'Successfully assigned %s/%s to %s' % (
                pod['metadata']['namespace'], pod['metadata']['name'], node['metadata']['name']),
                component='default-scheduler')

    def _kubelet(self):
        """Readiness of running pods; returns the Pending pods due to start and whether others wait for start_delay."""
        nodes = {n['metadata']['name']: n for n in self.store.iter_objects(NODE)}
        clock = time.monotonic()
        starting = []
        delayed = False
        for ref in self.store.iter_objects(POD):
            node = nodes.get(ref['spec'].get('nodeName'))
            if node is None or not pod_active(ref):
                continue
            if ref['status'].get('phase') == 'Pending':
                if not node_ready(node):
                    continue
                pod = clone(ref)
                missing = self._missing_configmaps(pod)
                since = self._bound_at.setdefault(pod['metadata']['uid'], clock)
                if missing:
                    if pod['status'].get('reason') != 'FailedMount':
                        pod['status']['reason'] = 'FailedMount'
                        self.store.put(POD, pod)
                        self.store.record_event(pod, 'FailedMount', 'MountVolume.SetUp failed for volume: configmap '
                                                '"%s" not found' % missing[0], 'Warning')
                elif clock - since >= self.start_delay:
                    starting.append(pod)
                else:
                    delayed = True
            else:
                statuses = ref['status'].get('containerStatuses') or []
                ready = 'True' if node_ready(node) and not any('waiting' in (c.get('state') or {})
                                                               for c in statuses) else 'False'
                current = {c['type']: c['status'] for c in ref['status'].get('conditions') or []}
                if current.get('Ready') != ready or current.get('ContainersReady') != ready:
                    pod = clone(ref)
                    for ctype in ('Ready', 'ContainersReady'):
                        set_condition(pod['status'].setdefault('conditions', []), ctype, ready)
                    self.store.put(POD, pod)
        return starting, delayed

    def _missing_configmaps(self, pod):
        missing = []
        for volume in pod['spec'].get('volumes') or []:
            source = volume.get('configMap')
            if source and not source.get('optional') and not self.store.find(
                    CONFIGMAP, pod['metadata']['namespace'], source.get('name')):
                missing.append(source.get('name'))
        return missing

    def _pod_ip(self, pod, node):
        if pod['spec'].get('hostNetwork'):
            return node_ip(node)
        cidr = ipaddress.ip_network(node['spec'].get('podCIDR') or '172.20.0.0/16')
        used = self._used_ips
        if used is None:
            used = {p['status'].get('podIP') for p in self.store.iter_objects(POD)}
        ip = next(str(ip) for ip in cidr.hosts() if str(ip) not in used and not str(ip).endswith('.1'))
        used.add(ip)
        return ip

    def _run_provider(self, pod):
        try:
            return self.log_provider(pod, self.store), None
        except CrashLoop as exc:
            return exc.log, exc
        except Exception as exc:  # a broken provider must not stop the kubelet
            LOG.exception('log provider failed for %s', pod['metadata']['name'])
            return 'log provider error: %s\n' % exc, exc

    def _start(self, pod, logs, crash):
        """Pending -> Running, unless the pod changed or went away while its logs were made."""
        meta = pod['metadata']
        current = self.store.find(POD, meta['namespace'], meta['name'])
        node = self.store.find(NODE, None, pod['spec']['nodeName'])
        if (current is None or node is None or current['metadata']['uid'] != meta['uid']
                or current['status'].get('phase') != 'Pending'):
            return
        pod = current
        containers = pod['spec']['containers']
        if isinstance(logs, str):
            logs = {c['name']: logs for c in containers}
        self.store.logs[pod['metadata']['uid']] = {c['name']: logs.get(c['name'], '') for c in containers}
        started = now()
        ip = self._pod_ip(pod, node)
        statuses = []
        for container in containers:
            status = {'name': container['name'], 'image': container.get('image', ''),
                      'imageID': 'sha256:%s' % hashlib.sha256(container.get('image', '').encode()).hexdigest(),
                      'containerID': 'containerd://%s' % uuid.uuid4().hex, 'ready': crash is None,
                      'started': crash is None, 'restartCount': 0 if crash is None else 1,
                      'state': {'running': {'startedAt': started}}, 'lastState': {}}
            if crash is not None:
                status['state'] = {'waiting': {'reason': 'CrashLoopBackOff', 'message': 'back-off 10s restarting '
                                               'failed container=%s pod=%s' % (container['name'], pod['metadata']['name'])}}
                status['lastState'] = {'terminated': {'exitCode': 1, 'reason': 'Error', 'startedAt': started,
                                                      'finishedAt': started}}
            statuses.append(status)
        ready = 'True' if crash is None else 'False'
        pod['status'].pop('reason', None)
        pod['status'].update({'phase': 'Running', 'hostIP': node_ip(node), 'hostIPs': [{'ip': node_ip(node)}],
                              'podIP': ip, 'podIPs': [{'ip': ip}], 'startTime': started,
                              'containerStatuses': statuses})
        conditions = pod['status'].setdefault('conditions', [])
        for ctype, value in (('PodReadyToStartContainers', 'True'), ('Initialized', 'True'), ('Ready', ready),
                             ('ContainersReady', ready), ('PodScheduled', 'True')):
            set_condition(conditions, ctype, value)
        stored = self.store.put(POD, pod)
        if crash is None:
            self.store.record_event(stored, 'Started', 'Started container %s' % containers[0]['name'])
        else:
            self.store.record_event(stored, 'BackOff', 'Back-off restarting failed container', 'Warning')

    # -- status --------------------------------------------------------------------------------

    def _put_status(self, rt, ref, status):
        if ref.get('status') != status:
            obj = clone(ref)
            obj['status'] = status
            self.store.put(rt, obj)

    def _statuses(self):
        nodes = self.store.iter_objects(NODE)
        for ds in self.store.iter_objects(DAEMONSET):
            revision = self._revision(ds)
            pods = self._owned_pods(ds)
            effective = daemonset_pod_spec(ds['spec']['template']['spec'])
            desired = sum(1 for n in nodes if fits(effective, n, respect_cordon=False))
            ready = sum(1 for p in pods if pod_ready(p))
            status = {'currentNumberScheduled': len(pods), 'desiredNumberScheduled': desired, 'numberMisscheduled': 0,
                      'numberReady': ready, 'numberAvailable': ready, 'observedGeneration': ds['metadata']['generation'],
                      'updatedNumberScheduled': sum(1 for p in pods if p['metadata']['labels'].get(
                          'controller-revision-hash') == revision)}
            if desired - ready > 0:
                status['numberUnavailable'] = desired - ready
            self._put_status(DAEMONSET, ds, status)
        for rs in self.store.iter_objects(REPLICASET):
            pods = self._owned_pods(rs)
            ready = sum(1 for p in pods if pod_ready(p))
            self._put_status(REPLICASET, rs, {'replicas': len(pods), 'fullyLabeledReplicas': len(pods),
                                              'readyReplicas': ready, 'availableReplicas': ready,
                                              'observedGeneration': rs['metadata']['generation']})
        for deploy in self.store.iter_objects(DEPLOYMENT):
            self._deployment_status(deploy)
        for pdb in self.store.iter_objects(PDB):
            state = budget_state(self.store, pdb)
            conditions = clone((pdb.get('status') or {}).get('conditions') or [])
            allowed = state['disruptionsAllowed'] > 0
            set_condition(conditions, 'DisruptionAllowed', 'True' if allowed else 'False',
                          'SufficientPods' if allowed else 'InsufficientPods', '')
            self._put_status(PDB, pdb, dict(state, observedGeneration=pdb['metadata']['generation'],
                                            conditions=conditions))

    def _deployment_status(self, deploy):
        uid = deploy['metadata']['uid']
        revision = self._revision(deploy)
        sets = [rs for rs in self.store.iter_objects(REPLICASET, deploy['metadata']['namespace'])
                if any(r.get('uid') == uid for r in rs['metadata'].get('ownerReferences') or [])]
        pods = [p for rs in sets for p in self._owned_pods(rs)]
        ready = sum(1 for p in pods if pod_ready(p))
        want = deploy['spec'].get('replicas', 1)
        status = {'observedGeneration': deploy['metadata']['generation'], 'replicas': len(pods),
                  'updatedReplicas': sum(1 for p in pods if p['metadata']['labels'].get('pod-template-hash') == revision),
                  'readyReplicas': ready, 'availableReplicas': ready}
        if want - ready > 0:
            status['unavailableReplicas'] = want - ready
        conditions = clone((deploy.get('status') or {}).get('conditions') or [])
        available = ready >= want
        set_condition(conditions, 'Available', 'True' if available else 'False',
                      'MinimumReplicasAvailable' if available else 'MinimumReplicasUnavailable',
                      'Deployment has minimum availability.' if available
                      else 'Deployment does not have minimum availability.')
        set_condition(conditions, 'Progressing', 'True', 'NewReplicaSetAvailable',
                      'ReplicaSet "%s-%s" has successfully progressed.' % (deploy['metadata']['name'], revision))
        status['conditions'] = conditions
        self._put_status(DEPLOYMENT, deploy, status)
