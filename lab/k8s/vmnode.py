"""vmnode: the real kubelet on a VM lab node, registered with the host's control plane (issue 15 item 3).

Usage (the VM lab and the control plane up; run under both locks, e.g.
`lab/k8s/k8sctl locked -- lab/vm/labctl locked -- python3 lab/k8s/vmnode.py join 1`):

  vmnode.py prepare           build what a node needs, once, into $CACHE/k8s/<version>/node: a static pause binary
                              (lab/k8s/pause, standard library only) and its docker-archive image
                              localhost/netmedic/pause:lab; the image localhost/netmedic/kube-proxy:lab (the built
                              kube-proxy, iptables-nft and ipset with their libraries from Debian 12's packages);
                              Debian's ipset packages for the node itself (the node image has none)
  vmnode.py join NODE         copy kubelet and the pause and kube-proxy images to the node (skipped when the same file is
                              there), give it a client certificate system:node:<name> and a serving certificate
                              signed by the lab CA, give the bridge the host's 10.77.0.1/24 (the apiserver reaches
                              the kubelet there), tunnel the apiserver into the node (ssh -R 16443: the guests'
                              user-mode network reaches nothing outside, the apiserver listens on 127.0.0.1 only;
                              run by `vmnode.py tunnel-supervise NODE`, which starts the ssh again when it exits),
                              point containerd's sandbox image at the pause image (systemd cgroups), write a
                              bridge + host-local CNI config, start kubelet (systemd-run unit netmedic-kubelet) and
                              wait until the Node is Ready; prints each step's time and kubelet's memory
  vmnode.py kube-proxy NODE   run the real kube-proxy as a DaemonSet in IPVS mode reading its ConfigMap (kube-system/
                              kube-proxy, key config.conf: scheduler rr, conntrack.maxPerCore 262144) from the
                              kube-proxy image (hostNetwork, privileged, /lib/modules, the xtables lock, as
                              kubeadm's DaemonSet); waits for "Using ipvs Proxier" in the
                              pod's log (read through the apiserver and the kubelet), prints it with the node's IPVS
                              table and nf_conntrack_max
  vmnode.py leave NODE        stop kubelet on the node, delete the Node, end the tunnel and its supervisor
  vmnode.py up --nodes N      join nodes 1..N, then kube-proxy on each (what make realnode-test and make demo run)
  vmnode.py down --nodes N    leave nodes 1..N, each even when another fails (fails at the end if one did)

Every step prints how long it took (lab/k8s/README.md has the figures measured under TCG).
"""

import argparse
import contextlib
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, HERE)
import k8sctl  # noqa: E402  PKI, kubeconfigs, API helper, cache paths
from k8sctl import LabError, log, step  # noqa: E402
from vmlab.common import parallel  # noqa: E402  (k8sctl put lab/vm on sys.path)
from vmlab.config import APT_LOCK, BRIDGE, HOST_L2_IP  # noqa: E402
from vmlab.nodes import find_node, pid_alive  # noqa: E402
from vmlab.ssh import ssh_base  # noqa: E402

PAUSE_IMAGE = 'localhost/netmedic/pause:lab'
POD_CIDR_BASE = '10.244'  # node i gets 10.244.<i>.0/24 (kube-controller-manager does not allocate CIDRs here)
GUEST_DIR = '/opt/netmedic-k8s'
DEBS = ('ipset', 'libipset13')
KUBE_PROXY_IMAGE = 'localhost/netmedic/kube-proxy:lab'
# kube-proxy's IPVS mode runs iptables(-save/-restore) and ipset: Debian 12's packages and their libraries
KUBE_PROXY_IMAGE_DEBS = ('iptables', 'libxtables12', 'libip4tc2', 'libip6tc2', 'libnftnl11', 'libmnl0',
                         'libnetfilter-conntrack3', 'libnfnetlink0', 'ipset', 'libipset13', 'libc6', 'libgcc-s1', 'netbase')
IPTABLES_LINKS = ('iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore')
SSH_TIMEOUT = 900
NODE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


def node_dir():
    return os.path.join(k8sctl.version_dir(), 'node')


def build_pause():
    dest = os.path.join(node_dir(), 'pause')
    if os.path.exists(dest):
        return dest
    env = dict(os.environ, CGO_ENABLED='0', GOFLAGS='-mod=mod', GOTOOLCHAIN=os.environ.get('GOTOOLCHAIN', 'local'))
    env['PATH'] = env.get('PATH', '') + ':/usr/local/go/bin'
    subprocess.run(['go', 'build', '-trimpath', '-ldflags', '-s -w', '-o', dest + '.tmp', '.'],
                   cwd=os.path.join(HERE, 'pause'), env=env, check=True, timeout=600)
    os.replace(dest + '.tmp', dest)
    return dest


