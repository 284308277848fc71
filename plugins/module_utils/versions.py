# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Versions as the catalog writes them.

Plain (``1.24.9``, ``v1.18``), GKE (``1.24.9-gke.3200``: release, then the GKE build
number) and Alibaba vendor builds (``v0.15.1.11-7e95fe23-aliyun``: a four-part
release and a commit hash, which carries no order).  ``packaging.version`` rejects
the vendor forms (they are not PEP 440) and is not installed on every node, so the
comparison is done here, on a small, fully tested grammar.

Ordering rules:
- releases compare numerically part by part, missing parts count as 0
  (``1.24`` == ``1.24.0``);
- for the same release, a numbered vendor build compares by its number
  (``-gke.3200`` < ``-gke.10000``), and a release without a build number sorts
  *before* any numbered build of it: ``1.24.9`` < ``1.24.9-gke.3200``, so a bare
  version never counts as "already has the fixed build";
- a non-numeric vendor suffix (commit hash) is kept for display and ignored for order.
"""

from __future__ import annotations

import re

_VERSION_RE = re.compile(
    r'^\s*v?(?P<release>\d+(?:\.\d+)*)'
    r'(?:[-+.](?P<suffix>[0-9A-Za-z][0-9A-Za-z.\-+_]*))?\s*$'
)
_BUILD_RE = re.compile(r'^(?P<vendor>[A-Za-z]+)\.(?P<build>\d+)(?:[.\-+].*)?$')


class VersionError(ValueError):
    pass


class Version(object):
    """A parsed version; instances compare with each other and with strings."""

    __slots__ = ('text', 'release', 'vendor', 'build', 'suffix')

    def __init__(self, text):
        if isinstance(text, Version):
            text = text.text
        match = _VERSION_RE.match(str(text or ''))
        if not match:
            raise VersionError('not a version: %r (expected e.g. 1.24.9, v1.24.9-gke.3200 or '
                               'v0.15.1.11-7e95fe23-aliyun)' % (text,))
        self.text = str(text).strip()
        self.release = tuple(int(p) for p in match.group('release').split('.'))
        self.suffix = match.group('suffix') or ''
        self.vendor = None
        self.build = None
        build = _BUILD_RE.match(self.suffix)
        if build:
            self.vendor = build.group('vendor').lower()
            self.build = int(build.group('build'))
        elif self.suffix:
            parts = [p for p in re.split(r'[-.+_]', self.suffix) if p]
            words = [p for p in parts if p.isalpha()]
            if words:
                self.vendor = words[-1].lower()

    def _key(self, width):
        release = self.release + (0,) * (width - len(self.release))
        return release + ((self.build is not None), self.build or 0)

    def _cmp(self, other):
        other = other if isinstance(other, Version) else Version(other)
        width = max(len(self.release), len(other.release))
        a, b = self._key(width), other._key(width)
        return (a > b) - (a < b)

    def __eq__(self, other):
        try:
            return self._cmp(other) == 0
        except VersionError:
            return NotImplemented

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __lt__(self, other):
        return self._cmp(other) < 0

    def __le__(self, other):
        return self._cmp(other) <= 0

    def __gt__(self, other):
        return self._cmp(other) > 0

    def __ge__(self, other):
        return self._cmp(other) >= 0

    def __hash__(self):
        return hash(self._key(4))

    def __repr__(self):
        return 'Version(%r)' % (self.text,)

    def __str__(self):
        return self.text

    @property
    def minor(self):
        """``(major, minor)``: the Kubernetes minor line (1.24)."""
        return (self.release + (0, 0))[:2]


def parse(text):
    return Version(text)


def is_at_least(version, minimum):
    return Version(version) >= Version(minimum)


def fixed_in(version, fixed_versions):
    """True when ``version`` carries the fix, given per-minor fixed versions.

    ``fixed_versions`` lists the first fixed build of each affected minor line
    (the catalog's form: "1.22.17-gke.3100, 1.23.16-gke.200 ... or later").  A version
    on a listed minor line is fixed when it is at least that line's fixed build; a
    version newer than every listed line is fixed; one older than every listed line
    is not.
    """
    v = Version(version)
    fixes = sorted(Version(f) for f in fixed_versions)
    if not fixes:
        raise VersionError('fixed_in needs at least one fixed version')
    for fix in fixes:
        if v.minor == fix.minor:
            return v >= fix
    return v.minor > fixes[-1].minor
