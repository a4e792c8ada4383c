"""WebSocket gateway: frame rules and flood control (CONTRACT.md section 6).

After auth a malformed or unknown frame gets a bad_request error frame and
the connection stays; a binary frame closes it with 1003; a message over
64 KiB closes it with 1009 (also when it arrives in fragments); exactly
64 KiB is fine.  message.send, typing and read draw from a per-user token
bucket (WS_RATE_PER_S / WS_RATE_BURST; 0 disables) shared by the user's
connections.
"""
import json
import time
import uuid

import pytest
import websocket

from helpers import make_chat, register
from ws_fixtures import WS, connect

LIMIT = 64 * 1024


def padded_ping(size):
    """A valid ping frame of exactly `size` bytes."""
    base = '{"type":"ping","pad":""}'
    s = base[:-2] + "x" * (size - len(base)) + '"}'
    assert len(s) == size
    return s


@pytest.mark.parametrize("frame", [
    "not json",
    "{",
    "[]",
    "42",
    "\"string\"",
    "{}",
    '{"type":7}',
    '{"type":"no.such.type"}',
    '{"type":"ping"} {"type":"ping"}',
    '{"type":"ping","type":"typing"}',
    "",
])
def test_malformed_frame_gets_bad_request_and_connection_survives(server, frame):
    user, token = register(server)
    w, _ = connect(server, token)
    try:
        w.send(frame)
        err = w.recv_type("error")
        assert err["code"] == "bad_request", err
        assert set(err) == {"type", "code", "message"}, err
        assert isinstance(err["message"], str) and err["message"]
        assert w.barrier() == []
    finally:
        w.close()


def test_invalid_utf8_text_closes_1007(server):
    user, token = register(server)
    w, _ = connect(server, token)
    try:
        w.ws.send(b'{"type":"ping","x":"\xff\xfe"}', opcode=websocket.ABNF.OPCODE_TEXT)
        assert w.wait_close() == 1007  # RFC 6455 8.1 (CONTRACT 6, v1.2)
    finally:
        w.close()


def test_exactly_64k_is_accepted(server):
    user, token = register(server)
    w, _ = connect(server, token)
    try:
        w.send(padded_ping(LIMIT))
        assert w.recv()["type"] == "pong"
        assert w.barrier() == []
    finally:
        w.close()


def test_over_64k_closes_1009(server):
    user, token = register(server)
    w, _ = connect(server, token)
    w.send(padded_ping(LIMIT + 1))
    assert w.wait_close() == 1009


def test_over_64k_before_auth_closes_1009(server):
    w = WS(server)
    w.send(padded_ping(LIMIT + 100))
    assert w.wait_close() == 1009


def test_binary_frame_closes_1003(server):
    user, token = register(server)
    w, _ = connect(server, token)
    w.send_binary(b'{"type":"ping"}')
    assert w.wait_close() == 1003


def test_fragmented_message_is_reassembled(server):
    user, token = register(server)
    w, _ = connect(server, token)
    try:
        s = padded_ping(5000)
        parts = [s[:10], s[10:3000], s[3000:]]
        w.ws.send_frame(websocket.ABNF.create_frame(parts[0], websocket.ABNF.OPCODE_TEXT, fin=0))
        w.ws.send_frame(websocket.ABNF.create_frame(parts[1], websocket.ABNF.OPCODE_CONT, fin=0))
        w.ws.send_frame(websocket.ABNF.create_frame(parts[2], websocket.ABNF.OPCODE_CONT, fin=1))
        assert w.recv()["type"] == "pong"
        # a small one right after, unfragmented
        w.send({"type": "ping"})
        assert w.recv()["type"] == "pong"
    finally:
        w.close()


def test_fragmented_message_over_64k_closes_1009(server):
    user, token = register(server)
    w, _ = connect(server, token)
    chunk = "x" * 30000
    w.ws.send_frame(websocket.ABNF.create_frame('{"type":"ping","p":"' + chunk,
                                                websocket.ABNF.OPCODE_TEXT, fin=0))
    w.ws.send_frame(websocket.ABNF.create_frame(chunk, websocket.ABNF.OPCODE_CONT, fin=0))
    w.ws.send_frame(websocket.ABNF.create_frame(chunk + '"}', websocket.ABNF.OPCODE_CONT, fin=1))
    assert w.wait_close() == 1009


def test_many_frames_in_a_burst_are_all_answered_in_order(server):
    user, token = register(server)
    w, _ = connect(server, token)
    try:
        for i in range(200):
            w.send({"type": "ping"} if i % 2 == 0 else "bad %d" % i)
        for i in range(200):
            f = w.recv()
            assert f["type"] == ("pong" if i % 2 == 0 else "error"), (i, f)
    finally:
        w.close()


@pytest.mark.own_server
def test_flood_control_rate_limited_frames(start_server):
    srv = start_server(WS_RATE_PER_S="1", WS_RATE_BURST="3")
    a, ta = register(srv)
    b, tb = register(srv)
    chat = make_chat(srv, ta, [b["id"]])
    a1, _ = connect(srv, ta)
    a2, _ = connect(srv, ta)  # same user, same bucket
    try:
        a1.send({"type": "typing", "chatId": chat["id"]})
        a2.send({"type": "typing", "chatId": chat["id"]})
        a1.send({"type": "message.send", "chatId": chat["id"], "text": "x", "clientId": "ok1"})
        assert a1.recv_type("message.ack")["clientId"] == "ok1"
        assert a2.recv_type("message.new")["message"]["clientId"] == "ok1"  # other device
        assert a2.barrier() == []
        # the bucket (3) is empty now
        a2.send({"type": "message.send", "chatId": chat["id"], "text": "x", "clientId": "rl1"})
        err = a2.recv_type("error")
        assert err["code"] == "rate_limited" and err["clientId"] == "rl1", err
        a1.send({"type": "typing", "chatId": chat["id"]})
        assert a1.recv_type("error")["code"] == "rate_limited"
        a1.send({"type": "read", "chatId": chat["id"], "messageId": "0" * 24})
        assert a1.recv_type("error")["code"] == "rate_limited"
        # ping and sync are not limited, and the connection stays
        a1.send({"type": "sync", "chats": {}})
        assert a1.recv_type("sync.done")["complete"] is True
        assert a1.barrier() == []
        # a token comes back after a second
        time.sleep(1.2)
        a1.send({"type": "message.send", "chatId": chat["id"], "text": "y", "clientId": "ok2"})
        assert a1.recv_type("message.ack")["clientId"] == "ok2"
    finally:
        a1.close()
        a2.close()


@pytest.mark.own_server
def test_flood_control_disabled_with_zero(start_server):
    srv = start_server(WS_RATE_PER_S="0")
    a, ta = register(srv)
    b, tb = register(srv)
    chat = make_chat(srv, ta, [b["id"]])
    w, _ = connect(srv, ta)
    try:
        n = 150
        for i in range(n):
            w.send({"type": "message.send", "chatId": chat["id"], "text": "m%d" % i,
                    "clientId": "c%d" % i})
        acks = [w.recv_type("message.ack", timeout=20)["clientId"] for _ in range(n)]
        assert acks == ["c%d" % i for i in range(n)]  # in order, none refused
        assert w.barrier() == []
    finally:
        w.close()