IMAGE_MTIME = 1700000000


def _tar_entry(tar, path, data=None, mode=0o755, kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(path)
    info.type, info.mode, info.mtime = kind, mode, IMAGE_MTIME
    if data is not None:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def docker_archive(dest, tag, layer_bytes, config):
    """Write a docker-archive (what `ctr images import` reads) of one layer: ``config`` is the image config's
    ``config`` (Entrypoint, User, ...). Atomic (a .tmp renamed); the same inputs give the same bytes."""
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    body = json.dumps({'architecture': 'amd64', 'os': 'linux', 'created': '2023-11-14T22:13:20Z', 'config': config,
                       'rootfs': {'type': 'layers', 'diff_ids': ['sha256:' + diff_id]}}, sort_keys=True).encode()
    config_id = hashlib.sha256(body).hexdigest()
    manifest = json.dumps([{'Config': config_id + '.json', 'RepoTags': [tag], 'Layers': [diff_id + '/layer.tar']}]).encode()
    with tarfile.open(dest + '.tmp', mode='w', format=tarfile.GNU_FORMAT) as tar:
        _tar_entry(tar, diff_id, kind=tarfile.DIRTYPE)
        _tar_entry(tar, diff_id + '/layer.tar', layer_bytes, 0o644)
        _tar_entry(tar, config_id + '.json', body, 0o644)
        _tar_entry(tar, 'manifest.json', manifest, 0o644)
    os.replace(dest + '.tmp', dest)
    return dest


def pause_image(binary):
    """localhost/netmedic/pause:lab: one layer holding /pause."""
    dest = os.path.join(node_dir(), 'pause-image.tar')
    if os.path.exists(dest):
        return dest
    layer = io.BytesIO()
    with open(binary, 'rb') as fh, tarfile.open(fileobj=layer, mode='w', format=tarfile.GNU_FORMAT) as tar:
        _tar_entry(tar, 'pause', fh.read())
    return docker_archive(dest, PAUSE_IMAGE, layer.getvalue(), {'Entrypoint': ['/pause'], 'User': '65535:65535'})


def dir_layer(root):
    """A layer tar of the directory ``root`` (owners root, one mtime, entries sorted: reproducible)."""
    def normal(info):
        info.uid = info.gid = 0
        info.uname = info.gname = 'root'
        info.mtime = IMAGE_MTIME
        return info
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode='w', format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(os.listdir(root)):
            tar.add(os.path.join(root, name), arcname=name, recursive=True, filter=normal)
    return layer.getvalue()


def kube_proxy_image():
    """localhost/netmedic/kube-proxy:<version>: the built kube-proxy plus what its IPVS mode runs (iptables-nft and
    ipset with their libraries, unpacked from Debian 12's packages by `dpkg-deb -x`; iptables/ip6tables[-save,-restore]
    linked to xtables-nft-multi as iptables' postinst does). Each tool is started once in a chroot of the root before
    the image is written, so a missing library fails here, not in a pod. Cached per kube-proxy binary."""
    binary = os.path.join(k8sctl.bin_dir(), 'kube-proxy')
    with open(binary, 'rb') as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()[:16]
    dest = os.path.join(node_dir(), f'kube-proxy-image-{digest}.tar')
    if os.path.exists(dest):
        return dest
    debs = fetch_debs('image-debs', KUBE_PROXY_IMAGE_DEBS)
    with tempfile.TemporaryDirectory(dir=node_dir()) as tmp:
        root = os.path.join(tmp, 'root')
        for deb in debs:
            subprocess.run(['dpkg-deb', '-x', deb, root], check=True, timeout=300)
        for name in IPTABLES_LINKS:
            link = os.path.join(root, 'usr', 'sbin', name)
            if not os.path.lexists(link):
                os.symlink('xtables-nft-multi', link)
        for d in ('usr/local/bin', 'run', 'tmp', 'var/lib/kube-proxy', 'lib/modules'):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        shutil.copy(binary, os.path.join(root, 'usr', 'local', 'bin', 'kube-proxy'))
        for argv in (['/usr/sbin/iptables', '--version'], ['/usr/sbin/ip6tables-restore', '--version'],
                     ['/usr/sbin/ipset', '--help'], ['/usr/local/bin/kube-proxy', '--version']):
            proc = subprocess.run(['chroot', root, *argv], capture_output=True, text=True, timeout=120, check=False)
            if proc.returncode != 0:
                raise LabError(f'kube-proxy image: {" ".join(argv)} does not start in the image root '
                               f'(rc={proc.returncode}): {proc.stderr.strip()[-500:]}')
        layer = dir_layer(root)
    for old in os.listdir(node_dir()):
        if old.startswith('kube-proxy-image-') and old.endswith('.tar'):
            os.remove(os.path.join(node_dir(), old))
    return docker_archive(dest, KUBE_PROXY_IMAGE, layer, {
        'Entrypoint': ['/usr/local/bin/kube-proxy'], 'User': '0:0',
        'Env': ['PATH=' + NODE_PATH]})


def fetch_debs(sub='debs', packages=DEBS):
    d = os.path.join(node_dir(), sub)
    os.makedirs(d, exist_ok=True)
    if not all(any(f.startswith(p + '_') for f in os.listdir(d)) for p in packages):
        subprocess.run([*APT_LOCK, 'apt-get', 'download', *packages], cwd=d, check=True, timeout=1200)
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith('.deb'))


