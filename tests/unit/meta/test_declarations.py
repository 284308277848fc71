# -*- coding: utf-8 -*-
"""The collection declares what it needs where Galaxy, ansible-builder and AWX look (issue #11, item 3).

Reproduces: galaxy.yml said `dependencies: {}` while roles and playbooks call kubernetes.core and
community.general; no collections/requirements.yml for AWX project sync; no action_groups, so
`module_defaults: group/...` never reached the cluster modules; placeholder URLs.
"""

from __future__ import annotations

import ast
import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
BUILTIN = {'ansible.builtin', 'ansible.legacy', 'netmedic.k8s'}
FQCN = re.compile(r'^\s*-?\s*([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+:\s*$')


def _load(rel):
    return yaml.safe_load((ROOT / rel).read_text(encoding='utf-8'))


def _used_collections():
    """Collections named by an FQCN task key in roles/ and playbooks/ (what a user's run needs)."""
    used = {}
    for path in list(ROOT.glob('roles/**/*.yml')) + list(ROOT.glob('playbooks/**/*.yml')):
        for line in path.read_text(encoding='utf-8').splitlines():
            m = FQCN.match(line)
            if m and m.group(1) not in BUILTIN:
                used.setdefault(m.group(1), set()).add(str(path.relative_to(ROOT)))
    return used


def _doc_fragments(module_path):
    """The doc fragments a module's DOCUMENTATION extends (read as text: no module import)."""
    tree = ast.parse(module_path.read_text(encoding='utf-8'))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', '') == 'DOCUMENTATION' for t in node.targets):
            m = re.search(r'^extends_documentation_fragment:\n((?:[ \t]+-[^\n]*\n)+)', node.value.value, re.M)
            return set(re.findall(r'-\s*(\S+)', m.group(1))) if m else set()
    raise AssertionError(f'{module_path} has no DOCUMENTATION')


def test_issue11_galaxy_declares_every_collection_the_content_calls():
    deps = _load('galaxy.yml')['dependencies']
    used = _used_collections()
    assert 'kubernetes.core' in used, 'the roles call kubernetes.core modules: the scan found none'
    missing = {c: sorted(files)[:3] for c, files in used.items() if c not in deps}
    assert not missing, f'collections used but not in galaxy.yml dependencies: {missing}'
    for name, spec in deps.items():
        assert re.fullmatch(r'>=\d+\.\d+\.\d+,<\d+\.\d+\.\d+', spec), f'{name}: give a bounded range, not {spec!r}'


def test_issue11_no_placeholder_urls():
    text = (ROOT / 'galaxy.yml').read_text(encoding='utf-8')
    assert 'example.invalid' not in text


def test_issue11_awx_project_requirements_match_galaxy():
    deps = _load('galaxy.yml')['dependencies']
    reqs = {c['name']: c['version'] for c in _load('collections/requirements.yml')['collections']}
    assert reqs == deps


def test_issue11_ee_metadata_points_at_shipped_files():
    meta = _load('meta/execution-environment.yml')['dependencies']
    ignored = _load('galaxy.yml')['build_ignore']
    for key in ('python', 'system'):
        rel = meta[key]
        assert (ROOT / rel).is_file(), rel
        assert not any(rel == i or rel.startswith(i.rstrip('/') + '/') for i in ignored), f'{rel} is build_ignored'
    py = (ROOT / meta['python']).read_text(encoding='utf-8')
    # Every third-party package a controller-side plugin imports is declared.
    for pkg in ('kubernetes', 'ruamel.yaml'):
        assert re.search(rf'^{re.escape(pkg)}\b', py, re.M), f'{pkg} missing from {meta["python"]}'


def test_issue11_action_group_holds_exactly_the_modules_with_k8s_auth():
    runtime = _load('meta/runtime.yml')
    group = runtime['action_groups']['k8s']
    assert group[0] == {'metadata': {'extend_group': ['kubernetes.core.k8s']}}
    members = set(group[1:])
    with_auth = {p.stem for p in (ROOT / 'plugins/modules').glob('*.py')
                 if 'netmedic.k8s.k8s_auth' in _doc_fragments(p)}
    assert with_auth, 'no module uses the k8s_auth doc fragment: the scan is broken'
    assert members == with_auth, (
        f'not in the group: {sorted(with_auth - members)}; in the group without the auth options: {sorted(members - with_auth)}')
