#!/usr/bin/env python
"""A thousand-node cluster on the API double: wall time and API requests of the cluster steps (issue 14, item 2).

A measurement, not a test (nothing here runs in ``make test``). It builds one cluster in the lab's
Kubernetes API double - N Ready nodes, the seed's DaemonSets on every node (kube-proxy, Flannel,
Terway, ...), app pods up to ``--pods`` in total and ``--services`` Services - and runs, each
through the real ``kubernetes`` client over HTTP:

- ``network_audit`` (default checks), ``health_gate`` (every node, the kube-proxy DaemonSet),
  in-process through ``tests/harness.py`` (the module's ``main()`` as AnsiballZ would call it);
- ``daemonset_restart`` of ``kube-proxy-worker`` on ``--restart-nodes`` nodes in batches of
  ``--batch-size`` (twice as many nodes on the second run: the requests per batch must not grow);
- the ``k8s_nodes`` inventory plugin (``ansible-inventory --list`` as a subprocess).

For each step it prints the wall time and the API requests by verb and resource, from the
double's audit log (every resource request it served). Exit status 1 when a step failed.
"""

from __future__ import annotations

import argparse
import collections
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / 'collections'):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import yaml  # noqa: E402

from lab.kubedouble.double import KubeDouble  # noqa: E402
from lab.kubedouble.seed import load_seed, make_node  # noqa: E402
from tests.harness import run_main  # noqa: E402

APP_NAMESPACES = 10


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


def step(double, rows, name, fn):
    double.audit.clear()
    t0 = time.monotonic()
    ok, detail = fn()
    seconds = time.monotonic() - t0
    by, total, listed, unpaged = requests(list(double.audit))
    rows.append({'step': name, 'ok': ok, 'seconds': round(seconds, 2), 'requests': total, 'by': by,
                 'listed': listed, 'unpaged_large_lists': unpaged, 'detail': detail})
    print('%-44s %-4s %8.2f s %6d requests  %s' % (name, 'ok' if ok else 'FAIL', seconds, total, detail), flush=True)
    print('    ' + ', '.join('%s: %d' % kv for kv in by.items()), flush=True)
    print('    objects listed: ' + (', '.join('%s %d' % kv for kv in listed.items()) or 'none')
          + ('; unpaged unselected lists over 500 objects: %s' % unpaged if unpaged else ''), flush=True)
    return ok


def module(double, name, args, env):
    rc, result, output = run_main(name, args, env=env)
    return rc == 0 and not result.get('failed'), result, output


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    ap.add_argument('--nodes', type=int, default=1000)
    ap.add_argument('--pods', type=int, default=30000, help='pods in total, DaemonSet pods included')
    ap.add_argument('--services', type=int, default=3000)
    ap.add_argument('--restart-nodes', type=int, default=20)
    ap.add_argument('--batch-size', type=int, default=10)
    ap.add_argument('--tick', type=float, default=1.0, help="the double's controller interval (s)")
    ap.add_argument('--steps', default='audit,gate,restart,inventory',
                    help='comma-separated steps to run (audit, gate, restart, inventory; default: all)')
    ap.add_argument('--json', help='also write the rows here')
    args = ap.parse_args(argv)
    steps = set(args.steps.split(','))

    seed, names, daemonsets, app_pods = build_seed(args.nodes, args.pods, args.services)
    print('cluster: %d nodes, %d DaemonSets (%d pods), %d app pods, %d Services'
          % (args.nodes, daemonsets, daemonsets * args.nodes, app_pods, args.services), flush=True)
    t0 = time.monotonic()
    double = KubeDouble(seed=seed, validate=False, audit=True, tick=args.tick, start_delay=0).start()
    rows = []
    failed = False
    with tempfile.TemporaryDirectory(prefix='netmedic-bench-') as tmp:
        try:
            double.wait_for(all_running, timeout=3600, interval=1.0)
            with double.store.lock:
                running = len(double.store.iter_objects('pods'))
            print('double up with %d running pods in %.1f s' % (running, time.monotonic() - t0), flush=True)
            rows.append({'step': 'double up (seed + every pod Running)', 'ok': True,
                         'seconds': round(time.monotonic() - t0, 2), 'requests': 0, 'by': {}, 'detail': '%d pods' % running})
            kubeconfig = double.write_kubeconfig(Path(tmp) / 'kubeconfig')
            env = {'K8S_AUTH_KUBECONFIG': str(kubeconfig), 'TMPDIR': tmp}

            def audit():
                ok, result, _out = module(double, 'network_audit', {}, env)
                return ok, '%d findings' % len(result.get('findings') or [])
            if 'audit' in steps:
                failed |= not step(double, rows, 'network_audit (default checks)', audit)

            def gate():
                ok, result, _out = module(double, 'health_gate', {'daemonsets': ['kube-system/kube-proxy-worker'],
                                                                  'max_unhealthy': '1%'}, env)
                return ok, result.get('msg', '')[:80]
            if 'gate' in steps:
                failed |= not step(double, rows, 'health_gate (all nodes, kube-proxy-worker)', gate)

            for count in (args.restart_nodes, 2 * args.restart_nodes) if 'restart' in steps else ():
                def restart(count=count):
                    ok, result, _out = module(double, 'daemonset_restart', {
                        'name': 'kube-proxy-worker', 'nodes': names[:count], 'batch_size': args.batch_size,
                        'poll_interval': 0.5, 'timeout': 600}, env)
                    return ok, '%d restarted' % len(result.get('restarted') or [])
                label = 'daemonset_restart %d nodes, batches of %d' % (count, args.batch_size)
                failed |= not step(double, rows, label, restart)
                rows[-1]['per_batch'] = round(rows[-1]['requests'] / max(1, -(-count // args.batch_size)), 1)
                print('    requests per batch: %s' % rows[-1]['per_batch'], flush=True)

            inventory = Path(tmp) / 'cluster.k8s_nodes.yml'
            inventory.write_text(yaml.safe_dump({'plugin': 'netmedic.k8s.k8s_nodes', 'kubeconfig': str(kubeconfig)}))

            def inv():
                proc = subprocess.run([str(Path(sys.executable).parent / 'ansible-inventory'), '-i', str(inventory), '--list'],
                                      capture_output=True, text=True, timeout=1800, check=False,
                                      env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'),
                                               ANSIBLE_INVENTORY_ENABLED='netmedic.k8s.k8s_nodes'))
                if proc.returncode != 0:
                    return False, proc.stderr.strip()[-200:]
                hosts = json.loads(proc.stdout).get('_meta', {}).get('hostvars', {})
                return len(hosts) == args.nodes, '%d hosts' % len(hosts)
            if 'inventory' in steps:
                failed |= not step(double, rows, 'k8s_nodes inventory (ansible-inventory --list)', inv)
        finally:
            double.stop()
    if args.json:
        Path(args.json).write_text(json.dumps({'args': vars(args), 'rows': rows}, indent=1) + '\n')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