def cmd_prepare(_args=None):
    """What every node gets, built once: {'pause': binary, 'pause_image': tar, 'debs': [...], 'kube_proxy_image': tar}."""
    os.makedirs(node_dir(), exist_ok=True)
    with step('pause binary and image, ipset packages, kube-proxy image'):
        binary = build_pause()
        out = {'pause': binary, 'pause_image': pause_image(binary), 'debs': fetch_debs(),
               'kube_proxy_image': kube_proxy_image()}
    log(f'{binary} ({os.path.getsize(binary)} bytes), {out["pause_image"]}, '
        f'{", ".join(os.path.basename(d) for d in out["debs"])}, {out["kube_proxy_image"]} '
        f'({os.path.getsize(out["kube_proxy_image"]) / 1e6:.0f} MB)')
    return out


def ssh(node, command, timeout=SSH_TIMEOUT, stdin=None):
    key = os.path.join(node['image'], 'id_ed25519')
    base = ssh_base(node, key, shared=True)   # the node's shared connection (vmlab/ssh.py)
    base[base.index('ConnectTimeout=10')] = 'ConnectTimeout=60'  # a TCG guest busy with kubelet answers slowly
    for _attempt in range(3):  # 255: ssh itself failed (banner timeout), the command did not run
        proc = subprocess.run([*base, command], input=stdin, capture_output=True, timeout=timeout, check=False)
        if proc.returncode != 255:
            break
    if proc.returncode != 0:
        raise LabError(f'{node["name"]}: {command[:80]!r} failed ({proc.returncode}): '
                       f'{(proc.stderr or proc.stdout).decode(errors="replace").strip()[-2000:]}')
    return proc.stdout.decode(errors='replace')


def node_certs(node):
    name, ip = node['name'], node['l2_ip']
    k8sctl.make_cert(f'kubelet-{name}', f'system:node:{name}', org='system:nodes', client=True)
    k8sctl.make_cert(f'kubelet-{name}-serving', f'system:node:{name}', server=True, sans=(f'IP:{ip}', f'DNS:{name}'))
    return k8sctl.write_kubeconfig(os.path.join(k8sctl.STATE, 'kubeconfigs', f'kubelet-{name}.kubeconfig'),
                                   f'kubelet-{name}')


def host_bridge_address():
    """The apiserver reaches the kubelets (logs, exec) at the nodes' eth1 addresses over the bridge: the host needs
    its address there (labctl gives it only with NETMEDIC_LAB_HOST_IP=1; without it the connections take the host's
    default route and meet whatever answers there)."""
    out = subprocess.run(['ip', '-o', '-4', 'addr', 'show', 'dev', BRIDGE], capture_output=True, text=True, check=True).stdout
    if f' {HOST_L2_IP} ' not in out:
        subprocess.run(['ip', 'addr', 'replace', HOST_L2_IP, 'dev', BRIDGE], check=True)
        return f'{HOST_L2_IP} added to {BRIDGE}'
    return f'{BRIDGE} has {HOST_L2_IP}'


def tunnel_paths(node):
    base = os.path.join(k8sctl.STATE, f'vmnode-tunnel-{node["name"]}')
    return base + '.pid', base + '.log'


