"""labctl: a lab of real Linux VM nodes (qemu) for the netmedic.k8s collection.

Commands:
  deps                 apt-install what the host needs (only what is missing)
  build [--force]      build the node image (cached, keyed on the recipe)
  up [--nodes N]       start N nodes (default 3); restores saved states when it can
  reset                put every running node back to its clean saved state
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
import concurrent.futures
import contextlib
import fcntl
import hashlib
import inspect
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time

HERE = os.path.dirname(os.path.realpath(__file__))
RECIPE_DIR = os.path.join(HERE, 'recipe')
CACHE = os.environ.get('NETMEDIC_LAB_CACHE') or '/var/cache/netmedic-lab'
STATE = os.environ.get('NETMEDIC_LAB_STATE') or '/run/netmedic-lab'
LAB_LOCK = os.environ.get('NETMEDIC_LAB_LOCK') or '/tmp/netmedic-lab.lock'

SUITE = 'bookworm'
BRIDGE = 'nmlab0'
TAP_PREFIX = 'nmlabt'
L2_PREFIX = '10.77.0.'
L2_DEV = 'eth1'
HOST_L2_IP = '10.77.0.1/24'
CONTAINER_IMAGE = 'localhost/netmedic/busybox:lab'
DISK_SIZE = '6G'
MEM_MB = int(os.environ.get('NETMEDIC_LAB_MEM') or 512)
SSH_PORT_BASE = int(os.environ.get('NETMEDIC_LAB_SSH_PORT_BASE') or 22210)
QEMU = 'qemu-system-x86_64'
PROC_PREFIX = 'nmlab-node-'  # qemu process name (comm) of every lab VM
# Bump when the build steps change in a way the hashed sources do not show.
BUILD_FORMAT = 1

# Host packages (Debian 12) `labctl deps` makes sure of.
# Commands that use the VMs: they hold the shared lab lock (LAB_LOCK) while they run.
LOCKED_COMMANDS = ('build', 'up', 'reset', 'down', 'wipe-cache', 'inject')

HOST_PACKAGES = [
    'qemu-system-x86',
    'qemu-utils',
    'mmdebstrap',
    'e2fsprogs',
    'cpio',
    'gzip',
    'zstd',
    'iproute2',
    'openssh-client',
    'procps',
    'dpkg',
    'apt',
]

# Modules the initramfs loads to reach the root disk (dependencies are added
# from modules.dep; crc32c is only a soft dependency of ext4, hence listed).
INITRAMFS_MODULES = ['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4']

# --------------------------------------------------------------------------
# output


T0 = time.monotonic()
_print_lock = threading.Lock()


def log(msg):
    with _print_lock:
        print(f'[{time.monotonic() - T0:7.1f}s] {msg}', flush=True)


class LabError(Exception):
    pass


@contextlib.contextmanager
def step(title):
    log(f'==> {title}')
    start = time.monotonic()
    try:
        yield
    except BaseException:
        log(f'    FAILED: {title} ({time.monotonic() - start:.1f}s)')
        raise
    log(f'    done: {title} ({time.monotonic() - start:.1f}s)')


def run(cmd, check=True, capture=False, timeout=None, **kw):
    """Run a command; on failure raise LabError with its stderr."""
    if capture:
        kw.setdefault('stdout', subprocess.PIPE)
        kw.setdefault('stderr', subprocess.PIPE)
    try:
        proc = subprocess.run(cmd, check=False, timeout=timeout, text=True, **kw)
    except FileNotFoundError as exc:
        raise LabError(f'{cmd[0]}: not found (run `labctl deps`)') from exc
    if check and proc.returncode != 0:
        err = (proc.stderr or '').strip() if capture else ''
        raise LabError(f'command failed ({proc.returncode}): {shlex.join(cmd)}\n{err}')
    return proc


def out(cmd, **kw):
    return run(cmd, capture=True, **kw).stdout


@contextlib.contextmanager
def flock(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f'waiting for the lock {path} (another labctl is running)')
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _ancestor_pids():
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open(f'/proc/{pid}/status') as fh:
                pid = next(int(line.split()[1]) for line in fh if line.startswith('PPid:'))
        except (OSError, StopIteration, ValueError):
            break
    return pids


def lock_holders(path):
    """PIDs holding a flock on path (from /proc/locks)."""
    try:
        st = os.stat(path)
        with open('/proc/locks') as fh:
            lines = fh.read().splitlines()
    except OSError:
        return set()
    inode = f'{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}'
    holders = set()
    for line in lines:
        f = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF"; waiters have "->" in field 2
        if len(f) >= 6 and f[1] == 'FLOCK' and f[2] != '->' and f[5] == inode:
            holders.add(int(f[4]))
    return holders


def acquire_lab_lock(path=LAB_LOCK):
    """Take the shared lab lock (blocking, with a message). Returns the open file, or None
    when an ancestor process already holds it (we run under its lock)."""
    fh = open(path, 'a+')  # noqa: SIM115 - kept open while the lock is needed
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fh
    except BlockingIOError:
        holders = lock_holders(path)
        if holders & _ancestor_pids():
            fh.close()
            return None
        who = ', '.join(str(p) for p in sorted(holders)) or '?'
        log(f'waiting for the lab lock {path} (held by pid {who}: someone else is using the lab)')
        start = time.monotonic()
        fcntl.flock(fh, fcntl.LOCK_EX)
        log(f'got the lab lock after {time.monotonic() - start:.0f}s')
        return fh


@contextlib.contextmanager
def lab_lock():
    fh = acquire_lab_lock()
    try:
        yield
    finally:
        if fh is not None:
            fh.close()


def du(path):
    """Disk blocks used under path, in bytes (sparse files count as used)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def human(n):
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if n < 1024 or unit == 'GiB':
            return f'{n:.0f} {unit}' if unit == 'B' else f'{n:.1f} {unit}'
        n /= 1024
    return str(n)


