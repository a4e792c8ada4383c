"""WebSocket gateway: who gets what (CONTRACT.md section 6).

message.send (ack to the sender's connection, message.new to every other
connection of every member, the sender's other devices included, nothing to
non-members), REST -> WS delivery, typing, read, presence, post.new,
chat.new / chat.updated, per-chat seq order under concurrent senders, and
sync after a disconnect returning exactly the missed messages.

"Nothing arrived" is proven with WS.barrier(): the server queues frames on a
connection in order, so once the pong for a ping sent after an event is in,
anything that event produced for that connection is in too.
"""
import threading
import time
import uuid

import pytest

from helpers import api, assert_json, check_chat, check_message, check_post, make_chat, register, send_msg
from ws_fixtures import WS, connect, messages_after


def uid():
    return uuid.uuid4().hex[:16]


@pytest.fixture
def trio(server):
    """a and b share a direct chat; c shares nothing with them."""
    a, ta = register(server)
    b, tb = register(server)
    c, tc = register(server)
    chat = make_chat(server, ta, [b["id"]])
    return dict(a=a, ta=ta, b=b, tb=tb, c=c, tc=tc, chat=chat)


def test_message_send_ack_fanout_and_not_to_others(server, trio):
    wa, _ = connect(server, trio["ta"])
    wb, _ = connect(server, trio["tb"])
    wc, _ = connect(server, trio["tc"])
    try:
        cid = uid()
        wa.send({"type": "message.send", "chatId": trio["chat"]["id"], "text": "  hello  ",
                 "clientId": cid})
        ack = wa.recv_type("message.ack")
        assert set(ack) == {"type", "clientId", "message"}
        assert ack["clientId"] == cid
        m = ack["message"]
        check_message(m)
        assert m["text"] == "hello" and m["clientId"] == cid and m["seq"] == 1
        assert m["sender"]["id"] == trio["a"]["id"]
        new = wb.recv_type("message.new")
        assert set(new) == {"type", "message"}
        assert new["message"] == m
        # the sender's own connection gets the ack only; c gets nothing
        assert wa.barrier() == []
        assert wc.barrier() == []
        assert wb.barrier() == []
        # it is stored exactly like a REST message
        items = messages_after(server, trio["tb"], trio["chat"]["id"])
        assert items == [m]
    finally:
        for w in (wa, wb, wc):
            w.close()


@pytest.mark.parametrize("cid", ['q"uote', "back\\slash", "caf\u00e9 \u20ac \U0001F600", "</script>\t"])
def test_ack_echoes_a_client_id_that_needs_escaping(server, trio, cid):
    # The ack is assembled around the Message text core serialized once
    # (ws/workers.c ack_frame); its clientId must still be exact JSON.
    wa, _ = connect(server, trio["ta"])
    wb, _ = connect(server, trio["tb"])
    try:
        wa.send({"type": "message.send", "chatId": trio["chat"]["id"], "text": cid,
                 "clientId": cid})
        ack = wa.recv_type("message.ack")
        assert set(ack) == {"type", "clientId", "message"}
        assert ack["clientId"] == cid and ack["message"]["clientId"] == cid
        assert wb.recv_type("message.new")["message"] == ack["message"]
    finally:
        wa.close()
        wb.close()


def test_senders_other_device_gets_message_new(server, trio):
    a1, _ = connect(server, trio["ta"])
    a2, _ = connect(server, trio["ta"])
    try:
        a1.send({"type": "message.send", "chatId": trio["chat"]["id"], "text": "x",
                 "clientId": uid()})
        ack = a1.recv_type("message.ack")
        new = a2.recv_type("message.new")
        assert new["message"]["id"] == ack["message"]["id"]
        assert a1.barrier() == []
    finally:
        a1.close()
        a2.close()


