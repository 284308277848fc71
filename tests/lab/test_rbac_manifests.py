"""rbac/*.yml are exactly what scripts/rbac_manifests.py generates from its table (issue 10 hole 13),
valid RBAC objects, and shipped in the collection build (galaxy.yml build_ignore leaves rbac/ in)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'scripts'))

import rbac_manifests  # noqa: E402


def test_committed_manifests_equal_the_generated_ones():
    proc = subprocess.run([sys.executable, str(ROOT / 'scripts' / 'rbac_manifests.py'), '--check'],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_read_only_role_has_no_write_verb_and_names_are_dns_labels():
    for path in sorted((ROOT / 'rbac').glob('*.yml')):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        kinds = [d['kind'] for d in docs]
        assert kinds[0] == 'ServiceAccount' and ('Role' in kinds or 'ClusterRole' in kinds), path
        sa = docs[0]['metadata']['name']
        assert sa.replace('-', '').isalnum() and sa.islower(), sa
        for doc in docs:
            for rule in doc.get('rules', []):
                assert set(rule['verbs']) <= set(rbac_manifests.VERB_ORDER) and '*' not in rule['resources'], rule
                if path.name == 'read-only.yml':
                    assert set(rule['verbs']) <= {'get', 'list', 'watch'}, rule


def test_rbac_dir_ships_in_the_build():
    ignored = yaml.safe_load((ROOT / 'galaxy.yml').read_text())['build_ignore']
    assert not any(p in ('rbac', 'rbac/*', 'rbac/**') for p in ignored)
    assert 'scripts' in ignored      # the generator stays out; its output ships