# --------------------------------------------------------------------------
# deps


def pkg_installed(pkg):
    proc = run(['dpkg-query', '-W', '-f', '${db:Status-Status}', pkg], check=False, capture=True)
    return proc.returncode == 0 and proc.stdout.strip() == 'installed'


def cmd_deps(_args=None):
    with step('host packages'):
        missing = [p for p in HOST_PACKAGES if not pkg_installed(p)]
        if not missing:
            log('    all present: ' + ' '.join(HOST_PACKAGES))
            return
        log('    missing: ' + ' '.join(missing))
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        run(['apt-get', 'update', '-q'], env=env)
        run(['apt-get', 'install', '-y', '-q', '--no-install-recommends', *missing], env=env)


def require_tools(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise LabError(f'missing host tools: {" ".join(missing)} (run `labctl deps`)')


# --------------------------------------------------------------------------
# recipe and cache key


def apt_candidates(*pkgs):
    """{package: {field: value}} for the candidates of Debian packages (host apt lists)."""

    def show():
        proc = run(['apt-cache', 'show', '--no-all-versions', *pkgs], check=False, capture=True)
        found = {}
        for stanza in proc.stdout.split('\n\n'):
            fields = {}
            for line in stanza.splitlines():
                if ':' in line and not line.startswith(' '):
                    key, _sep, val = line.partition(':')
                    fields.setdefault(key.strip(), val.strip())
            if 'Package' in fields:
                found.setdefault(fields['Package'], fields)
        return found

    found = show()
    if any(p not in found for p in pkgs):
        log(f'    apt-cache lacks {" ".join(p for p in pkgs if p not in found)}: running apt-get update')
        run(['apt-get', 'update', '-q'], env=dict(os.environ, DEBIAN_FRONTEND='noninteractive'), capture=True)
        found = show()
        if any(p not in found for p in pkgs):
            raise LabError(f'Debian packages not found: {" ".join(p for p in pkgs if p not in found)}')
    return found


def read_packages():
    with open(os.path.join(RECIPE_DIR, 'packages.txt')) as fh:
        pkgs = [ln.split('#', 1)[0].strip() for ln in fh]
    return [p for p in pkgs if p]


def recipe():
    """Everything the image depends on; its hash is the cache key."""
    cand = apt_candidates('linux-image-amd64', 'busybox-static')
    meta_version = cand['linux-image-amd64'].get('Version', '')
    meta_depends = cand['linux-image-amd64'].get('Depends', '')
    match = re.match(r'(linux-image-[^\s,(]+)\s*\(=\s*([^)]+)\)', meta_depends)
    if not match:
        raise LabError(f'cannot resolve the kernel package from linux-image-amd64 ({meta_depends!r})')
    kpkg, kversion = match.group(1), match.group(2)
    bb_version = cand['busybox-static'].get('Version', '')
    qemu_version = out([QEMU, '--version']).splitlines()[0].strip()
    files = {}
    for name in sorted(os.listdir(RECIPE_DIR)):
        with open(os.path.join(RECIPE_DIR, name), 'rb') as fh:
            files[name] = hashlib.sha256(fh.read()).hexdigest()
    build_code = ''.join(inspect.getsource(f) for f in BUILD_FUNCTIONS)
    data = {
        'format': BUILD_FORMAT,
        'suite': SUITE,
        'packages': read_packages(),
        'kernel_package': kpkg,
        'kernel_version': kversion,
        'kernel_meta_version': meta_version,
        'kernel_release': kpkg[len('linux-image-') :],
        'busybox_static_version': bb_version,
        'qemu_version': qemu_version,
        'recipe_files': files,
        'build_code': hashlib.sha256(build_code.encode()).hexdigest(),
        'container_image': CONTAINER_IMAGE,
        'disk_size': DISK_SIZE,
    }
    key = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    return key, data


def image_dir(key):
    return os.path.join(CACHE, 'images', key)


IMAGE_FILES = ('vmlinuz', 'initrd.img', 'rootfs.raw', 'id_ed25519', 'id_ed25519.pub', 'recipe.json')


def image_complete(path):
    return all(os.path.exists(os.path.join(path, f)) for f in IMAGE_FILES)


# --------------------------------------------------------------------------
# build


def build_container_image(busybox, dest, name):
    """A docker-archive with one layer: busybox-static and its applet links."""
    applets = sorted(set(out([busybox, '--list']).split()) - {'busybox'})
    mtime = 1700000000

    def add(tar, path, kind=tarfile.DIRTYPE, data=None, mode=0o755, link=''):
        info = tarfile.TarInfo(path)
        info.type, info.mode, info.mtime, info.linkname = kind, mode, mtime, link
        if data is not None:
            info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if data is not None else None)

    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode='w', format=tarfile.GNU_FORMAT) as tar:
        for d in ('bin', 'dev', 'etc', 'proc', 'root', 'sys', 'var'):
            add(tar, d)
        add(tar, 'tmp', mode=0o1777)
        with open(busybox, 'rb') as fh:
            add(tar, 'bin/busybox', tarfile.REGTYPE, fh.read())
        for applet in applets:
            add(tar, f'bin/{applet}', tarfile.SYMTYPE, mode=0o777, link='busybox')
        add(tar, 'etc/passwd', tarfile.REGTYPE, b'root:x:0:0:root:/root:/bin/sh\n', 0o644)
        add(tar, 'etc/group', tarfile.REGTYPE, b'root:x:0:\n', 0o644)
    layer_bytes = layer.getvalue()
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    config = {
        'architecture': 'amd64',
        'os': 'linux',
        'created': '2023-11-14T22:13:20Z',
        'config': {'Cmd': ['sh'], 'Env': ['PATH=/bin'], 'WorkingDir': '/'},
        'rootfs': {'type': 'layers', 'diff_ids': [f'sha256:{diff_id}']},
        'history': [{'created': '2023-11-14T22:13:20Z', 'created_by': 'netmedic labctl: busybox-static'}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_id = hashlib.sha256(config_bytes).hexdigest()
    manifest = [{'Config': f'{config_id}.json', 'RepoTags': [name], 'Layers': [f'{diff_id}/layer.tar']}]
    with tarfile.open(dest, mode='w', format=tarfile.GNU_FORMAT) as tar:
        add(tar, diff_id)
        add(tar, f'{diff_id}/layer.tar', tarfile.REGTYPE, layer_bytes, 0o644)
        add(tar, f'{config_id}.json', tarfile.REGTYPE, config_bytes, 0o644)
        add(tar, 'manifest.json', tarfile.REGTYPE, json.dumps(manifest).encode(), 0o644)
    return len(applets)


def build_initramfs(rootfs, kver, busybox, dest, workdir):
    """busybox + the storage modules (dependencies first) + recipe/init."""
    moddir = os.path.join(rootfs, 'usr/lib/modules', kver)
    deps = {}
    with open(os.path.join(moddir, 'modules.dep')) as fh:
        for line in fh:
            path, _sep, rest = line.partition(':')
            deps[path.strip()] = rest.split()
    by_name = {os.path.basename(p).split('.ko')[0].replace('-', '_'): p for p in deps}
    with open(os.path.join(moddir, 'modules.builtin')) as fh:
        builtin = {os.path.basename(ln.strip()).split('.ko')[0].replace('-', '_') for ln in fh}
    order = []

    def visit(path):
        for dep in deps[path]:
            visit(dep)
        if path not in order:
            order.append(path)

    for name in INITRAMFS_MODULES:
        if name in builtin:
            continue
        if name not in by_name:
            raise LabError(f'initramfs: module {name} not found in {moddir}')
        visit(by_name[name])
    root = os.path.join(workdir, 'initramfs')
    shutil.rmtree(root, ignore_errors=True)
    for d in ('bin', 'dev', 'modules', 'proc', 'sys', 'newroot'):
        os.makedirs(os.path.join(root, d))
    os.mknod(os.path.join(root, 'dev/console'), 0o600 | 0o020000, os.makedev(5, 1))
    shutil.copy2(busybox, os.path.join(root, 'bin/busybox'))
    os.symlink('busybox', os.path.join(root, 'bin/sh'))  # /init is a #!/bin/sh script
    shutil.copy2(os.path.join(RECIPE_DIR, 'init'), os.path.join(root, 'init'))
    os.chmod(os.path.join(root, 'init'), 0o755)
    names = []
    for path in order:
        name = os.path.basename(path).split('.ko')[0]
        src = os.path.join(moddir, path)
        if path.endswith(('.ko.xz', '.ko.zst')):
            raise LabError(f'compressed module {path}: teach build_initramfs to decompress it')
        shutil.copy2(src, os.path.join(root, 'modules', f'{name}.ko'))
        names.append(name)
    with open(os.path.join(root, 'modules.order'), 'w') as fh:
        fh.write('\n'.join(names) + '\n')
    run(['sh', '-c', 'find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet | gzip -9 >"$1"', 'sh', os.path.abspath(dest)], cwd=root)
    return names


def build_image(key, data, dest):
    """The whole build, into dest (a fresh directory)."""
    work = dest + '.work'
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    os.makedirs(dest)
    kver = data['kernel_release']
    with step(f'download {data["kernel_package"]} {data["kernel_version"]} and busybox-static'):
        debs = os.path.join(work, 'debs')
        os.makedirs(debs)
        os.chmod(debs, 0o777)
        run(
            ['apt-get', 'download', '-q', f'{data["kernel_package"]}={data["kernel_version"]}', f'busybox-static={data["busybox_static_version"]}'],
            cwd=debs,
            capture=True,
        )
        for deb in os.listdir(debs):
            target = 'kernel' if deb.startswith('linux-image') else 'busybox'
            run(['dpkg-deb', '-x', os.path.join(debs, deb), os.path.join(work, target)])
        busybox = os.path.join(work, 'busybox/bin/busybox')
        shutil.copy2(os.path.join(work, 'kernel/boot', f'vmlinuz-{kver}'), os.path.join(dest, 'vmlinuz'))
    with step('SSH key pair and the busybox container image'):
        run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'netmedic-lab', '-f', os.path.join(dest, 'id_ed25519')])
        image_tar = os.path.join(dest, 'busybox-image.tar')
        n = build_container_image(busybox, image_tar, CONTAINER_IMAGE)
        log(f'    {CONTAINER_IMAGE}: busybox-static with {n} applets, {human(os.path.getsize(image_tar))}')
    rootfs = os.path.join(work, 'rootfs')
    with step(f'mmdebstrap {SUITE} minbase + {len(data["packages"])} packages (slowest step)'):
        cmd = [
            'mmdebstrap',
            '--variant=minbase',
            '--mode=root',
            '--include=' + ','.join(data['packages']),
            '--aptopt=Acquire::Check-Valid-Until "false"',
            '--dpkgopt=path-exclude=/usr/share/doc/*',
            '--dpkgopt=path-include=/usr/share/doc/*/copyright',
            '--dpkgopt=path-exclude=/usr/share/man/*',
            '--dpkgopt=path-exclude=/usr/share/info/*',
            '--dpkgopt=path-exclude=/usr/share/locale/*',
            '--dpkgopt=path-exclude=/usr/share/lintian/*',
            SUITE,
            rootfs,
        ]
        if os.environ.get('NETMEDIC_LAB_MIRROR'):
            cmd.append(os.environ['NETMEDIC_LAB_MIRROR'])
        run(cmd)
    with step('customize the rootfs (modules, units, SSH, trimming)'):
        env = dict(
            os.environ,
            KVER=kver,
            KERNEL_DIR=os.path.join(work, 'kernel'),
            RECIPE_DIR=RECIPE_DIR,
            PUBKEY=os.path.join(dest, 'id_ed25519.pub'),
            IMAGE_TAR=image_tar,
            IMAGE_NAME=CONTAINER_IMAGE,
        )
        run(['sh', os.path.join(RECIPE_DIR, 'customize.sh'), rootfs], env=env)
    with step('initramfs'):
        names = build_initramfs(rootfs, kver, busybox, os.path.join(dest, 'initrd.img'), work)
        log(f'    modules: {" ".join(names)}')
    with step(f'ext4 root disk ({DISK_SIZE}, sparse)'):
        raw = os.path.join(dest, 'rootfs.raw')
        run(['mkfs.ext4', '-q', '-F', '-L', 'nmlab-root', '-d', rootfs, raw, DISK_SIZE], capture=True)
    with open(os.path.join(dest, 'recipe.json'), 'w') as fh:
        json.dump(dict(data, key=key, built=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())), fh, indent=2)
    shutil.rmtree(work)


