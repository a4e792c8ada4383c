"""Socket.IO at /socket.io/ (CONTRACT 7, docs/api.md section 5).

A python-socketio client (Debian's python3-socketio, the reference Python
implementation of the protocol) does what a socket.io-client frontend does:
connect with auth {token}, receive every gateway frame as an event of the
same name, emit client frames as events, use an ack callback on
message.send.  Byte-level rules (namespaces, binary attachments, malformed
packets, Engine.IO ping/pong, the close packets) are checked with a raw
WebSocket client (websocket-client), so each packet the server sends is
seen exactly.

Both transports are served: websocket, and Engine.IO long-polling
(`transports=["polling"]`, and the default polling-then-upgrade); the
polling requests' byte-level rules are checked with raw HTTP (Poll).
"""
import http.client
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

    def __init__(self, server, token, reconnection=False, transports=("websocket",)):
        self.server = server
        self.transports = list(transports) if transports else None
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
        self.sio.connect(srv.url, auth={"token": self.token}, transports=self.transports,
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


def chat_and_client(srv, clients, **opts):
    """Two new users a and b, a chat a made with b, and a's Socket.IO client
    (`opts` passed to `clients`) past its ready event:
    (a, ta, b, tb, chat, ca)."""
    a, ta = register(srv)
    b, tb = register(srv)
    chat = make_chat(srv, ta, [b["id"]])
    ca = clients(srv, ta, **opts)
    ca.wait("ready")
    return a, ta, b, tb, chat, ca


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
                               "messageId": ack["message"]["id"], "seq": ack["message"]["seq"]}

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
    a, ta, b, tb, chat, ca = chat_and_client(server, clients)
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
    a, ta, b, tb, chat, ca = chat_and_client(server, clients)
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
    a, ta, b, tb, chat, ca = chat_and_client(server, clients)
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
    a, ta, b, tb, chat, ca = chat_and_client(srv, clients, reconnection=True)
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


# ---------------------------------------------------------------------------
# the polling transport

POLL_PATH = "/socket.io/?EIO=4&transport=polling"


class Poll:
    """Raw Engine.IO long-polling: one HTTP request per call, bounded."""

    def __init__(self, server, timeout=10.0):
        self.server = server
        self.timeout = timeout
        self.sid = None
        self.pending = []

    def request(self, method, query=POLL_PATH, body=None, timeout=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port,
                                          timeout=timeout or self.timeout)
        try:
            conn.request(method, query, body=body,
                         headers={"Content-Type": "text/plain;charset=UTF-8"})
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type"), r.read()
        finally:
            conn.close()

    def path(self):
        return POLL_PATH + "&sid=" + self.sid

    def open(self, token=None):
        st, ct, body = self.request("GET")
        assert st == 200 and ct.startswith("text/plain"), (st, ct, body)
        assert body[:1] == b"0"
        info = json.loads(body[1:])
        self.sid = info["sid"]
        if token is not None:
            assert self.post("40" + json.dumps({"token": token})) == (200, b"ok")
            got = self.get_packets()
            assert got[0].startswith("40{"), got
            assert got[1].startswith('42["ready",'), got
        return info

    def post(self, text):
        st, _, body = self.request("POST", self.path(),
                                   text.encode() if isinstance(text, str) else text)
        return st, body

    def get(self, timeout=None):
        return self.request("GET", self.path(), timeout=timeout)

    def get_packets(self):
        st, _, body = self.get()
        assert st == 200, (st, body)
        return body.decode().split("\x1e")

    def event(self, name, limit=10):
        """The next EVENT `name`; packets after it in the same answer are kept
        for the next call, those before it are skipped."""
        for _ in range(limit):
            if not self.pending:
                self.pending = self.get_packets()
            while self.pending:
                p = self.pending.pop(0)
                if p.startswith("42"):
                    ev = json.loads(p[2:])
                    if ev[0] == name:
                        return ev[1]
        raise AssertionError("no %r event" % name)


