# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Port ranges (catalog N-3): the ephemeral range against the NodePort range.

A range is a ``(start, end)`` tuple of ints, both inclusive.  A *range list* is a
sorted list of disjoint, non-adjacent ranges (what :func:`normalize` returns).
The kernel's two formats are both handled:

- ``net.ipv4.ip_local_port_range``: two numbers separated by white space
  (``32768\\t60999``), see :func:`parse_local_port_range`;
- ``net.ipv4.ip_local_reserved_ports``: a comma separated list of ports and
  ``a-b`` ranges, empty when nothing is reserved (``30000-32767,40000``), see
  :func:`parse_port_ranges`, which also reads the NodePort option.
"""

from __future__ import annotations

import re

MIN_PORT = 0
MAX_PORT = 65535
DEFAULT_NODEPORT_RANGE = '30000-32767'

_ITEM_RE = re.compile(r'^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$')


class PortRangeError(ValueError):
    pass


def _check_port(value, text):
    if value < MIN_PORT or value > MAX_PORT:
        raise PortRangeError('port %d out of range %d-%d in %r' % (value, MIN_PORT, MAX_PORT, text))
    return value


def normalize(ranges):
    """Sort and merge overlapping or adjacent ranges."""
    result = []
    for start, end in sorted((int(s), int(e)) for s, e in ranges):
        if start > end:
            raise PortRangeError('range %d-%d ends before it starts' % (start, end))
        if result and start <= result[-1][1] + 1:
            if end > result[-1][1]:
                result[-1] = (result[-1][0], end)
        else:
            result.append((start, end))
    return result


def parse_port_ranges(text):
    """``"30000-32767,40000"`` -> ``[(30000, 32767), (40000, 40000)]``.

    Empty text (or None) is the empty list.  Single ports, ``a-b`` ranges and
    surrounding white space are accepted; anything else raises PortRangeError.
    """
    if text is None:
        return []
    if isinstance(text, (list, tuple)):
        text = ','.join(str(t) for t in text)
    text = str(text).strip()
    if not text:
        return []
    ranges = []
    for item in text.split(','):
        if not item.strip():
            raise PortRangeError('empty item in port list %r' % (text,))
        match = _ITEM_RE.match(item)
        if not match:
            raise PortRangeError('not a port or a port range: %r (expected e.g. 30000-32767 or 8080)' % (item.strip(),))
        start = _check_port(int(match.group(1)), text)
        end = _check_port(int(match.group(2)), text) if match.group(2) is not None else start
        if start > end:
            raise PortRangeError('range %r ends before it starts' % (item.strip(),))
        ranges.append((start, end))
    return normalize(ranges)


def parse_single_range(text):
    """Exactly one range (``"30000-32767"``), e.g. the NodePort range option."""
    ranges = parse_port_ranges(text)
    if len(ranges) != 1:
        raise PortRangeError('expected one port range like 30000-32767, got %r' % (text,))
    return ranges[0]


def parse_local_port_range(text):
    """``net.ipv4.ip_local_port_range`` (``"32768\\t60999"``) -> ``(32768, 60999)``."""
    parts = str(text or '').split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise PortRangeError('ip_local_port_range must be two numbers, got %r' % (text,))
    start = _check_port(int(parts[0]), text)
    end = _check_port(int(parts[1]), text)
    if start > end:
        raise PortRangeError('ip_local_port_range %r ends before it starts' % (text,))
    return (start, end)


def format_range(rng):
    start, end = rng
    return str(start) if start == end else '%d-%d' % (start, end)


def format_ranges(ranges):
    """The kernel's reserved-ports syntax: ``30000-32767,40000``."""
    return ','.join(format_range(r) for r in normalize(ranges))


def format_local_port_range(rng):
    """What to write to ``ip_local_port_range``."""
    return '%d %d' % (rng[0], rng[1])


def _as_list(ranges):
    if isinstance(ranges, tuple) and len(ranges) == 2 and all(isinstance(x, int) for x in ranges):
        return [ranges]
    if isinstance(ranges, str):
        return parse_port_ranges(ranges)
    return normalize(ranges)


def count(ranges):
    """Number of ports in a range, a range list or a port-list string."""
    return sum(end - start + 1 for start, end in _as_list(ranges))


def overlap(a, b):
    """Intersection of two ranges / range lists / strings, as a range list."""
    result = []
    for s1, e1 in _as_list(a):
        for s2, e2 in _as_list(b):
            start, end = max(s1, s2), min(e1, e2)
            if start <= end:
                result.append((start, end))
    return normalize(result)


def union(a, b):
    return normalize(_as_list(a) + _as_list(b))


def subtract(a, b):
    """Ports of ``a`` that are not in ``b``, as a range list."""
    remaining = _as_list(a)
    for s2, e2 in _as_list(b):
        nxt = []
        for s1, e1 in remaining:
            if e2 < s1 or s2 > e1:
                nxt.append((s1, e1))
                continue
            if s1 < s2:
                nxt.append((s1, s2 - 1))
            if e1 > e2:
                nxt.append((e2 + 1, e1))
        remaining = nxt
    return normalize(remaining)


def covered_by_reserved(ranges, reserved):
    """True when every port of ``ranges`` is in ``reserved``."""
    return not subtract(ranges, reserved)