def tunnel_argv(node):
    """ssh -N -R: the node's 127.0.0.1:<apiserver port> is the host's apiserver."""
    base = ssh_base(node, os.path.join(node['image'], 'id_ed25519'))
    # a TCG guest busy with kubelet and containerd can be silent for more than ssh_base's 3 x 5 s: allow 4 x 15 s
    base[base.index('ServerAliveInterval=5')] = 'ServerAliveInterval=15'
    base[base.index('ServerAliveCountMax=3')] = 'ServerAliveCountMax=4'
    port = k8sctl.API_PORT
    return [*base[:-1], '-N', '-o', 'ExitOnForwardFailure=yes', '-R', f'{port}:127.0.0.1:{port}', base[-1]]


def tunnel_pid(node):
    """The pid of the node's running tunnel supervisor, or None."""
    pidfile, _log = tunnel_paths(node)
    try:
        with open(pidfile) as fh:
            pid = int(fh.read())
        os.kill(pid, 0)
        with open(f'/proc/{pid}/cmdline', 'rb') as fh:
            if b'tunnel-supervise' not in fh.read():
                return None  # a reused pid
        return pid
    except (OSError, ValueError):
        return None


def tunnel(node):
    """Start the node's tunnel supervisor (`vmnode.py tunnel-supervise NODE`, a session of its own, pid in
    $STATE/vmnode-tunnel-<name>.pid) unless it runs; returns its pid."""
    pid = tunnel_pid(node)
    if pid:
        return pid
    _pidfile, logfile = tunnel_paths(node)
    with open(logfile, 'a') as out:
        argv = [sys.executable, os.path.realpath(__file__), 'tunnel-supervise', str(node['index'])]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, cwd='/')
    deadline = time.monotonic() + 30
    while tunnel_pid(node) != proc.pid:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise LabError(f'tunnel supervisor did not start (exit {proc.poll()}), see {logfile}')
        time.sleep(0.2)
    return proc.pid


def cmd_tunnel_supervise(args):
    """The supervisor: run the tunnel's ssh, start it again whenever it exits (after 2 s, up to 30 s when it
    keeps failing at once); ends on SIGTERM/SIGINT/SIGHUP (with its ssh), when the node is no longer up
    (`labctl down`) or when the pidfile no longer names it (`leave`, `k8sctl down`)."""
    node = find_node(args.node)
    pidfile, _log = tunnel_paths(node)
    with open(pidfile + '.tmp', 'w') as fh:
        fh.write(str(os.getpid()))
    os.replace(pidfile + '.tmp', pidfile)
    child = None

    def stop(signum, _frame):
        # no child.wait() here: the interrupted Popen.wait holds its lock, a second wait would only time out
        if child is not None and child.returncode is None:
            with contextlib.suppress(OSError):
                child.terminate()
        log(f'tunnel supervisor: signal {signum}, stopped')
        sys.exit(0)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    starts = quick = 0
    while True:
        try:
            with open(pidfile) as fh:
                if int(fh.read()) != os.getpid():
                    break
            node = find_node(args.node)
            if 'pid' in node and not pid_alive(node['pid']):
                raise LabError(f'{node["name"]}: its qemu (pid {node["pid"]}) is not running')
        except (OSError, ValueError, LabError) as exc:
            log(f'tunnel supervisor: ends ({exc.__class__.__name__}: {exc})')
            break
        starts += 1
        began = time.monotonic()
        child = subprocess.Popen(tunnel_argv(node), stdin=subprocess.DEVNULL)
        log(f'tunnel supervisor: {time.strftime("%H:%M:%S")} ssh pid {child.pid} started (start {starts})')
        rc = child.wait()
        ran = time.monotonic() - began
        log(f'tunnel supervisor: {time.strftime("%H:%M:%S")} ssh pid {child.pid} exited {rc} after {ran:.0f}s')
        quick = quick + 1 if ran < 30 else 0
        time.sleep(min(2 * max(quick, 1), 30))
    return 0


