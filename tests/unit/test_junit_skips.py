"""scripts/junit_skips.py: `make test` fails when a stage skipped a test (a skip is never a pass)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location('junit_skips', str(ROOT / 'scripts' / 'junit_skips.py'))
junit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(junit)

# What pytest 9 writes (--junitxml): a testsuites root, a skip with its reason as message.
PYTEST_XML = '''<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="0"
failures="0" skipped="1" tests="3" time="1.0"><testcase classname="tests.cluster.test_x" name="test_a" time="0.1" />
<testcase classname="tests.cluster.test_x" name="test_b" time="0.0"><skipped type="pytest.skip"
message="writes to a real cluster need NETMEDIC_TEST_WRITABLE=1">tests/cluster/conftest.py:439: writes</skipped>
</testcase><testcase classname="tests.cluster.test_x" name="test_c" time="0.1"><failure message="boom">x</failure>
</testcase></testsuite></testsuites>'''


def test_a_skip_fails_and_is_named(tmp_path, capsys):
    path = tmp_path / 'realcluster.xml'
    path.write_text(PYTEST_XML)
    assert junit.skipped_tests(str(path)) == (3, [('tests.cluster.test_x::test_b',
                                                  'writes to a real cluster need NETMEDIC_TEST_WRITABLE=1')])
    assert junit.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert 'SKIPPED tests.cluster.test_x::test_b' in out and '1 of 3 tests skipped' in out


def test_no_skip_passes(tmp_path, capsys):
    path = tmp_path / 'units.xml'
    path.write_text(PYTEST_XML.replace('<skipped type="pytest.skip"\nmessage="writes to a real cluster need '
                                       'NETMEDIC_TEST_WRITABLE=1">tests/cluster/conftest.py:439: writes</skipped>', ''))
    assert junit.main([str(path)]) == 0
    assert 'no test skipped (3 tests in 1 files)' in capsys.readouterr().out


def test_an_unreadable_file_is_not_a_pass(tmp_path):
    path = tmp_path / 'apidouble.xml'
    path.write_text('<testsuites><testsuite')          # a stage killed while writing it
    assert junit.main([str(path)]) == 2
    assert junit.main([str(tmp_path / 'missing.xml')]) == 2
