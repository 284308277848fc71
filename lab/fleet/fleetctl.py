"""fleetctl: a fleet of lightweight SSH "nodes" on this machine (issue 14 item 1).

Each node is a set of namespaces around one ``sshd``:

- a network namespace ``nmf<i>`` (its own interfaces, addresses, routes, neighbor table and
  ``net.*`` sysctls) joined to the host bridge ``nmfbr0`` by a veth pair (``eth0`` inside);
- a mount namespace in which the node's own directories are bind-mounted over
  ``/etc/sysctl.d``, ``/etc/modules-load.d``, ``/etc/cni/net.d``, ``/var/lib/cni`` and
  ``/root/.ansible`` (what the node modules write stays per node), and ``/sys`` is the
  namespace's own sysfs (``/sys/class/net`` lists the node's interfaces);
- a UTS namespace (its own host name, the inventory name);
- ``sshd`` listening on the node's address with its own configuration and host key; every
  node accepts the fleet's one client key for root (``authorized_keys`` in the state dir).

Everything else (the kernel, ``/usr``, Python, the rest of ``/etc``) is the host's: a node
costs one idle ``sshd`` (~1 MB of private memory) and a few kernel objects.

``fleetctl up --nodes N`` builds nodes 0..N-1 (idempotent: nodes already up stay, nodes
beyond N are removed) and writes ``<state>/inventory.yml`` and ``<state>/known_hosts``;
``fleetctl down`` removes everything it made. ``fleetctl --help`` for the rest.
Python 3 standard library only (runs on Debian's /usr/bin/python3); root only.
"""

import argparse
import contextlib
import ctypes
import ctypes.util
import errno
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time

STATE = os.environ.get('NETMEDIC_FLEET_STATE', '/run/netmedic-fleet')
CACHE = os.environ.get('NETMEDIC_FLEET_CACHE', '/var/cache/netmedic-fleet')
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
BRIDGE = 'nmfbr0'
NETWORK = ipaddress.ip_network('10.250.0.0/16')
GATEWAY = ipaddress.ip_address('10.250.0.1')
FIRST_HOST = 10            # node i has NETWORK[FIRST_HOST + i]
MAX_NODES = 4000
SSHD = '/usr/sbin/sshd'
# The node's own copies of the directories node modules write (bind-mounted over the host's).
NODE_DIRS = ('etc/sysctl.d', 'etc/modules-load.d', 'etc/cni/net.d', 'var/lib/cni', 'root/.ansible')
# A neighbor entry every node starts with (N-6: a STALE entry the diagnosis can see).
SEED_NEIGHBOR = ('10.250.255.250', '02:00:0a:fa:ff:fa')
SEED_PODS = 8              # host-local allocation files per node (dual-stack: 2 files a pod)
COMMAND_TIMEOUT = 60

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_BIND = 4096
MS_REC = 16384
MS_SLAVE = 1 << 19
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)


class FleetError(Exception):
    pass


def log(msg):
    print('fleetctl: %s' % msg, file=sys.stderr, flush=True)


def _check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, '%s: %s' % (what, os.strerror(err)))


def run(argv, input_text=None, check=True):
    """Run an argument list with a timeout; a failure raises FleetError naming it."""
    try:
        proc = subprocess.run(argv, check=False, input=input_text, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise FleetError('%s: no answer in %d s' % (' '.join(argv), COMMAND_TIMEOUT))
    if check and proc.returncode != 0:
        raise FleetError('%s failed (rc=%d): %s' % (' '.join(argv), proc.returncode, proc.stderr.strip()[-2000:]))
    return proc


def node_name(i):
    return 'fleet-%03d' % i


def node_netns(i):
    return 'nmf%d' % i


def node_addr(i):
    return NETWORK[FIRST_HOST + i]


def node_dir(i):
    return os.path.join(STATE, 'nodes', node_name(i))


def _read(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return default


def _write(path, text, mode=0o644):
    tmp = path + '.tmp'
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), 'w') as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _pid_alive(pid, marker):
    """True when ``pid`` runs and its command line contains ``marker`` (our own sshd)."""
    cmdline = _read('/proc/%d/cmdline' % pid, '') if pid else ''
    return marker in cmdline.replace('\0', ' ')


def sshd_pid(i):
    pid_text = _read(os.path.join(node_dir(i), 'sshd.pid'), '').strip()
    pid = int(pid_text) if pid_text.isdigit() else 0
    return pid if _pid_alive(pid, os.path.join(node_dir(i), 'sshd_config')) else 0