def stop_tunnel(node):
    """End the supervisor and its ssh (one process group) and wait until both are gone."""
    pidfile, _log = tunnel_paths(node)
    pid = tunnel_pid(node)
    with contextlib.suppress(OSError):
        os.unlink(pidfile)
    if not pid:
        return None
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while group_members(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    return pid


def group_members(pgid):
    """The live (not zombie) processes of a process group, from /proc."""
    members = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as fh:
                    fields = fh.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if fields[0] != 'Z' and int(fields[2]) == pgid:
                members.append(int(entry))
    return members


def guest_setup_script(node, index):
    name, ip = node['name'], node['l2_ip']
    cidr = f'{POD_CIDR_BASE}.{index}.0/24'
    kubelet_config = {
        'apiVersion': 'kubelet.config.k8s.io/v1beta1', 'kind': 'KubeletConfiguration',
        'authentication': {'x509': {'clientCAFile': f'{GUEST_DIR}/ca.crt'}, 'webhook': {'enabled': True},
                           'anonymous': {'enabled': False}},
        'authorization': {'mode': 'Webhook'},
        'tlsCertFile': f'{GUEST_DIR}/kubelet.crt', 'tlsPrivateKeyFile': f'{GUEST_DIR}/kubelet.key',
        'cgroupDriver': 'systemd', 'containerRuntimeEndpoint': 'unix:///run/containerd/containerd.sock',
        'podCIDR': cidr, 'clusterDNS': [], 'resolvConf': '/etc/resolv.conf', 'failSwapOn': False,
        'evictionHard': {'memory.available': '20Mi', 'nodefs.available': '5%', 'imagefs.available': '5%'},
        'imageGCHighThresholdPercent': 100, 'imageGCLowThresholdPercent': 99,
        'registerNode': True, 'serializeImagePulls': True, 'maxPods': 20,
    }
    cni = {'cniVersion': '0.4.0', 'name': 'netmedic-pods', 'plugins': [
        {'type': 'bridge', 'bridge': 'cni0', 'isGateway': True, 'ipMasq': True,
         'ipam': {'type': 'host-local', 'ranges': [[{'subnet': cidr}]], 'routes': [{'dst': '0.0.0.0/0'}]}},
        {'type': 'portmap', 'capabilities': {'portMappings': True}}]}
    containerd = f'''version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{PAUSE_IMAGE}"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = true
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
'''
    argv = [f'{GUEST_DIR}/bin/kubelet', f'--config={GUEST_DIR}/kubelet.yaml', f'--kubeconfig={GUEST_DIR}/kubelet.kubeconfig',
            f'--hostname-override={name}', f'--node-ip={ip}', '--v=1']
    return '\n'.join([
        'set -e',
        f'cd {GUEST_DIR}',
        'dpkg -i debs/*.deb >/dev/null',
        f'cat > kubelet.yaml <<"EOF"\n{json.dumps(kubelet_config, indent=1)}\nEOF',
        f'mkdir -p /etc/cni/net.d && cat > /etc/cni/net.d/10-netmedic.conflist <<"EOF"\n{json.dumps(cni, indent=1)}\nEOF',
        f'cat > /etc/containerd/config.toml <<"EOF"\n{containerd}EOF',
        # under TCG (and with kubelet busy) containerd needs longer than systemd's 90 s start timeout
        'systemctl stop netmedic-kubelet 2>/dev/null || true',
        'mkdir -p /run/systemd/system/containerd.service.d',
        'printf "[Service]\\nTimeoutStartSec=900\\n" > /run/systemd/system/containerd.service.d/netmedic-timeout.conf',
        'systemctl daemon-reload',
        'systemctl restart containerd',
        'for i in $(seq 60); do ctr version >/dev/null 2>&1 && break; sleep 1; done',
        'ctr -n k8s.io images import --no-unpack pause-image.tar >/dev/null || ctr -n k8s.io images import pause-image.tar',
        'ctr -n k8s.io images import kube-proxy-image.tar >/dev/null',
        'modprobe br_netfilter overlay || true',
        'echo 1 > /proc/sys/net/ipv4/ip_forward',
        'systemctl stop netmedic-kubelet 2>/dev/null || true; systemctl reset-failed netmedic-kubelet 2>/dev/null || true',
        'systemd-run --unit netmedic-kubelet --property=Restart=on-failure --property=RestartSec=5 '
        + ' '.join(shlex.quote(a) for a in argv),
    ])


def upload(node, files):
    """files: {guest relative path: host path or bytes}; one tar over one ssh, existing identical files skipped."""
    # the guest keeps the md5 of what was sent in .manifest.json: hashing 170 MB under TCG takes minutes
    listing = ssh(node, f'mkdir -p {GUEST_DIR}/bin {GUEST_DIR}/debs && cat {GUEST_DIR}/.manifest.json 2>/dev/null || true')
    try:
        have = json.loads(listing or '{}')
    except ValueError:
        have = {}
    manifest = dict(have)
    buf = io.BytesIO()
    sent = 0
    with tarfile.open(fileobj=buf, mode='w') as tar:
        for rel, src in sorted(files.items()):
            if isinstance(src, bytes):
                data = src
            else:
                with open(src, 'rb') as fh:
                    data = fh.read()
            digest = hashlib.md5(data).hexdigest()  # a transfer check, not security
            if have.get(rel) == digest:
                continue
            manifest[rel] = digest
            info = tarfile.TarInfo(rel)
            info.size, info.mode = len(data), 0o755 if rel.startswith('bin/') else 0o600
            tar.addfile(info, io.BytesIO(data))
            sent += len(data)
        if sent:
            body = json.dumps(manifest).encode()
            info = tarfile.TarInfo('.manifest.json')
            info.size, info.mode = len(body), 0o600
            tar.addfile(info, io.BytesIO(body))
    if sent:
        ssh(node, f'tar -x -C {GUEST_DIR}', stdin=buf.getvalue())
    return sent


def node_ready(name):
    status, node = k8sctl.api(f'/api/v1/nodes/{name}')
    if status != 200:
        return None
    conds = {c['type']: c for c in (node.get('status') or {}).get('conditions') or []}
    return conds.get('Ready')


def cmd_join(args):
    node = find_node(args.node)
    index = node['index']
    built = cmd_prepare()
    bins = k8sctl.bin_dir()
    t0 = time.monotonic()
    with step(f'{node["name"]}: certificates and kubeconfig, the host\'s address on the bridge'):
        kubeconfig = node_certs(node)
        log(host_bridge_address())
    with step(f'{node["name"]}: copy kubelet, the pause and kube-proxy images, ipset, configs'):
        files = {'bin/kubelet': os.path.join(bins, 'kubelet'), 'kube-proxy-image.tar': built['kube_proxy_image'],
                 'pause-image.tar': built['pause_image'], 'kubelet.kubeconfig': kubeconfig, 'ca.crt': k8sctl.pki('ca.crt'),
                 'kubelet.crt': k8sctl.pki(f'kubelet-{node["name"]}-serving.crt'),
                 'kubelet.key': k8sctl.pki(f'kubelet-{node["name"]}-serving.key')}
        files.update({'debs/' + os.path.basename(d): d for d in built['debs']})
        sent = upload(node, files)
        log(f'{sent / 1e6:.1f} MB sent')
    with step(f'{node["name"]}: apiserver tunnel (ssh -R {k8sctl.API_PORT})'):
        log(f'tunnel supervisor pid {tunnel(node)}')
    with step(f'{node["name"]}: containerd sandbox image, CNI bridge + host-local, start kubelet'):
        ssh(node, 'bash -s', stdin=guest_setup_script(node, index).encode())
    with step(f'{node["name"]}: wait for the Node to be Ready'):
        deadline = time.monotonic() + args.timeout
        while True:
            ready = node_ready(node['name'])
            if ready and ready.get('status') == 'True':
                break
            if time.monotonic() > deadline:
                journal = ssh(node, 'journalctl -u netmedic-kubelet --no-pager | tail -40', timeout=120)
                raise LabError(f'{node["name"]} not Ready after {args.timeout}s: {ready}\n{journal}')
            time.sleep(5)
    mem = ssh(node, 'pid=$(systemctl show -p MainPID --value netmedic-kubelet); grep -E "VmRSS|VmHWM" /proc/$pid/status; '
                    'free -m | sed -n 2p', timeout=120)
    log(f'{node["name"]}: Ready {time.monotonic() - t0:.0f}s after join started; kubelet {" ".join(mem.split())}')


KUBE_PROXY_CONFIG = """apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ipvs
clusterCIDR: 10.244.0.0/16
clientConnection:
  kubeconfig: %s/kube-proxy.kubeconfig
ipvs:
  scheduler: rr
conntrack:
  maxPerCore: 262144
""" % GUEST_DIR


def kube_proxy_objects():
    """The ConfigMap and the DaemonSet kube-system/kube-proxy, shaped like kubeadm's: the image runs kube-proxy with
    --config on the mounted ConfigMap, hostNetwork, privileged (it writes nf_conntrack_max and the IPVS tables),
    /lib/modules read-only and the host's xtables lock."""
    labels = {'k8s-app': 'kube-proxy'}
    kubeconfig = f'{GUEST_DIR}/kube-proxy.kubeconfig'
    cm = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'kube-proxy', 'namespace': 'kube-system', 'labels': labels},
          'data': {'config.conf': KUBE_PROXY_CONFIG}}
    ds = {'apiVersion': 'apps/v1', 'kind': 'DaemonSet', 'metadata': {'name': 'kube-proxy', 'namespace': 'kube-system', 'labels': labels},
          'spec': {'selector': {'matchLabels': labels}, 'updateStrategy': {'type': 'RollingUpdate'},
                   'template': {'metadata': {'labels': labels}, 'spec': {
                       'hostNetwork': True, 'priorityClassName': 'system-node-critical',
                       'tolerations': [{'operator': 'Exists'}],
                       'nodeSelector': {'netmedic.lab/real-node': 'true'},
                       'containers': [{'name': 'kube-proxy', 'image': KUBE_PROXY_IMAGE, 'imagePullPolicy': 'Never',
                                       'command': ['/usr/local/bin/kube-proxy'],
                                       'args': ['--config=/var/lib/kube-proxy/config.conf', '--hostname-override=$(NODE_NAME)'],
                                       'env': [{'name': 'NODE_NAME', 'valueFrom': {'fieldRef': {'fieldPath': 'spec.nodeName'}}}],
                                       'securityContext': {'privileged': True},
                                       'volumeMounts': [{'name': 'kube-proxy', 'mountPath': '/var/lib/kube-proxy'},
                                                        {'name': 'kubeconfig', 'mountPath': kubeconfig, 'readOnly': True},
                                                        {'name': 'lib-modules', 'mountPath': '/lib/modules', 'readOnly': True},
                                                        {'name': 'xtables-lock', 'mountPath': '/run/xtables.lock'}]}],
                       'volumes': [{'name': 'kube-proxy', 'configMap': {'name': 'kube-proxy'}},
                                   {'name': 'kubeconfig', 'hostPath': {'path': kubeconfig, 'type': 'File'}},
                                   {'name': 'lib-modules', 'hostPath': {'path': '/lib/modules'}},
                                   {'name': 'xtables-lock', 'hostPath': {'path': '/run/xtables.lock', 'type': 'FileOrCreate'}}]}}}}
    return cm, ds


