"""Shared helpers for unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import Runner

FIXTURES = Path(__file__).resolve().parent / 'fixtures'


@pytest.fixture
def fixture_text():
    def _read(relpath):
        return (FIXTURES / relpath).read_text()
    return _read


@pytest.fixture(autouse=True)
def no_host_binary_lookup(monkeypatch):
    """Unit tests need no host binary (issue 12): a Runner that would search this machine fails the test.

    A module's Runner finds binaries through the real ``AnsibleModule.get_bin_path``; a unit
    test that gets there passes or fails with what this machine has installed. Give the
    Runner a fake module (``FakeModule`` in tests/unit/plugins/conftest.py) or patch
    ``Runner.which``. (Ansible's own internal lookups, such as ``lsattr`` in atomic_move,
    are not the modules' dependencies and are left alone.)
    """
    real_which = Runner.which

    def which(self, name):
        if isinstance(self.module, AnsibleModule):
            raise AssertionError('unit test looked up the host binary %r through a real AnsibleModule: unit tests '
                                 'must fake it (FakeModule in tests/unit/plugins/conftest.py, or Runner.which)' % (name,))
        return real_which(self, name)
    monkeypatch.setattr(Runner, 'which', which)
