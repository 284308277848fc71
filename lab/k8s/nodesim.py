"""nodesim: simulated nodes for the lab's real control plane (issue 15), a kwok-style status loop.

There are no kubelets yet (issue 15 item 3), so this process plays their part against the real
kube-apiserver: it registers the seed's Nodes, keeps them Ready (a Lease in kube-node-lease every
10 s, the Ready condition's heartbeat every 60 s), marks every pod bound to one of them Running and
Ready (containers "started" at once), and finishes a pod's graceful deletion the way a kubelet
would (DELETE with gracePeriodSeconds 0 and the pod's UID as precondition). Everything else is
the real controllers' work: DaemonSet and ReplicaSet pods, scheduling, PDB budgets, evictions,
node lifecycle taints.

`seed(path)` creates the objects of a lab seed file (lab/seed/cluster.yaml) through the API,
plus the ServiceAccounts their pod templates name (the ServiceAccount admission plugin refuses
pods whose account does not exist). Run by `k8sctl seed`; the loop runs as
`python3 nodesim.py run SEED` in its own process group and stops with `k8sctl down`.

It scales to a thousand nodes (bench/bench_cluster_scale.py --server real, issue 15 item 6): keep-alive
HTTPS connections (one per thread), the pods followed with a watch (a paged list, then watch events from
its resourceVersion; again every RELIST_EVERY s and after a 410) instead of an unpaged list every 0.5 s,
each node's Lease and status on a schedule of its own, spread over the interval, sent by a few threads
(above 100 nodes: a Lease every 20 s and the status every 300 s, from 16 threads). A pod the node lifecycle
controller set NotReady while its node was late is made Ready again, as a kubelet would report it.
"""

import concurrent.futures
import datetime
import http.client
import ipaddress
import json
import os
import sys
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, HERE)
import k8sctl  # noqa: E402

# kind -> (API prefix, plural, namespaced)
KINDS = {
    'ConfigMap': ('/api/v1', 'configmaps', True),
    'Service': ('/api/v1', 'services', True),
    'ServiceAccount': ('/api/v1', 'serviceaccounts', True),
    'Namespace': ('/api/v1', 'namespaces', False),
    'Node': ('/api/v1', 'nodes', False),
    'DaemonSet': ('/apis/apps/v1', 'daemonsets', True),
    'Deployment': ('/apis/apps/v1', 'deployments', True),
    'PodDisruptionBudget': ('/apis/policy/v1', 'poddisruptionbudgets', True),
    'NetworkPolicy': ('/apis/networking.k8s.io/v1', 'networkpolicies', True),
}
LEASE_NS = 'kube-node-lease'
LEASE_EVERY = 10
LEASE_EVERY_MANY = 20     # above MANY_NODES: half the 40 s lease, well inside the controller's 50 s grace period
STATUS_EVERY = 60
STATUS_EVERY_MANY = 300   # above MANY_NODES: a kubelet's nodeStatusReportFrequency (the Lease says "alive")
MANY_NODES = 100
POLL = 0.5
RELIST_EVERY = 300
WATCH_SECONDS = 240
WORKERS = 4
HEARTBEAT_WORKERS = 16    # Lease and status writes: with 1,000 nodes on a busy API server, each waits ~0.1 s
AGENT = 'netmedic-nodesim'
KUBELET_VERSION = 'v1.37.2'


class Client:
    """The admin user's keep-alive HTTPS connection to the API server, one per thread.

    ``request`` answers like ``k8sctl.api``: (HTTP status, or None when unreachable, decoded body).
    A broken connection is opened again once (every call nodesim makes may be repeated).
    """

    def __init__(self, agent=AGENT, timeout=60):
        self.agent, self.timeout = agent, timeout
        self.local = threading.local()
        self.ctx = None

    def connection(self, timeout=None):
        if self.ctx is None:
            self.ctx = k8sctl._ctx()
        return http.client.HTTPSConnection(k8sctl.HOST, k8sctl.API_PORT, context=self.ctx, timeout=timeout or self.timeout)

    def headers(self, content_type=None):
        h = {'Accept': 'application/json', 'User-Agent': self.agent}
        if content_type:
            h['Content-Type'] = content_type
        return h

    def request(self, path, method='GET', body=None, content_type='application/json'):
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (0, 1):
            conn = getattr(self.local, 'conn', None)
            if conn is None:
                conn = self.local.conn = self.connection()
            try:
                conn.request(method, path, body=data, headers=self.headers(content_type if data is not None else None))
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                self.local.conn = None
                if attempt:
                    return None, {'error': str(exc)}
        try:
            return resp.status, json.loads(raw or b'{}')
        except ValueError:
            return resp.status, {}


