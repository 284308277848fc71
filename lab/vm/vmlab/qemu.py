"""QEMU: acceleration probe, the qemu command line, QMP, saved VM states, boot/restore/stop.

The device layout hashes into the saved-state name: qemu_argv must not change between a save and a restore.
"""

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time

from .common import LabError, human, log, out, run, step
from .config import CACHE, L2_DEV, L2_PREFIX, MEM_MB, PROC_PREFIX, QEMU, STATE, TAP_PREFIX
from .nodes import node_name, node_paths, pid_alive, read_pid, save_node
from .ssh import close_shared, set_guest_clock, ssh_run, wait_ssh


def choose_accel(img):
    want = (os.environ.get('NETMEDIC_LAB_ACCEL') or 'auto').lower()
    if want in ('tcg', 'kvm'):
        return want
    if not os.access('/dev/kvm', os.R_OK | os.W_OK):
        return 'tcg'
    probe_file = os.path.join(CACHE, 'kvm-probe.json')
    ident = {'host_kernel': os.uname().release, 'qemu': out([QEMU, '--version']).splitlines()[0], 'image': os.path.basename(img)}
    with contextlib.suppress(OSError, ValueError):
        with open(probe_file) as fh:
            cached = json.load(fh)
        if cached.get('ident') == ident:
            return cached['accel']
    with step('probe KVM (boot the initramfs under -accel kvm, 20 s budget)'):
        cmd = [
            QEMU,
            '-accel',
            'kvm',
            '-cpu',
            'host',
            '-m',
            '256',
            '-nodefaults',
            '-no-user-config',
            '-display',
            'none',
            '-no-reboot',
            '-serial',
            'stdio',
            '-kernel',
            os.path.join(img, 'vmlinuz'),
            '-initrd',
            os.path.join(img, 'initrd.img'),
            '-append',
            'console=ttyS0 quiet panic=-1 nmlab.probe=1',
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            output = proc.communicate(timeout=20)[0]
            ok = b'NMLAB-PROBE-OK' in output
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            ok = False
        accel = 'kvm' if ok else 'tcg'
        log(f'    KVM {"works" if ok else "does not work here"}: using {accel}')
    os.makedirs(CACHE, exist_ok=True)
    with open(probe_file, 'w') as fh:
        json.dump({'ident': ident, 'accel': accel}, fh)
    return accel


def kernel_cmdline(i):
    machine_id = hashlib.md5(node_name(i).encode()).hexdigest()
    return ' '.join(
        [
            'console=ttyS0',
            'root=/dev/vda',
            'rw',
            'net.ifnames=0',
            'quiet',
            'loglevel=3',
            'mitigations=off',
            'systemd.show_status=0',
            f'systemd.machine_id={machine_id}',
            f'nmlab.name={node_name(i)}',
            f'nmlab.l2ip={L2_PREFIX}{10 + i}',
        ]
    )


def qemu_argv(i, img, accel, port, disk, paths):
    """The qemu command of node i. Device layout must stay identical between
    a save and a restore: its hash (with ports and paths blanked) keys the state."""
    if accel == 'kvm':
        accel_args = ['-accel', 'kvm', '-cpu', 'host']
    else:
        accel_args = ['-accel', 'tcg,tb-size=256', '-cpu', 'max']
    return [
        QEMU,
        '-name',
        f'{node_name(i)},process={PROC_PREFIX}{i}',
        *accel_args,
        '-machine',
        'pc',
        '-smp',
        '1',
        '-m',
        str(MEM_MB),
        '-nodefaults',
        '-no-user-config',
        '-display',
        'none',
        '-rtc',
        'base=utc',
        '-kernel',
        os.path.join(img, 'vmlinuz'),
        '-initrd',
        os.path.join(img, 'initrd.img'),
        '-append',
        kernel_cmdline(i),
        '-netdev',
        f'user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22',
        '-device',
        f'virtio-net-pci,netdev=n0,mac=52:54:00:12:34:{i:02x},addr=0x3,romfile=',
        '-netdev',
        f'tap,id=n1,ifname={TAP_PREFIX}{i},script=no,downscript=no',
        '-device',
        f'virtio-net-pci,netdev=n1,mac=52:54:00:77:00:{i:02x},addr=0x4,romfile=',
        '-drive',
        f'file={disk},if=none,id=d0,format=qcow2,cache=unsafe,discard=unmap',
        '-device',
        'virtio-blk-pci,drive=d0,addr=0x5',
        '-device',
        'virtio-rng-pci,addr=0x6',
        '-serial',
        f'file:{paths["console"]}',
        '-qmp',
        f'unix:{paths["qmp"]},server=on,wait=off',
        '-pidfile',
        paths['pid'],
    ]


def layout_hash(i, img, accel):
    blank = {k: '@' + k for k in ('json', 'pid', 'qmp', 'console', 'disk')}
    argv = qemu_argv(i, img, accel, 0, '@disk', blank)
    return hashlib.sha256(json.dumps(argv).encode()).hexdigest()[:12]


def saved_state(i, img, accel):
    base = os.path.join(img, 'states', f'{node_name(i)}-{accel}-{layout_hash(i, img, accel)}')
    return {'state': base + '.state.zst', 'disk': base + '.qcow2'}


def have_saved_state(i, img, accel):
    s = saved_state(i, img, accel)
    return os.path.exists(s['state']) and os.path.exists(s['disk'])


def free_port(preferred):
    port = preferred
    while port < preferred + 1000:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(('127.0.0.1', port))
                return port
            except OSError:
                port += 1
    raise LabError(f'no free TCP port near {preferred}')


class QMP:
    """Minimal QMP client (one short-lived connection per use)."""

    def __init__(self, path, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise LabError(f'QMP socket {path} does not answer') from None
                time.sleep(0.1)
        self.fh = self.sock.makefile('rwb')
        self._read()  # greeting
        self.cmd('qmp_capabilities')

    def _read(self):
        line = self.fh.readline()
        if not line:
            raise LabError('QMP connection closed')
        return json.loads(line)

    def cmd(self, name, **arguments):
        msg = {'execute': name}
        if arguments:
            msg['arguments'] = arguments
        self.fh.write(json.dumps(msg).encode() + b'\n')
        self.fh.flush()
        while True:
            reply = self._read()
            if 'event' in reply:
                continue
            if 'error' in reply:
                raise LabError(f'QMP {name}: {reply["error"].get("desc")}')
            return reply.get('return')

    def close(self):
        with contextlib.suppress(OSError):
            self.fh.close()
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def qmp_status(node, timeout=5):
    with QMP(node_paths(node['index'])['qmp'], timeout=timeout) as q:
        return q.cmd('query-status')['status']


def start_qemu(i, img, accel, port, disk, incoming=None):
    paths = node_paths(i)
    for f in ('pid', 'qmp'):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(paths[f])
    argv = qemu_argv(i, img, accel, port, disk, paths)
    if incoming:
        argv += ['-incoming', f'exec:zstd -dcq {shlex.quote(incoming)}']
    argv += ['-daemonize']
    proc = run(argv, capture=True, check=False)
    if proc.returncode != 0:
        raise LabError(f'{node_name(i)}: qemu failed to start: {proc.stderr.strip()}')
    pid = read_pid(i)
    if not pid_alive(pid):
        raise LabError(f'{node_name(i)}: qemu exited at once; see {paths["console"]}')
    node = {
        'index': i,
        'name': node_name(i),
        'pid': pid,
        'port': port,
        'accel': accel,
        'image': img,
        'l2_ip': f'{L2_PREFIX}{10 + i}',
        'l2_dev': L2_DEV,
        'l2_mac': f'52:54:00:77:00:{i:02x}',
        'tap': f'{TAP_PREFIX}{i}',
        'started': time.time(),
        'argv': argv,
    }
    save_node(node)
    return node


def save_vm_state(node, img):
    """stop + migrate to a compressed file + copy the disk overlay, then cont."""
    i = node['index']
    dest = saved_state(i, img, node['accel'])
    os.makedirs(os.path.dirname(dest['state']), exist_ok=True)
    tmp_state, tmp_disk = dest['state'] + '.tmp', dest['disk'] + '.tmp'
    with QMP(node_paths(i)['qmp']) as q:
        q.cmd('stop')
        q.cmd('migrate-set-parameters', **{'max-bandwidth': 8 << 30})
        q.cmd('migrate', uri=f'exec:zstd -q -1 -c >{shlex.quote(tmp_state)}')
        deadline = time.monotonic() + 300
        while True:
            info = q.cmd('query-migrate')
            status = info.get('status')
            if status == 'completed':
                break
            if status in ('failed', 'cancelled') or time.monotonic() > deadline:
                q.cmd('cont')
                raise LabError(f'{node["name"]}: saving the VM state failed: {info}')
            time.sleep(0.2)
        shutil.copyfile(node_paths(i)['disk'], tmp_disk)
        q.cmd('cont')
    # drop states of other layouts of this node, then publish the pair
    prefix = f'{node_name(i)}-'
    for name in os.listdir(os.path.dirname(dest['state'])):
        full = os.path.join(os.path.dirname(dest['state']), name)
        if name.startswith(prefix) and full not in (tmp_state, tmp_disk):
            os.unlink(full)
    os.rename(tmp_disk, dest['disk'])
    os.rename(tmp_state, dest['state'])
    return os.path.getsize(dest['state'])


def cold_boot(i, img, accel, port):
    name = node_name(i)
    disk = node_paths(i)['disk']
    with contextlib.suppress(FileNotFoundError):
        os.unlink(disk)
    run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', os.path.join(img, 'rootfs.raw'), disk])
    node = start_qemu(i, img, accel, port, disk)
    log(f'{name}: cold boot started (pid {node["pid"]}, ssh port {port}, {accel})')
    t = wait_ssh(node)
    log(f'{name}: SSH answers after {t:.1f}s')
    start = time.monotonic()
    proc = ssh_run(
        node,
        'systemctl is-system-running --wait; '
        'test -e /var/lib/netmedic-lab/image-imported && echo imported; '
        'systemctl --failed --no-legend --plain | sed "s/^/failed: /"',
        timeout=300,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith('failed:'):
            log(f'{name}: WARNING unit {line}')
    if 'imported' not in proc.stdout:
        raise LabError(f'{name}: the container image was not imported: {proc.stdout} {proc.stderr}')
    log(f'{name}: boot finished (+{time.monotonic() - start:.1f}s); saving the VM state')
    start = time.monotonic()
    size = save_vm_state(node, img)
    set_guest_clock(node)
    log(f'{name}: state saved ({human(size)}) in {time.monotonic() - start:.1f}s')
    return node


def restore(i, img, accel, port):
    name = node_name(i)
    s = saved_state(i, img, accel)
    disk = node_paths(i)['disk']
    with contextlib.suppress(FileNotFoundError):
        os.unlink(disk)
    start = time.monotonic()
    run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', s['disk'], disk])
    node = start_qemu(i, img, accel, port, disk, incoming=s['state'])
    while True:
        status = qmp_status(node)
        if status != 'inmigrate':
            break
        if time.monotonic() - start > 180:
            raise LabError(f'{name}: still inmigrate after 180s')
        time.sleep(0.1)
    if status != 'running':
        with QMP(node_paths(i)['qmp']) as q:
            q.cmd('cont')
    t_load = time.monotonic() - start
    set_guest_clock(node)
    log(f'{name}: restored in {time.monotonic() - start:.1f}s (state loaded and running after {t_load:.1f}s, then SSH + clock reset; port {port})')
    return node


def stop_node(node, timeout=10):
    pid = node.get('pid')
    if pid_alive(pid) and 'image' in node and 'port' in node:
        close_shared(node)  # before its TCP connection goes: a master left half-dead would hang its next client
    if pid_alive(pid):
        with contextlib.suppress(LabError, OSError), QMP(node_paths(node['index'])['qmp'], timeout=3) as q:
            q.cmd('quit')
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not pid_alive(pid):
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
    paths = node_paths(node['index'])
    for f in ('pid', 'qmp', 'disk'):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(paths[f])


def lab_processes():
    """PIDs of lab qemu processes (by process name), whether or not state knows them."""
    pids = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                with open(f'/proc/{entry}/comm') as fh:
                    comm = fh.read().strip()
                if comm.startswith(PROC_PREFIX[:15]):
                    with open(f'/proc/{entry}/cmdline', 'rb') as fh:
                        cmdline = fh.read().replace(b'\0', b' ').decode(errors='replace')
                    if STATE in cmdline:
                        pids.append(int(entry))
    return pids


def rss_kib(pid):
    with contextlib.suppress(OSError), open(f'/proc/{pid}/status') as fh:
        for line in fh:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0
