"""WebSocket client helpers for the gateway's e2e tests (test_ws_*.py).

A thin layer over websocket-client: connect with or without ?token=, read
text frames as JSON with a bound on every wait, skip frames a test does not
care about (presence from other tests' users on the shared server, say),
read the close code, and prove that a frame did NOT arrive with a ping
barrier: frames reach a connection in the order the server queued them, so
once the `pong` for a ping sent after an event arrives, anything the event
produced for this connection has arrived too.
"""
import json
import socket
import struct
import time

import websocket

from helpers import api, assert_json, make_chat, register  # noqa: F401

OP_TEXT = websocket.ABNF.OPCODE_TEXT
OP_BINARY = websocket.ABNF.OPCODE_BINARY
OP_CLOSE = websocket.ABNF.OPCODE_CLOSE
OP_PING = websocket.ABNF.OPCODE_PING
OP_PONG = websocket.ABNF.OPCODE_PONG


class Closed(Exception):
    """The server closed the connection; .code is its close code (None when
    the socket ended without a close frame)."""

    def __init__(self, code, reason=""):
        super().__init__("closed with %r %r" % (code, reason))
        self.code = code
        self.reason = reason


class WS:
    """One WebSocket connection to the gateway."""

    def __init__(self, server, token=None, path="/ws", timeout=10.0, sockopt=None, query=None):
        url = server.ws_url + path
        if token is not None:
            url += "?token=" + token
        elif query:
            url += "?" + query
        self.ws = websocket.create_connection(url, timeout=timeout,
                                              sockopt=sockopt or ())
        self.skipped = []      # frames passed over by recv_type()
        self.close_code = None
        self.pings = 0         # server pings seen (and answered)

    # -- sending -------------------------------------------------------
    def send(self, frame):
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def send_binary(self, data):
        self.ws.send_binary(data)

    # -- receiving -----------------------------------------------------
    def recv(self, timeout=10.0):
        """The next text frame as JSON.  Raises Closed on a close frame or EOF,
        websocket.WebSocketTimeoutException after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise websocket.WebSocketTimeoutException("no frame within %.1fs" % timeout)
            self.ws.sock.settimeout(left)
            try:
                frame = self.ws.recv_frame()
            except websocket.WebSocketConnectionClosedException:
                raise Closed(self.close_code)
            except (ConnectionResetError, BrokenPipeError, OSError) as e:
                if isinstance(e, socket.timeout):
                    raise websocket.WebSocketTimeoutException(str(e))
                raise Closed(self.close_code)
            op, data = frame.opcode, frame.data
            if op == OP_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                self.close_code = code
                try:  # answer the close; the server may already be gone
                    self.ws.send_close(websocket.STATUS_NORMAL)
                except Exception:
                    pass
                raise Closed(code, data[2:].decode("utf-8", "replace"))
            if op == OP_PING:
                self.pings += 1
                try:
                    self.ws.pong(data)
                except Exception:
                    pass
                continue
            if op == OP_PONG:
                continue
            if op != OP_TEXT:
                raise AssertionError("server sent a non-text frame (opcode %d)" % op)
            return json.loads(data.decode("utf-8"))

    def recv_type(self, ftype, timeout=10.0, pred=None):
        """The first frame of type `ftype` (and matching `pred`), skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv(max(0.01, deadline - time.monotonic()))
            if f.get("type") == ftype and (pred is None or pred(f)):
                return f
            self.skipped.append(f)

    def ready(self, timeout=10.0):
        f = self.recv_type("ready", timeout)
        return f

    def barrier(self, timeout=10.0, ignore=("presence",)):
        """Sends ping and returns every frame received before the pong, except
        types in `ignore` (presence of unrelated users on a shared server)."""
        self.send({"type": "ping"})
        got = []
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv(max(0.01, deadline - time.monotonic()))
            if f.get("type") == "pong":
                return got
            if f.get("type") not in ignore:
                got.append(f)

    def wait_close(self, timeout=15.0):
        """Reads (and drops) frames until the connection ends; returns the close
        code, or None when it ended without a close frame."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("connection still open after %.1fs" % timeout)
            try:
                self.recv(left)
            except Closed as c:
                return c.code
            except websocket.WebSocketTimeoutException:
                continue

    def close(self):
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass


def connect(server, token, timeout=10.0, **kw):
    """Connects with ?token= and returns (WS, ready frame)."""
    w = WS(server, token, timeout=timeout, **kw)
    return w, w.ready(timeout)


def user_with_token(server):
    """register() -> {"user", "token"} as a dict for readability."""
    user, token = register(server)
    return {"user": user, "token": token, "id": user["id"]}


def messages_after(server, token, chat_id, after_seq=0, limit=100):
    """Every message with seq > after_seq, oldest first, via REST afterSeq paging."""
    out = []
    cursor = str(after_seq)
    for _ in range(10000):
        r = api(server, "GET", "/api/chats/%s/messages" % chat_id, token,
                params={"afterSeq": cursor, "limit": limit})
        body = assert_json(r, 200)
        out.extend(body["items"])
        cursor = body["nextCursor"]
        if cursor is None:
            return out
    raise AssertionError("afterSeq paging did not end")