def existing_nodes():
    base = os.path.join(STATE, 'nodes')
    found = []
    for name in os.listdir(base) if os.path.isdir(base) else []:
        if name.startswith('fleet-') and name[6:].isdigit():
            found.append(int(name[6:]))
    netns = set(os.listdir('/run/netns')) if os.path.isdir('/run/netns') else set()
    for name in netns:
        if name.startswith('nmf') and name[3:].isdigit():
            found.append(int(name[3:]))
    return sorted(set(found))


# ---------------------------------------------------------------- keys and configuration

def ensure_client_key():
    key = os.path.join(STATE, 'id_ed25519')
    if not os.path.exists(key):
        run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'netmedic-fleet', '-f', key])
    shutil.copyfile(key + '.pub', os.path.join(STATE, 'authorized_keys'))
    os.chmod(os.path.join(STATE, 'authorized_keys'), 0o600)
    return key


def sshd_config(i):
    d = node_dir(i)
    return '\n'.join([
        '# netmedic fleet node %s (lab/fleet/fleetctl.py)' % node_name(i),
        'ListenAddress %s' % node_addr(i),
        'Port 22',
        'HostKey %s/ssh_host_ed25519_key' % d,
        'PidFile %s/sshd.pid' % d,
        'AuthorizedKeysFile %s/authorized_keys' % STATE,
        'PermitRootLogin prohibit-password',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'UseDNS no',
        'PrintMotd no',
        'PrintLastLog no',
        # A controller with many forks opens many sessions at once; ControlPersist multiplexes.
        'MaxStartups 200:30:400',
        'MaxSessions 100',
        'LogLevel ERROR',
        'Subsystem sftp internal-sftp',
        'AcceptEnv LANG LC_*',
        '',
    ])


def seed_node_files(i):
    """The node's own writable directories, with a CNI config and host-local allocations."""
    d = node_dir(i)
    for sub in NODE_DIRS:
        os.makedirs(os.path.join(d, 'root', sub), exist_ok=True)
    root = os.path.join(d, 'root')
    conf = os.path.join(root, 'etc/cni/net.d/10-bridge.conflist')
    if not os.path.exists(conf):
        _write(conf, json.dumps({
            'cniVersion': '1.0.0', 'name': 'cbr0',
            'plugins': [{'type': 'bridge', 'bridge': 'cbr0', 'isGateway': True,
                         'ipam': {'type': 'host-local', 'ranges': [[{'subnet': '10.8.%d.0/24' % (i % 256)}]]}}],
        }, indent=2) + '\n')
    net = os.path.join(root, 'var/lib/cni/networks/cbr0')
    if not os.path.isdir(net):
        os.makedirs(net)
        _write(os.path.join(net, 'lock'), '')
        for pod in range(SEED_PODS):
            cid = '%064x' % ((i << 32) + pod + 1)
            _write(os.path.join(net, '10.8.%d.%d' % (i % 256, pod + 2)), cid + '\r\neth0')
        _write(os.path.join(net, 'last_reserved_ip.0'), '10.8.%d.%d' % (i % 256, SEED_PODS + 1))
        old = time.time() - 3 * 3600
        for name in os.listdir(net):
            os.utime(os.path.join(net, name), (old, old))


def prepare_node(i):
    d = node_dir(i)
    os.makedirs(d, exist_ok=True)
    key = os.path.join(d, 'ssh_host_ed25519_key')
    if not os.path.exists(key):
        run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', node_name(i), '-f', key])
    _write(os.path.join(d, 'sshd_config'), sshd_config(i))
    seed_node_files(i)


# ---------------------------------------------------------------- network

def ensure_bridge():
    if not os.path.isdir('/sys/class/net/%s' % BRIDGE):
        run(['ip', 'link', 'add', BRIDGE, 'type', 'bridge'])
    run(['ip', 'addr', 'replace', '%s/%d' % (GATEWAY, NETWORK.prefixlen), 'dev', BRIDGE])
    run(['ip', 'link', 'set', BRIDGE, 'up'])


