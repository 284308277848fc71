"""dnsquery (catalog D-11): wire format on the resolver's recorded replies, and real UDP exchanges."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import dnsquery

from ..conftest import FIXTURES

NOERROR = (FIXTURES / 'dns/response-noerror-pypi.org-A.bin').read_bytes()
NXDOMAIN = (FIXTURES / 'dns/response-nxdomain-no-such-host.invalid-A.bin').read_bytes()


def test_query_bytes_match_what_the_resolver_answered():
    # The recorded replies echo the question: the header differs, the question is ours byte for byte.
    qid, packet = dnsquery.build_query('pypi.org', 'A', qid=0x1234)
    assert qid == 0x1234
    assert packet[:12] == struct.pack('!HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0)
    assert NOERROR[12:12 + len(packet) - 12] == packet[12:]


def test_recorded_replies_classified():
    assert dnsquery.parse_response(NOERROR, 0x1234) == {'result': 'noerror', 'rcode': 0, 'answers': 1, 'truncated': False}
    assert dnsquery.parse_response(NXDOMAIN, 0x1234) == {'result': 'nxdomain', 'rcode': 3, 'answers': 0, 'truncated': False}
    assert dnsquery.parse_response(NOERROR, 0x4321)['result'] == 'error'
    assert dnsquery.parse_response(b'\x12', 0x1234)['result'] == 'error'


def with_rcode(reply, rcode):
    flags = struct.unpack('!H', reply[2:4])[0] & ~0x000F | rcode
    return reply[:2] + struct.pack('!H', flags) + reply[4:]


class Server(object):
    """A UDP server on 127.0.0.1 that answers with a recorded reply (its ID rewritten), or not at all."""

    def __init__(self, reply=None, stray_first=False):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.stray_first = stray_first
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(5)
        try:
            data, addr = self.sock.recvfrom(512)
        except socket.timeout:
            return
        if self.reply is None:
            return
        if self.stray_first:
            self.sock.sendto(struct.pack('!H', (data[0] << 8 | data[1]) ^ 0xFFFF) + self.reply[2:], addr)
        self.sock.sendto(data[:2] + self.reply[2:], addr)

    def close(self):
        self.thread.join(6)
        self.sock.close()


@pytest.mark.parametrize('reply,result', [
    (NOERROR, 'noerror'), (NXDOMAIN, 'nxdomain'),
    (with_rcode(NXDOMAIN, 2), 'servfail'), (with_rcode(NXDOMAIN, 5), 'refused'), (with_rcode(NXDOMAIN, 4), 'other'),
])
def test_real_exchange_classified(reply, result):
    server = Server(reply)
    try:
        out = dnsquery.query('127.0.0.1', 'pypi.org', timeout=3, port=server.port)
    finally:
        server.close()
    assert out['result'] == result
    assert out['server'] == '127.0.0.1' and out['name'] == 'pypi.org' and out['type'] == 'A'


def test_stray_reply_is_skipped_not_taken_as_the_answer():
    server = Server(NXDOMAIN, stray_first=True)
    try:
        out = dnsquery.query('127.0.0.1', 'pypi.org', timeout=3, port=server.port)
    finally:
        server.close()
    assert out['result'] == 'nxdomain'


def test_silent_server_is_a_timeout_within_the_bound():
    server = Server(None)
    try:
        out = dnsquery.query('127.0.0.1', 'pypi.org', timeout=0.3, port=server.port)
    finally:
        server.close()
    assert out['result'] == 'timeout' and out['ms'] < 2000


def test_closed_port_is_unreachable():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    out = dnsquery.query('127.0.0.1', 'pypi.org', timeout=1, port=port)
    assert out['result'] == 'unreachable' and 'refused' in out['error'].lower()


@pytest.mark.parametrize('server,name,qtype,timeout,match', [
    ('kube-dns.kube-system', 'a.b', 'A', 1, 'not an IP address'),
    ('10.0.0.10:53', 'a.b', 'A', 1, 'not an IP address'),
    ('10.0.0.10', 'bad..name', 'A', 1, 'not a valid DNS name'),
    ('10.0.0.10', '-x.example', 'A', 1, 'not a valid DNS name'),
    ('10.0.0.10', 'a' * 64 + '.example', 'A', 1, 'not a valid DNS name'),
    ('10.0.0.10', 'a.b', 'MX', 1, 'query type'),
    ('10.0.0.10', 'a.b', 'A', 0, 'timeout'),
    ('10.0.0.10', 'a.b', 'A', 31, 'timeout'),
])
def test_bad_input_refused_before_sending(server, name, qtype, timeout, match):
    with pytest.raises(dnsquery.QueryError, match=match):
        dnsquery.query(server, name, qtype, timeout=timeout)
