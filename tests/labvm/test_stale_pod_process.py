"""stale_pod_process (catalog N-9) on a real node: containerd, runc, cgroup v2, network namespaces.

The pod (UID below) has two processes in its cgroup: `owned1`, a real container started by
containerd (`ctr run --cgroup /kubepods/besteffort/pod<uid>/owned1`), and a python process
listening on 8080 in the pod's own network namespace, in cgroup `.../pod<uid>/deadbeefcafe`,
a container containerd does not know - what a runtime crash leaves behind. Every claim is
checked over SSH (kill -0, ctr task ls, a bind on 8080), not with the module's report.
"""

import pytest

NODE = 'lab-node-1'
UID = '3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8'
SETUP = r'''
set -e
POD=/sys/fs/cgroup/kubepods/besteffort/pod{uid}
mkdir -p $POD/deadbeefcafe
ctr -n k8s.io run -d --cgroup /kubepods/besteffort/pod{uid}/owned1 localhost/netmedic/busybox:lab owned1 sleep 3600 >/dev/null
ip netns add stalepod; ip -n stalepod link set lo up
nohup sh -c "echo \$\$ > $POD/deadbeefcafe/cgroup.procs; \
exec ip netns exec stalepod python3 -c 'import socket,time; s=socket.socket(); s.bind((\"0.0.0.0\",8080)); s.listen(); time.sleep(3600)'" >/dev/null 2>&1 &
# pgrep exits 1 until the listener exists: `|| true` keeps set -e from ending the script (TCG guests are slow).
P=
for i in $(seq 60); do P=$(pgrep -f '^python3 -c import socket' || true); [ -n "$P" ] && break; sleep 0.5; done
[ -n "$P" ] || {{ echo 'the stale listener did not start within 30 s' >&2; exit 1; }}
echo "$P $(ctr -n k8s.io t ls | awk '$1=="owned1"{{print $2}}')"
'''.format(uid=UID)
BIND = 'ip netns exec stalepod python3 -c "import socket; socket.socket().bind((\'0.0.0.0\', 8080))"'


@pytest.fixture(scope='module')
def pod(lab, lab_reset, ssh):
    lab_reset()
    stale, owned = ssh(NODE, SETUP).stdout.split()
    return int(stale), int(owned)


def alive(ssh, pid):
    return ssh(NODE, 'kill -0 %d' % pid, check=False).returncode == 0


def test_stale_process_found_and_stopped_owned_container_untouched(pod, run_module, ssh):
    stale, owned = pod
    args = {'pod_uid': UID, 'port': 8080, 'state': 'killed'}
    assert ssh(NODE, BIND, check=False).returncode != 0, 'the fault: port 8080 is taken in the pod namespace'

    checked = run_module(NODE, 'stale_pod_process', args, check=True, diff=True)
    assert not checked.failed, checked.output
    assert checked['changed'] is True
    assert checked['signalled'] == [stale]
    assert [s['container_id'] for s in checked['stale']] == ['deadbeefcafe']
    assert checked['stale'][0]['sockets'] == [{'proto': 'tcp', 'port': 8080, 'state': 'LISTEN'}]
    assert [(o['pid'], o['container_id']) for o in checked['owned']] == [(owned, 'owned1')]
    assert alive(ssh, stale) and alive(ssh, owned), 'check mode signalled a process'

    # The runtime cannot be asked: nothing may be called stale, nothing is signalled.
    blind = run_module(NODE, 'stale_pod_process', dict(args, runtime_endpoint='/run/netmedic-nosuch.sock'))
    assert blind.failed and blind['changed'] is False
    assert 'cannot list containerd containers' in blind['msg']
    assert alive(ssh, stale)

    killed = run_module(NODE, 'stale_pod_process', args)
    assert not killed.failed, killed.output
    assert killed['changed'] is True
    assert killed['signalled'] == [stale]
    assert killed['after'] == {'stale': []}
    assert not alive(ssh, stale)
    assert alive(ssh, owned)
    assert 'RUNNING' in ssh(NODE, 'ctr -n k8s.io t ls').stdout
    assert ssh(NODE, BIND, check=False).returncode == 0, 'port 8080 is still taken'

    again = run_module(NODE, 'stale_pod_process', args)
    assert not again.failed, again.output
    assert again['changed'] is False
    assert again['stale'] == []
