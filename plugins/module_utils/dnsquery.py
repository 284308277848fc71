# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One DNS query over UDP, classified (catalog D-11).

The seed queries the kube-dns Service IP and each CoreDNS pod with dig/nslookup and tells
NXDOMAIN apart from SERVFAIL/REFUSED and from a timeout.  This module sends the same
query itself (no host binary needed, a hard timeout) and returns the class:
``noerror`` (with ``answers``; 0 answers is NODATA), ``nxdomain``, ``servfail``,
``refused``, ``other`` (any other RCODE), ``timeout``, ``unreachable`` (ICMP port/host
unreachable) or ``error`` (malformed or mismatched reply).  Read-only: a question only.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import struct
import time

QTYPES = {'A': 1, 'AAAA': 28}
RCODES = {0: 'noerror', 2: 'servfail', 3: 'nxdomain', 5: 'refused'}
_LABEL_RE = re.compile(r'^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$')
MAX_TIMEOUT = 30


class QueryError(ValueError):
    pass


def validate_name(name):
    """A DNS name as the resolver takes it (labels 1-63, total <= 253); raises QueryError."""
    if not isinstance(name, str) or not name:
        raise QueryError('a DNS name must be a non-empty string, got %r' % (name,))
    stripped = name[:-1] if name.endswith('.') else name
    if len(stripped) > 253 or not all(_LABEL_RE.match(label) for label in stripped.split('.')):
        raise QueryError('%r is not a valid DNS name' % name)
    return stripped


def validate_server(server):
    """An IPv4 or IPv6 address (no port, no name: the query must not itself need DNS)."""
    try:
        return str(ipaddress.ip_address(str(server)))
    except ValueError:
        raise QueryError('DNS server %r is not an IP address' % (server,)) from None


def build_query(name, qtype='A', qid=None):
    """The wire bytes of a recursive query for ``name``/``qtype``; returns ``(qid, bytes)``."""
    if qtype not in QTYPES:
        raise QueryError('query type must be one of %s, got %r' % (', '.join(QTYPES), qtype))
    qid = int.from_bytes(os.urandom(2), 'big') if qid is None else qid
    header = struct.pack('!HHHHHH', qid, 0x0100, 1, 0, 0, 0)
    qname = b''.join(bytes([len(label)]) + label.encode('ascii') for label in validate_name(name).split('.')) + b'\0'
    return qid, header + qname + struct.pack('!HH', QTYPES[qtype], 1)


def parse_response(data, qid):
    """``{'result', 'rcode', 'answers', 'truncated'}`` of a reply to query ``qid``."""
    if len(data) < 12:
        return {'result': 'error', 'rcode': None, 'answers': 0, 'truncated': False,
                'error': 'reply of %d bytes is shorter than a DNS header' % len(data)}
    rid, flags, _qd, ancount, _ns, _ar = struct.unpack('!HHHHHH', data[:12])
    if rid != qid or not flags & 0x8000:
        return {'result': 'error', 'rcode': None, 'answers': 0, 'truncated': False,
                'error': 'reply does not answer the query (id %#06x, expected %#06x)' % (rid, qid)}
    rcode = flags & 0x000F
    return {'result': RCODES.get(rcode, 'other'), 'rcode': rcode, 'answers': ancount, 'truncated': bool(flags & 0x0200)}


def query(server, name, qtype='A', timeout=2.0, port=53, clock=time.monotonic):
    """Ask ``server`` once; never raises for a network outcome (it is the answer)."""
    server = validate_server(server)
    if not 0 < timeout <= MAX_TIMEOUT:
        raise QueryError('timeout must be above 0 and at most %d s, got %r' % (MAX_TIMEOUT, timeout))
    qid, packet = build_query(name, qtype)
    family = socket.AF_INET6 if ':' in server else socket.AF_INET
    out = {'server': server, 'name': name, 'type': qtype}
    start = clock()
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.settimeout(timeout)
        sock.connect((server, port))  # connected: ICMP unreachable surfaces as an error
        sock.send(packet)
        deadline = start + timeout
        while True:
            left = deadline - clock()
            if left <= 0:
                raise socket.timeout()
            sock.settimeout(left)
            data = sock.recv(4096)
            parsed = parse_response(data, qid)
            if parsed['result'] == 'error' and len(data) >= 2 and struct.unpack('!H', data[:2])[0] != qid:
                continue  # a stray reply to someone else's query: keep waiting
            out.update(parsed)
            break
    except socket.timeout:
        out.update(result='timeout', rcode=None, answers=0, truncated=False)
    except (ConnectionRefusedError, OSError) as e:
        out.update(result='unreachable', rcode=None, answers=0, truncated=False, error=str(e))
    finally:
        sock.close()
    out['ms'] = round((clock() - start) * 1000)
    return out


SEVERITY = {'noerror': None, 'nxdomain': 'warning', 'servfail': 'critical', 'refused': 'critical',
            'other': 'critical', 'timeout': 'critical', 'unreachable': 'critical', 'error': 'critical'}
