"""k8sctl: a real Kubernetes control plane on 127.0.0.1 for the netmedic.k8s lab (issue 15).

Commands:
  build [--force|--if-missing|--adopt DIR]
                    build etcd (+ etcdctl, etcdutl), kube-apiserver, kube-controller-manager,
                    kube-scheduler, kube-proxy, kubelet and crictl from Go modules (lab/k8s/go) into
                    $CACHE/k8s/<version>/bin; a no-op when the cache matches the key
                    (Kubernetes version + go.sum + our sources), prints how long it took
  up [--build]      start etcd, kube-apiserver, kube-controller-manager and kube-scheduler
                    from the clean etcd snapshot (`etcdctl snapshot save` after the first
                    bootstrap, controllers stopped), wait until ready
  reset             stop, `etcdutl snapshot restore` the clean snapshot into a new data dir,
                    start again, wait until ready
  seed [--seed F]   create the objects of a lab seed (default lab/seed/cluster.yaml) and run
                    simulated nodes for its pods (lab/k8s/nodesim.py: no kubelets yet)
  down              stop every process of ours (each runs in its own process group)
  status            what runs, readiness, the binary cache
  kubeconfig        print the admin kubeconfig path (rewrite it if it went missing)
  locked -- CMD...  run CMD holding the control plane's lock (up/reset/down inside it do not
                    wait for themselves)

One control plane per machine: build, up, reset and down hold an exclusive flock on
/tmp/netmedic-k8s.lock (NETMEDIC_K8S_LOCK overrides), the VM lab's locking code (imported from
lab/vm/labctl.py), so two test runs never restart the cluster under each other.

Environment:
  NETMEDIC_LAB_CACHE      cache root (default /var/cache/netmedic-lab); binaries in k8s/<version>/bin
  NETMEDIC_K8S_STATE      runtime dir: PKI, etcd data, clean snapshot, logs, pids
                          (default /run/netmedic-k8s: outside the VM lab's runtime dir, which
                          `labctl down` removes as a whole)
  NETMEDIC_K8S_KUBECONFIG the admin kubeconfig written by `up` (default $NETMEDIC_K8S_STATE/admin.kubeconfig:
                          not under the VM lab's /run/netmedic-lab, which `labctl down` removes)
  NETMEDIC_K8S_PORT_BASE  first of the loopback ports (default 16440): apiserver +3 (16443),
                          etcd client +4, etcd peer +5, controller-manager +6, scheduler +7
  NETMEDIC_K8S_BIN        run the binaries of this dir instead of the cache's (e.g. a partial build;
                          up/reset check only the control plane's four and etcdctl/etcdutl)
  NETMEDIC_K8S_LOCK       lock file (default /tmp/netmedic-k8s.lock)
  NETMEDIC_K8S_AUDIT_POLICY  an audit policy file: kube-apiserver writes its audit log (JSON lines) to
                          $NETMEDIC_K8S_STATE/logs/audit.log (unset: no audit log; bench/bench_cluster_scale.py)
  NETMEDIC_K8S_CLIENT_QPS the controller-manager's and scheduler's client rate (--kube-api-qps, burst 2x;
                          unset: their defaults, 20 and 50 QPS; a thousand simulated nodes need more)
  GOTOOLCHAIN             passed to go; default `local` (go.mod needs Go 1.26.6, 1.26.8 is installed).
                          Set e.g. go1.27.3 when a newer pin needs it (fetched from the proxy).

Python 3 standard library plus the openssl and go commands.
"""

import argparse
import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'vm'))
import labctl  # noqa: E402  the VM lab: log/step/LabError and the flock with ancestor detection
from labctl import LabError, log, step  # noqa: E402

GO_DIR = os.path.join(HERE, 'go')
CACHE = os.path.join(os.environ.get('NETMEDIC_LAB_CACHE') or '/var/cache/netmedic-lab', 'k8s')
STATE = os.environ.get('NETMEDIC_K8S_STATE') or '/run/netmedic-k8s'
# In the control plane's own state dir: the VM lab's `labctl down` removes /run/netmedic-lab whole
# (a kubeconfig there vanished in the middle of a test run, issue 15).
KUBECONFIG = os.environ.get('NETMEDIC_K8S_KUBECONFIG') or os.path.join(STATE, 'admin.kubeconfig')
LOCK = os.environ.get('NETMEDIC_K8S_LOCK') or '/tmp/netmedic-k8s.lock'
PORT_BASE = int(os.environ.get('NETMEDIC_K8S_PORT_BASE') or 16440)
AUDIT_POLICY = os.environ.get('NETMEDIC_K8S_AUDIT_POLICY') or ''
CLIENT_QPS = os.environ.get('NETMEDIC_K8S_CLIENT_QPS') or ''
API_PORT = PORT_BASE + 3
ETCD_PORT = PORT_BASE + 4
ETCD_PEER_PORT = PORT_BASE + 5
KCM_PORT = PORT_BASE + 6
SCHED_PORT = PORT_BASE + 7
HOST = '127.0.0.1'
SERVICE_CIDR = '10.96.0.0/16'
CLUSTER_NAME = 'netmedic-real'
ETCD_MEMBER = 'netmedic'