def test_client_id_retry_is_acked_with_the_first_message_and_not_redelivered(server, trio):
    wa, _ = connect(server, trio["ta"])
    wb, _ = connect(server, trio["tb"])
    try:
        cid = uid()
        frame = {"type": "message.send", "chatId": trio["chat"]["id"], "text": "once",
                 "clientId": cid}
        wa.send(frame)
        first = wa.recv_type("message.ack")["message"]
        wa.send(frame)
        again = wa.recv_type("message.ack")["message"]
        assert again == first
        assert wb.recv_type("message.new")["message"]["id"] == first["id"]
        assert wb.barrier() == []  # no second message.new
        assert len(messages_after(server, trio["ta"], trio["chat"]["id"])) == 1
    finally:
        wa.close()
        wb.close()


def test_message_send_errors(server, trio):
    wa, _ = connect(server, trio["ta"])
    other = make_chat(server, trio["tb"], [trio["c"]["id"]])  # a is not a member
    try:
        chat_id = trio["chat"]["id"]
        cases = [
            ({"chatId": chat_id, "text": "x"}, "validation_failed", "clientId", None),
            ({"chatId": chat_id, "text": "x", "clientId": ""}, "validation_failed", "clientId", ""),
            ({"chatId": chat_id, "text": "x", "clientId": "k" * 65}, "validation_failed",
             "clientId", "k" * 65),
            ({"chatId": chat_id, "text": "   ", "clientId": "e1"}, "validation_failed", "text", "e1"),
            ({"chatId": chat_id, "text": "y" * 4001, "clientId": "e2"}, "validation_failed",
             "text", "e2"),
            ({"chatId": chat_id, "text": 5, "clientId": "e3"}, "validation_failed", "text", "e3"),
            ({"text": "x", "clientId": "e4"}, "validation_failed", "chatId", "e4"),
            ({"chatId": other["id"], "text": "x", "clientId": "e5"}, "not_found", None, "e5"),
            ({"chatId": "0" * 24, "text": "x", "clientId": "e6"}, "not_found", None, "e6"),
            ({"chatId": "nope", "text": "x", "clientId": "e7"}, "not_found", None, "e7"),
        ]
        for body, code, field, cid in cases:
            f = dict(body, type="message.send")
            wa.send(f)
            err = wa.recv_type("error")
            assert err["code"] == code, (body, err)
            assert isinstance(err["message"], str) and err["message"], err
            if field:
                assert err.get("field") == field, (body, err)
            else:
                assert "field" not in err, err
            if cid is not None:
                assert err.get("clientId") == cid, (body, err)
            else:
                assert "clientId" not in err, err
        # 4000 code points of a 4-byte character is fine
        wa.send({"type": "message.send", "chatId": chat_id, "text": "\U0001F600" * 4000,
                 "clientId": "big"})
        assert wa.recv_type("message.ack")["message"]["text"] == "\U0001F600" * 4000
        assert wa.barrier() == []
    finally:
        wa.close()


def test_rest_message_reaches_every_connection_of_every_member(server, trio):
    a1, _ = connect(server, trio["ta"])
    a2, _ = connect(server, trio["ta"])
    wb, _ = connect(server, trio["tb"])
    wc, _ = connect(server, trio["tc"])
    try:
        m = send_msg(server, trio["ta"], trio["chat"]["id"], "via rest", clientId="r1")
        for w in (a1, a2, wb):
            assert w.recv_type("message.new")["message"] == m
        assert wc.barrier() == []
    finally:
        for w in (a1, a2, wb, wc):
            w.close()


def test_typing_goes_to_other_members_only(server, trio):
    a1, _ = connect(server, trio["ta"])
    a2, _ = connect(server, trio["ta"])
    wb, _ = connect(server, trio["tb"])
    wc, _ = connect(server, trio["tc"])
    try:
        a1.send({"type": "typing", "chatId": trio["chat"]["id"]})
        t = wb.recv_type("typing")
        assert t == {"type": "typing", "chatId": trio["chat"]["id"], "userId": trio["a"]["id"]}
        assert a1.barrier() == []
        assert a2.barrier() == []  # not the typist's own devices
        assert wc.barrier() == []
        # not a member: not_found, nothing published
        wc.send({"type": "typing", "chatId": trio["chat"]["id"]})
        assert wc.recv_type("error")["code"] == "not_found"
        wc.send({"type": "typing"})
        err = wc.recv_type("error")
        assert err["code"] == "validation_failed" and err["field"] == "chatId"
        assert wb.barrier() == []
    finally:
        for w in (a1, a2, wb, wc):
            w.close()


