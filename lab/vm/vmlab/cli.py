"""labctl: a lab of real Linux VM nodes (qemu) for the netmedic.k8s collection.

Commands:
  deps                 apt-install what the host needs (only what is missing)
  build [--force]      build the node image (cached, keyed on the recipe)
  up [--nodes N] [--clean]
                       start N nodes (default 3); restores saved states when it can;
                       --clean: nodes already running go back to their clean saved state too,
                       and `release` will know the lab was up before
  reset [--all]        put every running node back to its clean saved state (a node that no
                       SSH session reached since its last restore is in it already: left
                       running; --all restores it too)
  release              the end of a run that began with `up --clean`: reset (left up) when
                       the lab was up before it, else down
  down                 stop every node, remove the taps and the bridge
  status               what is running, where, and the cache
  ssh NODE [CMD...]    ssh into a node (NODE: lab-node-2, node-2 or 2)
  inventory            print the inventory path (and rewrite it)
  wipe-cache           down + delete the whole cache (image, keys, saved states)
  inject [FAULT...|all] [--nodes N,..] [--list]
                       plant catalog node faults (N-1 .. N-8) on running nodes
  locked -- CMD...     run CMD holding the shared lab lock (see below)

The shared lab lock: one lab serves everyone on this machine, so whatever uses
the VMs (build, up, reset, down, wipe-cache, inject, pytest tests/labvm) holds
an exclusive flock on /tmp/netmedic-lab.lock (NETMEDIC_LAB_LOCK overrides),
waiting with a message while someone else has it. A process whose ancestor
holds the lock (`labctl locked -- make ...`, pytest calling `labctl reset`)
runs under that lock instead of waiting for itself.

Environment:
  NETMEDIC_LAB_CACHE   cache dir (default /var/cache/netmedic-lab)
  NETMEDIC_LAB_STATE   runtime dir: pids, ports, QMP sockets, overlays, inventory
                       (default /run/netmedic-lab)
  NETMEDIC_LAB_ACCEL   auto (default: probe KVM once, else TCG), tcg or kvm
  NETMEDIC_LAB_MEM     guest memory in MiB (default 512)
  NETMEDIC_LAB_SSH_PORT_BASE  first host port for SSH forwards (default 22210 + node index)
  NETMEDIC_LAB_HOST_IP set to 1 to give the bridge nmlab0 the address 10.77.0.1/24
  NETMEDIC_LAB_MIRROR  Debian mirror URL for mmdebstrap (default: mmdebstrap's own)
  NETMEDIC_LAB_LOCK    the shared lab lock file (default /tmp/netmedic-lab.lock)

Everything is Python 3 standard library plus Debian packages (see `deps`).
"""

import argparse
import os
import sys

from .common import run_command
from .faults import cmd_inject
from .image import cmd_build, cmd_deps
from .lifecycle import cmd_down, cmd_inventory, cmd_release, cmd_reset, cmd_status, cmd_up, cmd_wipe_cache
from .lock import cmd_locked, lab_lock
from .ssh import cmd_ssh

# Commands that use the VMs: they hold the shared lab lock (LAB_LOCK) while they run.
LOCKED_COMMANDS = ('build', 'up', 'reset', 'release', 'down', 'wipe-cache', 'inject')


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='labctl',
        description=__doc__.split('\n', maxsplit=1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.split('\n')[1:]),
    )
    sub = parser.add_subparsers(dest='cmd', required=True)
    sub.add_parser('deps', help='apt-install missing host packages').set_defaults(fn=cmd_deps)
    p = sub.add_parser('build', help='build the node image (cached)')
    p.add_argument('--force', action='store_true', help='rebuild even when cached')
    p.set_defaults(fn=cmd_build)
    p = sub.add_parser('up', help='start the nodes')
    p.add_argument('--nodes', type=int, default=3, help='number of nodes (default 3)')
    p.add_argument('--cold', action='store_true', help='ignore saved states: cold boot and save again')
    p.add_argument('--clean', action='store_true',
                   help='also reset nodes already running to their clean saved state; record it for `release`')
    p.set_defaults(fn=cmd_up)
    p = sub.add_parser('reset', help='put every node back to its clean saved state (a node no SSH session reached since '
                                     'its last restore is left running: it is in that state)')
    p.add_argument('--all', action='store_true', help='restore every node, used or not')
    p.set_defaults(fn=cmd_reset)
    sub.add_parser('release', help='after `up --clean`: reset when the lab was up before, else down').set_defaults(fn=cmd_release)
    sub.add_parser('down', help='stop everything, remove taps and bridge').set_defaults(fn=cmd_down)
    sub.add_parser('status', help='show nodes and cache').set_defaults(fn=cmd_status)
    p = sub.add_parser('ssh', help='ssh into a node')
    p.add_argument('node')
    p.add_argument('command', nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_ssh)
    sub.add_parser('inventory', help='rewrite and print the inventory path').set_defaults(fn=cmd_inventory)
    sub.add_parser('wipe-cache', help='down, then delete the cache').set_defaults(fn=cmd_wipe_cache)
    p = sub.add_parser('inject', help='plant catalog node faults (N-1 .. N-8) on running nodes')
    p.add_argument('faults', nargs='*', metavar='FAULT', help='catalog IDs (N-3) or names (port-range); default: all')
    p.add_argument('--nodes', help='comma-separated nodes (lab-node-2, node-2 or 2); default: every running node')
    p.add_argument('--list', action='store_true', help='list the faults and exit')
    p.set_defaults(fn=cmd_inject)
    p = sub.add_parser('locked', help='run a command holding the shared lab lock')
    p.add_argument('command', nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_locked)
    args = parser.parse_args(argv)
    if os.geteuid() != 0 and args.cmd not in ('status', 'ssh'):
        print('labctl: needs root (qemu taps, bridge, apt, mmdebstrap)', file=sys.stderr)
        return 2
    if args.cmd in LOCKED_COMMANDS and not (args.cmd == 'inject' and args.list):
        def locked(args):
            with lab_lock():
                args.fn(args)
        return run_command(locked, args)
    return run_command(args.fn, args)