BUILD_FUNCTIONS = [build_container_image, build_initramfs, build_image]


def images_in_use():
    used = set()
    for node in load_nodes():
        used.add(os.path.basename(node.get('image', '')))
    return used


def ensure_image(force=False):
    require_tools(QEMU, 'qemu-img', 'mmdebstrap', 'mkfs.ext4', 'cpio', 'zstd', 'ssh-keygen')
    with step('resolve the recipe'):
        key, data = recipe()
        log(f'    key {key}: kernel {data["kernel_package"]} {data["kernel_version"]}, {data["qemu_version"]}')
    dest = image_dir(key)
    if image_complete(dest) and not force:
        log(f'image cached: {dest}')
        return dest
    with flock(os.path.join(CACHE, '.build.lock')):
        if image_complete(dest) and not force:
            return dest
        tmp = dest + '.tmp'
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(tmp + '.work', ignore_errors=True)
        with step(f'build image {key}'):
            build_image(key, data, tmp)
        if os.path.exists(dest):
            shutil.rmtree(dest)
        os.rename(tmp, dest)
        # keep one image: older ones (and their saved states) go, unless a VM runs on them
        in_use = images_in_use()
        for old in os.listdir(os.path.join(CACHE, 'images')):
            if old != key and old not in in_use:
                shutil.rmtree(os.path.join(CACHE, 'images', old), ignore_errors=True)
                log(f'    removed old image {old}')
    log(f'image ready: {dest} ({human(du(dest))})')
    return dest


