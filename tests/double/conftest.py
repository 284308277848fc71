"""Fixtures of the API double's own suite (``tests/double``): the same ones as ``tests/lab``.

``tests/lab/conftest.py`` is the one definition of ``double``, ``make_double``, ``raw``,
``api_client``, ``core``, ... (and of the short ``tmp_path``); this folder uses them as they
are, so the double's tests and the product's tests against it start the double the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Every fixture of tests/lab, by its name (pytest finds them in this module's namespace).
# pylint: disable=unused-import
from tests.lab.conftest import (  # noqa: E402, F401
    api_client,
    apps,
    as_identity,
    core,
    double,
    make_double,
    module_run,
    module_tasks,
    node_state,
    playbook,
    playbook_file,
    policy,
    private_tmpdir,
    raw,
    tmp_path,
)
