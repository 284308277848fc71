"""The lab as a whole: `up`, `reset`, `release`, `down`, `status`, `inventory`, `wipe-cache`."""

import contextlib
import os
import re
import shutil
import subprocess
import time

from .common import LabError, du, human, log, parallel, step
from .config import BRIDGE, CACHE, PROC_PREFIX, SSH_PORT_BASE, STATE
from .image import ensure_image
from .inventory import inventory_path, write_inventory
from .lock import flock
from .net import net_down, net_up
from .nodes import load_nodes, node_name, pid_alive, running_nodes
from .qemu import choose_accel, cold_boot, free_port, have_saved_state, lab_processes, qmp_status, restore, rss_kib, saved_state, stop_node
from .ssh import unused_since_restore


def summary(nodes):
    for n in nodes:
        log(f'    {n["name"]}: ssh -p {n["port"]} root@127.0.0.1  {n["l2_dev"]}={n["l2_ip"]}  pid {n["pid"]}')
    log(f'inventory: {write_inventory(nodes)}')


# Written by `up --clean`: "1" when nodes were running before (someone's lab), "0" when this up started it. `release`
# reads it; `down` removes it with the rest of STATE.
FOUND_UP = 'found-up'


def cmd_up(args):
    if args.nodes < 1 or args.nodes > 20:
        raise LabError('--nodes must be between 1 and 20')
    os.makedirs(STATE, exist_ok=True)
    start = time.monotonic()
    img = ensure_image()
    with flock(os.path.join(STATE, '.lock')):
        accel = choose_accel(img)
        running = {n['index']: n for n in running_nodes()}
        if args.clean:
            with open(os.path.join(STATE, FOUND_UP), 'w', encoding='utf-8') as f:
                f.write('1' if running else '0')
        wanted = list(range(1, args.nodes + 1))
        todo = [i for i in wanted if i not in running]
        if running:
            log(f'already running: {" ".join(running[i]["name"] for i in sorted(running))}')
        with step(f'host bridge {BRIDGE} and taps'):
            net_up(sorted(set(wanted) | set(running)))
        if args.cold:
            for i in todo:
                for f in saved_state(i, img, accel).values():
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f)
        used_ports = {n['port'] for n in running.values()}
        ports = {}
        for i in todo:
            port = free_port(SSH_PORT_BASE + i)
            while port in used_ports:
                port = free_port(port + 1)
            used_ports.add(port)
            ports[i] = port
        warm = [i for i in todo if have_saved_state(i, img, accel)]
        cold = [i for i in todo if i not in warm]
        if warm:
            log(f'restore from saved state: {" ".join(node_name(i) for i in warm)}')
        if cold:
            log(f'cold boot (then save state): {" ".join(node_name(i) for i in cold)}')

        def bring(i):
            if i in warm:
                return restore(i, img, accel, ports[i])
            return cold_boot(i, img, accel, ports[i])

        if todo:
            with step(f'start {len(todo)} node(s)'):
                parallel(bring, todo)
        if args.clean and running:
            log('the lab was up: the nodes that were running back to the clean saved state (--clean)')
            _reset_nodes([running[i] for i in sorted(running)])
        nodes = running_nodes()
        summary(nodes)
    log(f'lab up: {len(nodes)} node(s) in {time.monotonic() - start:.1f}s')


def _reset_nodes(nodes, force=False):
    """Stop ``nodes`` and bring each back from its clean saved state (cold boot where there is none); the caller holds
    the state lock. A node that no SSH session reached since its last restore (``unused_since_restore``: its qemu
    process alive and the guest's session record untouched) is in that state already and is left running, unless
    ``force``: a restore costs about 2 s of CPU per node, and a test file's closing reset is usually followed by the
    next file's opening one."""
    if not force:
        unused = dict(parallel(lambda n: (n['name'], pid_alive(n['pid']) and unused_since_restore(n)), nodes))
        for name in sorted(n for n, ok in unused.items() if ok):
            log(f'{name}: no SSH session since its last restore: already clean, left running')
        nodes = [n for n in nodes if not unused[n['name']]]
        if not nodes:
            return

    def again(node):
        i, img, accel, port = node['index'], node['image'], node['accel'], node['port']
        stop_node(node)
        if have_saved_state(i, img, accel):
            return restore(i, img, accel, port)
        log(f'{node["name"]}: no saved state: cold boot')
        return cold_boot(i, img, accel, port)

    with step(f'reset {len(nodes)} node(s) to the saved clean state'):
        net_up([n['index'] for n in nodes])
        parallel(again, nodes)


