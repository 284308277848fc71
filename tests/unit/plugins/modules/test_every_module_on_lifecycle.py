"""Every module is one lifecycle subclass and a ``main()`` that runs it (issue 13: one module lifecycle).

A module that builds its own ``AnsibleModule`` or ``Result`` is a second copy of the lifecycle (validate, read, plan,
report, check-mode stop, apply, verify, refusals that say nothing was changed, credentials masked); this test names
the module that does.
"""

import ast
import importlib
from pathlib import Path

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import lifecycle

MODULES = Path(__file__).resolve().parents[4] / 'plugins' / 'modules'
NAMES = sorted(p.stem for p in MODULES.glob('*.py') if p.stem != '__init__')


def test_the_module_list_is_the_collection():
    assert len(NAMES) >= 23 and 'cni_ipam_gc' in NAMES and 'node_network_facts' in NAMES


@pytest.mark.parametrize('name', NAMES)
def test_issue13_module_is_a_lifecycle_subclass_run_by_main(name):
    module = importlib.import_module('ansible_collections.netmedic.k8s.plugins.modules.%s' % name)
    own = [obj for obj in vars(module).values()
           if isinstance(obj, type) and issubclass(obj, lifecycle.ModuleLifecycle) and obj.__module__ == module.__name__]
    assert len(own) == 1, '%s defines %d lifecycle classes: %s' % (name, len(own), own)
    cls = own[0]
    tree = ast.parse((MODULES / ('%s.py' % name)).read_text())
    main = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == 'main']
    assert len(main) == 1, '%s has no main()' % name
    assert ast.unparse(main[0].body[-1]) == '%s().run()' % cls.__name__, ast.unparse(main[0])
    source = (MODULES / ('%s.py' % name)).read_text()
    assert 'AnsibleModule(' not in source and 'Result(' not in source, '%s builds its own AnsibleModule or Result' % name
    assert cls.catalog, '%s names no catalog ID' % name
