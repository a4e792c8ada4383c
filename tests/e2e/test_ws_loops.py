"""One event loop per core (issue 9): the gateway as WS_LOOPS loops.

Every test starts its own server with WS_LOOPS=3 and checks that what the
contract says about a user as a whole still holds when its connections, and
those of its co-members, sit on different loops:

- new connections spread over the loops (chatli_ws_loop_connections{loop});
- presence: online on the user's first connection in the process and
  offline on its last, to co-members on every loop; `ready.online` counts
  users on every loop;
- WS_MAX_CONNS_PER_USER counts the user's connections on all loops and
  closes the oldest with 4429 wherever it is;
- the flood bucket (WS_RATE_PER_S / WS_RATE_BURST) is one per user;
- a message.send on one loop is acked there and delivered on the others,
  in order; post.new reaches every connection on every loop;
- a Socket.IO polling session upgrades to a WebSocket even when that socket
  would have been placed on another loop (the sid names the loop);
- SIGTERM closes the connections of every loop with 1001, after the acks
  of the sends in flight.

Where a connection lands is not visible to a client; a fresh server places
each new connection on the least loaded loop, so the per-loop gauges show
that the connections a test opens one at a time are on distinct loops, and
the tests assert that before relying on it.
"""
import re
import signal
import time

import pytest

from helpers import api, assert_json, make_chat, register
from ws_fixtures import Closed, connect, messages_after
from test_socketio import Poll, Raw

LOOPS = 3

pytestmark = pytest.mark.own_server


def loop_counts(srv):
    """[connections on loop 0, 1, ...] from /metrics."""
    text = api(srv, "GET", "/metrics").text
    got = {}
    for m in re.finditer(r'^chatli_ws_loop_connections\{loop="(\d+)"\} (\S+)$', text, re.M):
        got[int(m.group(1))] = int(float(m.group(2)))
    return [got[i] for i in sorted(got)]


