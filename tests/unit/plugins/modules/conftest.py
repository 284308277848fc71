"""Modules run in-process here behave as on a managed node.

Once any controller code is imported in the same pytest process (the callback tests import
``ansible.executor``), ansible-core marks the process as the controller and
``AnsibleModule.warn`` then prints through the controller's Display instead of returning the
warning in the module result, so a test that checks ``result['warnings']`` would pass alone and
fail in the full run. Every test here runs with the node-side behaviour (``tests/harness.py``,
shared with the API-double suite's in-process module runs).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.harness import set_module_side  # noqa: E402


@pytest.fixture(autouse=True)
def _module_side(monkeypatch):
    set_module_side(monkeypatch)