def test_read_frame(server, trio):
    m = send_msg(server, trio["ta"], trio["chat"]["id"], "read me")
    wa, _ = connect(server, trio["ta"])
    b1, _ = connect(server, trio["tb"])
    b2, _ = connect(server, trio["tb"])
    wc, _ = connect(server, trio["tc"])
    try:
        b1.send({"type": "read", "chatId": trio["chat"]["id"], "messageId": m["id"]})
        expect = {"type": "read", "chatId": trio["chat"]["id"], "userId": trio["b"]["id"],
                  "messageId": m["id"], "seq": m["seq"]}
        assert wa.recv_type("read") == expect
        assert b2.recv_type("read") == expect  # the reader's other device
        assert b1.barrier() == []              # not the connection that sent it
        assert wc.barrier() == []
        chat = assert_json(api(server, "GET", "/api/chats/" + trio["chat"]["id"], trio["tb"]), 200)
        assert chat["unreadCount"] == 0
        # the mark does not move again: nothing is sent
        b1.send({"type": "read", "chatId": trio["chat"]["id"], "messageId": m["id"]})
        assert b1.barrier() == []
        assert wa.barrier() == []
        # errors
        b1.send({"type": "read", "chatId": trio["chat"]["id"], "messageId": "0" * 24})
        err = b1.recv_type("error")
        assert err["code"] == "validation_failed" and err["field"] == "messageId"
        b1.send({"type": "read", "chatId": trio["chat"]["id"]})
        err = b1.recv_type("error")
        assert err["code"] == "validation_failed" and err["field"] == "messageId"
        wc.send({"type": "read", "chatId": trio["chat"]["id"], "messageId": m["id"]})
        assert wc.recv_type("error")["code"] == "not_found"
        # a REST read reaches every connection, the reader's too
        m2 = send_msg(server, trio["tb"], trio["chat"]["id"], "from b")
        for w in (wa, b1, b2):
            w.recv_type("message.new")
        r = api(server, "POST", "/api/chats/%s/read" % trio["chat"]["id"], trio["ta"],
                json={"messageId": m2["id"]})
        assert r.status_code == 204
        for w in (wa, b1, b2):
            f = w.recv_type("read")
            assert f["userId"] == trio["a"]["id"] and f["messageId"] == m2["id"]
    finally:
        for w in (wa, b1, b2, wc):
            w.close()


def test_presence_first_and_last_connection(server, trio):
    wa, _ = connect(server, trio["ta"])
    wc, _ = connect(server, trio["tc"])
    try:
        b1, ready = connect(server, trio["tb"])
        assert trio["a"]["id"] in ready["online"]
        assert trio["c"]["id"] not in ready["online"]
        p = wa.recv_type("presence", pred=lambda f: f["userId"] == trio["b"]["id"])
        assert p == {"type": "presence", "userId": trio["b"]["id"], "online": True}
        b2, _ = connect(server, trio["tb"])  # second connection: no new presence
        b1.close()                          # one left: no offline
        time.sleep(0.5)
        got = wa.barrier(ignore=())
        assert [f for f in got if f.get("userId") == trio["b"]["id"]] == []
        b2.close()                          # last one: offline
        p = wa.recv_type("presence", pred=lambda f: f["userId"] == trio["b"]["id"])
        assert p["online"] is False
        # c shares no chat with b: never told
        got = wc.barrier(ignore=())
        assert [f for f in got if f.get("type") == "presence" and
                f.get("userId") == trio["b"]["id"]] == []
    finally:
        wa.close()
        wc.close()


