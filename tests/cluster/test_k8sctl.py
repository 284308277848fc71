"""lab/k8s/k8sctl (issue 15): the build cache key, the no-op when cached, and the control plane's flags.

Offline and fast (no Go, no server): what makes the cache trustworthy and the control plane a real
one (RBAC, the default admission chain, loopback only) is checked on the code that decides it.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def k8sctl(tmp_path, monkeypatch):
    """k8sctl imported with its cache and state in tmp_path, on a copy of lab/k8s/go's key files."""
    monkeypatch.setenv('NETMEDIC_LAB_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setenv('NETMEDIC_K8S_STATE', str(tmp_path / 'state'))
    for key in ('NETMEDIC_K8S_BIN', 'NETMEDIC_K8S_AUDIT_POLICY', 'NETMEDIC_K8S_CLIENT_QPS'):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.syspath_prepend(str(ROOT / 'lab' / 'k8s'))
    sys.modules.pop('k8sctl', None)
    mod = importlib.import_module('k8sctl')
    go = tmp_path / 'go'
    shutil.copytree(ROOT / 'lab' / 'k8s' / 'go', go)
    monkeypatch.setattr(mod, 'GO_DIR', str(go))
    yield mod
    sys.modules.pop('k8sctl', None)


def _fake_build(mod):
    bindir = Path(mod.bin_dir())
    bindir.mkdir(parents=True)
    for name in mod.BINARIES:
        (bindir / name).write_text('#!/bin/sh\n')
        (bindir / name).chmod(0o755)
    rec = dict(mod.build_key(), total_s=1.0, built_at='now')
    (bindir.parent / 'build.json').write_text(json.dumps(rec))
    return rec


def test_issue15_pins_one_kubernetes_version_and_every_staging_module(k8sctl):
    """go.mod: k8s.io/kubernetes at one version; every k8s.io staging module replaced by the matching v0.x."""
    text = Path(k8sctl.GO_DIR, 'go.mod').read_text()
    version = k8sctl.kube_version()
    assert version == 'v1.37.2'  # still has kube-proxy's IPVS mode (KubeProxyIPVS, deprecated, on by default)
    replaces = [line.split() for line in text.splitlines() if '=>' in line]
    assert len(replaces) >= 30
    for left, _arrow, right, ver in replaces:
        assert left == right and left.startswith('k8s.io/') and ver == 'v0.' + version[3:], (left, right, ver)


def test_issue15_build_key_follows_go_sum_and_build_is_a_noop_when_cached(k8sctl, capsys):
    rec = _fake_build(k8sctl)
    assert k8sctl.cached_build()['key'] == rec['key']
    # cached: `build` does not run go at all (no go on PATH would fail otherwise)
    out = k8sctl.cmd_build(type('A', (), {'force': False})())
    assert out['key'] == rec['key'] and 'nothing to build' in capsys.readouterr().out
    # another go.sum is another key: the cache no longer matches
    with open(Path(k8sctl.GO_DIR, 'go.sum'), 'a') as fh:
        fh.write('example.invalid/x v1.0.0 h1:AAAA=\n')
    assert k8sctl.build_key()['key'] != rec['key']
    assert k8sctl.cached_build() is None


def test_issue15_missing_binary_is_not_cached(k8sctl):
    _fake_build(k8sctl)
    Path(k8sctl.bin_dir(), 'kubelet').unlink()
    assert k8sctl.cached_build() is None


def test_issue15_ldflags_stamp_the_version(k8sctl):
    flags = k8sctl.ldflags('v1.37.2')
    assert '-X k8s.io/component-base/version.gitVersion=v1.37.2' in flags
    assert '-X k8s.io/component-base/version.gitMinor=37' in flags


def _opts(args):
    """--flag value, --flag=value, or a bare --flag (True)."""
    opts, i = {}, 0
    while i < len(args):
        key, eq, value = args[i].partition('=')
        if eq:
            opts[key] = value
        elif i + 1 < len(args) and not args[i + 1].startswith('--'):
            opts[key], i = args[i + 1], i + 1
        else:
            opts[key] = True
        i += 1
    return opts


def test_issue15_apiserver_is_rbac_with_the_default_admission_chain_on_loopback(k8sctl):
    args = k8sctl.component_args('kube-apiserver')
    opts = _opts(args)
    assert opts['--authorization-mode'] == 'Node,RBAC'
    assert not any(a.startswith(('--enable-admission-plugins', '--disable-admission-plugins', '--admission-control')) for a in args)
    assert opts['--bind-address'] == '127.0.0.1' and opts['--etcd-servers'].startswith('http://127.0.0.1:')
    assert opts['--service-account-key-file'].endswith('sa.pub') and opts['--service-account-signing-key-file'].endswith('sa.key')
    assert opts['--kubelet-preferred-address-types'] == 'InternalIP'
    for name in ('etcd', 'kube-controller-manager', 'kube-scheduler'):
        flat = ' '.join(k8sctl.component_args(name))
        assert '0.0.0.0' not in flat, name


def test_issue15_the_clean_state_is_an_etcd_snapshot_saved_and_restored_with_etcds_own_tools(k8sctl):
    """Issue 15 item 2 asks for a clean state restorable from an etcd snapshot; it was a copy of a stopped etcd's data
    dir. etcdctl and etcdutl are built from etcd's modules at the server's version; the clean state is saved through
    etcd's snapshot API from the running member, and restored by etcdutl as the one member etcd is started as."""
    mods = dict(line.split()[:2] for line in Path(k8sctl.GO_DIR, 'go.mod').read_text().splitlines()
                if line.startswith('\tgo.etcd.io/etcd/'))
    for tool in ('etcdctl', 'etcdutl'):
        assert k8sctl.BINARIES[tool] == 'go.etcd.io/etcd/%s/v3' % tool
        assert mods['go.etcd.io/etcd/%s/v3' % tool] == mods['go.etcd.io/etcd/server/v3'], mods
    etcd = _opts(k8sctl.component_args('etcd'))
    snap = k8sctl.clean_snapshot()
    assert snap.startswith(k8sctl.STATE) and snap.endswith('.db')

    save = k8sctl.snapshot_save_cmd(snap)
    assert save[0] == k8sctl.bin_path('etcdctl') and save[-3:] == ['snapshot', 'save', snap]
    assert _opts(save[1:-3])['--endpoints'] == etcd['--listen-client-urls']
    assert '--command-timeout' in _opts(save[1:-3])

    restore = k8sctl.snapshot_restore_cmd(snap, etcd['--data-dir'])
    assert restore[:4] == [k8sctl.bin_path('etcdutl'), 'snapshot', 'restore', snap]
    ropts = _opts(restore[4:])
    assert ropts['--data-dir'] == etcd['--data-dir']
    for flag in ('--name', '--initial-cluster', '--initial-advertise-peer-urls'):
        assert ropts[flag] == etcd[flag], flag
    assert '--skip-hash-check' not in restore  # a file from the snapshot API carries its hash: it is checked


def test_issue15_reset_without_a_clean_snapshot_says_so(k8sctl):
    with pytest.raises(k8sctl.LabError, match='no clean etcd snapshot yet'):
        k8sctl.cmd_reset(None)


def test_issue15_simulated_nodes_use_loopback_addresses():
    """The API server dials a node's InternalIP for logs/exec: simulated nodes must never name another host."""
    sys.path.insert(0, str(ROOT / 'lab' / 'k8s'))
    try:
        import nodesim
    finally:
        sys.path.remove(str(ROOT / 'lab' / 'k8s'))
    data = nodesim.load_seed(ROOT / 'lab' / 'seed' / 'cluster.yaml')
    assert data['nodes'] and all(n['ip'].startswith('127.') for n in data['nodes'])


def _fake_bins(path, version='v1.37.2'):
    path.mkdir(parents=True)
    for name in ('etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy', 'kubelet', 'crictl',
                 'etcdctl', 'etcdutl'):
        (path / name).write_text('#!/bin/sh\necho "Kubernetes %s"\n' % version)
        (path / name).chmod(0o755)
    return path


def test_issue15_if_missing_adopts_an_earlier_build_of_the_same_version(k8sctl, tmp_path, capsys):
    """make setup / labctl deps: a manual build of this version is copied into the keyed cache, not rebuilt."""
    _fake_bins(Path(k8sctl.CACHE) / 'manual' / 'bin')
    rec = k8sctl.cmd_build(type('A', (), {'force': False, 'if_missing': True, 'adopt': None})())
    assert rec['key'] == k8sctl.build_key()['key'] and 'adopted from' in rec['source']
    assert k8sctl.cached_build()['key'] == rec['key']
    assert Path(k8sctl.bin_dir(), 'kube-apiserver').read_text().startswith('#!/bin/sh')
    # the second call is the cached no-op, and says how long the check took
    k8sctl.cmd_build(type('A', (), {'force': False, 'if_missing': True, 'adopt': None})())
    assert 'nothing to build (checked in' in capsys.readouterr().out


def test_issue15_adopt_refuses_another_version(k8sctl, tmp_path):
    src = _fake_bins(tmp_path / 'old', version='v1.36.0')
    with pytest.raises(k8sctl.LabError, match=r'not Kubernetes v1\.37\.2'):
        k8sctl.adopt(str(src), k8sctl.build_key())
    assert k8sctl.cached_build() is None


def test_issue15_if_missing_with_a_cold_go_cache_builds_nothing(k8sctl, tmp_path, monkeypatch, capsys):
    """A cold build (70 min here) is never started by make setup: it says so and returns without go."""
    monkeypatch.setenv('GOCACHE', str(tmp_path / 'empty-gocache'))
    monkeypatch.setenv('PATH', str(tmp_path / 'no-go'))   # would fail if it tried to run go
    assert k8sctl.cmd_build(type('A', (), {'force': False, 'if_missing': True, 'adopt': None})()) is None
    assert 'Go build cache is cold: not building now' in capsys.readouterr().out
    assert k8sctl.cached_build() is None


def _fresh(monkeypatch, env):
    """k8sctl imported again with ``env`` (its settings are read once, at import)."""
    for key in ('NETMEDIC_K8S_KUBECONFIG', 'NETMEDIC_K8S_PORT_BASE', 'NETMEDIC_K8S_LOCK', 'NETMEDIC_K8S_AUDIT_POLICY',
                'NETMEDIC_K8S_CLIENT_QPS'):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    sys.modules.pop('k8sctl', None)
    return importlib.import_module('k8sctl')


def test_issue15_a_second_instance_derives_every_port_and_path_from_its_settings(k8sctl, tmp_path, monkeypatch):
    """Two control planes side by side (bench/bench_cluster_scale.py --server real beside the default one):
    every port, file and directory comes from NETMEDIC_K8S_PORT_BASE / NETMEDIC_K8S_STATE / NETMEDIC_K8S_LOCK."""
    state = tmp_path / 'scale-state'
    mod = _fresh(monkeypatch, {'NETMEDIC_K8S_STATE': str(state), 'NETMEDIC_K8S_PORT_BASE': '16540',
                               'NETMEDIC_K8S_LOCK': str(tmp_path / 'scale.lock')})
    assert (mod.API_PORT, mod.ETCD_PORT, mod.ETCD_PEER_PORT, mod.KCM_PORT, mod.SCHED_PORT) == (16543, 16544, 16545, 16546, 16547)
    assert str(tmp_path / 'scale.lock') == mod.LOCK and str(state / 'admin.kubeconfig') == mod.KUBECONFIG
    assert mod.procs_file().startswith(str(state)) and mod.pki('ca.crt').startswith(str(state))
    for name in mod.CONTROL_PLANE:
        args = mod.component_args(name)
        flat = ' '.join(args)
        assert '1644' not in flat and '/run/netmedic-k8s/' not in flat, (name, flat)
        ports = {int(p) for p in re.findall(r':(\d{4,5})\b', flat)}
        ports |= {int(v) for k, v in zip(args, args[1:]) if k == '--secure-port'}
        assert ports and ports <= set(range(16543, 16548)), (name, ports)
        paths = [a for a in args if a.startswith('/')]
        assert all(p.startswith(str(state)) for p in paths), (name, paths)


def test_issue15_audit_log_and_client_qps_only_when_asked(k8sctl, tmp_path, monkeypatch):
    for name in k8sctl.CONTROL_PLANE:
        flat = ' '.join(k8sctl.component_args(name))
        assert '--audit-' not in flat and '--kube-api-qps' not in flat, name
    policy = tmp_path / 'policy.yaml'
    policy.write_text('apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n')
    mod = _fresh(monkeypatch, {'NETMEDIC_K8S_AUDIT_POLICY': str(policy), 'NETMEDIC_K8S_CLIENT_QPS': '200'})
    api = mod.component_args('kube-apiserver')
    assert api[api.index('--audit-policy-file') + 1] == str(policy)
    assert api[api.index('--audit-log-path') + 1] == mod.audit_log() and mod.audit_log().startswith(mod.STATE)
    for name in ('kube-controller-manager', 'kube-scheduler'):
        args = mod.component_args(name)
        assert args[args.index('--kube-api-qps') + 1] == '200' and args[args.index('--kube-api-burst') + 1] == '400'
    assert '--audit-' not in ' '.join(mod.component_args('etcd'))
    mod = _fresh(monkeypatch, {'NETMEDIC_K8S_CLIENT_QPS': 'lots', 'NETMEDIC_K8S_AUDIT_POLICY': str(tmp_path / 'missing')})
    with pytest.raises(mod.LabError, match='not a positive integer'):
        mod.component_args('kube-scheduler')
    with pytest.raises(mod.LabError, match='no such file'):
        mod.component_args('kube-apiserver')


def test_issue15_a_thousand_simulated_nodes_get_distinct_loopback_and_pod_addresses():
    """bench_cluster_scale --server real: nodesim's addresses stay valid past node 254 (the first 254 unchanged)."""
    import ipaddress
    sys.path.insert(0, str(ROOT / 'lab' / 'k8s'))
    try:
        import nodesim
    finally:
        sys.path.remove(str(ROOT / 'lab' / 'k8s'))
    ips = [nodesim.node_ip(i) for i in range(1000)]
    assert ips[0] == '127.0.100.1' and ips[253] == '127.0.100.254' and len(set(ips)) == 1000
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network('127.0.0.0/8') for ip in ips)
    pod = {'metadata': {'uid': 'ffffffff-0000'}, 'spec': {}}
    nets = {ipaddress.ip_network(nodesim.pod_ip({'ip': ips[i]}, pod, i) + '/24', strict=False) for i in range(1000)}
    assert len(nets) == 1000 and ipaddress.ip_network('10.244.1.0/24') in nets
    sched = nodesim.Schedule([{'name': 'n%d' % i} for i in range(100)], 10)
    due = sorted(sched.due.values())
    assert 0.09 < due[1] - due[0] < 0.11 and due[-1] - due[0] < 10