def ensure_netns(i):
    ns, host_if = node_netns(i), 'nmfh%d' % i
    fresh = not os.path.exists('/run/netns/%s' % ns)
    if fresh:
        run(['ip', 'netns', 'add', ns])
    if not os.path.isdir('/sys/class/net/%s' % host_if):
        run(['ip', 'link', 'add', host_if, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    run(['ip', 'link', 'set', host_if, 'master', BRIDGE, 'up'])
    batch = '\n'.join([
        'link set lo up',
        'link set eth0 up',
        'addr replace %s/%d dev eth0' % (node_addr(i), NETWORK.prefixlen),
        'route replace default via %s dev eth0' % GATEWAY,
        'neigh replace %s lladdr %s nud stale dev eth0' % SEED_NEIGHBOR,
    ])
    if fresh:
        # N-8: the pod bridge exists but is down (what remediate_node's pod_bridge fix brings up)
        batch += '\nlink add cbr0 type bridge'
    batch += '\n'
    run(['ip', '-n', ns, '-batch', '-'], input_text=batch)


# ---------------------------------------------------------------- sshd in the node's namespaces

def _mount(src, target, fstype, flags, what):
    _check(_libc.mount(src and src.encode(), target.encode(), fstype and fstype.encode(), flags, None), what)


def _enter_node_and_exec(i):
    """In a forked child: join the node's netns, make its mount and UTS namespace, exec sshd."""
    fd = os.open('/run/netns/%s' % node_netns(i), os.O_RDONLY)
    _check(_libc.setns(fd, CLONE_NEWNET), 'setns')
    os.close(fd)
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), 'unshare')
    # Nothing mounted here goes back to the host.
    _mount(None, '/', None, MS_REC | MS_SLAVE, 'make / a slave')
    name = node_name(i).encode()
    _check(_libc.sethostname(name, len(name)), 'sethostname')
    # The namespace's own sysfs: /sys/class/net lists this node's interfaces.
    if _libc.umount2(b'/sys', MNT_DETACH) != 0 and ctypes.get_errno() not in (errno.EINVAL,):
        _check(-1, 'umount /sys')
    _mount('sysfs', '/sys', 'sysfs', 0, 'mount sysfs')
    root = os.path.join(node_dir(i), 'root')
    for sub in NODE_DIRS:
        os.makedirs('/' + sub, exist_ok=True)
        _mount(os.path.join(root, sub), '/' + sub, None, MS_BIND, 'bind /' + sub)
    os.makedirs('/run/sshd', exist_ok=True)
    log_file = os.path.join(node_dir(i), 'sshd.log')
    os.execv(SSHD, [SSHD, '-f', os.path.join(node_dir(i), 'sshd_config'), '-E', log_file])


def start_sshd(i):
    if sshd_pid(i):
        return False
    pid = os.fork()
    if pid == 0:
        try:
            _enter_node_and_exec(i)
        except BaseException as exc:  # the child must never return into the parent's code
            print('fleetctl: node %s: %s' % (node_name(i), exc), file=sys.stderr, flush=True)
        os._exit(1)
    status = os.waitpid(pid, 0)[1]   # sshd daemonizes: the first process exits at once
    if os.waitstatus_to_exitcode(status) != 0:
        raise FleetError('node %s: sshd did not start (see %s/sshd.log)' % (node_name(i), node_dir(i)))
    return True


def wait_ready(indices, timeout=60):
    deadline = time.monotonic() + timeout
    pending = set(indices)
    while pending and time.monotonic() < deadline:
        for i in sorted(pending):
            if sshd_pid(i):
                pending.discard(i)
        if pending:
            time.sleep(0.05)
    if pending:
        raise FleetError('sshd not running after %d s on: %s' % (timeout, ', '.join(node_name(i) for i in sorted(pending))))


def stop_node(i):
    """Kill the node's processes (by the netns's pid list) and remove its namespace and files."""
    ns = node_netns(i)
    pids = set()
    pid = sshd_pid(i)
    if pid:
        pids.add(pid)
    if os.path.exists('/run/netns/%s' % ns):
        proc = run(['ip', 'netns', 'pids', ns], check=False)
        pids.update(int(p) for p in proc.stdout.split() if p.isdigit())
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    if os.path.isdir('/sys/class/net/nmfh%d' % i):
        run(['ip', 'link', 'del', 'nmfh%d' % i], check=False)
    if os.path.exists('/run/netns/%s' % ns):
        run(['ip', 'netns', 'del', ns], check=False)
    shutil.rmtree(node_dir(i), ignore_errors=True)


