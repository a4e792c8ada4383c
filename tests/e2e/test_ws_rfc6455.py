"""WebSocket gateway: RFC 6455 after the handshake (CONTRACT.md section 6, v1.2).

An unmasked client frame, a control frame over 125 bytes, a close frame
with a 1-byte payload or a code a peer may not send close the connection
with 1002; invalid UTF-8 in a text frame or a close reason closes it with
1007.  A well-formed close gets its code echoed.  Frames are built by hand
on a raw socket (websocket-client always masks and checks its own input),
after a real `ready`, so the checks are those of an authenticated session
(issue 8, item 5).
"""
import base64
import json
import os
import socket
import struct
import time
from urllib.parse import urlparse

import pytest

from helpers import register

OP_CONT, OP_TEXT, OP_CLOSE, OP_PING = 0x0, 0x1, 0x8, 0x9


class RawWS:
    """A WebSocket client that writes any frame, valid or not."""

    def __init__(self, server, token):
        u = urlparse(server.ws_url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            "GET /ws?token=%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n" % (token, u.hostname, u.port, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "connection closed during the handshake"
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_frame(self, opcode, payload, fin=True, masked=True, length=None):
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | opcode
        mbit = 0x80 if masked else 0
        if n < 126:
            hdr = struct.pack("!BB", b0, mbit | n)
        elif n <= 0xFFFF:
            hdr = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, mbit | 127, n)
        if masked:
            mask = os.urandom(4)
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            hdr += mask
        self.sock.sendall(hdr + payload)

    def send_text(self, obj, **kw):
        self.send_frame(OP_TEXT, json.dumps(obj).encode(), **kw)

    def _read(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no frame from the server in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self, timeout=10.0):
        """(opcode, payload) of the next server frame; raises EOFError at EOF."""
        deadline = time.monotonic() + timeout
        b0, b1 = self._read(2, deadline)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8, deadline))[0]
        assert not b1 & 0x80, "the server masked a frame"
        return b0 & 0x0F, self._read(n, deadline)

    def recv_type(self, ftype, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            op, data = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if op == OP_TEXT and json.loads(data).get("type") == ftype:
                return json.loads(data)
            assert op != OP_CLOSE, "closed early: %r" % data

    def close_code(self, timeout=10.0):
        """Reads until the server's close frame; its code (None when the socket
        ended without one)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                op, data = self.recv_frame(max(0.01, deadline - time.monotonic()))
            except EOFError:
                return None
            if op == OP_CLOSE:
                return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None

    def close(self):
        self.sock.close()


@pytest.fixture
def raw(server):
    conns = []

    def open_raw():
        _, token = register(server)
        w = RawWS(server, token)
        w.recv_type("ready")
        conns.append(w)
        return w

    yield open_raw
    for w in conns:
        w.close()


def test_masked_ping_frame_still_works(raw):
    w = raw()
    w.send_text({"type": "ping"})
    assert w.recv_type("pong") == {"type": "pong"}


# libwebsockets 4.1.6 (Debian 12) parses an unmasked client frame as if it
# were masked with zeros and has no public way to tell the two apart (later
# lws refuses them itself, "client unmasked"); the gateway cannot see the
# mask bit.  Strict: these start failing, as a reminder, once lws does it.
UNMASKED = pytest.mark.xfail(strict=True, reason="lws 4.1.6 accepts unmasked client frames")


@UNMASKED
def test_unmasked_client_frame_closes_1002(raw):
    w = raw()
    w.send_text({"type": "ping"}, masked=False)
    assert w.close_code() == 1002


@UNMASKED
def test_unmasked_close_frame_closes_1002(raw):
    w = raw()
    w.send_frame(OP_CLOSE, struct.pack("!H", 1000), masked=False)
    assert w.close_code() == 1002


def test_control_frame_over_125_bytes_closes_1002(raw):
    w = raw()
    w.send_frame(OP_PING, b"x" * 126)
    assert w.close_code() == 1002


def test_control_frame_over_125_bytes_after_pings_closes_1002(raw):
    w = raw()
    for _ in range(3):
        w.send_frame(OP_PING, b"abc")
        assert w.recv_frame() == (0xA, b"abc")
    time.sleep(0.05)
    w.send_frame(OP_PING, b"x" * 200)
    assert w.close_code() == 1002


def test_client_eof_after_a_ping_ends_the_connection(server, raw):
    w = raw()
    w.send_frame(OP_PING, b"abc")
    assert w.recv_frame() == (0xA, b"abc")
    w.sock.shutdown(socket.SHUT_WR)
    # The connection ends.  Its close payload is not checked: when the EOF
    # is read in the same turn as the pong went out, lws 4.1.6 sends the
    # ping's bytes as the close payload (see preset_close_reason in
    # src/ws/conn.c); the client is leaving anyway.
    w.close_code()
    _, token = register(server)
    v = RawWS(server, token)  # and the gateway still serves
    v.recv_type("ready")
    v.close()


def test_fragmented_control_frame_closes_1002(raw):
    w = raw()
    w.send_frame(OP_PING, b"x", fin=False)
    assert w.close_code() == 1002


def test_close_with_one_byte_payload_closes_1002(raw):
    w = raw()
    w.send_frame(OP_CLOSE, b"\x03")
    assert w.close_code() == 1002


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_close_with_invalid_code_closes_1002(raw, code):
    w = raw()
    w.send_frame(OP_CLOSE, struct.pack("!H", code))
    assert w.close_code() == 1002


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1011, 3000, 4999])
def test_close_with_valid_code_is_echoed(raw, code):
    w = raw()
    w.send_frame(OP_CLOSE, struct.pack("!H", code) + b"bye")
    assert w.close_code() == code


def test_empty_close_is_answered(raw):
    w = raw()
    w.send_frame(OP_CLOSE, b"")
    assert w.close_code() in (None, 1000, 1005)


def test_close_reason_with_invalid_utf8_closes_1007(raw):
    w = raw()
    w.send_frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff\xfe")
    assert w.close_code() == 1007


def test_invalid_utf8_text_frame_closes_1007(raw):
    w = raw()
    w.send_frame(OP_TEXT, b'{"type":"ping","x":"\xff\xfe"}')
    assert w.close_code() == 1007


def test_utf8_split_across_fragments_is_accepted(raw):
    w = raw()
    text = '{"type":"ping","x":"\u00e9\u20ac"}'.encode()
    cut = text.index(b"\xe2") + 1  # in the middle of the euro sign
    w.send_frame(OP_TEXT, text[:cut], fin=False)
    w.send_frame(OP_CONT, text[cut:])
    assert w.recv_type("pong") == {"type": "pong"}


def test_invalid_utf8_in_a_later_fragment_closes_1007(raw):
    w = raw()
    w.send_frame(OP_TEXT, b'{"type":"ping",', fin=False)
    w.send_frame(OP_CONT, b'"x":"\xc3\x28"}')
    assert w.close_code() == 1007
