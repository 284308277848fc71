"""The VM lab behind lab/vm/labctl, one module per concern (see cli.py for the commands).

config     paths, names, sizes (environment overrides)
common     log, LabError, step, run/out, parallel
lock       the shared lab lock and `locked -- COMMAND`
image      host packages, recipe and cache key, image build
nodes      per-node runtime state (STATE/node-N.json, pids)
qemu       KVM probe, qemu command line, QMP, saved states, boot/restore/stop
ssh        ssh to the nodes, boot wait, guest clock
net        host bridge and taps
inventory  the Ansible inventory of the running nodes
lifecycle  up, reset, down, status, inventory, wipe-cache
faults     catalog node faults N-1 .. N-8 (inject)
cli        argparse, root check, which commands take the lab lock

Python 3 standard library only (Debian's /usr/bin/python3 runs it).
"""