def analyze(local_port_range, reserved_ports, nodeport_range=DEFAULT_NODEPORT_RANGE):
    """Catalog N-3 assessment from the raw kernel values and the NodePort option.

    ``conflict`` is true when the ephemeral range overlaps the NodePort range and
    ``ip_local_reserved_ports`` does not cover the whole overlap (then the kernel can
    pick a NodePort as a source port).
    """
    ephemeral = parse_local_port_range(local_port_range)
    reserved = parse_port_ranges(reserved_ports)
    nodeport = parse_single_range(nodeport_range)
    shared = overlap(ephemeral, nodeport)
    uncovered = subtract(shared, reserved)
    return {
        'ephemeral': {'start': ephemeral[0], 'end': ephemeral[1]},
        'reserved': [format_range(r) for r in reserved],
        'nodeport_range': format_range(nodeport),
        'overlap': [format_range(r) for r in shared],
        'overlap_ports': count(shared),
        'uncovered': [format_range(r) for r in uncovered],
        'uncovered_ports': count(uncovered),
        'covered_by_reserved': (not uncovered) if shared else None,
        'conflict': bool(uncovered),
    }


# --- port_range module (catalog N-3 fix) -------------------------------------------------------

LOCAL_PORT_RANGE_KEY = 'net.ipv4.ip_local_port_range'
RESERVED_PORTS_KEY = 'net.ipv4.ip_local_reserved_ports'
UNPRIVILEGED_PORT_START_KEY = 'net.ipv4.ip_unprivileged_port_start'
# Fewer free ephemeral ports than this after a fix is refused: outgoing connections would
# start failing with EADDRNOTAVAIL under load (fail before changing anything).
MIN_EPHEMERAL_PORTS = 1024

_STRICT_RANGE_RE = re.compile(r'^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$')


def parse_strict_range(text, what='range'):
    """User input ``"30000-32767"`` -> ``(30000, 32767)``, ports 1-65535, start <= end.

    Stricter than :func:`parse_single_range`: exactly ``start-end``, no lists, no port 0,
    no booleans or numbers in place of text.
    """
    if isinstance(text, bool) or not isinstance(text, str):
        raise PortRangeError('%s must be a string like 30000-32767, got %r' % (what, text))
    match = _STRICT_RANGE_RE.match(text)
    if not match:
        raise PortRangeError('%s must look like 30000-32767 (start-end), got %r' % (what, text))
    start, end = int(match.group(1)), int(match.group(2))
    for port in (start, end):
        if port < 1 or port > MAX_PORT:
            raise PortRangeError('%s %r: port %d is outside 1-%d' % (what, text, port, MAX_PORT))
    if start > end:
        raise PortRangeError('%s %r: start %d is greater than end %d' % (what, text, start, end))
    return (start, end)


def free_ephemeral(ephemeral, reserved):
    """Ephemeral ports the kernel may still pick (the range minus the reserved ports)."""
    return count(subtract(ephemeral, reserved))


def plan_reserve(ephemeral, reserved, nodeport):
    """Method ``reserve``: add the NodePort range to the reserved ports, keep the rest.

    ``ephemeral``: (start, end); ``reserved``: range list; ``nodeport``: (start, end).
    Returns ``{'local_port_range': (s, e), 'reserved': range list, 'free_ephemeral': n}``;
    raises PortRangeError when the result would leave fewer than MIN_EPHEMERAL_PORTS.
    """
    target = union(reserved, [nodeport])
    free = free_ephemeral(ephemeral, target)
    if free < MIN_EPHEMERAL_PORTS:
        raise PortRangeError('reserving %s would leave %d usable ephemeral ports in %s (minimum %d): '
                             'use method=move with move_to instead (nothing was changed)'
                             % (format_range(nodeport), free, format_range(ephemeral), MIN_EPHEMERAL_PORTS))
    return {'local_port_range': tuple(ephemeral), 'reserved': target, 'free_ephemeral': free}


def plan_move(ephemeral, reserved, nodeport, move_to=None, unprivileged_start=1024):
    """Method ``move``: an ephemeral range that does not overlap ``nodeport``.

    Without ``move_to`` the current range is kept when it is already clear of the NodePort
    range, otherwise the largest part of it outside the NodePort range is chosen.  The
    kernel refuses a range that starts below ``ip_unprivileged_port_start``; both that and a
    result with fewer than MIN_EPHEMERAL_PORTS usable ports raise PortRangeError.
    """
    if move_to is not None:
        target = tuple(move_to)
        if overlap(target, nodeport):
            raise PortRangeError('move_to %s overlaps the NodePort range %s'
                                 % (format_range(target), format_range(nodeport)))
    elif not overlap(ephemeral, nodeport):
        target = tuple(ephemeral)
    else:
        pieces = subtract(ephemeral, nodeport)
        if not pieces:
            raise PortRangeError('the ephemeral range %s lies inside the NodePort range %s: give move_to'
                                 % (format_range(ephemeral), format_range(nodeport)))
        # Largest piece; on a tie the higher one (further from well-known ports).
        target = max(pieces, key=lambda r: (r[1] - r[0], r[0]))
    if target[0] == target[1]:
        raise PortRangeError('an ephemeral range needs two different ends, got %s' % format_range(target))
    if unprivileged_start is not None and target[0] < unprivileged_start:
        raise PortRangeError('the ephemeral range %s would start below ip_unprivileged_port_start (%d); '
                             'the kernel refuses it: give move_to' % (format_range(target), unprivileged_start))
    free = free_ephemeral(target, reserved)
    if free < MIN_EPHEMERAL_PORTS:
        raise PortRangeError('the ephemeral range %s would leave %d usable ports (minimum %d): give a wider move_to'
                             % (format_range(target), free, MIN_EPHEMERAL_PORTS))
    return {'local_port_range': target, 'reserved': normalize(reserved), 'free_ephemeral': free}