# ---------------------------------------------------------------- inventory

def write_inventory(indices, key):
    known = []
    for i in indices:
        pub = _read(os.path.join(node_dir(i), 'ssh_host_ed25519_key.pub')).split()
        known.append('%s %s %s' % (node_addr(i), pub[0], pub[1]))
    _write(os.path.join(STATE, 'known_hosts'), '\n'.join(known) + '\n')
    # paramiko_ssh reads only /etc/ssh/ssh_known_hosts and ~/.ssh/known_hosts: a HOME for it
    # (HOME=<state>/home) keeps host key checking on without touching root's own files.
    home_ssh = os.path.join(STATE, 'home', '.ssh')
    os.makedirs(home_ssh, mode=0o700, exist_ok=True)
    shutil.copyfile(os.path.join(STATE, 'known_hosts'), os.path.join(home_ssh, 'known_hosts'))
    lines = [
        '# Written by lab/fleet/fleetctl up: the fleet lab nodes (lab/fleet/README.md).',
        'all:',
        '  children:',
        '    fleet:',
        '      vars:',
        '        ansible_user: root',
        '        ansible_ssh_private_key_file: %s' % key,
        '        ansible_python_interpreter: /usr/bin/python3',
        '        # host keys are checked against the fleet known_hosts (paramiko_ssh: HOME=%s/home)' % STATE,
        "        ansible_ssh_common_args: '-o UserKnownHostsFile=%s/known_hosts -o StrictHostKeyChecking=yes'" % STATE,
        '        ansible_paramiko_record_host_keys: false',
        '      hosts:',
    ]
    for i in indices:
        lines.append('        %s: {ansible_host: %s}' % (node_name(i), node_addr(i)))
    _write(os.path.join(STATE, 'inventory.yml'), '\n'.join(lines) + '\n')
    meta = {'nodes': len(indices), 'network': str(NETWORK), 'bridge': BRIDGE,
            'hosts': {node_name(i): str(node_addr(i)) for i in indices}}
    _write(os.path.join(STATE, 'fleet.json'), json.dumps(meta, indent=1) + '\n')


# ---------------------------------------------------------------- commands

def cmd_up(args):
    n = args.nodes
    if not 1 <= n <= MAX_NODES:
        raise FleetError('--nodes must be 1..%d, got %d' % (MAX_NODES, n))
    if not os.path.exists(SSHD):
        raise FleetError('%s missing: apt-get install openssh-server (bindep.txt, profile test; make setup)' % SSHD)
    start = time.monotonic()
    os.makedirs(STATE, mode=0o700, exist_ok=True)
    extra = [i for i in existing_nodes() if i >= n]
    for i in extra:
        stop_node(i)
    key = ensure_client_key()
    ensure_bridge()
    started = 0
    for i in range(n):
        prepare_node(i)
        ensure_netns(i)
        started += start_sshd(i)
    wait_ready(range(n))
    write_inventory(range(n), key)
    log('%d nodes up (%d started, %d removed) in %.1f s; inventory: %s/inventory.yml'
        % (n, started, len(extra), time.monotonic() - start, STATE))
    return 0


def cmd_down(args):
    start = time.monotonic()
    nodes = existing_nodes()
    for i in nodes:
        stop_node(i)
    if os.path.isdir('/sys/class/net/%s' % BRIDGE):
        run(['ip', 'link', 'del', BRIDGE], check=False)
    shutil.rmtree(STATE, ignore_errors=True)
    log('%d nodes down in %.1f s' % (len(nodes), time.monotonic() - start))
    return 0


def node_cpu_seconds(indices):
    """CPU seconds (user+sys) spent on the nodes so far: each sshd listener's own time plus
    its reaped descendants' (every session, shell and module process is waited for up the
    chain), read from /proc/<pid>/stat. Only meaningful as a difference between two reads."""
    tick = os.sysconf('SC_CLK_TCK')
    total = 0
    for i in indices:
        pid = sshd_pid(i)
        stat = _read('/proc/%d/stat' % pid, '') if pid else ''
        if not stat:
            raise FleetError('node %s: sshd not running' % node_name(i))
        fields = stat.rsplit(')', 1)[1].split()
        total += sum(int(x) for x in fields[11:15])   # utime stime cutime cstime
    return total / tick