# Bump when the build steps change in a way the key's inputs do not show.
BUILD_FORMAT = 1
BINARIES = {
    'etcd': './cmd/etcd',
    'kube-apiserver': './cmd/kube-apiserver',
    'kube-controller-manager': './cmd/kube-controller-manager',
    'kube-scheduler': './cmd/kube-scheduler',
    'kube-proxy': './cmd/kube-proxy',
    'kubelet': './cmd/kubelet',
    'crictl': 'sigs.k8s.io/cri-tools/cmd/crictl',  # upstream main package, built from our module
    # etcd's own snapshot tools (upstream main packages): the clean state is an etcd snapshot (issue 15)
    'etcdctl': 'go.etcd.io/etcd/etcdctl/v3',
    'etcdutl': 'go.etcd.io/etcd/etcdutl/v3',
}
CONTROL_PLANE = ('etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler')
SNAPSHOT_TOOLS = ('etcdctl', 'etcdutl')
SNAPSHOT_TIMEOUT = 120  # s: save or restore of the lab's few-MB keyspace takes about a second
# build has its own lock in the cache (a long build must not keep test runs from the cluster)
LOCKED_COMMANDS = ('up', 'reset', 'down', 'seed')

READY_TIMEOUT = 180  # s per component, on two shared cores
STOP_TIMEOUT = 20

# --------------------------------------------------------------------------
# build


def kube_version():
    with open(os.path.join(GO_DIR, 'go.mod')) as fh:
        for line in fh:
            f = line.split()
            if len(f) >= 2 and f[0] == 'k8s.io/kubernetes':
                return f[1]
    raise LabError('lab/k8s/go/go.mod does not require k8s.io/kubernetes')


def build_key():
    """Version + go.sum hash (+ go.mod, our mains, the build format): what the binaries depend on."""
    h = hashlib.sha256(f'format={BUILD_FORMAT}\n'.encode())
    for root, dirs, files in os.walk(GO_DIR):
        dirs.sort()
        for name in sorted(files):
            if name in ('go.mod', 'go.sum') or name.endswith('.go'):
                path = os.path.join(root, name)
                h.update(os.path.relpath(path, GO_DIR).encode() + b'\0')
                with open(path, 'rb') as fh:
                    h.update(fh.read())
    with open(os.path.join(GO_DIR, 'go.sum'), 'rb') as fh:
        gosum = hashlib.sha256(fh.read()).hexdigest()
    return {'version': kube_version(), 'go_sum_sha256': gosum, 'key': h.hexdigest()[:16]}


def version_dir(version=None):
    return os.path.join(CACHE, version or kube_version())


def bin_dir(version=None):
    return os.path.join(version_dir(version), 'bin')


def bin_path(name):
    return os.path.join(os.environ.get('NETMEDIC_K8S_BIN') or bin_dir(), name)


def cached_build():
    """The recorded build (build.json) when it matches the current key and every binary exists."""
    try:
        with open(os.path.join(version_dir(), 'build.json')) as fh:
            rec = json.load(fh)
    except (OSError, ValueError):
        return None
    if rec.get('key') != build_key()['key']:
        return None
    if not all(os.access(os.path.join(bin_dir(), b), os.X_OK) for b in BINARIES):
        return None
    return rec


def go_env():
    env = dict(os.environ)
    env.setdefault('GOTOOLCHAIN', 'local')
    env['GOFLAGS'] = '-mod=readonly -buildvcs=false'
    env['CGO_ENABLED'] = '0'
    return env


def ldflags(version):
    major, minor = version.lstrip('v').split('.')[:2]
    x = []
    for pkg in ('k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'):
        x += [f'-X {pkg}.gitVersion={version}', f'-X {pkg}.gitMajor={major}', f'-X {pkg}.gitMinor={minor}',
              f'-X {pkg}.gitTreeState=clean']
    return ' '.join(['-s', '-w', *x])


def run_timed(cmd, env, logfile, timeout):
    start = time.monotonic()
    with open(logfile, 'w') as fh:
        try:
            proc = subprocess.run(cmd, cwd=GO_DIR, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=False)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = 'timeout'
    return rc, time.monotonic() - start


def gocache_bytes(limit):
    """Bytes in Go's build cache, counting stops at limit (a cheap 'is it warm' test, no go run)."""
    root = os.environ.get('GOCACHE') or os.path.join(os.path.expanduser('~'), '.cache', 'go-build')
    total = 0
    for top, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(top, name)).st_size
            if total >= limit:
                return total
    return total


