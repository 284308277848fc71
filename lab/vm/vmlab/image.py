"""The node image: host packages (`deps`), the recipe and its cache key, the build (`build`).

The source of BUILD_FUNCTIONS is part of the cache key: changing it rebuilds the image.
"""

import glob
import hashlib
import inspect
import io
import json
import os
import re
import shutil
import tarfile
import time

from .common import LabError, du, human, log, out, run, step
from .config import APT_LOCK, BUILD_FORMAT, CACHE, CONTAINER_IMAGE, DISK_SIZE, HERE, HOST_PACKAGES, INITRAMFS_MODULES, QEMU, RECIPE_DIR, SUITE
from .lock import flock
from .nodes import load_nodes


def pkg_installed(pkg):
    proc = run(['dpkg-query', '-W', '-f', '${db:Status-Status}', pkg], check=False, capture=True)
    return proc.returncode == 0 and proc.stdout.strip() == 'installed'


def cmd_deps(_args=None):
    with step('host packages'):
        missing = [p for p in HOST_PACKAGES if not pkg_installed(p)]
        if not missing:
            log('    all present: ' + ' '.join(HOST_PACKAGES))
        else:
            log('    missing: ' + ' '.join(missing))
            env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
            run([*APT_LOCK, 'apt-get', 'update', '-q'], env=env)
            run([*APT_LOCK, 'apt-get', 'install', '-y', '-q', '--no-install-recommends', *missing], env=env)
    k8s_binaries()


def k8s_binaries():
    """The real control plane's binaries when missing (issue 15): `lab/k8s/k8sctl build --if-missing` is a
    cached no-op, adopts an earlier build or links from a warm Go cache; it never starts a cold build.
    Not fatal for the VM lab, which does not need them."""
    k8sctl = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'k8s', 'k8sctl')
    with step('Kubernetes binaries (lab/k8s/k8sctl build --if-missing)'):
        proc = run([k8sctl, 'build', '--if-missing'], check=False, timeout=3600)
        if proc.returncode != 0:
            log(f'    k8sctl build --if-missing failed ({proc.returncode}); the VM lab does not need it')


def require_tools(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise LabError(f'missing host tools: {" ".join(missing)} (run `labctl deps`)')


def apt_candidates(*pkgs):
    """{package: {field: value}} for the candidates of Debian packages (host apt lists)."""

    def show():
        proc = run([*APT_LOCK, 'apt-cache', 'show', '--no-all-versions', *pkgs], check=False, capture=True)
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
        run([*APT_LOCK, 'apt-get', 'update', '-q'], env=dict(os.environ, DEBIAN_FRONTEND='noninteractive'), capture=True)
        found = show()
        if any(p not in found for p in pkgs):
            raise LabError(f'Debian packages not found: {" ".join(p for p in pkgs if p not in found)}')
    return found


def read_packages():
    with open(os.path.join(RECIPE_DIR, 'packages.txt')) as fh:
        pkgs = [ln.split('#', 1)[0].strip() for ln in fh]
    return [p for p in pkgs if p]


def controller_module_utils():
    """(ansible-core version, its module_utils directory) of the checkout's venv, or ('', '').

    The image build compiles these into the guest's bytecode cache (recipe/nmlab_zipcache.py):
    every module run ships them in its AnsiballZ zip. A version the image was not built
    with still works, only its module_utils are compiled on the node at first use."""
    repo = os.path.dirname(os.path.dirname(HERE))
    for release in sorted(glob.glob(os.path.join(repo, '.venv', 'lib', 'python3*', 'site-packages', 'ansible', 'release.py'))):
        with open(release) as fh:
            match = re.search(r"^__version__ = ['\"]([^'\"]+)", fh.read(), re.M)
        if match:
            return match.group(1), os.path.join(os.path.dirname(release), 'module_utils')
    return '', ''


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
        'ansible_core_version': controller_module_utils()[0],
    }
    key = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    return key, data


def image_dir(key):
    return os.path.join(CACHE, 'images', key)


IMAGE_FILES = ('vmlinuz', 'initrd.img', 'rootfs.raw', 'id_ed25519', 'id_ed25519.pub', 'recipe.json')


def image_complete(path):
    return all(os.path.exists(os.path.join(path, f)) for f in IMAGE_FILES)


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
            [*APT_LOCK, 'apt-get', 'download', '-q', f'{data["kernel_package"]}={data["kernel_version"]}', f'busybox-static={data["busybox_static_version"]}'],
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
            ANSIBLE_MODULE_UTILS=controller_module_utils()[1],
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