def cmd_build(args):
    ensure_image(force=args.force)


# --------------------------------------------------------------------------
# acceleration


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


# --------------------------------------------------------------------------
# nodes


def node_name(i):
    return f'lab-node-{i}'


def node_paths(i):
    base = os.path.join(STATE, f'node-{i}')
    return {
        'json': base + '.json',
        'pid': base + '.pid',
        'qmp': base + '.qmp',
        'console': base + '.console.log',
        'disk': base + '.qcow2',
    }


def load_nodes():
    nodes = []
    if not os.path.isdir(STATE):
        return nodes
    for name in os.listdir(STATE):
        if re.fullmatch(r'node-\d+\.json', name):
            with contextlib.suppress(OSError, ValueError), open(os.path.join(STATE, name)) as fh:
                nodes.append(json.load(fh))
    return sorted(nodes, key=lambda n: n['index'])


def save_node(node):
    path = node_paths(node['index'])['json']
    with open(path + '.tmp', 'w') as fh:
        json.dump(node, fh, indent=2)
    os.rename(path + '.tmp', path)


def pid_alive(pid):
    if not pid:
        return False
    try:
        with open(f'/proc/{pid}/comm') as fh:
            return fh.read().strip().startswith(PROC_PREFIX[:15])
    except OSError:
        return False


def read_pid(i):
    with contextlib.suppress(OSError, ValueError), open(node_paths(i)['pid']) as fh:
        return int(fh.read().strip())
    return None


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


def ssh_base(node, key):
    return [
        'ssh',
        '-i',
        key,
        '-p',
        str(node['port']),
        '-o',
        'BatchMode=yes',
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        'StrictHostKeyChecking=no',
        '-o',
        'UserKnownHostsFile=/dev/null',
        '-o',
        'LogLevel=ERROR',
        '-o',
        'ConnectTimeout=10',
        '-o',
        'ServerAliveInterval=5',
        '-o',
        'ServerAliveCountMax=3',
        'root@127.0.0.1',
    ]


def ssh_run(node, command, timeout=60, check=True):
    key = os.path.join(node['image'], 'id_ed25519')
    try:
        proc = subprocess.run([*ssh_base(node, key), command], check=False, text=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f'{node["name"]}: ssh timed out after {timeout}s: {command}') from exc
    if check and proc.returncode != 0:
        raise LabError(f'{node["name"]}: ssh {command!r} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}')
    return proc