def cmd_reset(args):
    start = time.monotonic()
    with flock(os.path.join(STATE, '.lock')):
        nodes = load_nodes()
        if not nodes:
            raise LabError('no lab is up (run `labctl up`)')
        _reset_nodes(nodes, force=getattr(args, 'all', False))
        summary(running_nodes())
    log(f'lab reset in {time.monotonic() - start:.1f}s')


def cmd_release(args):
    """Give the lab back as `up --clean` found it: reset to the clean state (left up) when it was up before, else down.
    Without a record of `up --clean` (or with no node left running) it goes down."""
    try:
        with open(os.path.join(STATE, FOUND_UP), encoding='utf-8') as f:
            found_up = f.read().strip() == '1'
    except FileNotFoundError:
        found_up = False
    if found_up and load_nodes():
        log('release: the lab was up before this run (up --clean): reset to the clean state and left up')
        cmd_reset(args)
    else:
        cmd_down(args)


def cmd_down(_args):
    start = time.monotonic()
    os.makedirs(STATE, exist_ok=True)
    with flock(os.path.join(STATE, '.lock')):
        nodes = load_nodes()
        with step(f'stop {len(nodes)} node(s)'):
            parallel(stop_node, nodes)
            for pid in lab_processes():  # qemu of ours whose state file was lost
                log(f'    stray lab qemu pid {pid}: terminating')
                stop_node({'index': 0, 'pid': pid})
        with step('remove taps and bridge'):
            removed = net_down()
            log(f'    removed: {" ".join(removed) or "nothing"}')
        # the runtime dir goes as a whole (the lock file too: our fd keeps it valid)
        shutil.rmtree(STATE, ignore_errors=True)
    left = subprocess.run(['pgrep', '-f', f'process={PROC_PREFIX}'], stdout=subprocess.PIPE, text=True, check=False)
    if left.stdout.strip():
        raise LabError(f'lab qemu processes still running: {left.stdout.split()}')
    log(f'lab down in {time.monotonic() - start:.1f}s: no lab qemu process left (pgrep), no taps, no bridge')


def cmd_status(_args):
    nodes = load_nodes()
    if not nodes:
        print('no lab nodes (run `labctl up`)')
    for n in nodes:
        alive = pid_alive(n['pid'])
        status = 'down'
        if alive:
            try:
                status = qmp_status(n, timeout=3)
            except LabError as exc:
                status = f'? ({exc})'
        rss = rss_kib(n['pid']) if alive else 0
        print(
            f'{n["name"]:<12} pid {n["pid"]:<8} {status:<10} ssh 127.0.0.1:{n["port"]:<6} '
            f'{n["l2_dev"]} {n["l2_ip"]:<11} {n["accel"]}  rss {rss // 1024} MiB  '
            f'up {time.time() - n["started"]:.0f}s'
        )
    print(f'bridge {BRIDGE}: {"present" if os.path.exists(f"/sys/class/net/{BRIDGE}") else "absent"}')
    if os.path.exists(inventory_path()):
        print(f'inventory: {inventory_path()}')
    if os.path.isdir(CACHE):
        print(f'cache: {CACHE} ({human(du(CACHE))})')
        images = os.path.join(CACHE, 'images')
        for key in sorted(os.listdir(images)) if os.path.isdir(images) else []:
            states = os.path.join(images, key, 'states')
            saved = sorted({re.sub(r'\.(state\.zst|qcow2)$', '', f) for f in os.listdir(states)}) if os.path.isdir(states) else []
            print(f'  image {key}: {human(du(os.path.join(images, key)))}, saved states: {" ".join(saved) or "none"}')


def cmd_inventory(_args):
    nodes = running_nodes()
    if not nodes:
        raise LabError('no lab is up (run `labctl up`)')
    print(write_inventory(nodes))


def cmd_wipe_cache(_args):
    cmd_down(None)
    with step(f'delete {CACHE}'):
        if os.path.isdir(CACHE):
            log(f'    freeing {human(du(CACHE))}')
            shutil.rmtree(CACHE)