_CLIENT = []


def client():
    if not _CLIENT:
        _CLIENT.append(Client())
    return _CLIENT[0]


def api(path, method='GET', body=None, content_type='application/json'):
    return client().request(path, method=method, body=body, content_type=content_type)


def now(micro=False):
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime('%Y-%m-%dT%H:%M:%S.%fZ') if micro else t.strftime('%Y-%m-%dT%H:%M:%SZ')


def call(path, method='GET', body=None, content_type='application/json', ok=(200, 201)):
    code, data = api(path, method=method, body=body, content_type=content_type)
    if code not in ok:
        raise k8sctl.LabError(f'{method} {path}: HTTP {code} {json.dumps(data)[:400]}')
    return code, data


def collection(kind, namespace):
    prefix, plural, namespaced = KINDS[kind]
    return f'{prefix}/namespaces/{namespace}/{plural}' if namespaced else f'{prefix}/{plural}'


def load_seed(path):
    """The seed; each node's address replaced by a loopback one (127.0.100.N).

    The API server dials a node's address for pods/log, exec and port-forward: on this machine
    nothing may be sent to the seed's 10.77.0.x addresses unless the VM lab put them there, and no
    kubelet listens anyway. A loopback address fails at once (connection refused).
    """
    import yaml  # Debian's python3-yaml; only the seed needs it

    with open(path) as fh:
        data = yaml.safe_load(fh)
    for i, node in enumerate(data.get('nodes') or []):
        node['seed_ip'], node['ip'] = node.get('ip'), node_ip(i)
    return data


def node_ip(index):
    """127.0.100.1-254 for the first 254 nodes, then on into 127.0.101.x: a thousand nodes stay in 127/8."""
    return str(ipaddress.ip_address('127.0.100.0') + index + 1)


def node_object(node):
    return {'apiVersion': 'v1', 'kind': 'Node', 'metadata': {
        'name': node['name'],
        'labels': {'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'kubernetes.io/hostname': node['name'],
                   'netmedic.k8s/simulated': 'true'}}, 'spec': {}}


def node_status(node):
    t = now()
    ready = {'type': 'Ready', 'status': 'True', 'reason': 'KubeletReady', 'message': 'simulated by lab/k8s/nodesim.py',
             'lastHeartbeatTime': t, 'lastTransitionTime': t}
    conds = [dict(ready, type=c, status='False', reason=f'KubeletHas{r}', message='simulated')
             for c, r in (('MemoryPressure', 'SufficientMemory'), ('DiskPressure', 'NoDiskPressure'),
                          ('PIDPressure', 'SufficientPID'))]
    res = {'cpu': '4', 'memory': '8Gi', 'pods': '110', 'ephemeral-storage': '20Gi'}
    return {'status': {
        'conditions': [*conds, ready], 'capacity': res, 'allocatable': res,
        'addresses': [{'type': 'InternalIP', 'address': node['ip']}, {'type': 'Hostname', 'address': node['name']}],
        'daemonEndpoints': {'kubeletEndpoint': {'Port': 10250}},
        'nodeInfo': {'kubeletVersion': KUBELET_VERSION, 'kubeProxyVersion': '', 'operatingSystem': 'linux',
                     'architecture': 'amd64', 'containerRuntimeVersion': 'containerd://simulated',
                     'kernelVersion': '6.1.0-simulated', 'osImage': 'Debian GNU/Linux 12 (simulated)',
                     'machineID': '', 'systemUUID': '', 'bootID': node['name']}}}