def wait_ssh(node, timeout=420):
    start = next_note = time.monotonic()
    while True:
        if time.monotonic() >= next_note + 20:
            next_note = time.monotonic()
            log(f'{node["name"]}: booting, no SSH yet ({next_note - start:.0f}s)')
        if not pid_alive(node['pid']):
            raise LabError(f'{node["name"]}: qemu exited; see {node_paths(node["index"])["console"]}')
        with contextlib.suppress(LabError):
            proc = ssh_run(node, 'echo ok', timeout=30, check=False)
            if proc.stdout.strip() == 'ok':
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise LabError(f'{node["name"]}: no SSH after {timeout}s; see {node_paths(node["index"])["console"]}')
        time.sleep(2)


def _set_clock_once(node, timeout=30):
    """One SSH session: the guest says it is ready, then we send the host's time,
    so the SSH connection set-up (seconds under TCG) does not count."""
    key = os.path.join(node['image'], 'id_ed25519')
    cmd = [*ssh_base(node, key), 'echo ready; read t && date -u -s "@$t" >/dev/null && echo set']
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        if proc.stdout.readline().strip() == 'ready':
            proc.stdin.write(f'{time.time():.3f}\n')
            proc.stdin.flush()
        stdout, stderr = proc.communicate()
    finally:
        timer.cancel()
    if proc.returncode != 0 or 'set' not in stdout:
        raise LabError(f'{node["name"]}: setting the clock failed ({proc.returncode}): {stderr.strip()}')