def _nodesim():
    sys.path.insert(0, str(ROOT / 'lab' / 'k8s'))
    try:
        import nodesim
    finally:
        sys.path.remove(str(ROOT / 'lab' / 'k8s'))
    return nodesim


def test_issue15_nodesim_an_unexpected_error_in_a_pod_worker_ends_the_process(monkeypatch):
    """Review finding: a non-LabError exception in a pod worker was kept in a future nobody read; nodesim went on
    heartbeating Ready nodes whose pods were never run. Now it is printed and ends the process (``die``)."""
    nodesim = _nodesim()
    died = []
    monkeypatch.setattr(nodesim, 'die', died.append)

    def broken_api(*_args, **_kwargs):
        raise TypeError('a bug in the simulator')
    monkeypatch.setattr(nodesim, 'api', broken_api)
    pods = nodesim.Pods([{'name': 'n1', 'ip': '127.0.1.1'}])
    pod = {'metadata': {'uid': 'u1', 'namespace': 'default', 'name': 'web-1'}, 'spec': {'nodeName': 'n1'}, 'status': {}}
    pods.handle(pod)
    pods.pool.shutdown(wait=True)
    assert died == ['pod run default/web-1']
    assert not pods.busy                                   # the key is released: a later event may try again


def test_issue15_nodesim_an_unexpected_heartbeat_error_is_raised_not_dropped(monkeypatch):
    nodesim = _nodesim()

    def broken(_name):
        raise KeyError('lease')
    monkeypatch.setattr(nodesim, 'renew_lease', broken)
    monkeypatch.setattr(nodesim, 'ensure_node', lambda node: None)
    nodes = [{'name': 'n1', 'ip': '127.0.1.1'}]
    status, leases = nodesim.Schedule(nodes, 60), nodesim.Schedule(nodes, 10)
    with concurrent.futures.ThreadPoolExecutor(2) as pool, pytest.raises(KeyError, match='lease'):
        nodesim.heartbeat_round(pool, {'n1': nodes[0]}, status, leases)