def ensure_node(node):
    """The Node exists (created when missing) with a fresh Ready status."""
    path = f'/api/v1/nodes/{node["name"]}/status'
    code, _body = api(path, 'PATCH', node_status(node), content_type='application/merge-patch+json')
    if code == 404:
        call('/api/v1/nodes', 'POST', node_object(node), ok=(201, 409))
        code, _body = api(path, 'PATCH', node_status(node), content_type='application/merge-patch+json')
    if code != 200:
        raise k8sctl.LabError(f'PATCH node {node["name"]} status: HTTP {code}')


def renew_lease(name):
    body = {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease', 'metadata': {'name': name, 'namespace': LEASE_NS},
            'spec': {'holderIdentity': name, 'leaseDurationSeconds': 40, 'renewTime': now(micro=True)}}
    path = f'/apis/coordination.k8s.io/v1/namespaces/{LEASE_NS}/leases'
    code, _body = api(f'{path}/{name}', 'PATCH', {'spec': body['spec']}, content_type='application/merge-patch+json')
    if code == 404:
        call(path, 'POST', body, ok=(201, 409))
    elif code != 200:
        raise k8sctl.LabError(f'lease {name}: HTTP {code}')


def template_accounts(obj):
    spec = (((obj.get('spec') or {}).get('template') or {}).get('spec') or {})
    name = spec.get('serviceAccountName') or spec.get('serviceAccount')
    return [name] if name and name != 'default' else []


def register(node):
    ensure_node(node)
    renew_lease(node['name'])


def seed(path):
    data = load_seed(path)
    nodes = data.get('nodes') or []
    with concurrent.futures.ThreadPoolExecutor(HEARTBEAT_WORKERS if len(nodes) > MANY_NODES else WORKERS) as pool:
        list(pool.map(register, nodes))
    created = []
    for obj in data.get('objects') or []:
        kind, meta = obj['kind'], obj['metadata']
        ns = meta.get('namespace', 'default')
        if kind not in KINDS:
            raise k8sctl.LabError(f'seed: kind {kind} not known to nodesim.KINDS')
        for sa in template_accounts(obj):
            account = {'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': {'name': sa, 'namespace': ns}}
            code, _body = api(collection('ServiceAccount', ns), 'POST', account)
            if code not in (201, 409):
                raise k8sctl.LabError(f'seed: ServiceAccount {ns}/{sa}: HTTP {code}')
        if api(f'{collection(kind, ns)}/{meta["name"]}')[0] == 200:
            # already there (the API server's own `kubernetes` Service; a second seed). Checked first: a
            # real server answers a create of an existing Service with a taken clusterIP 422, not 409
            continue
        code, body = api(collection(kind, ns), 'POST', obj)
        if code == 409:
            continue
        if code != 201:
            raise k8sctl.LabError(f'seed: {kind} {ns}/{meta["name"]}: HTTP {code} {json.dumps(body)[:600]}')
        created.append(f'{kind} {ns}/{meta["name"]}')
    return nodes, created


def pod_ip(node, pod, index):
    if (pod.get('spec') or {}).get('hostNetwork'):
        return node['ip']
    # a /24 per node (10.244.<n>.0/24, on into 10.245+ past node 255), host part from the UID: no traffic ever goes there
    return str(ipaddress.ip_address('10.244.0.0') + 256 * (index + 1) + 2 + int(pod['metadata']['uid'][:8], 16) % 250)


def running_status(node, pod, index):
    t = now()
    spec = pod['spec']
    ip = pod_ip(node, pod, index)
    cs = [{'name': c['name'], 'image': c['image'], 'imageID': '', 'containerID': f'containerd://sim-{pod["metadata"]["uid"][:8]}-{i}',
           'ready': True, 'started': True, 'restartCount': 0, 'state': {'running': {'startedAt': t}}}
          for i, c in enumerate(spec.get('containers') or [])]
    conds = [{'type': c, 'status': 'True', 'lastProbeTime': None, 'lastTransitionTime': t}
             for c in ('PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled')]
    return {'status': {'phase': 'Running', 'conditions': conds, 'hostIP': node['ip'], 'hostIPs': [{'ip': node['ip']}],
                       'podIP': ip, 'podIPs': [{'ip': ip}], 'startTime': t, 'containerStatuses': cs,
                       'qosClass': (pod.get('status') or {}).get('qosClass') or 'BestEffort'}}


