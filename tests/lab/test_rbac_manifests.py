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

DOUBLE_ONLY = 'no-cluster: static checks of rbac/*.yml and its generator'


def test_committed_manifests_equal_the_generated_ones():
    proc = subprocess.run([sys.executable, str(ROOT / 'scripts' / 'rbac_manifests.py'), '--check'],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_read_only_role_has_no_write_verb_and_names_are_dns_labels():
    for path in sorted((ROOT / 'rbac').glob('*.yml')):
        (listing,) = [d for d in yaml.safe_load_all(path.read_text()) if d]     # one document: a v1 List
        assert (listing['apiVersion'], listing['kind']) == ('v1', 'List'), path
        docs = listing['items']
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


def _cluster_modules():
    """Modules that call the Kubernetes API: those taking the shared k8s_auth options."""
    return {p.stem for p in (ROOT / 'plugins' / 'modules').glob('*.py') if 'netmedic.k8s.k8s_auth' in p.read_text()}


def _used(path, seen):
    """Every netmedic.k8s module or role name a playbook uses, following roles into their tasks."""
    import re
    names = set(re.findall(r'netmedic\.k8s\.([a-z_]+)', path.read_text()))
    for name in sorted(names):
        role = ROOT / 'roles' / name / 'tasks'
        if role.is_dir() and name not in seen:
            seen.add(name)
            for task in role.glob('*.yml'):
                names |= _used(task, seen)
    return names


def test_each_playbooks_table_entry_covers_every_cluster_module_it_uses():
    """A playbook that starts calling another cluster module must get its grants in the table (no drift)."""
    cluster = _cluster_modules()
    assert {'kube_proxy_config', 'cluster_lock', 'node_drain'} <= cluster
    for playbook in sorted((ROOT / 'playbooks').glob('*.yml')):
        used = _used(playbook, set()) & cluster
        name = playbook.stem
        if name in rbac_manifests.NODE_ONLY:
            assert not used, (name, used)
            continue
        assert name in rbac_manifests.PLAYBOOKS, 'playbooks/%s.yml has no entry in scripts/rbac_manifests.py' % name
        assert used <= set(rbac_manifests.PLAYBOOKS[name]['modules']), (name, used - set(rbac_manifests.PLAYBOOKS[name]['modules']))
