"""Modules run in-process here behave as on a managed node.

Once any controller code is imported in the same pytest process (the callback tests import
``ansible.executor``), ansible-core marks the process as the controller and
``AnsibleModule.warn`` then prints through the controller's Display instead of returning the
warning in the module result, so a test that checks ``result['warnings']`` would pass alone and
fail in the full run. Every test here runs with the node-side behaviour.
"""

from __future__ import annotations

import pytest
from ansible.module_utils import _internal


@pytest.fixture(autouse=True)
def _module_side(monkeypatch):
    monkeypatch.setattr(_internal, 'is_controller', False)