def wait_counts(srv, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        got = loop_counts(srv)
        if got == want:
            return
        if time.monotonic() > deadline:
            raise AssertionError("loop connections %r, want %r" % (got, want))
        time.sleep(0.05)


def wait_total(srv, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    while sum(loop_counts(srv)) != n:
        if time.monotonic() > deadline:
            raise AssertionError("loop connections %r, want %d in all" % (loop_counts(srv), n))
        time.sleep(0.05)


def spread(srv, token, n, where=None):
    """Opens n connections of `token` one at a time; each must land on one of
    the least loaded loops (checked through the gauges).  Returns [(WS, ready
    frame)]; `where`, a list, gets each one's loop."""
    conns = []
    for _ in range(n):
        before = loop_counts(srv)
        w, ready = connect(srv, token)
        conns.append((w, ready))
        after = loop_counts(srv)
        grew = [i for i in range(len(after)) if after[i] == before[i] + 1]
        assert len(grew) == 1 and sum(after) == sum(before) + 1, (before, after)
        assert before[grew[0]] == min(before), (before, after)   # the least loaded
        if where is not None:
            where.append(grew[0])
    return conns


def no_frames(w, settle=0.5):
    """Nothing of any type (presence included) reached `w`."""
    time.sleep(settle)
    assert w.barrier(ignore=()) == []


def test_connections_spread_over_the_loops(start_server):
    srv = start_server(WS_LOOPS=str(LOOPS))
    assert loop_counts(srv) == [0] * LOOPS
    _, ta = register(srv)
    _, tb = register(srv)
    conns = spread(srv, ta, LOOPS)
    assert loop_counts(srv) == [1] * LOOPS        # one user's connections, every loop
    conns += spread(srv, tb, LOOPS)
    assert loop_counts(srv) == [2] * LOOPS
    total = [l for l in api(srv, "GET", "/metrics").text.splitlines()
             if l.startswith("chatli_ws_connections ")]
    assert total == ["chatli_ws_connections 6"], total
    for w, _ in conns:
        w.close()
    wait_counts(srv, [0] * LOOPS)


def test_presence_first_and_last_connection_across_loops(start_server):
    srv = start_server(WS_LOOPS=str(LOOPS))
    a, ta = register(srv)
    b, tb = register(srv)
    make_chat(srv, tb, [a["id"]])
    # b watches from two loops
    (b1, _), (b2, _) = spread(srv, tb, 2)
    # a's connections: the first on the third loop, then the others
    a_conns = spread(srv, ta, 3)
    assert sorted(loop_counts(srv)) == [1, 2, 2]
    for w in (b1, b2):
        assert w.recv_type("presence") == {"type": "presence", "userId": a["id"],
                                           "online": True}
        no_frames(w)                               # once, not per loop or connection
    # a newcomer of b's sees a online, wherever a's connections are
    (b3, ready), = spread(srv, tb, 1)
    assert a["id"] in ready["online"]
    # a's connections close one by one: offline only with the last
    for w, _ in a_conns[:-1]:
        w.close()
    wait_total(srv, 4)                             # b1, b2, b3 and a's last
    for w in (b1, b2, b3):
        no_frames(w)
    a_conns[-1][0].close()
    for w in (b1, b2, b3):
        assert w.recv_type("presence") == {"type": "presence", "userId": a["id"],
                                           "online": False}
    for w in (b1, b2, b3):
        w.close()


def test_per_user_cap_closes_the_oldest_on_another_loop_4429(start_server):
    srv = start_server(WS_LOOPS=str(LOOPS), WS_MAX_CONNS_PER_USER="2")
    _, token = register(srv)
    where = []
    conns = [w for w, _ in spread(srv, token, 2, where)]
    for w in conns:
        assert w.barrier() == []
    # the third lands on the empty loop; the oldest, on another, goes
    third, = set(range(LOOPS)) - set(where)
    w3, _ = connect(srv, token)
    conns.append(w3)
    assert conns[0].wait_close() == 4429
    for w in conns[1:]:
        assert w.barrier() == []
    wait_total(srv, 2)
    counts = loop_counts(srv)
    assert counts[where[0]] == 0 and counts[where[1]] == 1 and counts[third] == 1, counts
    # one more: the oldest left (second) goes, wherever the new one is
    w4, _ = connect(srv, token)
    conns.append(w4)
    assert conns[1].wait_close() == 4429
    for w in conns[2:]:
        assert w.barrier() == []
    wait_total(srv, 2)
    for w in conns:
        w.close()


def test_flood_bucket_is_per_user_across_loops(start_server):
    srv = start_server(WS_LOOPS=str(LOOPS), WS_RATE_PER_S="1", WS_RATE_BURST="3")
    a, ta = register(srv)
    b, tb = register(srv)
    chat = make_chat(srv, ta, [b["id"]])
    a1, a2, a3 = [w for w, _ in spread(srv, ta, 3)]   # one per loop
    try:
        a1.send({"type": "typing", "chatId": chat["id"]})
        a2.send({"type": "typing", "chatId": chat["id"]})
        a3.send({"type": "message.send", "chatId": chat["id"], "text": "x", "clientId": "ok1"})
        assert a3.recv_type("message.ack")["clientId"] == "ok1"
        for w in (a1, a2):                         # bucket of 3 taken from three loops
            w.send({"type": "message.send", "chatId": chat["id"], "text": "x",
                    "clientId": "rl"})
            err = w.recv_type("error")
            assert err["code"] == "rate_limited" and err["clientId"] == "rl", err
        time.sleep(1.2)                            # a token comes back
        a2.send({"type": "message.send", "chatId": chat["id"], "text": "y", "clientId": "ok2"})
        assert a2.recv_type("message.ack")["clientId"] == "ok2"
    finally:
        for w in (a1, a2, a3):
            w.close()


def test_message_send_on_one_loop_delivered_on_the_others(start_server):
    srv = start_server(WS_LOOPS=str(LOOPS))
    a, ta = register(srv)
    b, tb = register(srv)
    chat = make_chat(srv, ta, [b["id"]])
    (wa, _), = spread(srv, ta, 1)
    b1, b2 = [w for w, _ in spread(srv, tb, 2)]
    assert loop_counts(srv) == [1, 1, 1]
    n = 30
    for i in range(n):
        wa.send({"type": "message.send", "chatId": chat["id"], "text": "m%d" % i,
                 "clientId": "c%d" % i})
    acks = [wa.recv_type("message.ack")["clientId"] for _ in range(n)]
    assert acks == ["c%d" % i for i in range(n)]
    for w in (b1, b2):
        got = [w.recv_type("message.new")["message"]["clientId"] for _ in range(n)]
        assert got == acks                         # every one, in order
    # and back the other way
    b2.send({"type": "message.send", "chatId": chat["id"], "text": "back", "clientId": "r1"})
    assert b2.recv_type("message.ack")["clientId"] == "r1"
    assert wa.recv_type("message.new")["message"]["clientId"] == "r1"
    assert b1.recv_type("message.new")["message"]["clientId"] == "r1"   # b's other device
    for w in (wa, b1, b2):
        w.close()


def test_post_new_reaches_every_connection_on_every_loop(start_server):
    srv = start_server(WS_LOOPS=str(LOOPS))
    toks = [register(srv)[1] for _ in range(3)]
    conns = []
    for t in toks:
        conns += [w for w, _ in spread(srv, t, LOOPS)]
    assert loop_counts(srv) == [3, 3, 3]
    post = assert_json(api(srv, "POST", "/api/posts", toks[0], json={"text": "to all"}), 201)
    for w in conns:
        f = w.recv_type("post.new", pred=lambda f: f["post"]["id"] == post["id"])
        assert f["post"]["text"] == "to all"
    for w in conns:
        w.close()


def test_socketio_polling_upgrade_joins_its_session_loop(start_server):
    srv = start_server(WS_LOOPS=str(LOOPS))
    a, ta = register(srv)
    sessions, loops_seen = [], set()
    for i in range(6):
        p = Poll(srv)
        p.open(ta)
        loops_seen.add(p.sid[:2])
        # the probe socket would go to the least loaded loop; it must join
        # the session's instead
        r = Raw(srv, "/socket.io/?EIO=4&transport=websocket&sid=" + p.sid)
        r.send("2probe")
        assert r.recv() == "3probe", i
        r.send("5")
        r.send('42["ping"]')
        assert r.event("pong") == {}, i
        st, _, _ = p.get()                         # moved: unknown to polling now
        assert st == 400
        sessions.append(r)
    # the sessions were opened on more than one loop, so some probes crossed
    assert len(loops_seen) > 1, loops_seen
    wait_total(srv, 6)
    for r in sessions:
        r.ws.close()


@pytest.mark.sqlite_only
def test_sigterm_closes_every_loop_1001_after_acks(start_server):
    srv = start_server(WS_LOOPS=str(LOOPS), WS_RATE_PER_S="0")
    a, ta = register(srv)
    b, tb = register(srv)
    chat = make_chat(srv, ta, [b["id"]])
    senders = [w for w, _ in spread(srv, ta, LOOPS)]
    assert loop_counts(srv) == [1] * LOOPS
    n = 60
    for k, w in enumerate(senders):
        for i in range(n):
            w.send({"type": "message.send", "chatId": chat["id"], "text": "s",
                    "clientId": "l%d-%d" % (k, i)})
    srv.signal(signal.SIGTERM)
    acked = []
    for k, w in enumerate(senders):
        mine = []
        code = None
        while True:
            try:
                f = w.recv(timeout=10)
            except Closed as c:
                code = c.code
                break
            if f["type"] == "message.ack":
                mine.append(f["clientId"])
            elif f["type"] == "error":
                assert f["code"] == "unavailable", f
        assert code == 1001, (k, code)
        assert mine == ["l%d-%d" % (k, i) for i in range(len(mine))]   # in send order
        acked += mine
    assert srv.proc.wait(timeout=15) == 0
    srv.start()
    stored = [m["clientId"] for m in messages_after(srv, tb, chat["id"])]
    assert set(acked) <= set(stored)               # every ack is durable
    assert len(set(stored)) == len(stored)          # exactly once
