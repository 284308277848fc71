"""playbooks/flannel_datadir_migration.yml (catalog W-2 = N-7 across the fleet) against the API double.

The cluster half (version gate, change window, Lease, C-5 flannel_config, the Flannel restart) runs for real
against the double. The node half runs on this machine: the inventory holds lab-node-1..3 with
``connection: local``, each with its own "disk" stores under tmp_path and its own "tmpfs" stores under /dev/shm
(a real tmpfs). ``CniNodes`` stands in for the kubelet's CNI call: a pod the double starts on one of those nodes
gets its address from the REAL host-local plugin (/usr/lib/cni/host-local), with the dataDir of the CNI config
Flannel installed on that node when its pod last started (install-cni copies kube-flannel-cfg). So duplicate
addresses, shared stores and "a real allocation" are the plugin's own behaviour, read back from the files.

ansible.builtin.reboot refuses a local connection, so an apply run stops at lab-node-1's reboot; the reboot itself
runs on the VM lab (tests/labvm/test_flannel_migration_e2e.py). Issue 9 finding 7 (and 3, 4, 9, 10) name the tests.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from ansible_collections.netmedic.k8s.plugins.module_utils import flannel
from lab.kubedouble import CrashLoop, StaticNodeState, make_log_provider
from tests.lab.playbook_run import module_python, run_playbook

DOUBLE_ONLY = ("kubelet: the double's kubelet CNI step is replaced (controllers._pod_ip, log_provider): each new pod's address comes from the real "
               'host-local plugin with the dataDir Flannel installed on that node; the simulated nodes run no CNI and give fixed addresses')

ROOT = Path(__file__).resolve().parents[2]
# NETMEDIC_W2_PLAYBOOK runs these tests against another copy (e.g. the playbook before issue 9, to see them fail).
PLAYBOOK = Path(os.environ.get('NETMEDIC_W2_PLAYBOOK') or ROOT / 'playbooks' / 'flannel_datadir_migration.yml')
NS = 'kube-system'
NODES = ('lab-node-1', 'lab-node-2', 'lab-node-3')
HOST_LOCAL = '/usr/lib/cni/host-local'
DISK_DEFAULT = '/var/lib/cni/networks'
TMPFS_DEFAULT = '/var/run/cni/networks'
CONFIG_TASK = 'Set the tmpfs dataDirs in kube-flannel-cfg (C-5, N-7 step 2)'
DRAIN_TASK = 'Drain the node (evictions, PodDisruptionBudgets honoured)'
REMOVE_TASK = 'Remove the old directories (archived above)'
REBOOT_TASK = 'Reboot the node (tmpfs starts empty, every pod sandbox is recreated)'


# --------------------------------------------------------------------------------------------------
# host-local, for real

def host_local(command, container_id, data_dir, subnet, network='cb0', timeout=30):
    """Run the real host-local plugin (ADD or DEL); ADD returns the address (no prefix) or raises."""
    conf = {'cniVersion': '0.3.1', 'name': network, 'type': 'flannel',
            'ipam': {'type': 'host-local', 'subnet': subnet, 'dataDir': data_dir}}
    env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID=container_id, CNI_NETNS='/var/run/netns/%s' % container_id[:12],
               CNI_IFNAME='eth0', CNI_PATH=str(Path(HOST_LOCAL).parent))
    proc = subprocess.run([HOST_LOCAL], input=json.dumps(conf), env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError('host-local %s %s: %s %s' % (command, container_id, proc.stdout, proc.stderr))
    if command == 'ADD':
        return json.loads(proc.stdout)['ips'][0]['address'].split('/')[0]
    return None


class CniNodes:
    """The lab nodes' CNI side (see the module docstring): stores per node, the config Flannel installed there,
    and every address host-local handed out, per node, with the pod that got it."""

    def __init__(self, double, tmp_path, shm):
        self.double = double
        self.dirs = {}
        for node in NODES:
            base = tmp_path / node
            self.dirs[node] = {'old_ipam': base / 'var-lib-cni' / 'networks', 'old_flannel': base / 'var-lib-cni' / 'flannel',
                               'new_ipam': shm / node / 'networks', 'new_flannel': shm / node / 'flannel',
                               'backup': base / 'backup'}
            self.dirs[node]['old_ipam'].mkdir(parents=True)
            self.dirs[node]['old_flannel'].mkdir(parents=True)
        self.installed = {node: self._configmap() for node in NODES}
        self.held = {node: {} for node in NODES}          # address -> pod uid, as the pods are started
        self.duplicates = []
        self.errors = []
        self._lock = threading.Lock()
        controllers = double.controllers
        self._default_ip, self._default_logs = controllers._pod_ip, controllers.log_provider
        controllers._pod_ip = self._pod_ip
        controllers.log_provider = self._logs
        # The pods running now got their addresses from host-local with the disk store, as on a real node.
        for pod in self._pods():
            node = pod['spec'].get('nodeName')
            if node in self.dirs and not pod['spec'].get('hostNetwork') and pod['status'].get('podIP'):
                net = self.dirs[node]['old_ipam'] / 'cb0'
                net.mkdir(exist_ok=True)
                (net / pod['status']['podIP']).write_text('%s\r\neth0' % self._cid(pod))
                (self.dirs[node]['old_flannel'] / self._cid(pod)).write_text('{"ipam": {"type": "host-local"}}')
                self.held[node][pod['status']['podIP']] = pod['metadata']['uid']

    def _configmap(self):
        return self.double.store.get('configmaps', NS, 'kube-flannel-cfg')['data']['cni-conf.json']

    def _pods(self):
        pods, _rv = self.double.store.list('pods', None)
        return pods

    @staticmethod
    def _cid(pod):
        return uuid.UUID(pod['metadata']['uid']).hex * 2 if '-' in pod['metadata']['uid'] else pod['metadata']['uid']

    def data_dir(self, node):
        """Where host-local on ``node`` keeps its store now (the installed config's ipam.dataDir, mapped)."""
        conf = json.loads(self.installed[node])
        plugin = next(p for p in conf.get('plugins', [conf]) if p.get('type') == 'flannel')
        configured = (plugin.get('ipam') or {}).get('dataDir') or DISK_DEFAULT
        mapping = {DISK_DEFAULT: self.dirs[node]['old_ipam'], TMPFS_DEFAULT: self.dirs[node]['new_ipam']}
        return str(mapping.get(configured, configured))

    def _logs(self, pod, store):
        labels = pod['metadata'].get('labels') or {}
        node = pod['spec'].get('nodeName')
        if labels.get('app') == 'flannel' and node in self.installed:
            self.installed[node] = self._configmap()     # install-cni copies the ConfigMap at pod start
        return self._default_logs(pod, store)

    def _pod_ip(self, pod, node_obj):
        node = node_obj['metadata']['name']
        if pod['spec'].get('hostNetwork') or node not in self.dirs:
            return self._default_ip(pod, node_obj)
        try:
            ip = host_local('ADD', self._cid(pod), self.data_dir(node), node_obj['spec']['podCIDR'])
        except Exception as exc:      # the pod then gets no address from us; the test sees the error
            self.errors.append('%s: %s' % (node, exc))
            return self._default_ip(pod, node_obj)
        with self._lock:
            running = {p['status'].get('podIP') for p in self._pods()
                       if p['spec'].get('nodeName') == node and p['metadata']['uid'] != pod['metadata']['uid']
                       and p['status'].get('phase') == 'Running'}
            if ip in running:
                self.duplicates.append((node, ip, pod['metadata']['name']))
            self.held[node][ip] = pod['metadata']['uid']
        return ip

    def restore(self):
        self.double.controllers._pod_ip = self._default_ip
        self.double.controllers.log_provider = self._default_logs


@pytest.fixture
def shm():
    path = Path('/dev/shm') / ('netmedic-w2-%s' % uuid.uuid4().hex[:10])
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cni(double, tmp_path, shm):
    nodes = CniNodes(double, tmp_path, shm)
    yield nodes
    nodes.restore()


def run(double, cni, tmp_path, check, args=(), hosts=NODES, name='run'):
    hostvars = {}
    for node in hosts:
        d = cni.dirs[node]
        hostvars[node] = {
            'ansible_connection': 'local', 'ansible_python_interpreter': module_python()[0],
            'netmedic_flannel_old_ipam_dir': str(d['old_ipam']), 'netmedic_flannel_old_flannel_dir': str(d['old_flannel']),
            'netmedic_flannel_new_ipam_dir': str(d['new_ipam']), 'netmedic_flannel_new_flannel_dir': str(d['new_flannel']),
            'netmedic_flannel_backup_dir': str(d['backup']), 'netmedic_drain_timeout': 30,
            # the default, spelled out: an older playbook without the dataDir variables must never see real paths
            'netmedic_flannel_old_dirs': [str(d['old_ipam']), '%s.netmedic-disk-store' % d['old_ipam'],
                                          str(d['old_flannel']), '%s.netmedic-disk-store' % d['old_flannel']]}
    inventory = {'all': {'hosts': hostvars},
                 'localhost': {'hosts': {'localhost': {'ansible_connection': 'local', 'ansible_python_interpreter': module_python()[0]}}}}
    inv = tmp_path / ('%s-inventory.yml' % name)
    inv.write_text(yaml.safe_dump(inventory))
    return run_playbook(double, tmp_path, PLAYBOOK, '-e', 'netmedic_ready_timeout=60', '-e', 'netmedic_flannel_probe_timeout=60',
                        *args, inventory=inv, diff=True, check=check, by_host=True, timeout=600)


def _pods_on(double, node):
    pods, _rv = double.store.list('pods', None, field_selector='spec.nodeName=%s' % node)
    return {p['metadata']['uid'] for p in pods}


def _cordon(double, node):
    meta = double.store.get('nodes', None, node)
    return bool(meta['spec'].get('unschedulable')), (meta['metadata'].get('annotations') or {}).get('netmedic.io/cordoned-by')


def _tree(path):
    """Every file under ``path`` with its bytes; links as ('link', target)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                out[os.path.relpath(full, path)] = ('link', os.readlink(full))
            elif os.path.isfile(full):
                out[os.path.relpath(full, path)] = Path(full).read_bytes()
    return out


def _lease(double):
    return double.store.find('leases', NS, 'netmedic-flannel')


def _ago(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    return t.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def _start_pod(double, node, name):
    """A pod pinned to ``node`` (its address comes from host-local on that node); returns its address."""
    double.store.create('pods', 'default', {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': name, 'namespace': 'default'},
                                            'spec': {'nodeName': node, 'containers': [{'name': 'c', 'image': 'pause'}]}})

    def running(store):
        pod = store.find('pods', 'default', name)
        return pod if pod and pod['status'].get('podIP') else None

    return double.wait_for(running, timeout=20)['status']['podIP']


# --------------------------------------------------------------------------------------------------
# the store, module level, with the real plugin

@pytest.mark.double_only("no-cluster: the real host-local plugin and flannel_ipam_store's share on this machine")
def test_issue9_f7_shared_store_real_host_local_gives_no_duplicate(tmp_path, shm):
    """Finding 7 (duplicate IPs), proven with host-local itself: the control shows an empty tmpfs store hands out an
    address a running pod holds; after flannel_ipam_store's share, neither configuration can - the range fills up
    exactly once, and a DEL through the old path frees the address for the new one."""
    subnet = '10.9.0.0/29'                              # host-local: .2 - .6 usable (5 addresses)
    old, new = tmp_path / 'lib', shm / 'run'
    held = [host_local('ADD', 'old%d' % i, str(old), subnet) for i in range(3)]
    assert len(set(held)) == 3
    # Control (today's procedure): the ConfigMap points at an empty tmpfs store -> a held address again.
    control = host_local('ADD', 'control', str(shm / 'control'), subnet)
    assert control in held

    report = flannel.share_ipam_dir(str(old), str(new), lock_timeout=10)
    assert report['state_after'] == 'shared' and report['networks'] == ['cb0']
    assert sorted(report['copied']) == sorted('cb0/' + n for n in held + ['last_reserved_ip.0'])
    assert os.path.islink(old) and os.path.realpath(old) == str(new) and Path(report['kept']).is_dir()
    assert report['kept'] == str(old) + '.netmedic-disk-store'

    after = [host_local('ADD', 'new1', str(new), subnet), host_local('ADD', 'old-conf', str(old), subnet)]
    assert len(set(held + after)) == 5                  # every usable address once, none twice
    for data_dir in (new, old):                         # the range is full for both configurations
        with pytest.raises(RuntimeError, match='no IP addresses available'):
            host_local('ADD', 'one-too-many', str(data_dir), subnet)
    host_local('DEL', 'old0', str(old), subnet)         # a pod from before the switch, deleted through the old path
    assert host_local('ADD', 'new3', str(new), subnet) == held[0]
    files = sorted(p.name for p in (new / 'cb0').iterdir() if p.name[0].isdigit())
    assert files == sorted(held + after) and len(files) == 5
    assert (new / 'cb0' / held[0]).read_text().startswith('new3')     # now the new pod's
    # Idempotent: a second share changes nothing.
    again = flannel.share_ipam_dir(str(old), str(new), lock_timeout=10)
    assert again['state_before'] == 'shared' and again['copied'] == []


@pytest.mark.double_only("no-cluster: the real host-local plugin and flannel_ipam_store's share on this machine")
def test_issue9_f7_share_refuses_an_address_held_twice_before_linking(tmp_path, shm):
    """A tmpfs store that already gave a held address to another container: the duplicate exists; nothing is linked."""
    subnet = '10.9.0.0/29'
    old, new = tmp_path / 'lib', shm / 'run'
    ip = host_local('ADD', 'a' * 64, str(old), subnet)
    assert host_local('ADD', 'b' * 64, str(new), subnet) == ip
    with pytest.raises(flannel.FlannelError, match='duplicate already exists') as info:
        flannel.share_ipam_dir(str(old), str(new), lock_timeout=10)
    assert info.value.report['conflicts'][0]['ip'] == ip
    assert old.is_dir() and not old.is_symlink() and (old / 'cb0' / ip).read_text().startswith('a' * 64)


# --------------------------------------------------------------------------------------------------
# the playbook

@pytest.mark.double_only('no-cluster: ansible-playbook --syntax-check')
def test_syntax():
    proc = subprocess.run([str(Path(sys.executable).with_name('ansible-playbook')), '--syntax-check', '-i', 'localhost,',
                           str(PLAYBOOK)], check=False, capture_output=True, text=True,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections')))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_mode_changes_nothing(double, cni, tmp_path):
    cfg = double.store.get('configmaps', NS, 'kube-flannel-cfg')
    pods = {n: _pods_on(double, n) for n in NODES}
    trees = {n: _tree(tmp_path / n) for n in NODES}
    rc, results, output = run(double, cni, tmp_path, check=True)
    assert rc == 0, output
    assert results[CONFIG_TASK]['localhost']['changed'] is True
    share = results['One host-local store for both configurations (flannel_ipam_store state=shared)']['lab-node-1']
    assert share['changed'] and share['ipam_dir']['state_before'] == 'disk' and share['ipam_dir']['copied']
    removed = results[REMOVE_TASK]['lab-node-1']
    d = cni.dirs['lab-node-1']
    assert sorted(r['item'] for r in removed['results'] if not r.get('skipped')) == sorted([str(d['old_ipam']), str(d['old_flannel'])])
    assert results[REBOOT_TASK]['lab-node-1'].get('skipped')
    # Nothing changed: ConfigMap, pods, cordons, node files (no link, no copy, no archive), no Lease left.
    assert double.store.get('configmaps', NS, 'kube-flannel-cfg') == cfg
    assert {n: _pods_on(double, n) for n in NODES} == pods
    assert all(_cordon(double, n) == (False, None) for n in NODES)
    assert {n: _tree(tmp_path / n) for n in NODES} == trees
    assert not any((cni.dirs[n]['new_ipam']).exists() for n in NODES)
    assert _lease(double) is None


def test_issue9_f7_no_duplicate_ip_on_nodes_not_yet_migrated(double, cni, tmp_path):
    """Finding 7: after kube-flannel-cfg changed (every Flannel pod restarted with the tmpfs dataDir), a node not yet
    migrated still runs pods with addresses recorded only on disk. New pods there must not get those addresses."""
    running = {n: dict(cni.held[n]) for n in NODES}
    assert all(running[n] for n in ('lab-node-2', 'lab-node-3')), running
    rc, results, output = run(double, cni, tmp_path, check=False)
    assert rc != 0, output                                                # stops at lab-node-1's reboot (local)
    assert all(cni.data_dir(n) == str(cni.dirs[n]['new_ipam']) for n in NODES)   # the switch happened everywhere
    new = []
    for node in ('lab-node-2', 'lab-node-3'):
        for i in range(4):
            new.append((node, _start_pod(double, node, 'after-switch-%s-%d' % (node[-1], i))))
    assert not cni.errors, cni.errors
    assert cni.duplicates == [], cni.duplicates
    for node, ip in new:
        assert ip not in running[node], (node, ip, running[node])
    # Read back from the stores: one file per address, on the node's tmpfs store, the old path a link to it.
    for node in ('lab-node-2', 'lab-node-3'):
        d = cni.dirs[node]
        assert os.path.islink(d['old_ipam']) and os.path.realpath(d['old_ipam'] / 'cb0') == str(d['new_ipam'] / 'cb0')
        files = {p.name for p in (d['new_ipam'] / 'cb0').iterdir() if p.name[0].isdigit()}
        assert set(running[node]) | {ip for n, ip in new if n == node} <= files
    assert 'reboot' in results['Stop the rollout']['lab-node-1']['msg'].lower()


def test_issue9_f7_stores_are_shared_before_the_configmap_changes(double, cni, tmp_path):
    """The order is the proof: at the moment kube-flannel-cfg is written, every node's disk store already is a link to
    its tmpfs store holding every allocation (observed from inside the API server, not from the playbook's output)."""
    seen = []

    def observe(method, path, query):
        if method in ('PUT', 'PATCH') and path.endswith('/configmaps/kube-flannel-cfg') and 'dryRun' not in (query or ''):
            seen.append({n: (os.path.islink(cni.dirs[n]['old_ipam']),
                             sorted(p.name for p in (cni.dirs[n]['new_ipam'] / 'cb0').glob('172.*'))
                             if (cni.dirs[n]['new_ipam'] / 'cb0').is_dir() else None,
                             sorted(cni.held[n])) for n in NODES})

    remove = double.inject_fault(observe)
    try:
        rc, _results, output = run(double, cni, tmp_path, check=False)
    finally:
        remove()
    assert rc != 0, output
    assert seen, output
    for node in NODES:
        linked, files, held = seen[0][node]       # every address held at that moment is in the joined store
        assert linked and files is not None and set(held) <= set(files), (node, seen[0][node])


def test_apply_archives_before_removing_and_stops_cordoned_at_the_reboot(double, cni, tmp_path):
    rc, results, output = run(double, cni, tmp_path, check=False)
    assert rc != 0, output
    conf = json.loads(double.store.get('configmaps', NS, 'kube-flannel-cfg')['data']['cni-conf.json'])
    plugin = next(p for p in conf['plugins'] if p['type'] == 'flannel')
    d = cni.dirs['lab-node-1']
    # The ConfigMap takes the controller's values (the catalog's); the per-node dirs are the nodes' view of them.
    assert plugin['dataDir'] == '/var/run/cni/flannel' and plugin['ipam']['dataDir'] == TMPFS_DEFAULT
    # The node was drained and is left cordoned (by netmedic) at the failed reboot.
    assert _cordon(double, 'lab-node-1')[0] is True and _cordon(double, 'lab-node-1')[1]
    stop = results['Stop the rollout']['lab-node-1']
    assert stop['failed'] and 'LEFT CORDONED' in stop['msg'] and 'reboot' in stop['msg'].lower(), stop
    # The old paths are gone, and only after their archive (link + the kept disk store) was written and verified.
    assert not any(os.path.lexists(str(p) + s) for p in (d['old_ipam'], d['old_flannel']) for s in ('', '.netmedic-disk-store'))
    (archive,) = d['backup'].glob('lab-node-1-cni-*.tar.gz')
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    ip = next(iter(cni.held['lab-node-1']))
    assert any(n.endswith('networks.netmedic-disk-store/cb0/%s' % ip) for n in names), names
    assert results['Verify the archive']['lab-node-1']['stat']['size'] > 0
    assert _lease(double) is None                                        # released on failure
    # lab-node-2/3 were not touched beyond the shared store.
    assert _cordon(double, 'lab-node-2') == (False, None) and cni.dirs['lab-node-2']['old_ipam'].exists()


def test_issue9_f7_rerun_verifies_after_ready_and_a_real_allocation_then_uncordons(double, cni, tmp_path):
    """Finding 7 (tmpfs checked before the node is Ready and before host-local created the network's directory) and
    finding 8's rule for W-2: the node a run left cordoned after its reboot is finished by the re-run - wait for
    Ready, a probe pod's real allocation on the emptied tmpfs store, verification, uncordon."""
    rc, _results, output = run(double, cni, tmp_path, check=False)
    assert rc != 0 and _cordon(double, 'lab-node-1')[0], output
    # The reboot: tmpfs emptied, Flannel starts again (installs the current config), the Node NotReady for a while.
    shutil.rmtree(cni.dirs['lab-node-1']['new_ipam'])
    shutil.rmtree(cni.dirs['lab-node-1']['new_flannel'])
    cni.installed['lab-node-1'] = cni._configmap()
    node = double.store.get('nodes', None, 'lab-node-1')
    for c in node['status']['conditions']:
        if c['type'] == 'Ready':
            c['status'] = 'False'
    double.store.update('nodes', None, 'lab-node-1', node, subresource='status')
    ready_at = []

    def back():
        # Ready again once the re-run holds the Lease (its first play): the re-run starts while the Node is NotReady.
        # Not a fixed delay: a re-run that reaches Flannel's verified rollout while lab-node-1 is NotReady stops there
        # (its Flannel pod is not Ready, max_unhealthy=0: safe, nothing restarted), which a fast run did after 6 s.
        deadline = time.monotonic() + 300
        while _lease(double) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        n = double.store.get('nodes', None, 'lab-node-1')
        for c in n['status']['conditions']:
            if c['type'] == 'Ready':
                c['status'] = 'True'
        ready_at.append(time.monotonic())
        double.store.update('nodes', None, 'lab-node-1', n, subresource='status')

    threading.Thread(target=back, daemon=True).start()
    rc, results, output = run(double, cni, tmp_path, check=False, name='rerun')
    assert rc != 0, output                                              # lab-node-2 then stops at its reboot
    verified = results['Verify the address is allocated on tmpfs and no old dir is left (flannel_ipam_store state=verified)']
    evidence = verified['lab-node-1']['verification']
    (ip,) = evidence['allocations']
    assert ipaddress.ip_address(ip) in ipaddress.ip_network('172.20.1.0/24')
    assert evidence['allocations'][ip]['tmpfs'] is True and evidence['old_paths_left'] == []
    assert (cni.dirs['lab-node-1']['new_ipam'] / 'cb0' / ip).is_file()      # host-local's own file, on /dev/shm
    assert ready_at and cni.held['lab-node-1'][ip]                          # allocated by the plugin ...
    assert _cordon(double, 'lab-node-1') == (False, None)                   # ... then uncordoned, annotation gone
    assert not [p for p in double.store.list('pods', NS)[0] if p['metadata']['name'].startswith('netmedic-w2-probe-')]
    assert results['Stop the rollout']['lab-node-2']['failed']


def test_issue9_f7_flannel_older_than_v0_15_1_11_is_refused_before_any_change(double, cni, tmp_path):
    ds = double.store.get('daemonsets', NS, 'kube-flannel-ds')
    ds['spec']['template']['spec']['containers'][0]['image'] = 'registry.lab.invalid/acs/flannel:v0.15.1.4-e02c8f12-aliyun'
    double.store.update('daemonsets', NS, 'kube-flannel-ds', ds)
    cfg, trees = double.store.get('configmaps', NS, 'kube-flannel-cfg'), {n: _tree(tmp_path / n) for n in NODES}
    rc, results, output = run(double, cni, tmp_path, check=False)
    assert rc != 0, output
    gate = results['Gate on Flannel >= v0.15.1.11 (N-7 step 1)']['localhost']
    assert gate['failed'] and 'v0.15.1.4-e02c8f12-aliyun' in gate['msg'] and 'older than v0.15.1.11' in gate['msg'], gate
    assert double.store.get('configmaps', NS, 'kube-flannel-cfg') == cfg
    assert {n: _tree(tmp_path / n) for n in NODES} == trees and _lease(double) is None


def test_issue9_f7_unreadable_flannel_version_needs_it_stated(double, cni, tmp_path):
    ds = double.store.get('daemonsets', NS, 'kube-flannel-ds')
    ds['spec']['template']['spec']['containers'][0]['image'] = 'registry.lab.invalid/acs/flannel@sha256:' + 'ab' * 32
    double.store.update('daemonsets', NS, 'kube-flannel-ds', ds)
    rc, results, output = run(double, cni, tmp_path, check=True)
    assert rc != 0 and 'set\nnetmedic_flannel_version' not in output
    assert 'netmedic_flannel_version' in results['Gate on Flannel >= v0.15.1.11 (N-7 step 1)']['localhost']['msg']
    rc, results, output = run(double, cni, tmp_path, check=True, args=('-e', 'netmedic_flannel_version=v0.15.1.11-7e95fe23-aliyun'),
                              name='stated')
    assert rc == 0, output


def test_issue9_f7_every_flannel_node_must_be_in_the_run(double, cni, tmp_path):
    """kube-flannel-cfg applies to every node: a Flannel node left out of the run could not have its stores shared."""
    cfg = double.store.get('configmaps', NS, 'kube-flannel-cfg')
    rc, results, output = run(double, cni, tmp_path, check=False, hosts=('lab-node-1',))
    assert rc != 0, output
    refuse = results['Refuse to change kube-flannel-cfg while a Flannel node is not in this run']['lab-node-1']
    assert refuse['failed'] and 'lab-node-2, lab-node-3' in refuse['msg'], refuse
    assert double.store.get('configmaps', NS, 'kube-flannel-cfg') == cfg
    assert not os.path.islink(cni.dirs['lab-node-1']['old_ipam']) and _lease(double) is None


def test_issue9_f4_w2_stops_when_another_run_holds_the_flannel_lock(double, cni, tmp_path):
    spec = {'holderIdentity': 'awx-job-41', 'leaseDurationSeconds': 3600, 'renewTime': _ago(10), 'acquireTime': _ago(10)}
    double.store.create('leases', NS, {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                                       'metadata': {'name': 'netmedic-flannel', 'namespace': NS}, 'spec': spec})
    cfg, trees = double.store.get('configmaps', NS, 'kube-flannel-cfg'), {n: _tree(tmp_path / n) for n in NODES}
    rc, _results, output = run(double, cni, tmp_path, check=False)
    assert rc != 0 and "held by 'awx-job-41'" in output, output
    assert double.store.get('configmaps', NS, 'kube-flannel-cfg') == cfg
    assert {n: _tree(tmp_path / n) for n in NODES} == trees
    assert _lease(double)['spec']['holderIdentity'] == 'awx-job-41'


def test_issue9_f4_w2_outside_the_window_changes_nothing(double, cni, tmp_path):
    cfg, trees = double.store.get('configmaps', NS, 'kube-flannel-cfg'), {n: _tree(tmp_path / n) for n in NODES}
    window = '{"netmedic_window": {"days": ["mon"], "start": "02:00", "end": "03:00", "timezone": "UTC"}}'
    rc, _results, output = run(double, cni, tmp_path, check=False,
                               args=('-e', window, '-e', 'change_guard_now=2026-12-01T12:00:00+00:00'))
    assert rc != 0 and 'outside' in output, output
    assert double.store.get('configmaps', NS, 'kube-flannel-cfg') == cfg
    assert {n: _tree(tmp_path / n) for n in NODES} == trees and _lease(double) is None


def _hold_with_finalizer(double, node):
    pods, _rv = double.store.list('pods', 'default', label_selector='app=web')
    pod = next(p for p in pods if p['spec'].get('nodeName') == node)
    pod['metadata']['finalizers'] = ['example.com/hold']
    double.store.update('pods', 'default', pod['metadata']['name'], pod)
    return pod['metadata']['name']


def test_issue9_f3_pod_left_after_the_drain_timeout_stops_before_archive_and_uncordons(double, cni, tmp_path):
    """Finding 3 (a drain that means drained) and finding 7 (node left cordoned): the drain fails, nothing destructive
    runs, and the node netmedic cordoned is given back (its store is the shared one)."""
    held = _hold_with_finalizer(double, 'lab-node-1')
    rc, results, output = run(double, cni, tmp_path, check=False, args=('-e', 'netmedic_drain_timeout=5'))
    assert rc != 0, output
    drain = results[DRAIN_TASK]['lab-node-1']
    assert drain['failed'] and 'default/%s' % held in drain['msg'] and 'still on the node' in drain['msg'], drain
    assert REMOVE_TASK not in results or results[REMOVE_TASK]['lab-node-1'].get('skipped')
    d = cni.dirs['lab-node-1']
    assert os.path.islink(d['old_ipam']) and Path(str(d['old_ipam']) + '.netmedic-disk-store').is_dir()
    assert not d['backup'].exists()
    assert _cordon(double, 'lab-node-1') == (False, None)
    assert 'uncordoned again' in results['Stop the rollout']['lab-node-1']['msg']
    assert _lease(double) is None


def test_issue9_f9_limit_without_localhost_fails_loudly_before_any_change(double, cni, tmp_path):
    cfg = double.store.get('configmaps', NS, 'kube-flannel-cfg')
    trees = {n: _tree(tmp_path / n) for n in NODES}
    rc, results, output = run(double, cni, tmp_path, check=False, args=('--limit', 'lab-node-1'))
    assert rc != 0, output
    guard = results['Refuse a --limit that leaves out the cluster play on localhost']['lab-node-1']
    assert guard['failed'] and "--limit 'lab-node-1,localhost'" in guard['msg'], guard
    assert CONFIG_TASK not in results and DRAIN_TASK not in results
    assert double.store.get('configmaps', NS, 'kube-flannel-cfg') == cfg
    assert {n: _tree(tmp_path / n) for n in NODES} == trees


def test_issue9_f10_w2_flannel_restart_failure_rolls_back_and_stops(make_double, tmp_path, shm):
    """Flannel's new pod on lab-node-2 crash-loops with the tmpfs config: kube-flannel-cfg is restored exactly,
    the nodes done are restarted with it, and no node is drained, archived or removed."""
    default = make_log_provider(StaticNodeState())

    def provider(pod, store):
        labels = pod['metadata'].get('labels') or {}
        cfg = store.get('configmaps', NS, 'kube-flannel-cfg')['data']['cni-conf.json']
        if labels.get('app') == 'flannel' and pod['spec'].get('nodeName') == 'lab-node-2' and TMPFS_DEFAULT in cfg:
            raise CrashLoop('E1201 main.go:332] failed to start with the new dataDir\n')
        return default(pod, store)

    double = make_double(log_provider=provider)
    cni = CniNodes(double, tmp_path, shm)
    try:
        before = double.store.get('configmaps', NS, 'kube-flannel-cfg')['data']
        rc, results, output = run(double, cni, tmp_path, check=False, args=['-e', 'netmedic_flannel_restart_timeout=5'])
    finally:
        cni.restore()
    assert rc != 0, output
    assert double.store.get('configmaps', NS, 'kube-flannel-cfg')['data'] == before        # the exact backed-up bytes
    pods, _rv = double.store.list('pods', NS, label_selector='app=flannel')
    assert all(p['status'].get('conditions') and any(c['type'] == 'Ready' and c['status'] == 'True'
                                                     for c in p['status']['conditions']) for p in pods), pods
    assert all(_cordon(double, n) == (False, None) for n in NODES)                          # the node play never ran
    assert all(cni.dirs[n]['old_ipam'].exists() for n in NODES)
    stop = next(r for name, r in results.items() if name.endswith('Stop the workflow'))['localhost']
    assert 'rolled back' in stop['msg'] and 'lab-node-2' in stop['msg'], stop['msg']
    assert _lease(double) is None


def test_issue10_h13_w2_runs_with_exactly_its_rbac_grants(double, cni, tmp_path, as_identity):
    """rbac/flannel_datadir_migration.yml is enough for W-2: check mode, the run up to the first reboot (lock, health
    gate, ConfigMap with backup, verified Flannel restart, cordon, drain), and the re-run that finishes the node (probe
    pod, verification, uncordon) - all as its ServiceAccount, with no request refused."""
    double.audit = []                                  # the double's request audit, switched on for this test
    double._httpd.api.audit = double.audit
    sa = as_identity(double, ROOT / 'rbac' / 'flannel_datadir_migration.yml')
    rc, _results, output = run(sa, cni, tmp_path, check=True, name='check')
    assert rc == 0, output
    rc, results, output = run(sa, cni, tmp_path, check=False)
    assert rc != 0 and 'reboot' in results['Stop the rollout']['lab-node-1']['msg'].lower(), output
    shutil.rmtree(cni.dirs['lab-node-1']['new_ipam'])
    shutil.rmtree(cni.dirs['lab-node-1']['new_flannel'])
    cni.installed['lab-node-1'] = cni._configmap()
    rc, results, output = run(sa, cni, tmp_path, check=False, name='rerun')
    assert _cordon(double, 'lab-node-1') == (False, None), output          # finished and uncordoned
    assert not [e for e in double.audit if not e['allowed']]
    writes = {e['user'] for e in double.audit if e['verb'] not in ('get', 'list', 'watch')}
    assert writes == {'system:serviceaccount:netmedic:netmedic-flannel-datadir-migration'}