def test_post_new_reaches_every_authenticated_connection(server, trio):
    wa, _ = connect(server, trio["ta"])
    wc, _ = connect(server, trio["tc"])
    pending = WS(server)  # not authenticated: gets nothing
    try:
        text = "post " + uid()
        post = assert_json(api(server, "POST", "/api/posts", trio["tb"], json={"text": text}), 201)
        for w in (wa, wc):
            f = w.recv_type("post.new", pred=lambda f: f["post"]["id"] == post["id"])
            assert set(f) == {"type", "post"}
            check_post(f["post"])
            assert f["post"]["text"] == text
        pending.send({"type": "auth", "token": trio["ta"]})
        pending.ready()
        got = pending.barrier(ignore=("presence",))
        assert [f for f in got if f.get("type") == "post.new" and
                f["post"]["id"] == post["id"]] == []
    finally:
        for w in (wa, wc, pending):
            w.close()


def test_chat_new_and_chat_updated(server, trio):
    d, td = register(server)
    wa, _ = connect(server, trio["ta"])
    wb, _ = connect(server, trio["tb"])
    wc, _ = connect(server, trio["tc"])
    wd, _ = connect(server, td)
    try:
        chat = make_chat(server, trio["ta"], [trio["b"]["id"], trio["c"]["id"]], name="grp")
        for w in (wa, wb, wc):  # the creator's connection too
            f = w.recv_type("chat.new", pred=lambda f: f["chat"]["id"] == chat["id"])
            assert set(f) == {"type", "chat"}
            check_chat(f["chat"])
        assert [f for f in wd.barrier() if f.get("type") == "chat.new"] == []
        r = api(server, "POST", "/api/chats/%s/members" % chat["id"], trio["tb"],
                json={"userId": d["id"]})
        assert r.status_code == 200, r.text
        f = wd.recv_type("chat.new", pred=lambda f: f["chat"]["id"] == chat["id"])
        assert d["id"] in [m["id"] for m in f["chat"]["members"]]
        for w in (wa, wb, wc):
            f = w.recv_type("chat.updated", pred=lambda f: f["chat"]["id"] == chat["id"])
            assert d["id"] in [m["id"] for m in f["chat"]["members"]]
        # d now gets the chat's messages live
        wa.send({"type": "message.send", "chatId": chat["id"], "text": "welcome",
                 "clientId": uid()})
        assert wd.recv_type("message.new")["message"]["chatId"] == chat["id"]
        # c leaves: the others get chat.updated, c's messages stop
        r = api(server, "DELETE", "/api/chats/%s/members/%s" % (chat["id"], trio["c"]["id"]),
                trio["tc"])
        assert r.status_code == 204
        for w in (wa, wb, wd):
            f = w.recv_type("chat.updated", pred=lambda f: f["chat"]["id"] == chat["id"] and
                            trio["c"]["id"] not in [m["id"] for m in f["chat"]["members"]])
        wc.barrier()
        wa.send({"type": "message.send", "chatId": chat["id"], "text": "bye c",
                 "clientId": uid()})
        wa.recv_type("message.ack")
        wb.recv_type("message.new")
        assert [f for f in wc.barrier() if f.get("type") == "message.new"] == []
    finally:
        for w in (wa, wb, wc, wd):
            w.close()


