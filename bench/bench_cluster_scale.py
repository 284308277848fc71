#!/usr/bin/env python
"""A thousand-node cluster: wall time and API requests of the cluster steps (issue 14 item 2, issue 15 item 6).

A measurement, not a test (nothing here runs in ``make test``). It builds one cluster - N Ready nodes, the
seed's DaemonSets on every node (kube-proxy, Flannel, Terway, ...), app pods up to ``--pods`` in total
and ``--services`` Services - on one of two servers:

- ``--server double`` (default): the lab's Kubernetes API double (app pods created bound to their nodes);
- ``--server real``: the lab's real control plane (lab/k8s/k8sctl: etcd, kube-apiserver,
  kube-controller-manager, kube-scheduler v1.37.2) with simulated nodes (lab/k8s/nodesim.py). One
  Deployment per Service holds the app pods; the real controllers create the DaemonSet and ReplicaSet
  pods, the real scheduler binds them, nodesim marks them Running. It brings the control plane up
  (``k8sctl up``, which starts from the clean snapshot) and, unless ``--keep``, takes it down at the end.
  Run it on an instance of its own (NETMEDIC_K8S_STATE, NETMEDIC_K8S_PORT_BASE, NETMEDIC_K8S_LOCK), under
  that instance's lock: ``lab/k8s/k8sctl locked -- .venv/bin/python bench/bench_cluster_scale.py --server real``.

and runs, each through the real ``kubernetes`` client over HTTP:

- ``network_audit`` (default checks), ``health_gate`` (every node, the kube-proxy DaemonSet),
  in-process through ``tests/harness.py`` (the module's ``main()`` as AnsiballZ would call it);
- ``daemonset_restart`` of ``kube-proxy-worker`` on ``--restart-nodes`` nodes in batches of
  ``--batch-size`` (twice as many nodes on the second run: the requests per batch must not grow);
- the ``k8s_nodes`` inventory plugin (``ansible-inventory --list`` as a subprocess).

For each step it prints the wall time and the API requests by verb and resource as the server saw them
(the double's audit log; on the real server its audit log, policy: Metadata for the bench's own client
certificate ``netmedic-bench``, nothing else), the requests the client sent (``k8s_requests.py``, also in
the ``ansible-inventory`` process) and the objects each list returned. Exit status 1 when a step failed.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / 'collections'):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import yaml  # noqa: E402

from lab.kubedouble.double import KubeDouble  # noqa: E402
from lab.kubedouble.seed import load_seed, make_node  # noqa: E402
from tests.harness import run_main  # noqa: E402

sys.path.insert(0, str(ROOT / 'bench'))
import k8s_requests  # noqa: E402

APP_NAMESPACES = 10
K8S = ROOT / 'lab' / 'k8s'
BENCH_USER = 'netmedic-bench'
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    users: [%s]
  - level: None
""" % BENCH_USER


def build_seed(nodes, pods, services):
    """The lab seed's objects (ConfigMaps, DaemonSets, ...) without its 3 nodes, plus the scale objects."""
    base = load_seed(ROOT / 'lab' / 'seed' / 'cluster.yaml')
    objects = [o for o in base.objects if o.get('kind') not in ('Node', 'Pod')]
    daemonsets = sum(1 for o in objects if o.get('kind') == 'DaemonSet')
    names = []
    cidrs = ipaddress.ip_network('10.64.0.0/10').subnets(new_prefix=24)   # one /24 per node, in order
    for i in range(nodes):
        name = 'node-%04d' % (i + 1)
        node = make_node(name, str(ipaddress.ip_address('10.32.0.0') + i + 1), i + 1, base.version)
        cidr = str(next(cidrs))
        node['spec'] = {'podCIDR': cidr, 'podCIDRs': [cidr]}
        objects.append(node)
        names.append(name)
    for n in range(APP_NAMESPACES):
        objects.append({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'app-%d' % n}})
    for s in range(services):
        objects.append({'apiVersion': 'v1', 'kind': 'Service',
                        'metadata': {'name': 'svc-%d' % s, 'namespace': 'app-%d' % (s % APP_NAMESPACES)},
                        'spec': {'selector': {'app': 'svc-%d' % s},
                                 'ports': [{'port': 80, 'targetPort': 8080, 'protocol': 'TCP'}]}})
    app_pods = max(0, pods - daemonsets * nodes)
    for p in range(app_pods):
        s = p % max(services, 1)
        objects.append({'apiVersion': 'v1', 'kind': 'Pod',
                        'metadata': {'name': 'app-%d' % p, 'namespace': 'app-%d' % (s % APP_NAMESPACES),
                                     'labels': {'app': 'svc-%d' % s}},
                        'spec': {'nodeName': names[p % nodes],
                                 'containers': [{'name': 'app', 'image': 'registry.local/app:1',
                                                 'ports': [{'containerPort': 8080}]}]}})
    return {'version': base.version, 'objects': objects}, names, daemonsets, app_pods