def test_polling_client_events_both_ways_and_ack(server, clients):
    a, ta = register(server)
    b, tb = register(server)
    chat = make_chat(server, ta, [b["id"]])
    ca = clients(server, ta, transports=["polling"])
    assert ca.wait("ready")["user"]["id"] == a["id"]
    assert ca.sio.transport() == "polling"
    cb = clients(server, tb, transports=["polling"])
    cb.wait("ready")
    assert ca.wait("presence") == {"userId": b["id"], "online": True}
    ack = ca.call("message.send", {"chatId": chat["id"], "text": "polled", "clientId": "q1"})
    assert ack["clientId"] == "q1" and ack["message"]["text"] == "polled"
    assert cb.wait("message.new") == {"message": ack["message"]}
    bad = ca.call("message.send", {"chatId": chat["id"], "text": "", "clientId": "q2"})
    assert bad["error"]["code"] == "validation_failed"
    cb.emit("typing", {"chatId": chat["id"]})
    assert ca.wait("typing") == {"chatId": chat["id"], "userId": b["id"]}
    cb.emit("read", {"chatId": chat["id"], "messageId": ack["message"]["id"]})
    assert ca.wait("read")["messageId"] == ack["message"]["id"]
    send_msg(server, tb, chat["id"], "from rest")
    assert ca.wait("message.new")["message"]["text"] == "from rest"
    ca.barrier()


def test_polling_and_websocket_clients_share_a_chat(server, clients):
    a, ta = register(server)
    b, tb = register(server)
    chat = make_chat(server, ta, [b["id"]])
    cp = clients(server, ta, transports=["polling"])
    cp.wait("ready")
    cw = clients(server, tb)
    cw.wait("ready")
    assert cw.sio.transport() == "websocket"
    ack = cp.call("message.send", {"chatId": chat["id"], "text": "to ws", "clientId": "m1"})
    assert cw.wait("message.new")["message"] == ack["message"]
    ack2 = cw.call("message.send", {"chatId": chat["id"], "text": "to poll", "clientId": "m2"})
    assert cp.wait("message.new")["message"] == ack2["message"]


def test_default_transports_upgrade_to_websocket(server, clients):
    # python-socketio's default transports: polling, then the upgrade
    a, ta, b, tb, chat, ca = chat_and_client(server, clients, transports=None)
    deadline = time.monotonic() + 10
    while ca.sio.transport() != "websocket" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ca.sio.transport() == "websocket"
    cb = clients(server, tb, transports=["polling"])
    cb.wait("ready")
    ack = ca.call("message.send", {"chatId": chat["id"], "text": "upgraded", "clientId": "g1"})
    assert cb.wait("message.new")["message"] == ack["message"]


def test_raw_upgrade_probe_noop_and_move(server):
    a, ta = register(server)
    p = Poll(server)
    info = p.open(ta)
    assert info["upgrades"] == ["websocket"] and info["maxPayload"] == 1000000
    held = {}
    t = threading.Thread(target=lambda: held.update(r=p.get()))
    t.start()
    time.sleep(0.3)                      # the GET is held (nothing queued)
    assert t.is_alive()
    r = Raw(server, "/socket.io/?EIO=4&transport=websocket&sid=" + p.sid)
    r.send("2probe")
    assert r.recv() == "3probe"
    t.join(10)
    assert not t.is_alive() and held["r"][0] == 200 and held["r"][2] == b"6"   # noop
    r.send("5")
    r.send('42["ping"]')
    assert r.event("pong") == {}
    # the session left polling: its sid is unknown there now
    st, _, body = p.get()
    assert st == 400 and json.loads(body) == {"code": 1, "message": "Session ID unknown"}
    # a probe for a sid that is no polling session is refused
    bad = Raw(server, "/socket.io/?EIO=4&transport=websocket&sid=" + "0" * 32)
    assert bad.wait_close()[0] == 1008
    r.close()