def binary_version(path):
    """What a binary says its version is (`--version`), '' when it cannot tell."""
    try:
        proc = subprocess.run([path, '--version'], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ''
    return (proc.stdout + proc.stderr).strip()


def adopt(src, key):
    """Copy a complete set of binaries of this version (an earlier manual build) into the cache."""
    missing = [b for b in BINARIES if not os.access(os.path.join(src, b), os.X_OK)]
    if missing:
        raise LabError(f'{src} lacks {" ".join(missing)}')
    for name in ('kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy'):
        said = binary_version(os.path.join(src, name))
        if said != f'Kubernetes {key["version"]}':
            raise LabError(f'{src}/{name} --version says {said!r}, not Kubernetes {key["version"]}')
    start = time.monotonic()
    tmp = bin_dir() + '.tmp'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name in BINARIES:
        shutil.copy2(os.path.join(src, name), os.path.join(tmp, name))
    shutil.rmtree(bin_dir(), ignore_errors=True)
    os.rename(tmp, bin_dir())
    total = time.monotonic() - start
    rec = dict(key, source=f'adopted from {src} (same version; built from this module before the cache key existed)',
               seconds={}, total_s=round(total, 1), failed={},
               built_at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
    with open(os.path.join(version_dir(), 'build.json'), 'w') as fh:
        json.dump(rec, fh, indent=2)
    log(f'adopted the binaries of {src} into {bin_dir()} in {total:.1f}s')
    return rec


# A warm Go build cache for these binaries is several GiB; below this, a build compiles
# kube-apiserver from scratch (70 min on two shared cores).
WARM_GOCACHE_BYTES = 2 * 1024**3


def cmd_build(args):
    t0 = time.monotonic()
    key = build_key()
    rec = cached_build()
    if rec and not args.force:
        log(f'binaries {key["version"]} cached (key {key["key"]}) in {bin_dir()}: nothing to build '
            f'(checked in {time.monotonic() - t0:.2f}s; that build took {rec.get("total_s", 0):.0f}s)')
        return rec
    if getattr(args, 'adopt', None):
        return adopt(args.adopt, key)
    if getattr(args, 'if_missing', False) and not args.force:
        # make setup / labctl deps: build only when it is quick. A cold build is an explicit step.
        manual = os.path.join(CACHE, 'manual', 'bin')
        if os.path.isdir(manual):
            try:
                return adopt(manual, key)
            except LabError as exc:
                log(f'    not adopting {manual}: {exc}')
        if gocache_bytes(WARM_GOCACHE_BYTES) < WARM_GOCACHE_BYTES:
            log(f'binaries {key["version"]} not built and the Go build cache is cold: not building now '
                '(a cold build takes ~70 min on two shared cores); run `lab/k8s/k8sctl build` for the real cluster')
            return None
    if not shutil.which('go'):
        raise LabError('go: not found (Debian package golang-go is too old; the lab expects Go >= 1.26)')
    env = go_env()
    os.makedirs(os.path.join(CACHE, 'logs'), exist_ok=True)
    with labctl.flock(os.path.join(CACHE, '.build.lock')):
        rec = cached_build()
        if rec and not args.force:
            log('built meanwhile by another run: nothing to do')
            return rec
        start = time.monotonic()
        tmp = bin_dir() + '.tmp'
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        times = {}
        with step(f'go mod download (Kubernetes {key["version"]}; offline when the module cache has it)'):
            rc, dt = run_timed(['go', 'mod', 'download'], env, os.path.join(CACHE, 'logs', 'download.log'), 1800)
            times['download'] = round(dt, 1)
            if rc != 0:
                raise LabError(f'go mod download failed ({rc}) after {dt:.0f}s: see {CACHE}/logs/download.log')
        failed = {}
        for name, pkg in BINARIES.items():
            logfile = os.path.join(CACHE, 'logs', f'build-{name}.log')
            cmd = ['go', 'build', '-trimpath', '-ldflags', ldflags(key['version']), '-o', os.path.join(tmp, name), pkg]
            with step(f'go build {name}'):
                rc, dt = run_timed(cmd, env, logfile, 3600)
            times[name] = round(dt, 1)
            if rc != 0:
                with open(logfile) as fh:
                    failed[name] = {'cmd': cmd, 'rc': rc, 'seconds': round(dt, 1), 'error': fh.read()[-2000:]}
                log(f'    FAILED ({rc}) after {dt:.0f}s: {failed[name]["error"][-500:]}')
        total = time.monotonic() - start
        rec = dict(key, go=subprocess.run(['go', 'version'], env=env, capture_output=True, text=True,
                                          check=False, timeout=60).stdout.strip(),
                   seconds=times, total_s=round(total, 1), failed=failed,
                   built_at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
        if failed:
            with open(os.path.join(version_dir(), 'build-failed.json'), 'w') as fh:
                json.dump(rec, fh, indent=2)
            raise LabError(f'could not build {", ".join(failed)} (see {version_dir()}/build-failed.json)')
        shutil.rmtree(bin_dir(), ignore_errors=True)
        os.rename(tmp, bin_dir())
        with open(os.path.join(version_dir(), 'build.json'), 'w') as fh:
            json.dump(rec, fh, indent=2)
    log('built ' + ', '.join(f'{n} {s:.0f}s' for n, s in times.items()))
    log(f'build of Kubernetes {key["version"]} took {total:.0f}s ({total / 60:.1f} min) -> {bin_dir()}')
    return rec


# --------------------------------------------------------------------------
# PKI (openssl, argument lists)


def pki(*parts):
    return os.path.join(STATE, 'pki', *parts)


def openssl(*args):
    labctl.run(['openssl', *args], capture=True, timeout=60)


def genkey(path):
    # ECDSA P-256: ~50x faster to make than RSA 2048 on two shared cores; every component takes it
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path)
    os.chmod(path, 0o600)


def make_cert(name, cn, org=None, sans=(), client=False, server=False):
    key, crt, csr = pki(f'{name}.key'), pki(f'{name}.crt'), pki(f'{name}.csr')
    if os.path.exists(crt):
        return
    genkey(key)
    subj = f'/CN={cn}' + (f'/O={org}' if org else '')
    openssl('req', '-new', '-key', key, '-subj', subj, '-out', csr)
    usage = ','.join(u for u, on in (('serverAuth', server), ('clientAuth', client)) if on)
    ext = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment',
           f'extendedKeyUsage={usage}']
    if sans:
        ext.append('subjectAltName=' + ','.join(sans))
    extfile = pki(f'{name}.ext')
    with open(extfile, 'w') as fh:
        fh.write('\n'.join(ext) + '\n')
    openssl('x509', '-req', '-in', csr, '-CA', pki('ca.crt'), '-CAkey', pki('ca.key'), '-CAcreateserial',
            '-days', '3650', '-sha256', '-extfile', extfile, '-out', crt)
    os.unlink(csr)
    os.unlink(extfile)


def ensure_pki():
    os.makedirs(pki(), mode=0o700, exist_ok=True)
    if not os.path.exists(pki('ca.crt')):
        genkey(pki('ca.key'))
        openssl('req', '-x509', '-new', '-key', pki('ca.key'), '-subj',
                f'/CN={CLUSTER_NAME}-ca', '-days', '3650', '-sha256', '-addext',
                'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
                '-out', pki('ca.crt'))
    if not os.path.exists(pki('sa.pub')):
        genkey(pki('sa.key'))  # service-account tokens: ES256
        openssl('pkey', '-in', pki('sa.key'), '-pubout', '-out', pki('sa.pub'))
    make_cert('apiserver', 'kube-apiserver', server=True,
              sans=('IP:127.0.0.1', 'IP:10.96.0.1', 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default',
                    'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local'))
    make_cert('apiserver-kubelet-client', 'kube-apiserver-kubelet-client', org='system:masters', client=True)
    make_cert('admin', 'netmedic-admin', org='system:masters', client=True)
    make_cert('controller-manager', 'system:kube-controller-manager', client=True)
    make_cert('scheduler', 'system:kube-scheduler', client=True)
    make_cert('front-proxy-client', 'front-proxy-client', client=True)


def b64file(path):
    with open(path, 'rb') as fh:
        return base64.b64encode(fh.read()).decode()


def write_kubeconfig(path, user):
    """A kubeconfig with the certificates embedded (no path into the state dir)."""
    doc = {
        'apiVersion': 'v1',
        'kind': 'Config',
        'clusters': [{'name': CLUSTER_NAME, 'cluster': {
            'server': f'https://{HOST}:{API_PORT}', 'certificate-authority-data': b64file(pki('ca.crt'))}}],
        'users': [{'name': user, 'user': {
            'client-certificate-data': b64file(pki(f'{user}.crt')), 'client-key-data': b64file(pki(f'{user}.key'))}}],
        'contexts': [{'name': f'{user}@{CLUSTER_NAME}', 'context': {'cluster': CLUSTER_NAME, 'user': user}}],
        'current-context': f'{user}@{CLUSTER_NAME}',
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as fh:
        json.dump(doc, fh, indent=2)  # JSON is YAML: every kubeconfig reader takes it
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------
# processes


def procs_file():
    return os.path.join(STATE, 'procs.json')


def load_procs():
    try:
        with open(procs_file()) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def save_procs(procs):
    tmp = procs_file() + '.tmp'
    with open(tmp, 'w') as fh:
        json.dump(procs, fh, indent=2)
    os.replace(tmp, procs_file())


def ours(pid, match):
    """pid still runs our program (its command line contains match), not a reused pid."""
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as fh:
            return match.encode() in fh.read()
    except OSError:
        return False


def alive(pid):
    if not isinstance(pid, int) or pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f'/proc/{pid}/stat') as fh:
            return fh.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def audit_log():
    return os.path.join(STATE, 'logs', 'audit.log')


def optional_args(name):
    """The flags NETMEDIC_K8S_AUDIT_POLICY and NETMEDIC_K8S_CLIENT_QPS add (none when unset)."""
    if name == 'kube-apiserver' and AUDIT_POLICY:
        if not os.path.isfile(AUDIT_POLICY):
            raise LabError(f'NETMEDIC_K8S_AUDIT_POLICY={AUDIT_POLICY}: no such file')
        return ['--audit-policy-file', os.path.abspath(AUDIT_POLICY), '--audit-log-path', audit_log(),
                '--audit-log-format', 'json', '--audit-log-maxsize', '500', '--audit-log-maxbackup', '2']
    if name in ('kube-controller-manager', 'kube-scheduler') and CLIENT_QPS:
        if not CLIENT_QPS.isdigit() or int(CLIENT_QPS) < 1:
            raise LabError(f'NETMEDIC_K8S_CLIENT_QPS={CLIENT_QPS!r}: not a positive integer')
        return ['--kube-api-qps', CLIENT_QPS, '--kube-api-burst', str(2 * int(CLIENT_QPS))]
    return []


def component_args(name):
    """Each component's flags (booleans as --flag=value: pflag takes no separate value for them)."""
    return _component_args(name) + optional_args(name)


def _component_args(name):
    data = etcd_data()
    kc = os.path.join(STATE, 'kubeconfigs')
    if name == 'etcd':
        return ['--name', ETCD_MEMBER, '--data-dir', data,
                '--listen-client-urls', f'http://{HOST}:{ETCD_PORT}', '--advertise-client-urls', f'http://{HOST}:{ETCD_PORT}',
                '--listen-peer-urls', f'http://{HOST}:{ETCD_PEER_PORT}',
                '--initial-advertise-peer-urls', f'http://{HOST}:{ETCD_PEER_PORT}',
                '--initial-cluster', f'{ETCD_MEMBER}=http://{HOST}:{ETCD_PEER_PORT}',
                '--listen-metrics-urls', '', '--log-level', 'warn',
                '--unsafe-no-fsync',  # tmpfs-backed lab data; reset restores the clean etcd snapshot
                '--snapshot-count', '10000', '--quota-backend-bytes', str(2 * 1024**3)]
    if name == 'kube-apiserver':
        return ['--etcd-servers', f'http://{HOST}:{ETCD_PORT}',
                '--bind-address', HOST, '--advertise-address', HOST, '--secure-port', str(API_PORT),
                # the reconciler would publish 127.0.0.1 as the kubernetes Endpoints, which validation
                # refuses (loopback): no reconciler on a one-member loopback control plane
                '--endpoint-reconciler-type', 'none',
                '--tls-cert-file', pki('apiserver.crt'), '--tls-private-key-file', pki('apiserver.key'),
                '--client-ca-file', pki('ca.crt'),
                '--kubelet-client-certificate', pki('apiserver-kubelet-client.crt'),
                '--kubelet-client-key', pki('apiserver-kubelet-client.key'),
                '--kubelet-certificate-authority', pki('ca.crt'),
                '--kubelet-preferred-address-types', 'InternalIP',  # never a DNS lookup of a node name
                '--proxy-client-cert-file', pki('front-proxy-client.crt'),
                '--proxy-client-key-file', pki('front-proxy-client.key'),
                '--requestheader-client-ca-file', pki('ca.crt'),
                '--requestheader-allowed-names', 'front-proxy-client',
                '--requestheader-username-headers', 'X-Remote-User',
                '--requestheader-group-headers', 'X-Remote-Group',
                '--requestheader-extra-headers-prefix', 'X-Remote-Extra-',
                '--service-account-issuer', 'https://kubernetes.default.svc.cluster.local',
                '--service-account-key-file', pki('sa.pub'),
                '--service-account-signing-key-file', pki('sa.key'),
                '--service-cluster-ip-range', SERVICE_CIDR,
                '--authorization-mode', 'Node,RBAC',  # the default admission chain: no --enable/--disable
                '--allow-privileged=true', '--profiling=false', '--v=1']
    common = ['--bind-address', HOST, '--profiling=false', '--v=1']
    if name == 'kube-controller-manager':
        k = os.path.join(kc, 'controller-manager.kubeconfig')
        return ['--kubeconfig', k, '--authentication-kubeconfig', k, '--authorization-kubeconfig', k,
                '--secure-port', str(KCM_PORT), '--use-service-account-credentials=true',
                '--service-account-private-key-file', pki('sa.key'), '--root-ca-file', pki('ca.crt'),
                '--cluster-signing-cert-file', pki('ca.crt'), '--cluster-signing-key-file', pki('ca.key'),
                '--cluster-name', CLUSTER_NAME, '--service-cluster-ip-range', SERVICE_CIDR,
                '--controllers', '*', '--leader-elect=true', *common]
    if name == 'kube-scheduler':
        k = os.path.join(kc, 'scheduler.kubeconfig')
        return ['--kubeconfig', k, '--authentication-kubeconfig', k, '--authorization-kubeconfig', k,
                '--secure-port', str(SCHED_PORT), '--leader-elect=true', *common]
    raise LabError(f'unknown component {name}')


def start(name, argv=None):
    """Start a component in its own session and process group, log to STATE/logs/NAME.log."""
    exe = bin_path(name) if argv is None else argv[1]
    argv = argv or [exe, *component_args(name)]
    logfile = os.path.join(STATE, 'logs', f'{name}.log')
    os.makedirs(os.path.dirname(logfile), exist_ok=True)
    with open(logfile, 'ab') as fh:
        fh.write(f'\n==== {time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} start\n'.encode())
        fh.flush()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    procs = load_procs()
    procs[name] = {'pid': proc.pid, 'exe': exe, 'log': logfile}
    save_procs(procs)
    return proc.pid


def stop_all(keep=()):
    """SIGTERM each process group of ours (reverse start order) but those named in keep, SIGKILL after STOP_TIMEOUT."""
    procs = load_procs()
    order = [n for n in procs if n not in CONTROL_PLANE] + [n for n in reversed(CONTROL_PLANE) if n in procs]
    order = [n for n in order if n not in keep]
    stopped = []
    for name in order:
        pid, exe = procs[name]['pid'], procs[name]['exe']
        if alive(pid) and ours(pid, exe):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if alive(pid):
                log(f'    {name} (pid {pid}) ignored SIGTERM for {STOP_TIMEOUT}s: SIGKILL')
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                time.sleep(0.5)
            stopped.append(name)
        # reap when it is our child (reset/up in the same process)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        if alive(pid) and ours(pid, exe):
            raise LabError(f'{name} (pid {pid}) still running after SIGKILL')
        procs.pop(name)
        save_procs(procs)
    return stopped


# --------------------------------------------------------------------------
# readiness


def _ctx(client_cert=True):
    ctx = ssl.create_default_context(cafile=pki('ca.crt'))
    if client_cert:
        ctx.load_cert_chain(pki('admin.crt'), pki('admin.key'))
    return ctx


def _insecure_ctx():
    # kube-controller-manager and kube-scheduler serve /healthz with a self-signed certificate of
    # their own (no --tls-cert-file given): checked on loopback only, no identity to verify.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def http_get(url, ctx=None, timeout=5):
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors='replace')
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors='replace')
    except (urllib.error.URLError, OSError) as exc:
        return None, str(exc)