class Pods:
    """Plays the kubelets' part for the pods bound to the simulated nodes: Running and Ready at once,
    a graceful deletion finished. Fed by ``watch`` (and its relists); the writes go through WORKERS threads,
    each pod at most once at a time, a failed write tried again (a later event or relist would too)."""

    def __init__(self, nodes, workers=WORKERS):
        self.by_name = {n['name']: (i, n) for i, n in enumerate(nodes)}
        self.pool = concurrent.futures.ThreadPoolExecutor(workers)
        self.lock = threading.Lock()
        self.busy = set()
        self.done = {'running': 0, 'deleted': 0, 'failed': 0}

    def handle(self, pod):
        meta, spec = pod['metadata'], pod.get('spec') or {}
        if spec.get('nodeName') not in self.by_name:
            return
        if meta.get('deletionTimestamp'):
            action = 'delete'
        elif not running_and_ready(pod):
            action = 'run'   # new, or set NotReady by the node lifecycle controller while its node was late
        else:
            return
        key = (meta['uid'], action)
        with self.lock:
            if key in self.busy:
                return
            self.busy.add(key)
        self.pool.submit(self.act, key, pod)

    def act(self, key, pod):
        try:
            self._act(key, pod)
        except Exception:  # a bug here must not leave pods Pending with nodesim alive and silent (issue 15 review)
            die(f'pod {key[1]} {pod["metadata"].get("namespace")}/{pod["metadata"].get("name")}')

    def _act(self, key, pod):
        meta, spec = pod['metadata'], pod['spec']
        index, node = self.by_name[spec['nodeName']]
        path = f'/api/v1/namespaces/{meta["namespace"]}/pods/{urllib.parse.quote(meta["name"])}'
        try:
            for attempt in range(5):
                if key[1] == 'delete':
                    # 404: already gone; 409: the uid precondition failed (a new pod of that name)
                    code, _body = api(path, 'DELETE', {'gracePeriodSeconds': 0, 'preconditions': {'uid': meta['uid']}})
                    ok = code in (200, 202, 404, 409)
                else:
                    code, _body = api(f'{path}/status', 'PATCH', running_status(node, pod, index),
                                      content_type='application/merge-patch+json')
                    ok = code in (200, 404)
                if ok:
                    self.done['deleted' if key[1] == 'delete' else 'running'] += 1
                    return
                time.sleep(1 + attempt)
            self.done['failed'] += 1
            print(f'nodesim: {key[1]} {meta["namespace"]}/{meta["name"]}: HTTP {code}', flush=True)
        finally:
            with self.lock:
                self.busy.discard(key)


def running_and_ready(pod):
    status = pod.get('status') or {}
    ready = [c for c in status.get('conditions') or [] if c.get('type') == 'Ready']
    return status.get('phase') == 'Running' and bool(ready) and ready[0].get('status') == 'True'


def relist(pods):
    """Every pod (paged), each handed to ``pods``; the list's resourceVersion."""
    token, rv = None, None
    while True:
        query = {'limit': 500, **({'continue': token} if token else {})}
        _code, data = call('/api/v1/pods?' + urllib.parse.urlencode(query))
        for pod in data.get('items') or []:
            pods.handle(pod)
        meta = data.get('metadata') or {}
        rv = rv or meta.get('resourceVersion')
        token = meta.get('continue')
        if not token:
            return rv


def watch(pods, rv, until):
    """Pod events from ``rv`` until the server ends the watch or ``until`` (monotonic) passes; the last
    resourceVersion seen, or None when the list must be read again (410 Gone, an error)."""
    conn = client().connection(timeout=WATCH_SECONDS + 30)
    try:
        seconds = max(1, min(WATCH_SECONDS, int(until - time.monotonic())))
        query = urllib.parse.urlencode({'watch': 1, 'allowWatchBookmarks': 'true', 'resourceVersion': rv, 'timeoutSeconds': seconds})
        conn.request('GET', f'/api/v1/pods?{query}', headers=client().headers())
        resp = conn.getresponse()
        if resp.status != 200:
            print(f'nodesim: watch pods: HTTP {resp.status} {resp.read()[:200]!r}', flush=True)
            return None
        for line in resp:
            event = json.loads(line)
            obj = event.get('object') or {}
            if event.get('type') == 'ERROR':
                print(f'nodesim: watch pods: {obj.get("code")} {obj.get("message", "")[:200]}', flush=True)
                return None
            rv = (obj.get('metadata') or {}).get('resourceVersion') or rv
            if event.get('type') in ('ADDED', 'MODIFIED'):
                pods.handle(obj)
        return rv
    except (http.client.HTTPException, OSError, ValueError) as exc:
        print(f'nodesim: watch pods: {exc}', flush=True)
        return None
    finally:
        conn.close()


