#!/usr/bin/env python
"""Fail when a test stage skipped a test: a skip is never a pass (the brief; tests/cluster/README.md).

    scripts/junit_skips.py FILE...     the JUnit XML files the stages of `make test` wrote (tests/output/junit)

Prints one line per skipped test (file, test, pytest's reason) and exits 1 when there is any; otherwise prints how many
tests the files hold and exits 0. A file that cannot be parsed is an error too (exit 2): a stage that died while writing
it has not shown that nothing was skipped. Called by scripts/stages.sh after the stages (`make test`).
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def skipped_tests(path):
    """``(tests, [(name, reason)])`` of one JUnit XML file (a ``testsuites`` or a single ``testsuite`` root)."""
    root = ET.parse(path).getroot()
    cases = list(root.iter('testcase'))
    skips = []
    for case in cases:
        mark = case.find('skipped')
        if mark is not None:
            name = '%s::%s' % (case.get('classname', ''), case.get('name', ''))
            skips.append((name, (mark.get('message') or mark.text or '').strip()))
    return len(cases), skips


def main(paths):
    total, found, broken = 0, [], []
    for path in paths:
        try:
            count, skips = skipped_tests(path)
        except (OSError, ET.ParseError) as exc:
            broken.append('%s: %s' % (path, exc))
            continue
        total += count
        found += [(path, name, reason) for name, reason in skips]
    for line in broken:
        print('junit: cannot read %s' % line)
    for path, name, reason in found:
        print('junit: SKIPPED %s (%s): %s' % (name, path, reason))
    if broken:
        return 2
    if found:
        print('junit: %d of %d tests skipped: a skip is not a pass' % (len(found), total))
        return 1
    print('junit: no test skipped (%d tests in %d files)' % (total, len(paths)))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