_CTX = {}


def api(path, method='GET', body=None, timeout=10, content_type='application/json'):
    """(HTTP status or None when unreachable, decoded body) as the admin user."""
    if 'admin' not in _CTX:
        _CTX['admin'] = _ctx()
    req = urllib.request.Request(f'https://{HOST}:{API_PORT}{path}', method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={'Content-Type': content_type, 'Accept': 'application/json'})
    try:
        with urllib.request.urlopen(req, context=_CTX['admin'], timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b'{}')
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b'{}')
        except ValueError:
            return exc.code, {}
    except (urllib.error.URLError, OSError, ValueError):
        return None, {}


def wait_for(what, check, timeout=READY_TIMEOUT, name=None):
    start, last = time.monotonic(), None
    while time.monotonic() - start < timeout:
        if name:
            pid = load_procs().get(name, {}).get('pid')
            if pid and not alive(pid):
                raise LabError(f'{name} exited while waiting for {what}: see {STATE}/logs/{name}.log\n'
                               + tail(os.path.join(STATE, 'logs', f'{name}.log')))
        ok, last = check()
        if ok:
            return time.monotonic() - start
        time.sleep(0.3)
    raise LabError(f'timed out after {timeout}s waiting for {what}: {last}')


def tail(path, n=15):
    try:
        with open(path, errors='replace') as fh:
            return ''.join(fh.readlines()[-n:])
    except OSError:
        return ''