def all_running(store):
    """Every pod Running; reads the stored pods under the lock without copying them (a copy of 30,000 pods
    every second competed with the controllers for the lock)."""
    with store.lock:
        pods = store.iter_objects('pods')
        return bool(pods) and all(p['status'].get('phase') == 'Running' for p in pods)


def requests(audit):
    """Requests by verb and resource; objects listed by resource, and lists that were not paged."""
    by = collections.Counter()
    listed = collections.Counter()
    unpaged = collections.Counter()
    for entry in audit:
        by['%s %s%s' % (entry.get('verb'), entry.get('resource'),
                        '/' + entry['subresource'] if entry.get('subresource') else '')] += 1
        if entry.get('verb') == 'list':
            listed[entry.get('resource')] += entry.get('items', 0)
            if not entry.get('limit') and not entry.get('selector') and entry.get('items', 0) > 500:
                unpaged[entry.get('resource')] += 1
    return dict(sorted(by.items())), sum(by.values()), dict(sorted(listed.items())), dict(sorted(unpaged.items()))


CLIENT = []   # what the kubernetes client sent in this process (k8s_requests)


def client_requests(records):
    """Requests by method and path shape (names left out), from k8s_requests records."""
    by = collections.Counter()
    for rec in records:
        parts = urlsplit(rec['url']).path.strip('/').split('/')
        if 'namespaces' in parts[:-1]:
            i = parts.index('namespaces')
            del parts[i:i + 2]                      # the namespace
        if parts[:1] == ['api']:
            parts = parts[2:]
        elif parts[:1] == ['apis']:
            parts = parts[3:]
        resource = parts[0] if parts else '/'
        sub = '/' + parts[2] if len(parts) > 2 else ''
        by['%s %s%s' % (rec['method'], resource, sub)] += 1
    return dict(sorted(by.items()))


def load_avg():
    return ' '.join('%.2f' % x for x in os.getloadavg())


def step(server, rows, name, fn):
    server.begin()
    del CLIENT[:]
    load0 = load_avg()
    t0 = time.monotonic()
    ok, detail = fn()
    seconds = time.monotonic() - t0
    load1 = load_avg()
    records = k8s_requests.count_items(list(CLIENT)) + server.subprocess_records()
    by, total, listed, unpaged = requests(server.end(records))
    client = client_requests(records)
    rows.append({'step': name, 'ok': ok, 'seconds': round(seconds, 2), 'requests': total, 'by': by,
                 'client_requests': len(records), 'client_by': client, 'load_before': load0, 'load_after': load1,
                 'listed': listed, 'unpaged_large_lists': unpaged, 'detail': detail})
    verdict = 'ok' if ok else 'FAIL'
    print('%-44s %-4s %8.2f s %6d requests (client sent %d)  %s' % (name, verdict, seconds, total, len(records), detail), flush=True)
    print('    load average before %s, after %s' % (load0, load1), flush=True)
    print('    ' + ', '.join('%s: %d' % kv for kv in by.items()), flush=True)
    print('    objects listed: ' + (', '.join('%s %d' % kv for kv in listed.items()) or 'none')
          + ('; unpaged unselected lists over 500 objects: %s' % unpaged if unpaged else ''), flush=True)
    return ok


def module(name, args, env):
    rc, result, output = run_main(name, args, env=env)
    return rc == 0 and not result.get('failed'), result, output


