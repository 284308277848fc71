"""Catalog W-2 (N-7 across the fleet) end to end on the lab: real VM nodes, real host-local, real reboots.

The cluster side is the API double on this machine; the node side is the lab's Debian VMs. ``VMCni`` connects
the two the way Flannel and the kubelet do on a real node:

- a Flannel pod that starts on a node installs ``kube-flannel-cfg``'s ``cni-conf.json`` as
  ``/etc/cni/net.d/10-flannel.conflist`` on that VM (Flannel's install-cni init container);
- any other pod that starts on a node gets its address from the REAL host-local plugin on that VM
  (``/usr/lib/cni/host-local`` ADD), with the ipam ``dataDir`` of the config installed there (host-local's default
  ``/var/lib/cni/networks`` when it names none) and the Node's podCIDR, and the flannel plugin's per-container file
  is written to its ``dataDir`` - so the double's pod IPs ARE the VMs' allocations.

playbooks/flannel_datadir_migration.yml then runs for real: stores shared, ConfigMap changed, Flannel restarted,
each node drained, archived, cleaned, REBOOTED (the VM's boot_id changes), verified after a real allocation by a
probe pod on the emptied tmpfs, and uncordoned (issue 9 finding 7: "the path after the reboot was never run in a
test"). Re-runs (resume, idempotence) are covered against the API double in tests/lab/test_flannel_datadir_migration.py.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.kubedouble import KubeDouble  # noqa: E402
from tests.labvm.vm_playbook import vm_playbook  # noqa: E402

NS = 'kube-system'
CONF = '/etc/cni/net.d/10-flannel.conflist'
DISK = '/var/lib/cni/networks'


class VMCni:
    """Flannel's install-cni and the kubelet's CNI ADD, on the lab VMs (see the module docstring)."""

    def __init__(self, double, ssh, nodes):
        self.double, self.ssh, self.nodes = double, ssh, set(nodes)
        self.errors, self.duplicates, self.allocated = [], [], []
        self.ips = {}                                  # pod uid -> address host-local gave it
        self._lock = threading.Lock()
        controllers = double.controllers
        self._default_ip, self._default_logs = controllers._pod_ip, controllers.log_provider
        controllers._pod_ip = self._pod_ip
        controllers.log_provider = self._logs

    def install(self, node):
        """Flannel's install-cni: the ConfigMap's cni-conf.json becomes the node's CNI config."""
        text = self.double.store.get('configmaps', NS, 'kube-flannel-cfg')['data']['cni-conf.json']
        payload = base64.b64encode(text.encode()).decode()
        proc = self.ssh(node, 'mkdir -p /etc/cni/net.d && echo %s | base64 -d > %s.tmp && mv %s.tmp %s'
                        % (payload, CONF, CONF, CONF), check=False)
        if proc.returncode != 0:
            self.errors.append('%s install-cni: %s' % (node, proc.stderr))

    def _logs(self, pod, store):
        """Runs outside the double's store lock (SSH to a TCG guest is slow): install-cni, or the pod's CNI ADD."""
        node = pod['spec'].get('nodeName')
        if node in self.nodes:
            if (pod['metadata'].get('labels') or {}).get('app') == 'flannel':
                self.install(node)
            elif not pod['spec'].get('hostNetwork'):
                self._add(pod, store.get('nodes', None, node))
        return self._default_logs(pod, store)

    def _add(self, pod, node_obj):
        node = node_obj['metadata']['name']
        cid = pod['metadata']['uid'].replace('-', '') * 2
        script = ADD_SCRIPT.replace('@SUBNET@', node_obj['spec']['podCIDR']).replace('@CID@', cid)
        proc = self.ssh(node, script, check=False, timeout=300)
        if proc.returncode != 0:
            self.errors.append('%s host-local ADD: %s %s' % (node, proc.stdout, proc.stderr))
            return
        data_dir, _sep, out = proc.stdout.partition('\n')
        ip = json.loads(out)['ips'][0]['address'].split('/')[0]
        with self._lock:
            running = {p['status'].get('podIP') for p in self.double.store.iter_objects('pods')
                       if p['spec'].get('nodeName') == node and p['status'].get('phase') == 'Running'
                       and not p['spec'].get('hostNetwork') and p['metadata']['uid'] != pod['metadata']['uid']}
            if ip in running:
                self.duplicates.append((node, ip, pod['metadata']['name']))
            self.allocated.append((node, ip, pod['metadata']['name'], data_dir.strip()))
            self.ips[pod['metadata']['uid']] = ip

    def _pod_ip(self, pod, node_obj):
        """Under the store lock: the address host-local gave the pod in _add (no I/O here)."""
        ip = self.ips.get(pod['metadata']['uid'])
        if ip is None and node_obj['metadata']['name'] in self.nodes and not pod['spec'].get('hostNetwork'):
            self.errors.append('%s: no host-local address for %s' % (node_obj['metadata']['name'], pod['metadata']['name']))
        return ip or self._default_ip(pod, node_obj)


# On the VM: read the installed Flannel config like the flannel plugin does, delegate to host-local with the Node's
# podCIDR, keep the delegate config in Flannel's dataDir; print the ipam dataDir, then host-local's result.
ADD_SCRIPT = r'''set -e
PY='import json
c = json.load(open("/etc/cni/net.d/10-flannel.conflist"))
p = [x for x in c.get("plugins", [c]) if x.get("type") == "flannel"][0]
print((p.get("ipam") or {}).get("dataDir") or "/var/lib/cni/networks", p.get("dataDir") or "/var/lib/cni/flannel", c.get("name", "cb0"))'
set -- $(python3 -c "$PY")
netconf="{\"cniVersion\":\"0.3.1\",\"name\":\"$3\",\"type\":\"flannel\",\"ipam\":{\"type\":\"host-local\",\"subnet\":\"@SUBNET@\",\"dataDir\":\"$1\"}}"
out=$(printf %s "$netconf" | CNI_COMMAND=ADD CNI_CONTAINERID=@CID@ CNI_NETNS=/var/run/netns/x CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni /usr/lib/cni/host-local)
mkdir -p "$2" && printf %s "$netconf" > "$2/@CID@"
echo "$1"
echo "$out"
'''