def etcd_ready():
    code, body = http_get(f'http://{HOST}:{ETCD_PORT}/health')
    return code == 200 and '"true"' in body, f'{code} {body[:200]}'


def api_ready():
    code, body = http_get(f'https://{HOST}:{API_PORT}/readyz', _ctx())
    return code == 200, f'{code} {body[-300:]}'


def healthz(port):
    def check():
        code, body = http_get(f'https://{HOST}:{port}/healthz', _insecure_ctx())
        return code == 200, f'{code} {body[:200]}'
    return check


def bootstrapped():
    """What the controllers create once: default/default ServiceAccount and kube-root-ca.crt."""
    sa, _body = api('/api/v1/namespaces/default/serviceaccounts/default')
    cm, _body = api('/api/v1/namespaces/kube-system/configmaps/kube-root-ca.crt')
    return sa == 200 and cm == 200, f'serviceaccount {sa}, kube-root-ca.crt {cm}'


def start_control_plane():
    times = {}
    for name, check in (('etcd', etcd_ready), ('kube-apiserver', api_ready),
                        ('kube-controller-manager', healthz(KCM_PORT)), ('kube-scheduler', healthz(SCHED_PORT))):
        with step(f'start {name}'):
            pid = start(name)
            log(f'    pid {pid} (own process group), log {STATE}/logs/{name}.log')
            times[name] = round(wait_for(f'{name} ready', check, name=name), 1)
    return times