def put(path, obj, attempts=5):
    """Create or replace ``obj``. A replace reads the current resourceVersion first; a 409 (a controller wrote the
    object's status in between: the DaemonSet controller does, 2026-12-04) reads and replaces again, up to
    ``attempts`` times (client-go's RetryOnConflict)."""
    for _attempt in range(attempts):
        status, body = k8sctl.api(path + '/' + obj['metadata']['name'])
        if status == 200:
            obj['metadata']['resourceVersion'] = body['metadata']['resourceVersion']
            status, body = k8sctl.api(path + '/' + obj['metadata']['name'], method='PUT', body=obj)
        else:
            status, body = k8sctl.api(path, method='POST', body=obj)
        if status != 409:
            break
    if status not in (200, 201):
        raise LabError(f'{path}: {status} {body.get("message")}')


def cmd_kube_proxy(args):
    node = find_node(args.node)
    t0 = time.monotonic()
    with step(f'{node["name"]}: kube-proxy credentials (system:kube-proxy), label the Node'):
        k8sctl.make_cert('kube-proxy', 'system:kube-proxy', client=True)
        kc = k8sctl.write_kubeconfig(os.path.join(k8sctl.STATE, 'kubeconfigs', 'kube-proxy.kubeconfig'), 'kube-proxy')
        upload(node, {'kube-proxy.kubeconfig': kc})
        status, body = k8sctl.api(f'/api/v1/nodes/{node["name"]}', method='PATCH',
                                  body={'metadata': {'labels': {'netmedic.lab/real-node': 'true'}}},
                                  content_type='application/strategic-merge-patch+json')
        if status != 200:
            raise LabError(f'label Node: {status} {body.get("message")}')
    with step('ConfigMap and DaemonSet kube-system/kube-proxy (IPVS mode)'):
        cm, ds = kube_proxy_objects()
        put('/api/v1/namespaces/kube-system/configmaps', cm)
        put('/apis/apps/v1/namespaces/kube-system/daemonsets', ds)
    with step(f'{node["name"]}: wait for the kube-proxy pod to log "Using ipvs Proxier"'):
        deadline = time.monotonic() + args.timeout
        text = ''
        while 'Using ipvs Proxier' not in text:
            if time.monotonic() > deadline:
                raise LabError(f'no "Using ipvs Proxier" after {args.timeout}s; log so far:\n{text[-3000:]}')
            time.sleep(3)
            _status, pods = k8sctl.api('/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Dkube-proxy'
                                       f'&fieldSelector=spec.nodeName%3D{node["name"]}')
            for pod in pods.get('items') or []:
                if (pod.get('status') or {}).get('phase') == 'Running':
                    text = log_text(f'/api/v1/namespaces/kube-system/pods/{pod["metadata"]["name"]}/log')
    print(text.strip())
    state = ssh(node, 'ipvsadm -Ln; ipvsadm -L --timeout; echo nf_conntrack_max=$(cat /proc/sys/net/netfilter/nf_conntrack_max); '
                      'lsmod | grep "^ip_vs"', timeout=300)
    print(state.strip())
    log(f'{node["name"]}: kube-proxy in IPVS mode {time.monotonic() - t0:.0f}s after the DaemonSet was applied')


