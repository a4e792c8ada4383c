"""WebSocket gateway: authentication, the ready frame, revocation
(CONTRACT.md section 6).

Both ways in (?token= and a first `auth` frame), both close codes (4401 for
a bad token or a bad first frame, 4408 when no auth comes within 10 s; the
contract fixes 10 s, so one test waits for it), the ready frame's user and
online list, and logout closing the token's connections with 4401.
"""
import json
import threading
import time

import pytest
import websocket

from helpers import api, check_user, make_chat, register
from ws_fixtures import WS, Closed, connect


def test_query_token_gets_ready_with_own_user(server):
    user, token = register(server)
    w, ready = connect(server, token)
    try:
        assert set(ready) == {"type", "user", "online"}, ready
        check_user(ready["user"], own=True)
        me = api(server, "GET", "/api/users/me", token).json()
        assert ready["user"] == me
        assert ready["online"] == []
        # the connection works
        assert w.barrier() == []
    finally:
        w.close()


def test_auth_frame_gets_ready(server):
    user, token = register(server)
    w = WS(server)
    try:
        w.send({"type": "auth", "token": token})
        ready = w.ready()
        assert ready["user"]["id"] == user["id"]
        assert ready["user"]["email"] == user["email"]
        assert w.barrier() == []
    finally:
        w.close()


@pytest.mark.parametrize("token", ["garbage", "A" * 43, "", "x" * 2000])
def test_bad_query_token_closes_4401(server, token):
    w = WS(server, token=token)
    assert w.wait_close() == 4401


@pytest.mark.parametrize("first", [
    {"type": "auth", "token": "not-a-token"},
    {"type": "auth", "token": "B" * 43},
    {"type": "auth", "token": 12},
    {"type": "auth"},
    {"type": "ping"},
    {"type": "message.send", "chatId": "x", "text": "hi", "clientId": "c"},
    "not json at all",
    "[1,2,3]",
    "{}",
])
def test_bad_first_frame_closes_4401(server, first):
    w = WS(server)
    w.send(first)
    assert w.wait_close() == 4401


def test_revoked_token_at_connect_closes_4401(server):
    user, token = register(server)
    assert api(server, "POST", "/api/auth/logout", token).status_code == 204
    w = WS(server, token=token)
    assert w.wait_close() == 4401
    w2 = WS(server)
    w2.send({"type": "auth", "token": token})
    assert w2.wait_close() == 4401


def test_binary_first_frame_closes(server):
    w = WS(server)
    w.send_binary(b"\x00\x01")
    assert w.wait_close() == 1003


@pytest.mark.slow
@pytest.mark.time_limit(40)
def test_no_auth_within_10s_closes_4408(server):
    w = WS(server)
    t0 = time.monotonic()
    assert w.wait_close(timeout=20) == 4408
    elapsed = time.monotonic() - t0
    assert 9.0 <= elapsed <= 15.0, elapsed


@pytest.mark.slow
@pytest.mark.time_limit(40)
def test_auth_just_before_the_deadline_is_accepted(server):
    user, token = register(server)
    w = WS(server)
    try:
        time.sleep(8.0)
        w.send({"type": "auth", "token": token})
        assert w.ready()["user"]["id"] == user["id"]
        time.sleep(3.0)  # past the 10 s mark: the timer must be gone
        assert w.barrier() == []
    finally:
        w.close()


def test_frames_sent_before_ready_are_handled_after_it(server):
    user, token = register(server)
    w = WS(server)
    try:
        # pipelined: auth then a ping without waiting for ready
        w.send({"type": "auth", "token": token})
        w.send({"type": "ping"})
        w.send("malformed")
        assert w.recv()["type"] == "ready"
        assert w.recv()["type"] == "pong"
        err = w.recv()
        assert err["type"] == "error" and err["code"] == "bad_request"
    finally:
        w.close()


def test_many_frames_pipelined_behind_auth_are_all_answered(server):
    user, token = register(server)
    w = WS(server)
    try:
        w.send({"type": "auth", "token": token})
        for i in range(40):  # more than the 16 kept before ready: reading pauses, none lost
            w.send({"type": "ping"})
        assert w.recv()["type"] == "ready"
        for i in range(40):
            assert w.recv()["type"] == "pong", i
        assert w.barrier() == []
    finally:
        w.close()


def test_second_auth_frame_is_bad_request(server):
    user, token = register(server)
    w, _ = connect(server, token)
    try:
        w.send({"type": "auth", "token": token})
        assert w.recv()["code"] == "bad_request"
        assert w.barrier() == []
    finally:
        w.close()


def test_ready_online_lists_connected_co_members_only(server):
    a, ta = register(server)
    b, tb = register(server)
    c, tc = register(server)
    d, td = register(server)
    make_chat(server, ta, [b["id"]])                     # a-b direct
    make_chat(server, ta, [b["id"], c["id"]], name="g")  # a-b-c group
    # d shares nothing with a
    wb, _ = connect(server, tb)
    wd, _ = connect(server, td)
    wc, _ = connect(server, tc)
    wc.close()
    time.sleep(0.3)
    try:
        wa, ready = connect(server, ta)
        # b is connected and shares chats; c shares one but went away; d shares none
        assert sorted(ready["online"]) == [b["id"]]
        wa.close()
    finally:
        wb.close()
        wd.close()


def test_logout_closes_that_tokens_connections_with_4401(server):
    user, t1 = register(server)
    r = api(server, "POST", "/api/auth/login",
            json={"email": user["email"], "password": "correct horse battery"})
    assert r.status_code == 200, r.text
    t2 = r.json()["token"]
    w1a, _ = connect(server, t1)
    w1b, _ = connect(server, t1)
    w2, _ = connect(server, t2)
    try:
        assert api(server, "POST", "/api/auth/logout", t1).status_code == 204
        assert w1a.wait_close(timeout=10) == 4401
        assert w1b.wait_close(timeout=10) == 4401
        # the other session of the same user is untouched
        assert w2.barrier() == []
    finally:
        w2.close()


def test_logout_racing_a_connect_never_leaves_the_connection_open(server):
    # The token check runs on a worker; a logout landing between that check
    # and the connection joining its user must still close it.
    for _ in range(15):
        user, token = register(server)
        result = {}

        def logout():
            result["status"] = api(server, "POST", "/api/auth/logout", token).status_code

        t = threading.Thread(target=logout)
        w = WS(server, token=token)
        t.start()
        code = w.wait_close(timeout=10)
        t.join(10)
        assert result.get("status") == 204
        assert code == 4401, code


def test_plain_http_get_on_ws_is_not_upgraded(server):
    r = api(server, "GET", "/ws")
    assert r.status_code >= 400
