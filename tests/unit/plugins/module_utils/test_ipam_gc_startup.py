"""cni_ipam_gc start-up (issue 14 item 3): the module process imports only what its path needs.

A GC run at 254 files is dominated by Python and AnsibleModule start-up, and under AnsiballZ every
module_util is compiled from source on every run. A run that has at most one backup run to weigh
(the one it just wrote) must not import ``reportfiles`` (retention arithmetic) nor ``_strptime``
(``datetime.strptime``'s first call). Measured with bench/bench_gc_process.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[4] / 'collections'

PROBE = r'''
import json, sys
from ansible_collections.netmedic.k8s.plugins.modules import cni_ipam_gc
from ansible_collections.netmedic.k8s.plugins.module_utils import ipam_gc
out = ipam_gc.prune_run_dirs(sys.argv[1], keep_count=0, keep_days=30)
print(json.dumps({'kept': out['kept'], 'modules': sorted(m for m in sys.modules
                  if m == '_strptime' or m.endswith('module_utils.reportfiles'))}))
'''


def _probe(backup):
    proc = subprocess.run([sys.executable, '-c', PROBE, str(backup)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)), check=True)
    return json.loads(proc.stdout)


def _run_dir(backup, name):
    path = backup / name
    path.mkdir(parents=True)
    (path / 'manifest.json').write_text(json.dumps({'catalog': 'N-1'}))
    return path


def test_one_backup_run_imports_no_retention_code(tmp_path):
    backup = tmp_path / 'backup'
    run = _run_dir(backup, '20261202T101139Z-42')
    out = _probe(backup)
    assert out['kept'] == [str(run)]
    assert out['modules'] == []


@pytest.mark.parametrize('runs', [2, 3])
def test_runs_to_weigh_still_use_the_shared_retention(tmp_path, runs):
    backup = tmp_path / 'backup'
    for i in range(runs):
        _run_dir(backup, '202001%02dT000000Z-%d' % (i + 1, i))
    out = _probe(backup)
    assert [os.path.basename(p) for p in out['kept']] == ['202001%02dT000000Z-%d' % (runs, runs - 1)]
    assert 'ansible_collections.netmedic.k8s.plugins.module_utils.reportfiles' in out['modules']