class DoubleServer:
    """The lab's API double, seeded in-process; requests from its audit log."""

    name = 'double'

    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.double = None

    def start(self, rows):
        args = self.args
        seed, names, daemonsets, app_pods = build_seed(args.nodes, args.pods, args.services)
        print('cluster: %d nodes, %d DaemonSets, %d app pods, %d Services' % (args.nodes, daemonsets, app_pods, args.services), flush=True)
        t0 = time.monotonic()
        self.double = KubeDouble(seed=seed, validate=False, audit=True, tick=args.tick, start_delay=0).start()
        self.double.wait_for(all_running, timeout=3600, interval=1.0)
        with self.double.store.lock:
            running = len(self.double.store.iter_objects('pods'))
        print('double up with %d running pods in %.1f s' % (running, time.monotonic() - t0), flush=True)
        rows.append({'step': 'double up (seed + every pod Running)', 'ok': True, 'load_after': load_avg(),
                     'seconds': round(time.monotonic() - t0, 2), 'requests': 0, 'by': {}, 'detail': '%d pods' % running})
        return self.double.write_kubeconfig(Path(self.tmp) / 'kubeconfig'), names

    def begin(self):
        self.double.audit.clear()

    def subprocess_records(self):
        return read_records(Path(self.tmp) / 'client-requests.jsonl')

    def end(self, records):
        return list(self.double.audit)

    def stop(self):
        if self.double:
            self.double.stop()


