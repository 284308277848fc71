"""``python -m lab.kubedouble serve ...``: run a double until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading

import yaml

from .double import KubeDouble
from .logs import DEFAULT_MODULES, StaticNodeState
from .seed import parse_nodes


def _node_state(args):
    if args.node_state:
        module, _sep, attr = args.node_state.partition(':')
        return getattr(importlib.import_module(module), attr)()
    if args.node_modules:
        with open(args.node_modules) as handle:
            data = yaml.safe_load(handle) or {}
        default = data.get('default', sorted(DEFAULT_MODULES))
        return StaticNodeState(data.get('nodes') or {}, default=None if default is None else set(default))
    return StaticNodeState()


def build_parser():
    parser = argparse.ArgumentParser(prog='python -m lab.kubedouble', description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    serve = sub.add_parser('serve', help='serve the API until SIGTERM')
    serve.add_argument('--host', default='127.0.0.1')
    serve.add_argument('--port', type=int, default=0, help='0 = let the OS choose (default)')
    serve.add_argument('--seed', help='seed YAML (e.g. lab/seed/cluster.yaml)')
    serve.add_argument('--kubeconfig', help='write a kubeconfig for the server here')
    serve.add_argument('--state-dir', help='persist state.json here and restore it on restart')
    serve.add_argument('--nodes', help='replace the seed nodes: name=ip,name=ip')
    serve.add_argument('--version', dest='server_version', help='gitVersion served on /version')
    serve.add_argument('--token', default='', help='bearer token to demand (default: random)')
    serve.add_argument('--identity', action='append', default=[], metavar='TOKEN=USER[:GROUP,...]',
                       help='a non-admin bearer token, authorized by the RBAC objects in the store; USER may be '
                            'system:serviceaccount:NS:NAME (repeatable)')
    serve.add_argument('--tick', type=float, default=0.2, help='controller period in seconds')
    serve.add_argument('--start-delay', type=float, default=0.5, help='seconds from Pending to Running')
    serve.add_argument('--no-validate', action='store_true', help='skip kubernetes-validate schema checks')
    serve.add_argument('--node-modules', help='YAML {default: [mods], nodes: {node: [mods]}} for StaticNodeState')
    serve.add_argument('--node-state', help='module:callable returning a node_state object (e.g. SSH-backed)')
    serve.add_argument('--verbose', action='store_true')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format='%(asctime)s %(name)s %(levelname)s %(message)s')
    double = KubeDouble(seed=args.seed, node_state=_node_state(args), version=args.server_version,
                        nodes=parse_nodes(args.nodes) if args.nodes else None, token=args.token, host=args.host,
                        port=args.port, tick=args.tick, start_delay=args.start_delay, state_dir=args.state_dir,
                        validate=not args.no_validate)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    for spec in args.identity:
        token, _eq, who = spec.partition('=')
        user, _colon, groups = who.partition(':') if not who.startswith('system:serviceaccount:') else (who, '', '')
        if not token or not user:
            raise SystemExit('--identity wants TOKEN=USER[:GROUP,...], got %r' % spec)
        if user.startswith('system:serviceaccount:') and user.count(':') == 3:
            double.add_identity(serviceaccount=tuple(user.split(':')[2:]), token=token)
        else:
            double.add_identity(user=user, groups=[g for g in groups.split(',') if g], token=token)
    double.start()
    if args.kubeconfig:
        double.write_kubeconfig(args.kubeconfig)
    print('kubedouble serving %s (version %s, kubeconfig %s)' % (double.url, double.store.version,
                                                                 args.kubeconfig or '-'), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        double.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