def reset_nodes(indices):
    """Put the nodes back in their seeded state (the faults remediate_node fixes): drop-ins
    removed, ``ip_local_reserved_ports`` empty, ``cbr0`` down. In one forked child that
    joins each node's network namespace in turn (``/proc/sys/net`` is the caller's netns)."""
    for i in indices:
        d = os.path.join(node_dir(i), 'root')
        for sub in ('etc/sysctl.d', 'etc/modules-load.d'):
            for name in os.listdir(os.path.join(d, sub)):
                path = os.path.join(d, sub, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for i in indices:
                fd = os.open('/run/netns/%s' % node_netns(i), os.O_RDONLY)
                _check(_libc.setns(fd, CLONE_NEWNET), 'setns')
                os.close(fd)
                with open('/proc/sys/net/ipv4/ip_local_reserved_ports', 'w') as f:
                    f.write('\n')
        except BaseException as exc:
            print('fleetctl: reset: %s' % exc, file=sys.stderr, flush=True)
            code = 1
        os._exit(code)
    status = os.waitpid(pid, 0)[1]
    if os.waitstatus_to_exitcode(status) != 0:
        raise FleetError('reset failed')
    for i in indices:
        run(['ip', '-n', node_netns(i), 'link', 'set', 'cbr0', 'down'])


def cmd_reset(args):
    start = time.monotonic()
    nodes = existing_nodes()
    reset_nodes(nodes)
    log('%d nodes reset in %.1f s' % (len(nodes), time.monotonic() - start))
    return 0


def cmd_status(args):
    nodes = existing_nodes()
    up = [i for i in nodes if sshd_pid(i)]
    print(json.dumps({'state': STATE, 'nodes': len(nodes), 'sshd_running': len(up),
                      'inventory': os.path.join(STATE, 'inventory.yml') if nodes else None}))
    return 0 if len(up) == len(nodes) else 1


def cmd_cpu(args):
    print('%.2f' % node_cpu_seconds(existing_nodes()))
    return 0


def paramiko_requirements():
    import tomllib  # Python >= 3.11 (Debian 12's python3)
    with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
        return tomllib.load(f)['dependency-groups']['fleet-paramiko']


def cmd_paramiko_venv(args):
    """A venv with the newest ansible-core that still ships paramiko_ssh (removed in 2.21)."""
    venv = os.path.join(CACHE, 'venv-paramiko')
    reqs = paramiko_requirements()
    stamp = os.path.join(venv, '.netmedic-fleet.stamp')
    want = json.dumps(reqs)
    if _read(stamp) != want:
        py = os.path.realpath(os.path.join(ROOT, '.venv', 'bin', 'python'))
        log('creating %s with %s: %s' % (venv, py, ' '.join(reqs)))
        shutil.rmtree(venv, ignore_errors=True)
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([py, '-m', 'venv', venv], check=True, timeout=300)
        subprocess.run([os.path.join(venv, 'bin', 'pip'), 'install', '--quiet', '--disable-pip-version-check'] + reqs,
                       check=True, timeout=600)
        _write(stamp, want)
    print(os.path.join(venv, 'bin'))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog='fleetctl', description=__doc__.split('\n\n', maxsplit=1)[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('up', help='build nodes 0..N-1 (idempotent), write <state>/inventory.yml')
    p.add_argument('--nodes', type=int, default=3)
    p.set_defaults(func=cmd_up)
    sub.add_parser('down', help='remove every node, the bridge and the state directory').set_defaults(func=cmd_down)
    sub.add_parser('reset', help='put every node back in its seeded state (drop-ins gone, reserved ports empty, cbr0 down)'
                   ).set_defaults(func=cmd_reset)
    sub.add_parser('status', help='JSON: nodes, sshd running, inventory path').set_defaults(func=cmd_status)
    sub.add_parser('cpu', help="CPU seconds spent on the nodes so far (sshd and everything they ran)").set_defaults(func=cmd_cpu)
    sub.add_parser('paramiko-venv', help='create/print the venv with ansible-core 2.20 + paramiko (pyproject group fleet-paramiko)'
                   ).set_defaults(func=cmd_paramiko_venv)
    args = parser.parse_args(argv)
    if os.geteuid() != 0 and args.cmd in ('up', 'down', 'reset'):
        log('must run as root (network namespaces, mounts)')
        return 2
    try:
        return args.func(args)
    except FleetError as exc:
        log('ERROR: %s' % exc)
        return 1


if __name__ == '__main__':
    sys.exit(main())