def _play(lab, tmp_path, double, targets, name):
    cmd, env = vm_playbook(
        lab, tmp_path, double, 'flannel_datadir_migration.yml',
        '-e', 'netmedic_targets=%s' % ','.join(targets), '-e', 'netmedic_reboot_timeout=900',
        '-e', 'netmedic_drain_timeout=120', '-e', 'netmedic_flannel_restart_timeout=120')
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3000, check=False)
    (tmp_path / ('%s.json' % name)).write_text(proc.stdout)
    data = json.loads(proc.stdout)
    tasks = {}
    for play in data['plays']:
        for task in play['tasks']:
            for host, res in task['hosts'].items():
                tasks.setdefault(task['task']['name'].split(' : ')[-1], {})[host] = res
    return proc.returncode, tasks, data.get('stats', {}), proc.stdout[-4000:] + proc.stderr[-4000:]


def _settled(store):
    """The seed's workloads are up: three web pods, a Flannel pod per node, every pod Running."""
    pods = store.iter_objects('pods')
    web = [p for p in pods if p['metadata']['name'].startswith('web-')]
    flannel = [p for p in pods if (p['metadata'].get('labels') or {}).get('app') == 'flannel']
    return (len(web) == 3 and len(flannel) == len(store.iter_objects('nodes'))
            and all(p['status'].get('phase') == 'Running' for p in pods))


def _boot_id(ssh, node):
    return ssh(node, 'cat /proc/sys/kernel/random/boot_id').stdout.strip()


def test_issue9_f7_w2_success_path_with_real_reboots(lab, ssh, lab_reset, tmp_path):
    nodes = lab['nodes'][:2]
    lab_reset()
    for node in nodes:   # a node that never ran Flannel's tmpfs store: no CNI config, no stores
        ssh(node, 'rm -rf /etc/cni/net.d/10-flannel.conflist /var/lib/cni /var/run/cni')
    double = KubeDouble(seed=ROOT / 'lab' / 'seed' / 'cluster.yaml', tick=0.1, start_delay=0.1,
                        nodes=[(n, lab['hostvars'][n]['lab_l2_ip']) for n in nodes])
    cni = VMCni(double, ssh, nodes)
    for node in nodes:      # Flannel ran there before (the node is Ready): its CNI config is installed
        cni.install(node)
    with double:
        double.kubeconfig_path = double.write_kubeconfig(tmp_path / 'kubeconfig')
        double.wait_for(_settled, timeout=900)
        assert not cni.errors, cni.errors
        before = {}
        for node in nodes:
            files = ssh(node, 'ls %s/cb0' % DISK).stdout.split()
            before[node] = sorted(f for f in files if f[0].isdigit())
        assert all(before.values()), before                       # pods got their addresses from host-local on disk
        boots = {n: _boot_id(ssh, n) for n in nodes}

        rc, tasks, _stats, output = _play(lab, tmp_path, double, nodes, 'first')
        assert rc == 0, output
        assert not cni.errors and cni.duplicates == [], (cni.errors, cni.duplicates)
        for node in nodes:
            assert _boot_id(ssh, node) != boots[node], '%s did not really reboot' % node
            state = ssh(node, 'for p in /var/lib/cni/networks /var/lib/cni/networks.netmedic-disk-store /var/lib/cni/flannel '
                              '/var/lib/cni/flannel.netmedic-disk-store; do test -e $p -o -L $p && echo "left $p"; done; '
                              'stat -f -c %T /var/run/cni/networks/cb0; ls /var/run/cni/networks/cb0; '
                              'tar -tzf /var/lib/netmedic/backups/flannel-datadir/' + node + '-cni-*.tar.gz').stdout
            assert 'left ' not in state, state
            assert state.splitlines()[0] == 'tmpfs', state
            evidence = tasks['Verify the address is allocated on tmpfs and no old dir is left (flannel_ipam_store state=verified)'][node]
            (probe_ip,) = evidence['verification']['allocations']
            assert probe_ip in state.splitlines()[1:], state                  # host-local's file, read back over SSH
            for ip in before[node]:                                          # the disk store went into the archive
                assert 'networks.netmedic-disk-store/cb0/%s' % ip in state, (ip, state)
            meta = double.store.get('nodes', None, node)
            assert not meta['spec'].get('unschedulable')
            assert 'netmedic.io/cordoned-by' not in (meta['metadata'].get('annotations') or {})
        conf = json.loads(double.store.get('configmaps', NS, 'kube-flannel-cfg')['data']['cni-conf.json'])
        plugin = next(p for p in conf['plugins'] if p['type'] == 'flannel')
        assert plugin['dataDir'] == '/var/run/cni/flannel' and plugin['ipam']['dataDir'] == '/var/run/cni/networks'
        assert double.store.find('leases', NS, 'netmedic-flannel') is None
        # Probes that run after the switch on a node not yet migrated used the shared store: no address twice.
        switched = [a for a in cni.allocated if a[3] == '/var/run/cni/networks']
        assert switched, cni.allocated

    assert not double.failures, double.failures
