"""The module fork server (tests/forkserver/forkserver.py) stands in for a fresh interpreter for a cluster module, on
the double and on the real kube-apiserver (issue 15).

Ported from tests/lab/test_module_forkserver.py (issue 15 item 4; its one case that talks to a cluster, the rest need
none and stay there). Every ``ansible-playbook`` run of the suites starts its module processes through the fork
server (issue 12: CI time): a read-only cluster module (``network_audit``) run through ``ansible-playbook`` once forked
from the server and once in a fresh interpreter (``NETMEDIC_TEST_FORKSERVER=0``) must return the same result, read
from the server's log that the first run was one fork and the second none.
"""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

from tests.forkserver import forkserver
from tests.lab.playbook_run import module_python, run_playbook


@pytest.fixture(scope='module')
def server_log():
    """The log of this test process's fork server (started here when no run started it yet)."""
    saved = os.environ.pop(forkserver.ENV_VAR, None)
    try:
        python, _env = module_python()
    finally:
        if saved is not None:
            os.environ[forkserver.ENV_VAR] = saved
    assert python != sys.executable
    return os.path.join(os.path.dirname(python), 'server.log')


def _forks(log):
    with open(log, encoding='utf-8') as handle:
        return sum(1 for line in handle if line.startswith('forked '))


def test_a_cluster_module_returns_the_same_result_forked_and_in_a_fresh_interpreter(cluster, server_log, tmp_path, monkeypatch):
    monkeypatch.delenv(forkserver.ENV_VAR, raising=False)       # the 'forked' run forks even under =0
    play = tmp_path / 'play.yml'
    play.write_text(textwrap.dedent("""
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: audit
              netmedic.k8s.network_audit:
    """))
    results, forks = {}, {}
    for mode, env in (('forked', None), ('fresh', {forkserver.ENV_VAR: '0'})):
        (tmp_path / mode).mkdir()
        before = _forks(server_log)
        rc, tasks, output = run_playbook(cluster, tmp_path / mode, play, env=env)
        assert rc == 0, output
        results[mode], forks[mode] = tasks['audit'], _forks(server_log) - before
    assert forks == {'forked': 1, 'fresh': 0}     # the one module task: a fork, then a fresh interpreter
    assert results['forked'] == results['fresh']
    assert results['forked']['findings'] is not None and 'failed' not in results['forked']