def test_issue15_nodesim_the_pod_watch_ends_the_process_on_an_unexpected_error(monkeypatch):
    nodesim = _nodesim()
    died = []

    def stop(where):
        died.append(where)
        raise SystemExit(3)                                # os._exit in production: the loop ends here too
    monkeypatch.setattr(nodesim, 'die', stop)

    def bad_list(_pods):
        raise ValueError('bad list')
    monkeypatch.setattr(nodesim, 'relist', bad_list)
    with pytest.raises(SystemExit):
        nodesim.follow_pods(object())
    assert died == ['the pod watch']


FAKE_ETCDCTL = """#!/bin/sh
# the snapshot API's answer: the running member's keyspace (here: a marker) written to the last argument
for last; do :; done
echo "etcdctl $*" >> "$FAKE_LOG"
cat "$FAKE_KEYSPACE" > "$last"
"""
FAKE_ETCDUTL = """#!/bin/sh
echo "etcdutl $*" >> "$FAKE_LOG"
if [ "$2" = status ]; then
  grep -q '^keyspace' "$3" || { echo "invalid snapshot" >&2; exit 1; }
  echo '{"hash":7,"revision":278,"totalKey":245,"totalSize":300000}'; exit 0
fi
grep -q '^keyspace' "$3" || { echo "snapshot file integrity check failed" >&2; exit 1; }
mkdir -p "$5/member/snap" && cp "$3" "$5/member/snap/db"
"""