def log_text(path):
    """A pod log through the apiserver (which asks the kubelet): text, not JSON."""
    req = k8sctl.urllib.request.Request(f'https://{k8sctl.HOST}:{k8sctl.API_PORT}{path}')
    try:
        with k8sctl.urllib.request.urlopen(req, context=k8sctl._CTX.get('admin') or k8sctl._ctx(), timeout=30) as resp:
            return resp.read().decode(errors='replace')
    except (k8sctl.urllib.error.URLError, OSError) as e:
        return f'(log not readable: {e})'


def cmd_leave(args):
    node = find_node(args.node)
    with step(f'{node["name"]}: stop kubelet and its pods, the tunnel, delete the Node'):
        try:
            ssh(node, 'systemctl stop netmedic-kubelet 2>/dev/null; systemctl reset-failed netmedic-kubelet 2>/dev/null; '
                      'ctr -n k8s.io tasks ls -q | xargs -r -n1 ctr -n k8s.io tasks kill -s KILL 2>/dev/null; true', timeout=300)
            status, body = k8sctl.api(f'/api/v1/nodes/{node["name"]}', method='DELETE')
            log(f'DELETE Node: {status}')
            if status not in (200, 404):   # 404: already gone; None: the apiserver did not answer
                raise LabError(f'DELETE Node {node["name"]}: {status} {(body or {}).get("message", "")}')
        finally:  # the tunnel ends even when the node or the apiserver no longer answers
            log(f'tunnel supervisor {stop_tunnel(node)} stopped')


