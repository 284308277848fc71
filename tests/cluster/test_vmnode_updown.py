"""lab/k8s/vmnode.py `up` / `down` (make realnode-test, make demo): the order of the steps, and a `down` that leaves every
node even when one fails. Offline: join, kube-proxy and leave are replaced by recorders; no VM, no apiserver."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def vmnode(lab_vmnode, monkeypatch):
    mod = lab_vmnode
    calls = []
    monkeypatch.setattr(mod, 'cmd_prepare', lambda *a: calls.append(('prepare',)))
    # the lab's node table is not read: the test runs whether the VMs are up or not
    monkeypatch.setattr(mod, 'find_node', lambda spec: {'name': f'lab-node-{spec}'})
    monkeypatch.setattr(mod, 'node_certs', lambda node: calls.append(('certs', node['name'])))
    monkeypatch.setattr(mod, 'cmd_join', lambda a: calls.append(('join', a.node, a.timeout)))
    monkeypatch.setattr(mod, 'cmd_kube_proxy', lambda a: calls.append(('kube-proxy', a.node, a.timeout)))
    return mod, calls


def test_up_joins_every_node_before_kube_proxy_runs_on_any(vmnode):
    """Certificates one node at a time (openssl rewrites the CA's serial file), then the joins side by side (their
    order is the threads'), then kube-proxy node by node once every node is Ready."""
    mod, calls = vmnode
    assert mod.main(['up', '--nodes', '3', '--timeout', '120']) == 0
    assert calls[:4] == [('prepare',), ('certs', 'lab-node-1'), ('certs', 'lab-node-2'), ('certs', 'lab-node-3')]
    assert sorted(calls[4:7]) == [('join', '1', 120), ('join', '2', 120), ('join', '3', 120)]
    assert calls[7:] == [('kube-proxy', '1', 120), ('kube-proxy', '2', 120), ('kube-proxy', '3', 120)]


def test_up_fails_when_one_join_fails_and_starts_kube_proxy_on_no_node(vmnode, monkeypatch):
    """The joins run side by side: node 2's failure lets nodes 1 and 3 finish their join, then `up` fails naming
    node 2 and kube-proxy is started on none (C-1..C-3 tests must not run on a half-joined lab)."""
    mod, calls = vmnode

    def join(args):
        calls.append(('join', args.node))
        if args.node == '2':
            raise mod.LabError('lab-node-2 not Ready after 120s')
    monkeypatch.setattr(mod, 'cmd_join', join)
    assert mod.main(['up', '--nodes', '3']) != 0
    assert sorted(c for c in calls if c[0] == 'join') == [('join', '1'), ('join', '2'), ('join', '3')]
    assert not [c for c in calls if c[0] == 'kube-proxy']


def test_down_leaves_every_node_and_then_fails_naming_the_one_that_failed(vmnode, monkeypatch, capsys):
    mod, _calls = vmnode
    left = []

    def leave(args):
        left.append(args.node)
        if args.node == '1':
            raise mod.LabError('ssh: connection refused')
    monkeypatch.setattr(mod, 'cmd_leave', leave)
    assert mod.main(['down', '--nodes', '3']) != 0
    assert left == ['1', '2', '3']
    out = capsys.readouterr()
    assert 'leave failed on node(s) 1' in out.out + out.err