def set_guest_clock(node, timeout=120):
    """The saved state carries the guest clock of the moment it was saved: set it
    to the host's time (this is also the first SSH round trip after a restore)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _set_clock_once(node)
            return
        except LabError:
            if time.monotonic() > deadline or not pid_alive(node['pid']):
                raise
            time.sleep(0.5)


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


# --------------------------------------------------------------------------
# host network: bridge nmlab0 + one tap per node


def sysfs_write(path, value):
    with contextlib.suppress(OSError), open(path, 'w') as fh:
        fh.write(value)


def net_up(indexes):
    if not os.path.exists(f'/sys/class/net/{BRIDGE}'):
        run(['ip', 'link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0'])
    # keep the host quiet on the segment: the guests' neighbour tables show only guests
    sysfs_write(f'/proc/sys/net/ipv6/conf/{BRIDGE}/disable_ipv6', '1')
    if os.environ.get('NETMEDIC_LAB_HOST_IP') == '1':
        run(['ip', 'addr', 'replace', HOST_L2_IP, 'dev', BRIDGE])
    run(['ip', 'link', 'set', BRIDGE, 'up'])
    for i in indexes:
        tap = f'{TAP_PREFIX}{i}'
        if not os.path.exists(f'/sys/class/net/{tap}'):
            run(['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap'])
        sysfs_write(f'/proc/sys/net/ipv6/conf/{tap}/disable_ipv6', '1')
        run(['ip', 'link', 'set', tap, 'master', BRIDGE])
        run(['ip', 'link', 'set', tap, 'up'])


def net_down():
    removed = []
    for name in sorted(os.listdir('/sys/class/net')):
        if re.fullmatch(TAP_PREFIX + r'\d+', name):
            run(['ip', 'link', 'del', name], check=False)
            removed.append(name)
    if os.path.exists(f'/sys/class/net/{BRIDGE}'):
        run(['ip', 'link', 'del', BRIDGE], check=False)
        removed.append(BRIDGE)
    return removed


# --------------------------------------------------------------------------
# inventory


def inventory_path():
    return os.path.join(STATE, 'inventory.yml')


def write_inventory(nodes):
    q = json.dumps  # JSON scalars are valid YAML scalars
    key = os.path.join(nodes[0]['image'], 'id_ed25519') if nodes else ''
    ssh_args = (
        '-o ServerAliveInterval=5 -o ServerAliveCountMax=3 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes'
    )
    lines = [
        '# Written by lab/vm/labctl (`labctl up`/`reset`); regenerated on every run.',
        'all:',
        '  vars:',
        '    ansible_user: root',
        f'    ansible_ssh_private_key_file: {q(key)}',
        '    ansible_python_interpreter: /usr/bin/python3',
        f'    ansible_ssh_common_args: {q(ssh_args)}',
        '    ansible_pipelining: true',
        f'    lab_container_image: {q(CONTAINER_IMAGE)}',
        f'    lab_l2_prefix: {q(L2_PREFIX + "0/24")}',
        '  children:',
        '    lab_nodes:',
        '      hosts:',
    ]
    for n in nodes:
        lines += [
            f'        {n["name"]}:',
            '          ansible_host: 127.0.0.1',
            f'          ansible_port: {n["port"]}',
            f'          lab_l2_ip: {q(n["l2_ip"])}',
            f'          lab_l2_dev: {q(n["l2_dev"])}',
            f'          lab_l2_mac: {q(n["l2_mac"])}',
        ]
    path = inventory_path()
    with open(path + '.tmp', 'w') as fh:
        fh.write('\n'.join(lines) + '\n')
    os.rename(path + '.tmp', path)
    return path


# --------------------------------------------------------------------------
# commands


def running_nodes():
    return [n for n in load_nodes() if pid_alive(n.get('pid'))]


def parallel(fn, items):
    """Run fn over items in threads; raise the first error after all finished."""
    results, errors = [], []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        futures = [pool.submit(fn, item) for item in items]
        for fut in concurrent.futures.as_completed(futures):
            try:
                results.append(fut.result())
            except Exception as exc:
                errors.append(exc)
                log(f'ERROR: {exc}')
    if errors:
        raise errors[0]
    return results


def summary(nodes):
    for n in nodes:
        log(f'    {n["name"]}: ssh -p {n["port"]} root@127.0.0.1  {n["l2_dev"]}={n["l2_ip"]}  pid {n["pid"]}')
    log(f'inventory: {write_inventory(nodes)}')


def cmd_up(args):
    if args.nodes < 1 or args.nodes > 20:
        raise LabError('--nodes must be between 1 and 20')
    os.makedirs(STATE, exist_ok=True)
    start = time.monotonic()
    img = ensure_image()
    with flock(os.path.join(STATE, '.lock')):
        accel = choose_accel(img)
        running = {n['index']: n for n in running_nodes()}
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
        nodes = running_nodes()
        summary(nodes)
    log(f'lab up: {len(nodes)} node(s) in {time.monotonic() - start:.1f}s')


def cmd_reset(_args):
    start = time.monotonic()
    with flock(os.path.join(STATE, '.lock')):
        nodes = load_nodes()
        if not nodes:
            raise LabError('no lab is up (run `labctl up`)')

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
        summary(running_nodes())
    log(f'lab reset in {time.monotonic() - start:.1f}s')


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


def rss_kib(pid):
    with contextlib.suppress(OSError), open(f'/proc/{pid}/status') as fh:
        for line in fh:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


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


def find_node(spec):
    m = re.fullmatch(r'(?:lab-)?(?:node-?)?(\d+)', spec)
    if not m:
        raise LabError(f'unknown node {spec!r} (use lab-node-2, node-2 or 2)')
    i = int(m.group(1))
    for n in load_nodes():
        if n['index'] == i:
            return n
    raise LabError(f'{node_name(i)} is not up')


def cmd_ssh(args):
    node = find_node(args.node)
    argv = ssh_base(node, os.path.join(node['image'], 'id_ed25519'))
    if args.command:
        argv += ['--', *args.command]
    elif sys.stdin.isatty():
        argv.insert(1, '-t')
    os.execvp('ssh', argv)


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


# --------------------------------------------------------------------------
# fault injection (catalog N-1 .. N-8 on running nodes)

FAULT_IMAGE = CONTAINER_IMAGE
WRONG_MAC = '52:54:00:77:de:ad'


def _fault_id(text):
    return hashlib.sha256(text.encode()).hexdigest()


def _sh_json(obj):
    return shlex.quote(json.dumps(obj, separators=(',', ':')))


# Shell helpers every fault script may use (POSIX sh on the node).
FAULT_LIB = r"""
say() { printf '%s\n' "$*"; }
# live_container ID: a real running container in containerd's k8s.io namespace
live_container() {
  if ! ctr -n k8s.io c info "$1" >/dev/null 2>&1; then
    ctr -n k8s.io run -d "$IMAGE" "$1" sleep 86400 >/dev/null
  elif ! ctr -n k8s.io t ls | awk -v id="$1" '$1 == id && $3 == "RUNNING" {f = 1} END {exit !f}'; then
    ctr -n k8s.io t rm -f "$1" >/dev/null 2>&1 || true
    ctr -n k8s.io t start -d "$1" >/dev/null
  fi
}
# allocate NETCONF DIR ID: one address for ID from the real host-local plugin (if ID has none
# yet), file mtime set to an hour ago (older than any IPAM GC grace period); prints the IP
allocate() {
  f=$(grep -ls -- "$3" "$2"/* 2>/dev/null | head -n 1) || true
  if [ -z "$f" ]; then
    out=$(printf '%s' "$1" | CNI_COMMAND=ADD CNI_CONTAINERID="$3" CNI_NETNS="/var/run/netns/$3" \
          CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni /usr/lib/cni/host-local) || { say "host-local ADD failed: $out" >&2; return 1; }
    f=$(grep -ls -- "$3" "$2"/* | head -n 1)
    touch -d '1 hour ago' "$f"
  fi
  basename "$f"
}
write_file() {  # PATH CONTENT: replace only when different
  if [ "$(cat "$1" 2>/dev/null)" != "$2" ]; then mkdir -p "$(dirname "$1")"; printf '%s\n' "$2" > "$1.tmp"; mv "$1.tmp" "$1"; fi
}
"""


def fault_n1(node, _nodes):
    i = node['index']
    ipam = {'type': 'host-local', 'ranges': [[{'subnet': f'10.244.{i}.0/24', 'rangeStart': f'10.244.{i}.10',
                                               'rangeEnd': f'10.244.{i}.17', 'gateway': f'10.244.{i}.1'}]]}
    netconf = {'cniVersion': '0.4.0', 'name': 'lab-pod-network', 'type': 'bridge', 'bridge': 'cbr0', 'isGateway': True, 'ipam': ipam}
    conflist = {'cniVersion': '0.4.0', 'name': 'lab-pod-network',
                'plugins': [{'type': 'bridge', 'bridge': 'cbr0', 'isGateway': True, 'ipam': ipam},
                            {'type': 'portmap', 'capabilities': {'portMappings': True}}]}
    live = [_fault_id(f'netmedic-lab live pod {i}-{k}') for k in (1, 2)]
    leaked = [_fault_id(f'netmedic-lab leaked pod {i}-{k}') for k in range(1, 7)]
    return f"""
dir=/var/lib/cni/networks/lab-pod-network
netconf={_sh_json(netconf)}
write_file /etc/cni/net.d/10-lab-pod-network.conflist {_sh_json(conflist)}
mkdir -p "$dir"
for id in {' '.join(live)}; do
  live_container "$id"
  say "N-1: live container ${{id%"${{id#????????????}}"}} holds $(allocate "$netconf" "$dir" "$id")"
done
for id in {' '.join(leaked)}; do
  say "N-1: leaked (no such container) ${{id%"${{id#????????????}}"}} holds $(allocate "$netconf" "$dir" "$id")"
done
probe=$(printf '%s' "$netconf" | CNI_COMMAND=ADD CNI_CONTAINERID=netmedic-lab-probe CNI_NETNS=/var/run/netns/probe \\
        CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni /usr/lib/cni/host-local 2>&1) && {{
  printf '%s' "$netconf" | CNI_COMMAND=DEL CNI_CONTAINERID=netmedic-lab-probe CNI_NETNS=/var/run/netns/probe \\
    CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni /usr/lib/cni/host-local >/dev/null 2>&1
  say "N-1: FAILED: the range still has room"; exit 1; }}
say "N-1: a new pod now gets: $(printf '%s' "$probe" | sed -n 's/.*"msg": *"\\([^"]*\\)".*/\\1/p')"
"""


def fault_n2(node, _nodes):
    i = node['index']
    return f"""
modprobe nf_conntrack
sysctl -qw net.netfilter.nf_conntrack_max=64
k=0
while [ "$(cat /proc/sys/net/netfilter/nf_conntrack_count)" -lt 56 ] && [ $k -lt 300 ]; do
  k=$((k + 1))
  conntrack -I -p udp -s 10.244.{i}.20 -d 10.96.0.10 --sport $((40000 + k)) --dport 53 -t 86400 -u ASSURED >/dev/null 2>&1 || true
done
say "N-2: nf_conntrack_max=$(cat /proc/sys/net/netfilter/nf_conntrack_max) nf_conntrack_count=$(cat /proc/sys/net/netfilter/nf_conntrack_count)"
[ "$(cat /proc/sys/net/netfilter/nf_conntrack_count)" -ge 56 ]
"""


def fault_n3(_node, _nodes):
    return """
sysctl -qw net.ipv4.ip_local_port_range="30000 60999"
printf '\\n' > /proc/sys/net/ipv4/ip_local_reserved_ports
say "N-3: ip_local_port_range=$(sysctl -n net.ipv4.ip_local_port_range | tr '\\t' ' ') reserved='$(sysctl -n net.ipv4.ip_local_reserved_ports)'"
"""


def fault_n4(_node, _nodes):
    return """
modprobe -a ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh
for f in /etc/modules-load.d/*.conf; do
  if grep -qs '^ip_vs_lc' "$f"; then sed -i '/^ip_vs_lc/d' "$f"; fi
done
if grep -q '^ip_vs_lc ' /proc/modules; then rmmod ip_vs_lc; fi
say "N-4: loaded: $(awk '$1 ~ /^ip_vs/ {print $1}' /proc/modules | sort | tr '\\n' ' ')(no ip_vs_lc)"
"""


def fault_n5(node, _nodes):
    i = node['index']
    return f"""
modprobe -a ip_vs ip_vs_rr
ipvsadm -L -n -u 10.96.0.10:53 >/dev/null 2>&1 || ipvsadm -A -u 10.96.0.10:53 -s rr
ipvsadm -L -n -u 10.96.0.10:53 | grep -q '10.244.{i}.53:53' || ipvsadm -a -u 10.96.0.10:53 -r 10.244.{i}.53:53 -m
ipvsadm --set 900 120 300
say "N-5: $(ipvsadm -L --timeout) with UDP service 10.96.0.10:53"
"""


def fault_n6(node, nodes):
    others = [n for n in nodes if n['index'] != node['index']]
    if node is not nodes[0]:
        return ''  # one node holds the stale entry (for the next node's address)
    if not others:
        return 'say "N-6: needs two nodes: nothing planted"; exit 1\n'
    peer = others[0]
    return f"""
ip neigh replace {peer['l2_ip']} lladdr {WRONG_MAC} dev {peer['l2_dev']} nud permanent
say "N-6: $(ip neigh show {peer['l2_ip']} dev {peer['l2_dev']}) ({peer['name']} really has {peer['l2_mac']})"
"""


def fault_n7(node, _nodes):
    i = node['index']
    conflist = {'name': 'cb0', 'cniVersion': '0.3.1',
                'plugins': [{'type': 'flannel', 'delegate': {'hairpinMode': True, 'isDefaultGateway': True}},
                            {'type': 'portmap', 'capabilities': {'portMappings': True}}]}
    netconf = {'cniVersion': '0.3.1', 'name': 'cb0', 'type': 'bridge', 'bridge': 'cni0',
               'ipam': {'type': 'host-local', 'ranges': [[{'subnet': f'172.20.{i}.0/24'}]], 'dataDir': '/var/lib/cni/networks'}}
    subnet_env = f'FLANNEL_NETWORK=172.20.0.0/16\nFLANNEL_SUBNET=172.20.{i}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true'
    pod = _fault_id(f'netmedic-lab flannel pod {i}')
    return f"""
write_file /etc/cni/net.d/20-flannel.conflist {_sh_json(conflist)}
write_file /run/flannel/subnet.env {shlex.quote(subnet_env)}
mkdir -p /var/lib/cni/networks/cb0
live_container {pod}
say "N-7: Flannel network cb0 on disk: /var/lib/cni/networks/cb0/$(allocate {_sh_json(netconf)} /var/lib/cni/networks/cb0 {pod}) \\
($(stat -f -c %T /var/lib/cni/networks/cb0), not tmpfs)"
"""


def fault_n8(node, _nodes):
    i = node['index']
    return f"""
ip link show cbr0 >/dev/null 2>&1 || ip link add cbr0 type bridge
ip addr replace 10.244.{i}.1/24 dev cbr0
ip link show nmlab-veth0 >/dev/null 2>&1 || ip link add nmlab-veth0 type veth peer name nmlab-veth1
ip link set nmlab-veth0 master cbr0
ip link set nmlab-veth0 up
ip link set cbr0 down
say "N-8: $(ip -br link show cbr0)"
"""


# (catalog ID, short name, what is planted, function)
FAULTS = [
    ('N-1', 'leaked-ips', 'host-local network lab-pod-network (8 addresses): 2 live containers + 6 allocations of '
     'containers that do not exist, made by the real /usr/lib/cni/host-local, files backdated 1 h: range exhausted', fault_n1),
    ('N-2', 'conntrack-low', 'nf_conntrack_max=64 and 56 ASSURED UDP entries (87 % full)', fault_n2),
    ('N-3', 'port-range', 'ip_local_port_range 30000-60999 (overlaps NodePorts 30000-32767), no reserved ports', fault_n3),
    ('N-4', 'ipvs-module', 'ip_vs, ip_vs_rr/wrr/sh loaded, ip_vs_lc not loaded and not in modules-load.d', fault_n4),
    ('N-5', 'ipvs-udp-timeout', 'IPVS UDP service 10.96.0.10:53 (rr) and timeouts 900 120 300', fault_n5),
    ('N-6', 'stale-neighbor', 'first node only: PERMANENT neighbor entry for the next node\'s L2 IP with MAC ' + WRONG_MAC, fault_n6),
    ('N-7', 'flannel-disk-ipam', 'Flannel conflist cb0 (no dataDir), /run/flannel/subnet.env, an allocation of a live '
     'container in /var/lib/cni/networks/cb0 (on disk, not tmpfs)', fault_n7),
    ('N-8', 'bridge-down', 'bridge cbr0 (10.244.<n>.1/24, one veth port) administratively down', fault_n8),
]


def select_faults(names):
    if not names or 'all' in names:
        return list(FAULTS)
    chosen = []
    for name in names:
        key = name.strip().upper()
        match = [f for f in FAULTS if key in (f[0], f[0].replace('-', ''), f[1].upper())]
        if not match:
            raise LabError(f'unknown fault {name!r}; `labctl inject --list` shows them')
        if match[0] not in chosen:
            chosen.append(match[0])
    return sorted(chosen, key=FAULTS.index)


def fault_script(node, nodes, faults):
    parts = ['IMAGE=' + shlex.quote(FAULT_IMAGE), FAULT_LIB, 'rc=0']
    for fid, _name, _what, fn in faults:
        body = fn(node, nodes)
        if body:
            parts.append(f'( set -eu\n{body}) || {{ say "{fid}: FAILED"; rc=1; }}')
    parts.append('exit $rc')
    return '\n'.join(parts)


def cmd_inject(args):
    if args.list:
        for fid, name, what, _fn in FAULTS:
            print(f'{fid:<4} {name:<18} {what}')
        return
    faults = select_faults(args.faults)
    nodes = running_nodes()
    if not nodes:
        raise LabError('no lab is up (run `labctl up`)')
    if args.nodes:
        wanted = {find_node(spec)['index'] for spec in args.nodes.split(',')}
        nodes = [n for n in nodes if n['index'] in wanted]
    start = time.monotonic()
    ids = ' '.join(f[0] for f in faults)
    failed = []

    def plant(node):
        proc = ssh_run(node, fault_script(node, nodes, faults), timeout=600, check=False)
        for line in proc.stdout.splitlines():
            log(f'    {node["name"]}  {line}')
        if proc.returncode != 0:
            failed.append(node['name'])
            for line in proc.stderr.strip().splitlines():
                log(f'    {node["name"]}  stderr: {line}')

    with step(f'inject {ids} on {" ".join(n["name"] for n in nodes)}'):
        parallel(plant, nodes)
    if failed:
        raise LabError(f'fault injection failed on {" ".join(sorted(failed))} (see FAILED lines above)')
    log(f'faults planted in {time.monotonic() - start:.1f}s; `labctl reset` removes them all')


def cmd_locked(args):
    exec_locked(args.command, LAB_LOCK, 'labctl')


def exec_locked(command, lock_path, prog):
    """``PROG locked -- COMMAND``: take the lock at ``lock_path`` and exec COMMAND holding it (labctl and k8sctl)."""
    command = command[1:] if command[:1] == ['--'] else command
    if not command:
        raise LabError('usage: %s locked -- COMMAND [ARG...]' % prog)
    fh = acquire_lab_lock(lock_path)
    if fh is not None:
        os.set_inheritable(fh.fileno(), True)  # exec keeps the lock: the command holds it
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        raise LabError(f'{command[0]}: {exc}') from exc


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
    p.set_defaults(fn=cmd_up)
    sub.add_parser('reset', help='restore every node to its clean saved state').set_defaults(fn=cmd_reset)
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
    try:
        if args.cmd in LOCKED_COMMANDS and not (args.cmd == 'inject' and args.list):
            with lab_lock():
                args.fn(args)
        else:
            args.fn(args)
    except LabError as exc:
        log(f'ERROR: {exc}')
        return 1
    except KeyboardInterrupt:
        log('interrupted')
        return 130
    except BrokenPipeError:  # e.g. `labctl status | head`
        return 0
    return 0


if __name__ == '__main__':
    sys.exit(main())