# --------------------------------------------------------------------------
# commands


def require_binaries(args):
    if os.environ.get('NETMEDIC_K8S_BIN'):
        missing = [b for b in CONTROL_PLANE + SNAPSHOT_TOOLS if not os.access(bin_path(b), os.X_OK)]
        if missing:
            raise LabError(f'NETMEDIC_K8S_BIN={os.environ["NETMEDIC_K8S_BIN"]} lacks {" ".join(missing)}')
        return
    if cached_build():
        return
    if getattr(args, 'build', False):
        cmd_build(argparse.Namespace(force=False))
        return
    raise LabError(f'binaries for {kube_version()} not built (or stale): run `lab/k8s/k8sctl build` '
                   '(or `up --build`)')


def clean_snapshot():
    """The clean state: an etcd snapshot file (etcdctl snapshot save), restored by etcdutl on every up/reset."""
    return os.path.join(STATE, 'etcd-clean.db')


def etcd_data():
    return os.path.join(STATE, 'etcd-data')


def snapshot_save_cmd(path):
    """etcd's snapshot API through etcdctl, against the running member (it writes path.part, then renames)."""
    return [bin_path('etcdctl'), f'--endpoints=http://{HOST}:{ETCD_PORT}', '--dial-timeout=10s',
            f'--command-timeout={SNAPSHOT_TIMEOUT}s', 'snapshot', 'save', path]


def snapshot_restore_cmd(path, data_dir):
    """A new data dir for the one member etcd is started as (component_args('etcd')): same name, peer URL, token.

    The hash check stays on (the file came from etcd's snapshot API). No --bump-revision: each reset starts from the
    same revision, as a copied data dir did, and every client restarts with the apiserver."""
    peer = f'http://{HOST}:{ETCD_PEER_PORT}'
    return [bin_path('etcdutl'), 'snapshot', 'restore', path, '--data-dir', data_dir, '--name', ETCD_MEMBER,
            '--initial-cluster', f'{ETCD_MEMBER}={peer}', '--initial-advertise-peer-urls', peer]