def cmd_up(args):
    """Nodes 1..N joined (kubelet, Node Ready) side by side, then kube-proxy in IPVS mode on each."""
    t0 = time.monotonic()
    cmd_prepare()                       # the pause binary and image, the ipset packages: built once, then shared
    for i in range(1, args.nodes + 1):  # openssl -CAcreateserial rewrites the CA's serial file: one at a time
        node_certs(find_node(str(i)))
    # the joins mostly wait on their guest (upload, kubelet start, Ready): 2 nodes took 54 s + 51 s one after the
    # other in CI (2026-12-04)
    parallel(lambda i: cmd_join(argparse.Namespace(node=str(i), timeout=args.timeout)), list(range(1, args.nodes + 1)))
    for i in range(1, args.nodes + 1):
        cmd_kube_proxy(argparse.Namespace(node=str(i), timeout=args.timeout))
    log(f'{args.nodes} real node(s) with kube-proxy in IPVS mode in {time.monotonic() - t0:.0f}s')


def cmd_down(args):
    """Nodes 1..N leave; every node is tried, a failure is raised after the last."""
    failed = []
    for i in range(1, args.nodes + 1):
        try:
            cmd_leave(argparse.Namespace(node=str(i)))
        except (LabError, OSError, subprocess.SubprocessError) as e:
            log(f'node {i}: leave failed: {e}')
            failed.append(str(i))
    if failed:
        raise LabError(f'leave failed on node(s) {", ".join(failed)}')


def main(argv=None):
    parser = argparse.ArgumentParser(prog='vmnode', description=__doc__.split('\n', maxsplit=1)[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    sub.add_parser('prepare').set_defaults(fn=cmd_prepare)
    p = sub.add_parser('join')
    p.add_argument('node')
    p.add_argument('--timeout', type=int, default=900)
    p.set_defaults(fn=cmd_join)
    p = sub.add_parser('kube-proxy')
    p.add_argument('node')
    p.add_argument('--timeout', type=int, default=900)
    p.set_defaults(fn=cmd_kube_proxy)
    p = sub.add_parser('leave')
    p.add_argument('node')
    p.set_defaults(fn=cmd_leave)
    for name, fn in (('up', cmd_up), ('down', cmd_down)):
        p = sub.add_parser(name)
        p.add_argument('--nodes', type=int, default=2)
        if name == 'up':
            p.add_argument('--timeout', type=int, default=900)
        p.set_defaults(fn=fn)
    p = sub.add_parser('tunnel-supervise')  # started by join, stopped by leave
    p.add_argument('node')
    p.set_defaults(fn=cmd_tunnel_supervise)
    args = parser.parse_args(argv)
    return k8sctl.labctl.run_command(args.fn, args)


if __name__ == '__main__':
    sys.exit(main())
