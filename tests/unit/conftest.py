"""Shared helpers for unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / 'fixtures'


@pytest.fixture
def fixture_text():
    def _read(relpath):
        return (FIXTURES / relpath).read_text()
    return _read