def run_snapshot_tool(cmd, what):
    """Run etcdctl/etcdutl with SNAPSHOT_TIMEOUT; its stdout, or LabError naming what failed."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=SNAPSHOT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f'{what}: {exc}') from exc
    if done.returncode != 0:
        raise LabError(f'{what} failed ({done.returncode}): {(done.stdout + done.stderr).strip()[-1000:]}')
    return done.stdout


def snapshot_status(path):
    """etcdutl snapshot status as a dict (hash, revision, totalKey, totalSize, ...); LabError when it cannot read it."""
    out = run_snapshot_tool([bin_path('etcdutl'), 'snapshot', 'status', path, '-w', 'json'],
                            f'etcdutl snapshot status {path}')
    try:
        return json.loads(out)
    except ValueError as exc:
        raise LabError(f'etcdutl snapshot status {path}: not JSON: {out[:200]!r}') from exc


def save_clean_snapshot():
    """Stop the controllers and the apiserver (they release their leader leases), save etcd's snapshot, stop etcd."""
    stop_all(keep=('etcd',))
    tmp = clean_snapshot() + '.tmp'
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    run_snapshot_tool(snapshot_save_cmd(tmp), 'etcdctl snapshot save')
    st = snapshot_status(tmp)
    os.rename(tmp, clean_snapshot())
    log(f'    clean snapshot {clean_snapshot()}: etcd revision {st.get("revision")}, {st.get("totalKey")} keys, '
        f'{st.get("totalSize", 0) / 1e6:.1f} MB, hash {st.get("hash")}')
    stop_all()


def restore_clean_snapshot():
    """A new etcd data dir from the clean snapshot (etcd stopped)."""
    data = etcd_data()
    shutil.rmtree(data, ignore_errors=True)
    try:
        run_snapshot_tool(snapshot_restore_cmd(clean_snapshot(), data), 'etcdutl snapshot restore')
    except LabError as exc:
        raise LabError(f'{exc}\n(remove {clean_snapshot()} and run `k8sctl up` to bootstrap and save it again)') from exc


def running():
    procs = load_procs()
    return {n: p['pid'] for n, p in procs.items() if alive(p['pid']) and ours(p['pid'], p['exe'])}


def cmd_up(args):
    require_binaries(args)
    t0 = time.monotonic()
    os.makedirs(STATE, mode=0o700, exist_ok=True)
    if running():
        stop_all()
    with step('PKI and kubeconfigs'):
        ensure_pki()
        kc = os.path.join(STATE, 'kubeconfigs')
        write_kubeconfig(os.path.join(kc, 'controller-manager.kubeconfig'), 'controller-manager')
        write_kubeconfig(os.path.join(kc, 'scheduler.kubeconfig'), 'scheduler')
        write_kubeconfig(os.path.join(STATE, 'admin.kubeconfig'), 'admin')
    first = not os.path.isfile(clean_snapshot())
    if first:
        # an empty data dir for the bootstrap (and no copied data dir of the old format: etcd-clean/)
        shutil.rmtree(etcd_data(), ignore_errors=True)
        shutil.rmtree(os.path.join(STATE, 'etcd-clean'), ignore_errors=True)
    else:
        with step('restore the clean etcd snapshot (etcdutl snapshot restore)'):
            restore_clean_snapshot()
    try:
        times = start_control_plane()
        if first:
            with step('first bootstrap: wait for the controllers, then save the clean etcd snapshot'):
                wait_for('default ServiceAccount and kube-root-ca.crt', bootstrapped)
                save_clean_snapshot()
            with step('restore the clean etcd snapshot (etcdutl snapshot restore)'):
                restore_clean_snapshot()
            times = start_control_plane()
        else:
            wait_for('default ServiceAccount and kube-root-ca.crt', bootstrapped, timeout=60)
    except BaseException:
        log('up failed: stopping what was started')
        stop_all()
        raise
    write_kubeconfig(KUBECONFIG, 'admin')
    total = time.monotonic() - t0
    with open(os.path.join(STATE, 'up.json'), 'w') as fh:
        json.dump({'seconds': times, 'total_s': round(total, 1), 'first_bootstrap': first}, fh)
    log(f'control plane {kube_version()} up in {total:.1f}s ({", ".join(f"{n} {s}s" for n, s in times.items())}); '
        f'kubeconfig {KUBECONFIG}')


def cmd_reset(args):
    if not os.path.isfile(clean_snapshot()):
        raise LabError('no clean etcd snapshot yet: run `k8sctl up` first')
    t0 = time.monotonic()
    cmd_up(args)
    log(f'reset to the clean state in {time.monotonic() - t0:.1f}s')


def cmd_down(_args):
    t0 = time.monotonic()
    if not os.path.isdir(STATE):
        log('nothing to stop (no state dir)')
        return
    with step('stop the control plane'):
        stopped = stop_all()
        log(f'    stopped: {" ".join(stopped) or "nothing was running"}')
    with contextlib.suppress(FileNotFoundError):
        os.unlink(KUBECONFIG)
    # the live data dir goes; PKI and the clean snapshot stay for the next `up`
    shutil.rmtree(etcd_data(), ignore_errors=True)
    log(f'down in {time.monotonic() - t0:.1f}s')


def cluster_settled():
    """Every DaemonSet and Deployment reports all its pods ready (the simulated nodes' pods Running)."""
    _code, dss = api('/apis/apps/v1/daemonsets')
    _code, deps = api('/apis/apps/v1/deployments')
    waiting = []
    for ds in dss.get('items') or []:
        st = ds.get('status') or {}
        if st.get('numberReady', 0) != st.get('desiredNumberScheduled', -1) or \
                st.get('observedGeneration') != ds['metadata'].get('generation'):
            waiting.append(f'DaemonSet {ds["metadata"]["name"]} {st.get("numberReady", 0)}/{st.get("desiredNumberScheduled")}')
    for d in deps.get('items') or []:
        st, want = d.get('status') or {}, (d.get('spec') or {}).get('replicas', 1)
        if st.get('readyReplicas', 0) != want:
            waiting.append(f'Deployment {d["metadata"]["name"]} {st.get("readyReplicas", 0)}/{want}')
    return not waiting, ', '.join(waiting)


