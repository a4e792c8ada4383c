"""WebSocket gateway: token expiry, connections per user, and the clientId of
error frames (CONTRACT.md section 6, v1.2; issue 8 items 6, 7 and 8).

- A token that expires while its socket is open closes it with 4401.
- A user holds at most WS_MAX_CONNS_PER_USER connections (default 16); one
  more closes that user's oldest with 4429, and the others keep working.
- Every error frame echoes the clientId of the frame it answers, whatever
  the frame's type, on every store.
"""
import time

import pytest

from helpers import make_chat, register
from ws_fixtures import WS, Closed, connect

MISSING_CHAT = "ffffffffffffffffffffffff"


def test_token_expiring_while_open_closes_4401(start_server):
    srv = start_server(TOKEN_TTL_S="3")
    _, token = register(srv)
    t0 = time.monotonic()
    w, _ = connect(srv, token)
    try:
        assert w.barrier() == []          # works while the token is good
        assert w.wait_close(timeout=10) == 4401
        assert time.monotonic() - t0 >= 1.5, "closed long before the token expired"
    finally:
        w.close()
    # The expired token no longer opens a connection either.
    v = WS(srv, token)
    try:
        assert v.wait_close() == 4401
    finally:
        v.close()


def test_token_far_from_expiry_stays_open(start_server):
    srv = start_server(TOKEN_TTL_S="3600")
    _, token = register(srv)
    w, _ = connect(srv, token)
    try:
        time.sleep(2.5)                   # several sweeps
        assert w.barrier() == []
    finally:
        w.close()


def test_one_connection_over_the_cap_closes_the_oldest_4429(start_server):
    srv = start_server(WS_MAX_CONNS_PER_USER="3")
    _, token = register(srv)
    conns = [connect(srv, token)[0] for _ in range(3)]
    try:
        for w in conns:
            assert w.barrier() == []
        newest, _ = connect(srv, token)
        conns.append(newest)
        assert conns[0].wait_close() == 4429
        for w in conns[1:]:
            assert w.barrier() == []      # the three newest keep working
    finally:
        for w in conns:
            w.close()


def test_cap_counts_per_user(start_server):
    srv = start_server(WS_MAX_CONNS_PER_USER="1")
    _, t1 = register(srv)
    _, t2 = register(srv)
    a, _ = connect(srv, t1)
    b, _ = connect(srv, t2)
    try:
        assert a.barrier() == [] and b.barrier() == []
        a2, _ = connect(srv, t1)
        assert a.wait_close() == 4429
        assert b.barrier() == [] and a2.barrier() == []
        a2.close()
    finally:
        a.close()
        b.close()


def test_default_cap_is_16(server):
    _, token = register(server)
    conns = [connect(server, token)[0] for _ in range(16)]
    try:
        for w in conns:
            assert w.barrier() == []
        conns.append(connect(server, token)[0])
        assert conns[0].wait_close() == 4429
        for w in conns[1:]:
            assert w.barrier() == []
    finally:
        for w in conns:
            w.close()


def _other_users_chat(server):
    a, ta = register(server)
    b, _ = register(server)
    return make_chat(server, ta, [b["id"]])["id"]


@pytest.mark.parametrize("frame", [
    {"type": "typing", "chatId": MISSING_CHAT},
    {"type": "typing", "chatId": "not-an-id"},
    {"type": "typing", "chatId": "<other>"},
    {"type": "typing"},
    {"type": "read", "chatId": MISSING_CHAT, "messageId": MISSING_CHAT},
    {"type": "read", "chatId": "<other>", "messageId": MISSING_CHAT},
    {"type": "message.send", "chatId": MISSING_CHAT, "text": "x"},
    {"type": "message.send", "chatId": "<other>", "text": "x"},
    {"type": "sync", "chats": []},
    {"type": "auth", "token": "x"},
    {"type": "no.such.type"},
])
def test_every_error_frame_echoes_the_client_id(server, frame):
    frame = dict(frame)
    if frame.get("chatId") == "<other>":
        frame["chatId"] = _other_users_chat(server)
    frame["clientId"] = "cid-%s" % frame["type"]
    _, token = register(server)
    w, _ = connect(server, token)
    try:
        w.send(frame)
        err = w.recv_type("error")
        assert err.get("clientId") == frame["clientId"], err
        assert w.barrier() == []
    finally:
        w.close()


def test_error_frame_without_client_id_has_none(server):
    _, token = register(server)
    w, _ = connect(server, token)
    try:
        w.send({"type": "typing", "chatId": MISSING_CHAT})
        err = w.recv_type("error")
        assert "clientId" not in err, err
    finally:
        w.close()