def test_polling_bad_requests_get_engineio_errors(server):
    p = Poll(server)
    st, ct, body = p.request("GET", POLL_PATH + "&sid=" + "a" * 32)
    assert st == 400 and ct.startswith("application/json")
    assert json.loads(body) == {"code": 1, "message": "Session ID unknown"}
    st, _, body = p.request("POST", POLL_PATH + "&sid=nope", b"40")
    assert (st, json.loads(body)["code"]) == (400, 1)
    st, _, body = p.request("POST", POLL_PATH, b"40")
    assert (st, json.loads(body)) == (400, {"code": 2, "message": "Bad handshake method"})
    st, _, body = p.request("GET", "/socket.io/?EIO=3&transport=polling")
    assert (st, json.loads(body)["code"]) == (400, 5)
    st, _, body = p.request("GET", "/socket.io/?EIO=4&transport=carrier-pigeon")
    assert (st, json.loads(body)["code"]) == (400, 0)
    st, _, _ = p.request("HEAD", POLL_PATH)       # would open a session: refused
    assert st == 400
    # without Upgrade, a websocket transport request is no polling request
    st, _, body = p.request("GET", "/socket.io/?EIO=4&transport=websocket")
    assert (st, json.loads(body)["code"]) == (400, 0)


def test_polling_malformed_posts(server):
    a, ta = register(server)
    p = Poll(server)
    p.open(ta)
    # a malformed packet and an event whose argument is no object: error events
    assert p.post("4zz\x1e42[\"typing\",5]") == (200, b"ok")
    assert p.event("error")["code"] == "bad_request"
    assert "object" in p.event("error")["message"]
    # a binary packet: refused with an error event, its attachment (base64 "b...")
    # skipped, the session stays
    assert p.post('451-["typing",{"_placeholder":true,"num":0}]\x1ebAQID\x1e42["ping"]') \
        == (200, b"ok")
    assert "binary" in p.event("error")["message"]
    assert p.event("pong") == {}
    # several packets in one POST, handled in order
    assert p.post('42["ping"]\x1e42["ping"]') == (200, b"ok")
    got = []
    while len(got) < 2:
        got += [x for x in p.get_packets() if x.startswith('42["pong"')]
    # over maxPayload: 413 and the session is closed
    st, _ = p.post(b"4" * 1000001)
    assert st == 413
    st, _, body = p.get()
    assert st == 200 and body.decode().split("\x1e")[-1] == "1"   # the close packet
    st, _, _ = p.get()
    assert st == 400
    # invalid UTF-8 before CONNECT closes too
    q = Poll(server)
    q.open()
    assert q.post(b"40{\"token\":\"\xff\"}")[0] == 200
    assert q.get_packets()[-1] == "1"
    # a binary attachment without its packet
    w = Poll(server)
    w.open(ta)
    assert w.post("bAAEC")[0] == 200
    assert w.get_packets()[-1] == "1"


def test_polling_second_pending_get_closes_the_session(server):
    a, ta = register(server)
    p = Poll(server)
    p.open(ta)
    first = {}
    t = threading.Thread(target=lambda: first.update(r=p.get()))
    t.start()
    time.sleep(0.3)
    st, _, body = p.get()
    assert (st, json.loads(body)["code"]) == (400, 3)
    t.join(10)
    assert first["r"][0] == 200 and first["r"][2].decode().split("\x1e")[-1] == "1"
    assert p.get()[0] == 400


def test_polling_session_that_stops_polling_times_out(start_server):
    srv = start_server(SIO_PING_INTERVAL_MS=300, SIO_PING_TIMEOUT_MS=400)
    a, ta = register(srv)
    p = Poll(srv)
    p.open(ta)
    # a live client answers the ping that its GET brings
    assert "2" in p.get_packets()
    assert p.post("3") == (200, b"ok")
    # then it stops polling: no pong, the session is closed and later freed
    # (a noop POST is no pong: it only looks whether the session is there)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        time.sleep(0.5)
        st, _, body = p.request("POST", p.path(), b"6")
        if st == 400:
            break
    assert st == 400 and json.loads(body)["code"] == 1


def test_shutdown_releases_held_polls(start_server):
    srv = start_server()
    a, ta = register(srv)
    p = Poll(srv)
    p.open(ta)
    held = {}
    t = threading.Thread(target=lambda: held.update(r=p.get(timeout=15)))
    t.start()
    time.sleep(0.3)
    assert t.is_alive()
    srv.signal(signal.SIGTERM)
    t.join(15)
    assert held["r"][0] == 200 and held["r"][2].decode().split("\x1e")[-1] == "1"
    assert srv.proc.wait(15) == 0