def start_nodesim(seed_path):
    sim = os.path.join(HERE, 'nodesim.py')
    pid = start('nodesim', [sys.executable, sim, 'run', os.path.abspath(seed_path)])
    log(f'    nodesim pid {pid} (own process group), log {STATE}/logs/nodesim.log')


def cmd_seed(args):
    """Create the seed's objects and start the simulated nodes (lab/k8s/nodesim.py)."""
    import nodesim

    if 'kube-apiserver' not in running():
        raise LabError('the control plane is not up (k8sctl up)')
    t0 = time.monotonic()
    with step(f'seed {args.seed}'):
        nodes, created = nodesim.seed(args.seed)
        log(f'    {len(nodes)} node(s), {len(created)} object(s) created')
    if 'nodesim' not in running():
        with step('start the simulated nodes'):
            start_nodesim(args.seed)
    with step('wait for every DaemonSet and Deployment to be ready'):
        wait_for('DaemonSets and Deployments ready', cluster_settled, name='nodesim')
    log(f'seeded in {time.monotonic() - t0:.1f}s')


def cmd_status(_args):
    rec = cached_build()
    print(f'binaries: {bin_dir()} ' + (f'(key {rec["key"]}, built {rec["built_at"]}, cold build {rec["total_s"]}s)'
                                       if rec else '(not built or stale: k8sctl build)'))
    print(f'state:    {STATE}')
    if os.path.isfile(clean_snapshot()):
        try:
            st = snapshot_status(clean_snapshot())
            print(f'clean snapshot: {clean_snapshot()} (etcd revision {st.get("revision")}, {st.get("totalKey")} keys, '
                  f'hash {st.get("hash")})')
        except LabError as exc:
            print(f'clean snapshot: {clean_snapshot()} (could not be read: {exc})')
    else:
        print('clean snapshot: none yet (k8sctl up takes it)')
    procs = load_procs()
    up = running()
    for name in CONTROL_PLANE:
        pid = procs.get(name, {}).get('pid')
        print(f'  {name:24} ' + (f'running pid {pid}' if name in up else 'stopped'))
    if 'kube-apiserver' in up:
        ok, detail = api_ready()
        print(f'apiserver https://{HOST}:{API_PORT} readyz: ' + ('ok' if ok else detail))
        print(f'kubeconfig: {KUBECONFIG}')


def cmd_kubeconfig(_args):
    if 'kube-apiserver' not in running():
        raise LabError('the control plane is not up (k8sctl up)')
    if not os.path.exists(KUBECONFIG):
        write_kubeconfig(KUBECONFIG, 'admin')
    print(KUBECONFIG)


def cmd_locked(args):
    labctl.exec_locked(args.command, LOCK, 'k8sctl')


def main(argv=None):
    parser = argparse.ArgumentParser(prog='k8sctl', description=__doc__.split('\n', maxsplit=1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='\n'.join(__doc__.split('\n')[1:]))
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('build', help='build the binaries from Go modules (cached)')
    p.add_argument('--force', action='store_true', help='rebuild even when cached')
    p.add_argument('--if-missing', action='store_true',
                   help='for make setup / labctl deps: no-op when cached; adopt CACHE/k8s/manual/bin of the same '
                        'version; build only with a warm Go build cache, else say so and exit 0')
    p.add_argument('--adopt', metavar='DIR', help='copy the binaries of DIR (same version, checked) into the cache')
    p.set_defaults(fn=cmd_build)
    for name, fn, hlp in (('up', cmd_up, 'start the control plane from the clean state'),
                          ('reset', cmd_reset, 'restore the clean state and start again')):
        p = sub.add_parser(name, help=hlp)
        p.add_argument('--build', action='store_true', help='build the binaries first when missing')
        p.set_defaults(fn=fn)
    p = sub.add_parser('seed', help='create a lab seed\'s objects, run simulated nodes for its pods')
    p.add_argument('--seed', default=os.path.join(HERE, '..', 'seed', 'cluster.yaml'), help='seed file (lab/seed/cluster.yaml)')
    p.set_defaults(fn=cmd_seed)
    sub.add_parser('down', help='stop every process of the control plane').set_defaults(fn=cmd_down)
    sub.add_parser('status', help='processes, readiness, cache').set_defaults(fn=cmd_status)
    sub.add_parser('kubeconfig', help='print the admin kubeconfig path').set_defaults(fn=cmd_kubeconfig)
    p = sub.add_parser('locked', help='run a command holding the control plane lock')
    p.add_argument('command', nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_locked)
    args = parser.parse_args(argv)
    if args.cmd in LOCKED_COMMANDS:
        def locked(args):
            fh = labctl.acquire_lab_lock(LOCK)
            try:
                args.fn(args)
            finally:
                if fh is not None:
                    fh.close()
        return labctl.run_command(locked, args)
    return labctl.run_command(args.fn, args)


if __name__ == '__main__':
    sys.exit(main())