def die(where):
    """An unexpected exception in one of nodesim's threads: print it and end the whole process (exit 3), so the
    simulated nodes stop (NotReady within the grace period) and `k8sctl` reports nodesim gone, instead of nodes
    that look Ready while their pods are never run (a thread's exception would otherwise be lost)."""
    print(f'nodesim: fatal error in {where}:\n{traceback.format_exc()}', flush=True)
    os._exit(3)


def follow_pods(pods):
    rv, relisted = None, 0.0
    while True:
        try:
            if rv is None or time.monotonic() - relisted >= RELIST_EVERY:
                rv, relisted = relist(pods), time.monotonic()
            rv = watch(pods, rv, relisted + RELIST_EVERY)
        except k8sctl.LabError as exc:  # the API server restarting (reset): keep going
            print(f'nodesim: {exc}', flush=True)
            rv = None
            time.sleep(2)
        except Exception:
            die('the pod watch')


class Schedule:
    """Each node's next due time for one periodic write, spread evenly over ``every`` seconds."""

    def __init__(self, nodes, every):
        now_ = time.monotonic()
        self.every = every
        self.due = {n['name']: now_ + every * i / max(1, len(nodes)) for i, n in enumerate(nodes)}

    def take(self):
        now_ = time.monotonic()
        names = [name for name, t in self.due.items() if t <= now_]
        for name in names:
            self.due[name] = max(self.due[name] + self.every, now_)
        return names


def quietly(fn, *args):
    try:
        fn(*args)
    except k8sctl.LabError as exc:  # the API server restarting (reset): the next round tries again
        print(f'nodesim: {exc}', flush=True)


def heartbeat_round(pool, by_name, status, leases):
    """The Node status and Lease writes that are due, sent by ``pool``; an unexpected exception in any of them is
    raised here (``Future.result``), ending ``run`` with its traceback rather than being dropped with the future."""
    futures = [pool.submit(quietly, ensure_node, by_name[name]) for name in status.take()]
    futures += [pool.submit(quietly, renew_lease, name) for name in leases.take()]
    for future in futures:
        future.result()


def run(path):
    nodes = load_seed(path).get('nodes') or []
    by_name = {n['name']: n for n in nodes}
    print(f'nodesim: {len(nodes)} simulated node(s): '
          + (' '.join(n['name'] for n in nodes) if len(nodes) <= 10 else f'{nodes[0]["name"]} ... {nodes[-1]["name"]}'), flush=True)
    pods = Pods(nodes)
    threading.Thread(target=follow_pods, args=(pods,), daemon=True, name='pods').start()
    many = len(nodes) > MANY_NODES
    leases = Schedule(nodes, LEASE_EVERY_MANY if many else LEASE_EVERY)
    status = Schedule(nodes, STATUS_EVERY_MANY if many else STATUS_EVERY)
    last_report = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(HEARTBEAT_WORKERS if many else WORKERS) as pool:
        while True:
            heartbeat_round(pool, by_name, status, leases)
            if time.monotonic() - last_report >= 60:
                print(f'nodesim: pods made Running {pods.done["running"]}, deletions finished {pods.done["deleted"]}, '
                      f'failed {pods.done["failed"]}', flush=True)
                last_report = time.monotonic()
            time.sleep(POLL)


if __name__ == '__main__':
    if len(sys.argv) != 3 or sys.argv[1] != 'run':
        sys.exit('usage: nodesim.py run SEED.yaml')
    run(sys.argv[2])