@pytest.mark.slow
def test_seq_order_under_concurrent_senders(server):
    senders = [register(server) for _ in range(4)]
    listener, tl = register(server)
    chat = make_chat(server, senders[0][1], [u["id"] for u, _ in senders[1:]] + [listener["id"]],
                     name="race")
    wl, _ = connect(server, tl)
    per_sender = 30  # within the default flood bucket (burst 40)
    errors = []

    def ws_sender(token):
        try:
            w, _ = connect(server, token)
            for i in range(per_sender):
                w.send({"type": "message.send", "chatId": chat["id"], "text": "m%d" % i,
                        "clientId": uid()})
            for i in range(per_sender):
                w.recv_type("message.ack", timeout=20)
            w.close()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def rest_sender(token):
        try:
            for i in range(10):
                send_msg(server, token, chat["id"], "r%d" % i)
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=ws_sender, args=(t,)) for _, t in senders[:3]]
    threads.append(threading.Thread(target=rest_sender, args=(senders[3][1],)))
    for t in threads:
        t.start()
    total = 3 * per_sender + 10
    seqs = []
    try:
        while len(seqs) < total:
            f = wl.recv_type("message.new", timeout=20)
            seqs.append(f["message"]["seq"])
    finally:
        for t in threads:
            t.join(30)
        wl.close()
    assert not errors, errors
    assert seqs == sorted(seqs) and len(set(seqs)) == total, seqs
    stored = [m["seq"] for m in messages_after(server, tl, chat["id"])]
    assert stored == seqs


def test_sync_after_disconnect_returns_exactly_the_missed_messages(server, trio):
    chat_id = trio["chat"]["id"]
    other = make_chat(server, trio["tb"], [trio["c"]["id"]])  # a is not a member
    send_msg(server, trio["tb"], other["id"], "not for a")
    wa, _ = connect(server, trio["ta"])
    wa.send({"type": "message.send", "chatId": chat_id, "text": "before", "clientId": uid()})
    last_seen = wa.recv_type("message.ack")["message"]["seq"]
    wa.close()
    missed = [send_msg(server, trio["tb"], chat_id, "missed %d" % i) for i in range(7)]
    wa, _ = connect(server, trio["ta"])
    try:
        wa.send({"type": "sync", "chats": {chat_id: last_seen, other["id"]: 0,
                                           "0" * 24: 0, "junk": 3}})
        got = []
        while True:
            f = wa.recv()
            if f["type"] == "sync.done":
                assert f == {"type": "sync.done", "complete": True}
                break
            if f["type"] == "message.new":
                got.append(f["message"])
        assert got == missed
        # an empty sync is just done
        wa.send({"type": "sync", "chats": {}})
        assert wa.recv_type("sync.done")["complete"] is True
        wa.send({"type": "sync", "chats": {chat_id: 10 ** 12}})
        assert wa.recv_type("sync.done")["complete"] is True
        wa.send({"type": "sync", "chats": {chat_id: -1}})
        err = wa.recv_type("error")
        assert err["code"] == "validation_failed" and err["field"] == "chats"
        wa.send({"type": "sync"})
        assert wa.recv_type("error")["field"] == "chats"
    finally:
        wa.close()


@pytest.mark.slow
@pytest.mark.time_limit(300)  # 505 sequential sends: ~0.1 s each on FerretDB
def test_sync_stops_at_500_per_chat_and_says_incomplete(server, trio):
    chat_id = trio["chat"]["id"]
    small = make_chat(server, trio["ta"], [trio["c"]["id"]])
    for i in range(505):
        send_msg(server, trio["tb"], chat_id, "n%d" % i)
    s = [send_msg(server, trio["tc"], small["id"], "s%d" % i) for i in range(3)]
    wa, _ = connect(server, trio["ta"])
    try:
        wa.send({"type": "sync", "chats": {chat_id: 2, small["id"]: 0}})
        by_chat = {chat_id: [], small["id"]: []}
        while True:
            f = wa.recv(timeout=20)
            if f["type"] == "sync.done":
                done = f
                break
            if f["type"] == "message.new":
                by_chat[f["message"]["chatId"]].append(f["message"]["seq"])
        assert done["complete"] is False
        assert by_chat[chat_id] == list(range(3, 503))
        assert by_chat[small["id"]] == [m["seq"] for m in s]
        # exactly 500 left: complete
        wa.send({"type": "sync", "chats": {chat_id: 5}})
        n = 0
        while True:
            f = wa.recv(timeout=20)
            if f["type"] == "sync.done":
                assert f["complete"] is True
                break
            n += f["type"] == "message.new"
        assert n == 500
    finally:
        wa.close()