def read_records(path):
    """The k8s_requests records an ansible-inventory process wrote (the file is then removed)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    path.unlink()
    return [json.loads(line) for line in lines if line.strip()]


def app_deployments(app_pods, services):
    """One Deployment per Service holding its share of the app pods (pod p belongs to Service p % services, as in build_seed)."""
    out = []
    for s in range(services):
        replicas = app_pods // services + (1 if s < app_pods % services else 0)
        if not replicas:
            continue
        labels = {'app': 'svc-%d' % s}
        out.append({'apiVersion': 'apps/v1', 'kind': 'Deployment',
                    'metadata': {'name': 'svc-%d' % s, 'namespace': 'app-%d' % (s % APP_NAMESPACES), 'labels': labels},
                    'spec': {'replicas': replicas, 'selector': {'matchLabels': labels},
                             'template': {'metadata': {'labels': labels}, 'spec': {
                                 'containers': [{'name': 'app', 'image': 'registry.local/app:1', 'ports': [{'containerPort': 8080}]}]}}}})
    return out


class RealServer:
    """The lab's real control plane (lab/k8s/k8sctl) with simulated nodes (lab/k8s/nodesim.py)."""

    name = 'real'

    def __init__(self, args, tmp):
        self.args, self.tmp = args, Path(tmp)
        state = os.environ.get('NETMEDIC_K8S_STATE')
        if not state and not args.allow_default_instance:
            raise SystemExit('--server real brings a control plane up and down: give it an instance of its own '
                             '(NETMEDIC_K8S_STATE, NETMEDIC_K8S_PORT_BASE, NETMEDIC_K8S_LOCK), or --allow-default-instance')
        sys.path.insert(0, str(K8S))
        import k8sctl
        import nodesim
        self.k8sctl, self.nodesim = k8sctl, nodesim
        self.audit_offset = 0
        self.started = False

    def k8sctl_cmd(self, *argv):
        env = dict(os.environ, NETMEDIC_K8S_AUDIT_POLICY=str(self.tmp / 'audit-policy.yaml'),
                   NETMEDIC_K8S_CLIENT_QPS=str(self.args.client_qps))
        subprocess.run([str(K8S / 'k8sctl'), *argv], env=env, check=True, timeout=600)

    def start(self, rows):
        args, k8sctl, nodesim = self.args, self.k8sctl, self.nodesim
        (self.tmp / 'audit-policy.yaml').write_text(AUDIT_POLICY)
        t0 = time.monotonic()
        self.started = True
        self.k8sctl_cmd('up')
        k8sctl.make_cert('bench', BENCH_USER, org='system:masters', client=True)
        kubeconfig = k8sctl.write_kubeconfig(str(self.tmp / 'kubeconfig'), 'bench')
        t_up = time.monotonic() - t0
        print('control plane up in %.1f s (load %s)' % (t_up, load_avg()), flush=True)

        base = nodesim.load_seed(ROOT / 'lab' / 'seed' / 'cluster.yaml')
        names = ['node-%04d' % (i + 1) for i in range(args.nodes)]
        seed_objects = [o for o in base['objects'] if o.get('kind') not in ('Node', 'Pod')]
        daemonsets = sum(1 for o in seed_objects if o.get('kind') == 'DaemonSet')
        app_pods = max(0, args.pods - daemonsets * args.nodes)
        seed_path = self.tmp / 'seed.yaml'
        seed_path.write_text(yaml.safe_dump({'version': base.get('version'), 'nodes': [{'name': n} for n in names],
                                             'objects': seed_objects}))
        print('cluster: %d nodes, %d DaemonSets, %d app pods in Deployments, %d Services' % (args.nodes, daemonsets, app_pods, args.services),
              flush=True)
        t1 = time.monotonic()
        nodesim.seed(str(seed_path))
        k8sctl.start_nodesim(str(seed_path))
        t_nodes = time.monotonic() - t1
        print('%d nodes registered, seed objects created, nodesim started in %.1f s' % (args.nodes, t_nodes), flush=True)

        t2 = time.monotonic()
        objects = [{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'app-%d' % n}} for n in range(APP_NAMESPACES)]
        for obj in objects:
            nodesim.call(nodesim.collection('Namespace', None), 'POST', obj, ok=(201, 409))
        services = [{'apiVersion': 'v1', 'kind': 'Service',
                     'metadata': {'name': 'svc-%d' % s, 'namespace': 'app-%d' % (s % APP_NAMESPACES)},
                     'spec': {'selector': {'app': 'svc-%d' % s}, 'ports': [{'port': 80, 'targetPort': 8080, 'protocol': 'TCP'}]}}
                    for s in range(args.services)]
        deployments = app_deployments(app_pods, args.services)

        def create(obj):
            nodesim.call(nodesim.collection(obj['kind'], obj['metadata']['namespace']), 'POST', obj, ok=(201, 409))
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(create, services + deployments))
        t_objects = time.monotonic() - t2
        print('%d Services, %d Deployments created in %.1f s (load %s)' % (len(services), len(deployments), t_objects, load_avg()), flush=True)

        t3 = time.monotonic()
        want = sum(d['spec']['replicas'] for d in deployments)
        total = self.wait_settled(want, timeout=args.settle_timeout)
        t_settle = time.monotonic() - t3
        rows.append({'step': 'real control plane up (k8sctl up, bench certificate)', 'ok': True, 'seconds': round(t_up, 1),
                     'requests': 0, 'by': {}, 'detail': ''})
        rows.append({'step': 'nodes registered + seed objects + nodesim started', 'ok': True, 'seconds': round(t_nodes, 1),
                     'requests': 0, 'by': {}, 'detail': '%d nodes' % args.nodes})
        rows.append({'step': 'Services + Deployments created', 'ok': True, 'seconds': round(t_objects, 1), 'requests': 0, 'by': {},
                     'detail': '%d Services, %d Deployments' % (len(services), len(deployments))})
        rows.append({'step': 'every pod scheduled and Running', 'ok': True, 'seconds': round(t_settle, 1), 'requests': 0, 'by': {},
                     'load_after': load_avg(), 'detail': '%d pods' % total})
        if args.quiet_seconds:
            print('waiting %d s for the controllers to go quiet' % args.quiet_seconds, flush=True)
            time.sleep(args.quiet_seconds)
        return kubeconfig, names

    def count(self, query):
        """Objects a pod list with ``query`` returns, from one request (limit 1 + remainingItemCount; with a
        selector the server gives no remainingItemCount: then 1 means "at least one")."""
        _code, data = self.nodesim.call('/api/v1/pods?' + query + '&limit=1')
        items = len(data.get('items') or [])
        return items + int((data.get('metadata') or {}).get('remainingItemCount') or 0) if items else 0

    def wait_settled(self, app_replicas, timeout):
        """Every DaemonSet fully scheduled and ready, and as many Running pods as the DaemonSets and Deployments want."""
        nodesim = self.nodesim
        t0, last = time.monotonic(), 0.0
        while True:
            _code, dss = nodesim.call('/apis/apps/v1/daemonsets')
            ds_want = sum((d.get('status') or {}).get('desiredNumberScheduled', 0) for d in dss.get('items') or [])
            ds_ready = all((d.get('status') or {}).get('numberReady', 0) == (d.get('status') or {}).get('desiredNumberScheduled', -1)
                           for d in dss.get('items') or [])
            _code, deps = nodesim.call('/apis/apps/v1/namespaces/kube-system/deployments')
            _code, deps2 = nodesim.call('/apis/apps/v1/namespaces/default/deployments')
            seed_replicas = sum((d.get('spec') or {}).get('replicas', 1) for d in (deps.get('items') or []) + (deps2.get('items') or []))
            want = ds_want + app_replicas + seed_replicas
            total = self.count('')
            pending = self.count('fieldSelector=status.phase!%3DRunning')
            if ds_ready and ds_want and total == want and not pending:
                print('settled: %d pods Running (DaemonSets %d) after %.0f s (load %s)' % (total, ds_want, time.monotonic() - t0, load_avg()),
                      flush=True)
                return total
            if time.monotonic() - last >= 30:
                print('  %4.0f s: %d pods of %d, %d not Running, DaemonSets ready: %s (load %s)'
                      % (time.monotonic() - t0, total, want, pending, ds_ready, load_avg()), flush=True)
                last = time.monotonic()
            if time.monotonic() - t0 > timeout:
                raise SystemExit('the cluster did not settle in %d s: %d pods of %d, %d not Running' % (timeout, total, want, pending))
            time.sleep(5)

    def begin(self):
        try:
            self.audit_offset = os.path.getsize(self.k8sctl.audit_log())
        except OSError:
            self.audit_offset = 0

    def subprocess_records(self):
        return read_records(self.tmp / 'client-requests.jsonl')

    def end(self, records):
        """The audit log's events of the bench user since ``begin``; each list's object count from the client's record of the same URI."""
        time.sleep(1.0)   # the audit backend writes as the response completes; leave it a moment
        items = collections.defaultdict(list)
        for rec in records:
            parts = urlsplit(rec['url'])
            items[parts.path + ('?' + parts.query if parts.query else '')].append(rec.get('items'))
        entries = []
        with open(self.k8sctl.audit_log(), 'rb') as fh:
            fh.seek(self.audit_offset)
            for line in fh:
                ev = json.loads(line)
                if (ev.get('user') or {}).get('username') != BENCH_USER or ev.get('stage') not in ('ResponseComplete', 'Panic'):
                    continue
                ref = ev.get('objectRef') or {}
                uri = ev.get('requestURI', '')
                query = parse_qs(urlsplit(uri).query)
                entry = {'verb': ev.get('verb'), 'resource': ref.get('resource') or urlsplit(uri).path,
                         'subresource': ref.get('subresource'), 'code': (ev.get('responseStatus') or {}).get('code'),
                         'limit': (query.get('limit') or [None])[0], 'selector': bool(query.get('labelSelector') or query.get('fieldSelector'))}
                if entry['verb'] == 'list':
                    counts = items.get(uri)
                    entry['items'] = (counts.pop(0) if counts else None) or 0
                entries.append(entry)
        return entries

    def stop(self):
        if self.started and not self.args.keep:
            self.k8sctl_cmd('down')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    ap.add_argument('--server', choices=('double', 'real'), default='double',
                    help='the API double (default) or the lab\'s real control plane with simulated nodes')
    ap.add_argument('--nodes', type=int, default=1000)
    ap.add_argument('--pods', type=int, default=30000, help='pods in total, DaemonSet pods included')
    ap.add_argument('--services', type=int, default=3000)
    ap.add_argument('--restart-nodes', type=int, default=20)
    ap.add_argument('--batch-size', type=int, default=10)
    ap.add_argument('--patterns-preset', help="daemonset_restart's patterns_preset (default: auto on the double; "
                    "none on the real server, whose simulated nodes serve no logs)")
    ap.add_argument('--tick', type=float, default=1.0, help="the double's controller interval (s)")
    ap.add_argument('--client-qps', type=int, default=200,
                    help="real: the controller-manager's and scheduler's client QPS (NETMEDIC_K8S_CLIENT_QPS; default 200)")
    ap.add_argument('--settle-timeout', type=int, default=3600, help='real: seconds to wait for every pod Running')
    ap.add_argument('--quiet-seconds', type=int, default=30, help='real: pause after the cluster settled, before the steps')
    ap.add_argument('--keep', action='store_true', help='real: leave the control plane up afterwards')
    ap.add_argument('--allow-default-instance', action='store_true',
                    help='real: run without NETMEDIC_K8S_STATE (the default instance, which others may be using)')
    ap.add_argument('--steps', default='audit,gate,restart,inventory',
                    help='comma-separated steps to run (audit, gate, restart, inventory; default: all)')
    ap.add_argument('--json', help='also write the rows here')
    args = ap.parse_args(argv)
    steps = set(args.steps.split(','))
    preset = args.patterns_preset or ('auto' if args.server == 'double' else 'none')

    rows = []
    failed = False
    k8s_requests.install(CLIENT)
    with tempfile.TemporaryDirectory(prefix='netmedic-bench-') as tmp:
        server = (DoubleServer if args.server == 'double' else RealServer)(args, tmp)
        try:
            kubeconfig, names = server.start(rows)
            env = {'K8S_AUTH_KUBECONFIG': str(kubeconfig), 'TMPDIR': tmp}

            def audit():
                ok, result, _out = module('network_audit', {}, env)
                return ok, '%d findings' % len(result.get('findings') or []) if ok else result.get('msg', '')[:200]
            if 'audit' in steps:
                failed |= not step(server, rows, 'network_audit (default checks)', audit)

            def gate():
                ok, result, _out = module('health_gate', {'daemonsets': ['kube-system/kube-proxy-worker'], 'max_unhealthy': '1%'}, env)
                return ok, result.get('msg', '')[:80]
            if 'gate' in steps:
                failed |= not step(server, rows, 'health_gate (all nodes, kube-proxy-worker)', gate)

            for count in (args.restart_nodes, 2 * args.restart_nodes) if 'restart' in steps else ():
                def restart(count=count):
                    ok, result, _out = module('daemonset_restart', {
                        'name': 'kube-proxy-worker', 'nodes': names[:count], 'batch_size': args.batch_size,
                        'poll_interval': 0.5, 'timeout': 600, 'patterns_preset': preset}, env)
                    return ok, '%d restarted' % len(result.get('restarted') or []) if ok else result.get('msg', '')[:300]
                label = 'daemonset_restart %d nodes, batches of %d' % (count, args.batch_size)
                failed |= not step(server, rows, label, restart)
                rows[-1]['per_batch'] = round(rows[-1]['requests'] / max(1, -(-count // args.batch_size)), 1)
                rows[-1]['patterns_preset'] = preset
                print('    requests per batch: %s (patterns_preset %s)' % (rows[-1]['per_batch'], preset), flush=True)

            inventory = Path(tmp) / 'cluster.k8s_nodes.yml'
            inventory.write_text(yaml.safe_dump({'plugin': 'netmedic.k8s.k8s_nodes', 'kubeconfig': str(kubeconfig)}))
            hook = Path(tmp) / 'hook'
            hook.mkdir()
            (hook / 'sitecustomize.py').write_text('import k8s_requests\nk8s_requests.install_to_file(%r)\n'
                                                   % str(Path(tmp) / 'client-requests.jsonl'))

            def inv():
                proc = subprocess.run([str(Path(sys.executable).parent / 'ansible-inventory'), '-i', str(inventory), '--list'],
                                      capture_output=True, text=True, timeout=1800, check=False,
                                      env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'),
                                               ANSIBLE_INVENTORY_ENABLED='netmedic.k8s.k8s_nodes',
                                               PYTHONPATH=os.pathsep.join([str(hook), str(ROOT / 'bench')])))
                if proc.returncode != 0:
                    return False, proc.stderr.strip()[-200:]
                hosts = json.loads(proc.stdout).get('_meta', {}).get('hostvars', {})
                return len(hosts) == args.nodes, '%d hosts' % len(hosts)
            if 'inventory' in steps:
                failed |= not step(server, rows, 'k8s_nodes inventory (ansible-inventory --list)', inv)
        finally:
            server.stop()
    if args.json:
        Path(args.json).write_text(json.dumps({'args': vars(args), 'server': args.server, 'rows': rows}, indent=1) + '\n')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
