"""Socket.IO at /socket.io/ (CONTRACT 7, docs/api.md section 5).

A python-socketio client (Debian's python3-socketio, the reference Python
implementation of the protocol) does what a socket.io-client frontend does:
connect with auth {token}, receive every gateway frame as an event of the
same name, emit client frames as events, use an ack callback on
message.send.  Byte-level rules (namespaces, binary attachments, malformed
packets, Engine.IO ping/pong, the close packets) are checked with a raw
WebSocket client (websocket-client), so each packet the server sends is
seen exactly.

Only the websocket transport is served: `transports=["websocket"]`.
"""
import json
import queue
import signal
import threading
import time

import pytest
import socketio
import websocket

from helpers import api, assert_json, make_chat, register, send_msg

SIO_PATH = "/socket.io/?EIO=4&transport=websocket"


class Client:
    """A python-socketio client whose events land in one queue."""

    def __init__(self, server, token, reconnection=False):
        self.server = server
        self.token = token
        self.events = queue.Queue()
        self.skipped = []
        self.sio = socketio.Client(reconnection=reconnection, reconnection_delay=0.2,
                                   reconnection_delay_max=0.5, randomization_factor=0)
        self.connects = 0
        self.disconnects = 0
        self.connect_errors = []

        @self.sio.on("*")
        def any_event(event, data=None):
            self.events.put((event, data))

        @self.sio.event
        def connect():
            self.connects += 1

        @self.sio.event
        def disconnect():
            self.disconnects += 1

        @self.sio.event
        def connect_error(data):
            self.connect_errors.append(data)

    def connect(self, server=None):
        srv = server or self.server
        self.sio.connect(srv.url, auth={"token": self.token}, transports=["websocket"],
                         wait_timeout=10)
        return self

    def emit(self, event, data=None, callback=None):
        self.sio.emit(event, data, callback=callback)

    def call(self, event, data, timeout=10):
        return self.sio.call(event, data, timeout=timeout)

    def wait(self, event, pred=None, timeout=10.0):
        """The argument of the next `event` (others are kept in .skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r event within %.1fs (skipped: %r)"
                                     % (event, timeout, self.skipped[-10:]))
            try:
                name, data = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if name == event and (pred is None or pred(data)):
                return data
            self.skipped.append((name, data))

    def barrier(self, timeout=10.0):
        """Events queued for us before the ping arrive before its pong."""
        self.emit("ping")
        self.wait("pong", timeout=timeout)

    def seen(self, event):
        return [d for n, d in self.skipped if n == event]

    def close(self):
        try:
            self.sio.disconnect()
        except Exception:
            pass


@pytest.fixture
def clients():
    made = []

    def factory(server, token, connect=True, **kw):
        c = Client(server, token, **kw)
        made.append(c)
        return c.connect() if connect else c

    yield factory
    for c in made:
        c.close()


class Raw:
    """A raw WebSocket at /socket.io/, reading Engine.IO packets as text."""

    def __init__(self, server, path=SIO_PATH, timeout=10.0):
        self.ws = websocket.create_connection(server.ws_url + path, timeout=timeout)
        self.close_code = None

    def send(self, text):
        self.ws.send(text)

    def recv(self, timeout=10.0):
        """The next text packet; None when the server closed (close_code set)."""
        self.ws.sock.settimeout(timeout)
        while True:
            try:
                f = self.ws.recv_frame()
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                return None
            if f.opcode == websocket.ABNF.OPCODE_CLOSE:
                self.close_code = int.from_bytes(f.data[:2], "big") if len(f.data) >= 2 else None
                return None
            if f.opcode == websocket.ABNF.OPCODE_TEXT:
                return f.data.decode()

    def open(self, token=None):
        """Reads the open packet, connects to "/" with `token`; returns the
        open packet's data and, with a token, the ready event's argument."""
        op = self.recv()
        assert op and op[0] == "0", op
        info = json.loads(op[1:])
        if token is None:
            return info, None
        self.send("40" + json.dumps({"token": token}))
        ok = self.recv()
        assert ok.startswith("40{"), ok
        assert json.loads(ok[2:])["sid"]
        return info, self.event("ready")

    def event(self, name, timeout=10.0):
        """The argument of the next EVENT `name` (other packets skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.recv(timeout=max(0.1, deadline - time.monotonic()))
            assert p is not None, "closed with %r waiting for %r" % (self.close_code, name)
            if p.startswith("42"):
                ev = json.loads(p[2:])
                if ev[0] == name:
                    return ev[1]
        raise AssertionError("no %r event" % name)

    def wait_close(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        got = []
        while time.monotonic() < deadline:
            try:
                p = self.recv(timeout=max(0.1, deadline - time.monotonic()))
            except websocket.WebSocketTimeoutException:
                continue
            if p is None:
                return self.close_code, got
            got.append(p)
        raise AssertionError("not closed within %.1fs (got %r)" % (timeout, got))

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------
# handshake, auth


def test_open_packet_and_connect(server):
    u, t = register(server)
    r = Raw(server)
    info, ready = r.open(t)
    assert set(info) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert info["upgrades"] == [] and info["maxPayload"] == 65536
    assert info["pingInterval"] == 25000 and info["pingTimeout"] == 20000
    assert ready["user"]["id"] == u["id"] and ready["user"]["email"] == u["email"]
    assert ready["online"] == []
    r.close()


def test_bad_token_is_connect_error_unauthorized(server, clients):
    c = clients(server, "not-a-token", connect=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        c.connect()
    assert c.connect_errors == [{"message": "unauthorized"}]
    # on the wire: CONNECT_ERROR, then the connection closes
    r = Raw(server)
    r.open()
    r.send('40{"token":"bad"}')
    assert r.recv() == '44{"message":"unauthorized"}'
    assert r.wait_close()[0] == 4401
    # no token at all
    r = Raw(server)
    r.open()
    r.send("40")
    assert r.recv() == '44{"message":"unauthorized"}'


def test_other_namespace_and_bad_handshakes_are_refused(server):
    u, t = register(server)
    r = Raw(server)
    r.open()
    r.send('40/admin,{"token":"%s"}' % t)
    assert r.recv() == '44/admin,{"message":"Invalid namespace"}'
    # the default namespace still connects on the same connection
    r.send("40" + json.dumps({"token": t}))
    assert r.recv().startswith("40{")
    r.close()
    for q in ("EIO=3&transport=websocket", "EIO=4&transport=polling", "EIO=4",
              "EIO=4&transport=websocket&sid=abc"):
        w = Raw(server, path="/socket.io/?" + q)
        assert w.wait_close()[0] == 1008, q
    # a packet that is not Engine.IO before CONNECT: 1008
    w = Raw(server)
    w.open()
    w.send("hello")
    assert w.wait_close()[0] == 1008


# ---------------------------------------------------------------------------
# events both ways


def test_every_event_both_ways(server, clients):
    a, ta = register(server)
    b, tb = register(server)
    c, tc = register(server)
    ca = clients(server, ta)
    ra = ca.wait("ready")
    assert ra["user"]["id"] == a["id"]

    # chat.new to every member's connection
    chat = make_chat(server, ta, [b["id"]])
    assert ca.wait("chat.new")["chat"]["id"] == chat["id"]
    # b's first connection: presence online to a, a listed in b's ready
    cb = clients(server, tb)
    assert cb.wait("ready")["online"] == [a["id"]]
    p = ca.wait("presence", pred=lambda d: d["userId"] == b["id"])
    assert p == {"userId": b["id"], "online": True}

    # message.send with an ack callback: {clientId, message}; the other side message.new
    ack = ca.call("message.send", {"chatId": chat["id"], "text": "hello", "clientId": "k1"})
    assert ack["clientId"] == "k1" and ack["message"]["text"] == "hello"
    assert ack["message"]["seq"] == 1 and "type" not in ack
    new = cb.wait("message.new")
    assert new == {"message": ack["message"]}
    # without a callback: the message.ack event
    ca.emit("message.send", {"chatId": chat["id"], "text": "two", "clientId": "k2"})
    ev = ca.wait("message.ack")
    assert ev["clientId"] == "k2" and ev["message"]["seq"] == 2
    assert cb.wait("message.new")["message"]["seq"] == 2

    # typing and read
    cb.emit("typing", {"chatId": chat["id"]})
    assert ca.wait("typing") == {"chatId": chat["id"], "userId": b["id"]}
    cb.emit("read", {"chatId": chat["id"], "messageId": ack["message"]["id"]})
    assert ca.wait("read") == {"chatId": chat["id"], "userId": b["id"],
                               "messageId": ack["message"]["id"]}

    # ping / pong
    ca.emit("ping")
    assert ca.wait("pong") == {}

    # sync: message.new for each missed message, then sync.done
    ca.emit("sync", {"chats": {chat["id"]: 0}})
    got = [ca.wait("message.new")["message"]["seq"] for _ in range(2)]
    assert got == [1, 2]
    assert ca.wait("sync.done") == {"complete": True}

    # post.new: the live feed
    post = assert_json(api(server, "POST", "/api/posts", tb, json={"text": "feed"}), 201)
    assert ca.wait("post.new", pred=lambda d: d["post"]["id"] == post["id"])

    # chat.updated (a member added), chat.removed (that member leaves)
    group = make_chat(server, ta, [b["id"]], name="g")
    ca.wait("chat.new", pred=lambda d: d["chat"]["id"] == group["id"])
    cc = clients(server, tc)
    cc.wait("ready")
    assert_json(api(server, "POST", "/api/chats/%s/members" % group["id"], ta,
                    json={"userId": c["id"]}), 200)
    upd = ca.wait("chat.updated")
    assert c["id"] in [m["id"] for m in upd["chat"]["members"]]
    assert cc.wait("chat.new")["chat"]["id"] == group["id"]
    r = api(server, "DELETE", "/api/chats/%s/members/%s" % (group["id"], c["id"]), tc)
    assert r.status_code == 204, r.text
    assert cc.wait("chat.removed") == {"chatId": group["id"]}

    # errors: the error event, with the frame's clientId
    ca.emit("message.send", {"chatId": "0" * 24, "text": "x", "clientId": "k3"})
    err = ca.wait("error")
    assert err["code"] == "not_found" and err["clientId"] == "k3"
    ca.emit("bogus", {})
    assert ca.wait("error")["code"] == "bad_request"
    ca.emit("typing", {})
    err = ca.wait("error")
    assert err["code"] == "validation_failed" and err["field"] == "chatId"

    # presence offline when b leaves
    cb.close()
    assert ca.wait("presence", pred=lambda d: d["userId"] == b["id"] and not d["online"])


def test_ack_carries_errors_and_no_error_event(server, clients):
    a, ta = register(server)
    b, tb = register(server)
    chat = make_chat(server, ta, [b["id"]])
    ca = clients(server, ta)
    ca.wait("ready")
    res = ca.call("message.send", {"chatId": "0" * 24, "text": "x", "clientId": "e1"})
    assert res == {"error": {"code": "not_found", "message": res["error"]["message"]}}
    res = ca.call("message.send", {"chatId": chat["id"], "text": "", "clientId": "e2"})
    assert res["error"]["code"] == "validation_failed" and res["error"]["field"] == "text"
    # no clientId: answered synchronously, still as the ack
    res = ca.call("message.send", {"chatId": chat["id"], "text": "x"})
    assert res["error"]["field"] == "clientId"
    # the argument is not an object
    r = Raw(server)
    r.open(ta)
    r.send('4277["message.send","str"]')
    ev = r.event("error")
    assert ev["code"] == "bad_request"
    ca.barrier()
    assert ca.seen("error") == []
    # concurrent acks: each callback gets its own message
    results = {}
    done = threading.Event()

    def cb(i):
        def f(res):
            results[i] = res
            if len(results) == 20:
                done.set()
        return f

    for i in range(20):
        ca.emit("message.send", {"chatId": chat["id"], "text": "m%d" % i, "clientId": "c%d" % i},
                callback=cb(i))
    assert done.wait(10)
    assert all(results[i]["clientId"] == "c%d" % i and results[i]["message"]["text"] == "m%d" % i
               for i in range(20))
    assert sorted(r["message"]["seq"] for r in results.values()) == list(range(1, 21))


def test_sio_and_plain_ws_clients_share_a_chat(server, clients):
    from ws_fixtures import connect
    a, ta = register(server)
    b, tb = register(server)
    chat = make_chat(server, ta, [b["id"]])
    ca = clients(server, ta)
    ca.wait("ready")
    wb, _ = connect(server, tb)
    ack = ca.call("message.send", {"chatId": chat["id"], "text": "to ws", "clientId": "x1"})
    assert wb.recv_type("message.new")["message"] == ack["message"]
    wb.send({"type": "message.send", "chatId": chat["id"], "text": "to sio", "clientId": "x2"})
    assert ca.wait("message.new")["message"]["text"] == "to sio"
    # the same user on both protocols: each gets its own form
    wa, _ = connect(server, ta)
    send_msg(server, tb, chat["id"], "rest")
    assert ca.wait("message.new")["message"]["text"] == "rest"
    assert wa.recv_type("message.new")["message"]["text"] == "rest"
    wa.close()
    wb.close()


def test_binary_and_malformed_packets_get_an_error(server):
    a, ta = register(server)
    r = Raw(server)
    r.open(ta)
    r.send('451-["message.send",{"_placeholder":true,"num":0}]')
    r.ws.send_binary(b"\x00\x01")
    ev = r.event("error")
    assert ev == {"code": "bad_request", "message": "binary attachments are not supported"}
    for bad in ("42", "42[1]", "42{", "4x", "9"):
        r.send(bad)
        assert r.event("error")["code"] == "bad_request", bad
    r.send('42["ping"]')
    assert r.event("pong") == {}
    # a binary frame nobody announced closes, as on /ws
    r.ws.send_binary(b"\x00")
    assert r.wait_close()[0] == 1003


def test_max_payload_enforced(server):
    a, ta = register(server)
    r = Raw(server)
    info, _ = r.open(ta)
    r.send('42["typing",{"chatId":"%s"}]' % ("x" * info["maxPayload"]))
    assert r.wait_close()[0] == 1009


# ---------------------------------------------------------------------------
# liveness, reconnect, restart, shutdown


def test_ping_pong_and_a_client_that_stops_answering(start_server):
    srv = start_server(SIO_PING_INTERVAL_MS=300, SIO_PING_TIMEOUT_MS=400)
    a, ta = register(srv)
    # python-socketio answers pings: still connected after many intervals
    c = Client(srv, ta)
    c.connect()
    c.wait("ready")
    r = Raw(srv)
    info, _ = r.open(ta)
    assert info["pingInterval"] == 300 and info["pingTimeout"] == 400
    pings = 0
    deadline = time.monotonic() + 10
    while pings < 3 and time.monotonic() < deadline:
        p = r.recv()
        if p == "2":
            pings += 1
            r.send("3")
    assert pings == 3
    # now stop answering: closed after a ping goes unanswered
    t0 = time.monotonic()
    code, got = r.wait_close(timeout=10)
    assert code == 1001 and "2" in got
    assert time.monotonic() - t0 >= 0.3
    c.barrier()
    assert c.sio.connected
    c.close()


def test_reconnect_and_sync(server, clients):
    a, ta = register(server)
    b, tb = register(server)
    chat = make_chat(server, ta, [b["id"]])
    ca = clients(server, ta)
    ca.wait("ready")
    ack = ca.call("message.send", {"chatId": chat["id"], "text": "before", "clientId": "r1"})
    last = ack["message"]["seq"]
    ca.close()
    for i in range(3):
        send_msg(server, tb, chat["id"], "away %d" % i)
    ca2 = clients(server, ta)
    ca2.wait("ready")
    ca2.emit("sync", {"chats": {chat["id"]: last}})
    texts = [ca2.wait("message.new")["message"]["text"] for _ in range(3)]
    assert texts == ["away 0", "away 1", "away 2"]
    assert ca2.wait("sync.done") == {"complete": True}


def test_server_restart_client_reconnects(start_server, clients):
    srv = start_server()
    a, ta = register(srv)
    b, tb = register(srv)
    chat = make_chat(srv, ta, [b["id"]])
    ca = clients(srv, ta, reconnection=True)
    ca.wait("ready")
    assert srv.stop() == 0          # SIGTERM: the connection closes (1001)
    deadline = time.monotonic() + 10
    while ca.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ca.disconnects == 1
    srv.start(new_port=False)
    ready = ca.wait("ready", timeout=20)   # python-socketio reconnected by itself
    assert ready["user"]["id"] == a["id"] and ca.connects == 2
    send_msg(srv, tb, chat["id"], "after restart")
    assert ca.wait("message.new")["message"]["text"] == "after restart"


def test_shutdown_closes_1001_without_disconnect_packet(start_server):
    srv = start_server()
    a, ta = register(srv)
    r = Raw(srv)
    r.open(ta)
    srv.signal(signal.SIGTERM)
    code, got = r.wait_close()
    assert code == 1001
    assert "41" not in got     # the client reconnects (a DISCONNECT would stop it)
    srv.proc.wait(15)


def test_logout_sends_disconnect(server):
    a, ta = register(server)
    r = Raw(server)
    r.open(ta)
    assert api(server, "POST", "/api/auth/logout", ta).status_code in (200, 204)
    code, got = r.wait_close()
    assert got[-1:] == ["41"] and code == 4401


def test_flood_control_and_connection_cap_apply(start_server):
    srv = start_server(WS_RATE_PER_S=1, WS_RATE_BURST=2, WS_MAX_CONNS_PER_USER=1)
    a, ta = register(srv)
    b, tb = register(srv)
    chat = make_chat(srv, ta, [b["id"]])
    r = Raw(srv)
    r.open(ta)
    for i in range(3):
        r.send('42%d["message.send",{"chatId":"%s","text":"f%d","clientId":"f%d"}]'
               % (i, chat["id"], i, i))
    acks = {}
    deadline = time.monotonic() + 10
    while len(acks) < 3 and time.monotonic() < deadline:
        p = r.recv()
        assert p is not None
        if p.startswith("43"):
            i = p.index("[")
            acks[int(p[2:i])] = json.loads(p[i:])[0]
    assert "message" in acks[0] and "message" in acks[1]
    assert acks[2]["error"]["code"] == "rate_limited"
    # one more connection of the same user past WS_MAX_CONNS_PER_USER=1: the
    # oldest gets a DISCONNECT (no reconnect into the same cap), then 4429
    r2 = Raw(srv)
    r2.open(ta)
    code, got = r.wait_close()
    assert code == 4429 and got[-1:] == ["41"]
    r2.close()