@pytest.fixture
def fake_up(k8sctl, tmp_path, monkeypatch):
    """k8sctl.cmd_up with fake etcdctl/etcdutl (NETMEDIC_K8S_BIN) and no processes: ``events`` records the order of
    starts, stops (with what they keep) and the snapshot tools' calls."""
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    for name, text in (('etcdctl', FAKE_ETCDCTL), ('etcdutl', FAKE_ETCDUTL)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    for name in k8sctl.CONTROL_PLANE:
        (bindir / name).write_text('#!/bin/sh\n')
        (bindir / name).chmod(0o755)
    log = tmp_path / 'tools.log'
    keyspace = tmp_path / 'keyspace'
    keyspace.write_text('keyspace after the bootstrap\n')
    monkeypatch.setenv('NETMEDIC_K8S_BIN', str(bindir))
    monkeypatch.setenv('FAKE_LOG', str(log))
    monkeypatch.setenv('FAKE_KEYSPACE', str(keyspace))
    events = []

    def tools():
        return log.read_text().splitlines() if log.exists() else []

    def start_control_plane():
        events.append(('start', Path(k8sctl.etcd_data(), 'member', 'snap', 'db').read_text()
                       if Path(k8sctl.etcd_data(), 'member', 'snap', 'db').exists() else None))
        return {'etcd': 0.1}

    def stop_all(keep=()):
        events.append(('stop', tuple(keep), len(tools())))
        return []

    monkeypatch.setattr(k8sctl, 'ensure_pki', lambda: None)
    monkeypatch.setattr(k8sctl, 'write_kubeconfig', lambda *a: None)
    monkeypatch.setattr(k8sctl, 'running', dict)
    monkeypatch.setattr(k8sctl, 'start_control_plane', start_control_plane)
    monkeypatch.setattr(k8sctl, 'stop_all', stop_all)
    monkeypatch.setattr(k8sctl, 'wait_for', lambda *a, **k: events.append(('wait', a[0])))
    k8sctl.events, k8sctl.tools, k8sctl.keyspace = events, tools, keyspace
    return k8sctl


def test_issue15_first_up_saves_the_snapshot_with_only_etcd_running_then_starts_from_it(fake_up):
    k = fake_up
    state = Path(k.STATE)
    # what an old state dir and a killed earlier `up` leave: the copied data dir format, a half-written snapshot, data
    (state / 'etcd-clean' / 'member').mkdir(parents=True)
    (state / 'etcd-data' / 'member').mkdir(parents=True)
    (state / 'etcd-data' / 'member' / 'dirty').write_text('a killed bootstrap')
    (state / 'etcd-clean.db.tmp').write_text('half')
    k.cmd_up(None)

    assert Path(k.clean_snapshot()).read_text() == 'keyspace after the bootstrap\n'
    assert not (state / 'etcd-clean').exists() and not (state / 'etcd-clean.db.tmp').exists()
    assert not (state / 'etcd-data' / 'member' / 'dirty').exists()
    tools = k.tools()
    assert [t.split()[:3] for t in tools] == [
        ['etcdctl', '--endpoints=http://127.0.0.1:%d' % k.ETCD_PORT, '--dial-timeout=10s'],
        ['etcdutl', 'snapshot', 'status'], ['etcdutl', 'snapshot', 'restore']]
    assert k.events == [
        ('start', None),                                    # the bootstrap on an empty data dir
        ('wait', 'default ServiceAccount and kube-root-ca.crt'),
        ('stop', ('etcd',), 0),                             # controllers and apiserver stop before the save ...
        ('stop', (), 2),                                    # ... etcd after it (and its status check)
        ('start', 'keyspace after the bootstrap\n'),        # started from the restored snapshot
    ]
    assert json.loads((state / 'up.json').read_text())['first_bootstrap'] is True


def test_issue15_later_up_and_reset_restore_the_snapshot_and_never_take_it_again(fake_up):
    k = fake_up
    k.cmd_up(None)
    saved = Path(k.clean_snapshot()).read_text()
    Path(k.etcd_data(), 'member', 'written-after').write_text('x')
    k.keyspace.write_text('keyspace of a later, dirty cluster\n')
    k.events.clear()
    before = len(k.tools())
    k.cmd_reset(None)
    assert [t.split()[:3] for t in k.tools()[before:]] == [['etcdutl', 'snapshot', 'restore']]
    assert k.events == [('start', saved), ('wait', 'default ServiceAccount and kube-root-ca.crt')]
    assert not Path(k.etcd_data(), 'member', 'written-after').exists()
    assert Path(k.clean_snapshot()).read_text() == saved


def test_issue15_a_snapshot_that_does_not_restore_stops_up_and_says_how_to_recover(fake_up):
    k = fake_up
    Path(k.STATE).mkdir(parents=True)
    Path(k.clean_snapshot()).write_text('not a snapshot\n')
    with pytest.raises(k.LabError, match=r'integrity check failed[\s\S]*remove .*etcd-clean\.db and run `k8sctl up`'):
        k.cmd_up(None)
    assert k.events == []  # nothing was started


def test_issue15_a_failed_bootstrap_saves_no_snapshot_and_stops_what_started(fake_up, monkeypatch):
    k = fake_up

    def never(*_a, **_k):
        raise k.LabError('default ServiceAccount and kube-root-ca.crt: not after 180 s')
    monkeypatch.setattr(k, 'wait_for', never)
    with pytest.raises(k.LabError, match='not after 180 s'):
        k.cmd_up(None)
    assert not Path(k.clean_snapshot()).exists() and k.tools() == []
    assert k.events == [('start', None), ('stop', (), 0)]