def ws_gauge(srv):
    for line in api(srv, "GET", "/metrics").text.splitlines():
        if line.startswith("chatli_ws_connections "):
            return int(float(line.split()[1]))
    raise AssertionError("chatli_ws_connections missing from /metrics")


def wait_gauge(srv, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        got = ws_gauge(srv)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_polling_sessions_are_counted_once_through_an_upgrade(start_server):
    srv = start_server()
    a, ta = register(srv)
    p = Poll(srv)
    p.open(ta)
    assert ws_gauge(srv) == 1                    # a polling session is a connection
    r = Raw(srv, "/socket.io/?EIO=4&transport=websocket&sid=" + p.sid)
    assert wait_gauge(srv, 2) == 2               # and so is its probe
    r.send("2probe")
    assert r.recv() == "3probe"
    r.send("5")
    assert wait_gauge(srv, 1) == 1               # one connection after the move
    r.send('42["ping"]')
    assert r.event("pong") == {}
    r.close()
    assert wait_gauge(srv, 0) == 0
    # a probe that gives up: the session polls on, its GET held again
    q = Poll(srv)
    q.open(ta)
    r2 = Raw(srv, "/socket.io/?EIO=4&transport=websocket&sid=" + q.sid)
    r2.send("2probe")
    assert r2.recv() == "3probe"
    st, _, body = q.get()
    assert (st, body) == (200, b"6")             # upgrading: no GET is held
    r2.close()
    assert wait_gauge(srv, 1) == 1
    held = {}
    t = threading.Thread(target=lambda: held.update(r=q.get()))
    t.start()
    t.join(0.5)
    assert t.is_alive()                          # held again: the upgrade was given up
    assert q.post('42["ping"]') == (200, b"ok")
    t.join(10)
    assert held["r"][0] == 200 and held["r"][2].startswith(b'42["pong"')
    srv.signal(signal.SIGTERM)
    assert srv.proc.wait(15) == 0


def test_held_polls_hold_no_http_thread(start_server):
    """Eight GETs held at once on a server with one MHD thread: REST and
    the sessions' POSTs are still answered, and each GET gets its packet."""
    srv = start_server(HTTP_THREADS=1)
    a, ta = register(srv)
    polls = [Poll(srv) for _ in range(8)]
    for p in polls:
        p.open(ta)
    held = [{} for _ in polls]
    threads = [threading.Thread(target=lambda p=p, h=h: h.update(r=p.get()))
               for p, h in zip(polls, held)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    assert all(t.is_alive() for t in threads)
    assert_json(api(srv, "GET", "/api/users/me", ta, timeout=5), 200)
    for p in polls:
        assert p.post('42["ping"]') == (200, b"ok")
    for t, h in zip(threads, held):
        t.join(10)
        assert not t.is_alive() and h["r"][0] == 200 and h["r"][2].startswith(b'42["pong"')


def test_unconnected_polling_sessions_are_bounded(start_server):
    """SIO_POLL_MAX_UNAUTH (1024): handshakes cost no socket, so sessions
    that never CONNECT are bounded; connecting one frees its place."""
    srv = start_server()
    a, ta = register(srv)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    sids = []
    try:
        for _ in range(1024):
            conn.request("GET", POLL_PATH)
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200, (r.status, body)
            sids.append(json.loads(body[1:])["sid"])
        conn.request("GET", POLL_PATH)
        r = conn.getresponse()
        assert (r.status, json.loads(r.read())["code"]) == (503, 3)
    finally:
        conn.close()
    p = Poll(srv)
    p.sid = sids[0]
    assert p.post("40" + json.dumps({"token": ta})) == (200, b"ok")
    assert p.event("ready")["user"]["id"] == a["id"]
    assert Poll(srv).open()["sid"]                 # room for one more
    assert Poll(srv).request("GET")[0] == 503
