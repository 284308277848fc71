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
"""

import datetime
import ipaddress
import json
import os
import sys
import time
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
STATUS_EVERY = 60
POLL = 0.5
KUBELET_VERSION = 'v1.37.2'


def now(micro=False):
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime('%Y-%m-%dT%H:%M:%S.%fZ') if micro else t.strftime('%Y-%m-%dT%H:%M:%SZ')


def call(path, method='GET', body=None, content_type='application/json', ok=(200, 201)):
    code, data = k8sctl.api(path, method=method, body=body, content_type=content_type)
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
        node['seed_ip'], node['ip'] = node.get('ip'), f'127.0.100.{i + 1}'
    return data


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
    code, _body = k8sctl.api(f'/api/v1/nodes/{node["name"]}')
    if code == 404:
        call('/api/v1/nodes', 'POST', node_object(node))
    elif code != 200:
        raise k8sctl.LabError(f'GET node {node["name"]}: HTTP {code}')
    call(f'/api/v1/nodes/{node["name"]}/status', 'PATCH', node_status(node), content_type='application/merge-patch+json')


def renew_lease(name):
    body = {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease', 'metadata': {'name': name, 'namespace': LEASE_NS},
            'spec': {'holderIdentity': name, 'leaseDurationSeconds': 40, 'renewTime': now(micro=True)}}
    path = f'/apis/coordination.k8s.io/v1/namespaces/{LEASE_NS}/leases'
    code, _body = k8sctl.api(f'{path}/{name}', 'PATCH', {'spec': body['spec']}, content_type='application/merge-patch+json')
    if code == 404:
        call(path, 'POST', body, ok=(201, 409))
    elif code != 200:
        raise k8sctl.LabError(f'lease {name}: HTTP {code}')


def template_accounts(obj):
    spec = (((obj.get('spec') or {}).get('template') or {}).get('spec') or {})
    name = spec.get('serviceAccountName') or spec.get('serviceAccount')
    return [name] if name and name != 'default' else []


def seed(path):
    data = load_seed(path)
    nodes = data.get('nodes') or []
    for node in nodes:
        ensure_node(node)
        renew_lease(node['name'])
    created = []
    for obj in data.get('objects') or []:
        kind, meta = obj['kind'], obj['metadata']
        ns = meta.get('namespace', 'default')
        if kind not in KINDS:
            raise k8sctl.LabError(f'seed: kind {kind} not known to nodesim.KINDS')
        for sa in template_accounts(obj):
            account = {'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': {'name': sa, 'namespace': ns}}
            code, _body = k8sctl.api(collection('ServiceAccount', ns), 'POST', account)
            if code not in (201, 409):
                raise k8sctl.LabError(f'seed: ServiceAccount {ns}/{sa}: HTTP {code}')
        if k8sctl.api(f'{collection(kind, ns)}/{meta["name"]}')[0] == 200:
            # already there (the API server's own `kubernetes` Service; a second seed). Checked first: a
            # real server answers a create of an existing Service with a taken clusterIP 422, not 409
            continue
        code, body = k8sctl.api(collection(kind, ns), 'POST', obj)
        if code == 409:
            continue
        if code != 201:
            raise k8sctl.LabError(f'seed: {kind} {ns}/{meta["name"]}: HTTP {code} {json.dumps(body)[:600]}')
        created.append(f'{kind} {ns}/{meta["name"]}')
    return nodes, created


def pod_ip(node, pod, index):
    if (pod.get('spec') or {}).get('hostNetwork'):
        return node['ip']
    # a /24 per node (10.244.<n>.0/24), host part from the UID: no traffic ever goes there
    return str(ipaddress.ip_address(f'10.244.{index + 1}.0') + 2 + int(pod['metadata']['uid'][:8], 16) % 250)


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


def step_pods(nodes):
    by_name = {n['name']: (i, n) for i, n in enumerate(nodes)}
    _code, data = call('/api/v1/pods')
    for pod in data.get('items') or []:
        meta, spec = pod['metadata'], pod['spec']
        if spec.get('nodeName') not in by_name:
            continue
        index, node = by_name[spec['nodeName']]
        path = f'/api/v1/namespaces/{meta["namespace"]}/pods/{urllib.parse.quote(meta["name"])}'
        if meta.get('deletionTimestamp'):
            k8sctl.api(path, 'DELETE', {'gracePeriodSeconds': 0, 'preconditions': {'uid': meta['uid']}})
            continue
        if (pod.get('status') or {}).get('phase') != 'Running':
            k8sctl.api(f'{path}/status', 'PATCH', running_status(node, pod, index), content_type='application/merge-patch+json')


def run(path):
    nodes = load_seed(path).get('nodes') or []
    last_lease = last_status = 0.0
    print(f'nodesim: {len(nodes)} simulated node(s): {" ".join(n["name"] for n in nodes)}', flush=True)
    while True:
        try:
            t = time.monotonic()
            if t - last_status >= STATUS_EVERY:
                for node in nodes:
                    ensure_node(node)
                last_status = t
            if t - last_lease >= LEASE_EVERY:
                for node in nodes:
                    renew_lease(node['name'])
                last_lease = t
            step_pods(nodes)
        except k8sctl.LabError as exc:  # the API server restarting (reset): keep going
            print(f'nodesim: {exc}', flush=True)
            time.sleep(2)
        time.sleep(POLL)


if __name__ == '__main__':
    if len(sys.argv) != 3 or sys.argv[1] != 'run':
        sys.exit('usage: nodesim.py run SEED.yaml')
    run(sys.argv[2])
