"""CONTRACT.md v1.2 sections 2 and 6: Chat.readMarks (every member's read
mark), `seq` on the `read` frame, and the clientId echo of every WS error
frame whatever the frame type."""
import pytest

from helpers import api, assert_json, check_chat, fake_id, get_chat, make_chat, register, send_msg
from ws_fixtures import connect


def read_rest(server, token, chat_id, message_id):
    return api(server, "POST", "/api/chats/%s/read" % chat_id, token, json={"messageId": message_id})


def check_marks(chat, want):
    check_chat(chat)
    marks = chat["readMarks"]
    assert marks == want, marks
    assert set(marks) == {m["id"] for m in chat["members"]}
    for v in marks.values():
        assert isinstance(v, int) and not isinstance(v, bool)


def test_read_marks_after_reads_by_two_members(server):
    a, ta = register(server)
    b, tb = register(server)
    c, tc = register(server)
    g = make_chat(server, ta, [b["id"], c["id"]], name="receipts")
    check_marks(g, {a["id"]: 0, b["id"]: 0, c["id"]: 0})
    msgs = [send_msg(server, ta, g["id"], "m%d" % i) for i in range(3)]
    wa, _ = connect(server, ta)
    wc, _ = connect(server, tc)
    try:
        # b reads the second message over REST: a hears it live with its seq
        assert read_rest(server, tb, g["id"], msgs[1]["id"]).status_code == 204
        f = wa.recv_type("read", pred=lambda f: f["userId"] == b["id"])
        assert f == {"type": "read", "chatId": g["id"], "userId": b["id"],
                     "messageId": msgs[1]["id"], "seq": msgs[1]["seq"]}
        # c reads the third over WS: a hears it with its seq
        wc.send({"type": "read", "chatId": g["id"], "messageId": msgs[2]["id"]})
        f = wa.recv_type("read", pred=lambda f: f["userId"] == c["id"])
        assert f["seq"] == msgs[2]["seq"] and f["messageId"] == msgs[2]["id"]
        assert [x for x in wc.barrier() if x.get("type") == "error"] == []
    finally:
        wa.close()
        wc.close()
    want = {a["id"]: 0, b["id"]: msgs[1]["seq"], c["id"]: msgs[2]["seq"]}
    # the same marks for every viewer, through GET and through the list
    for t in (ta, tb, tc):
        check_marks(get_chat(server, t, g["id"]), want)
        page = assert_json(api(server, "GET", "/api/chats", t, params={"limit": 5}), 200)
        listed = [ch for ch in page["items"] if ch["id"] == g["id"]]
        assert len(listed) == 1
        check_marks(listed[0], want)
    # a mark never moves backwards, and reading backwards sends nothing
    assert read_rest(server, tb, g["id"], msgs[0]["id"]).status_code == 204
    check_marks(get_chat(server, ta, g["id"]), want)
    # a member who leaves loses its mark; the others keep theirs
    assert api(server, "DELETE", "/api/chats/%s/members/%s" % (g["id"], c["id"]),
               tc).status_code == 204
    check_marks(get_chat(server, ta, g["id"]), {a["id"]: 0, b["id"]: msgs[1]["seq"]})


def test_read_marks_in_direct_chat_and_page_of_chats(server):
    a, ta = register(server)
    others = [register(server) for _ in range(3)]
    chats = []
    for i, (u, t) in enumerate(others):
        d = make_chat(server, ta, [u["id"]])
        m = send_msg(server, ta, d["id"], "hello %d" % i)
        if i != 1:
            assert read_rest(server, t, d["id"], m["id"]).status_code == 204
        chats.append((d, u, m, i != 1))
    page = assert_json(api(server, "GET", "/api/chats", ta, params={"limit": 10}), 200)
    by_id = {ch["id"]: ch for ch in page["items"]}
    for d, u, m, read in chats:
        check_marks(by_id[d["id"]], {a["id"]: 0, u["id"]: m["seq"] if read else 0})


def test_read_frame_seq_to_own_other_device(server):
    a, ta = register(server)
    b, _ = register(server)
    d = make_chat(server, ta, [b["id"]])
    m = send_msg(server, ta, d["id"], "x")
    m2 = send_msg(server, ta, d["id"], "y")
    w1, _ = connect(server, ta)
    w2, _ = connect(server, ta)
    try:
        w1.send({"type": "read", "chatId": d["id"], "messageId": m2["id"]})
        f = w2.recv_type("read")
        assert f["seq"] == m2["seq"] and f["userId"] == a["id"]
        assert m["seq"] < m2["seq"]
    finally:
        w1.close()
        w2.close()


# ---- clientId echo on every error frame ---------------------------------------

ERROR_FRAMES = [
    # (name, frame builder (chat id, message id) -> frame, code, field)
    ("typing-not-member", lambda other, mid: {"type": "typing", "chatId": other}, "not_found", None),
    ("typing-unknown-chat", lambda other, mid: {"type": "typing", "chatId": fake_id()},
     "not_found", None),
    ("typing-no-chat", lambda other, mid: {"type": "typing"}, None, None),
    ("read-not-member", lambda other, mid: {"type": "read", "chatId": other, "messageId": mid},
     "not_found", None),
    ("read-bad-message", lambda own, mid: {"type": "read", "chatId": own, "messageId": "nope"},
     "validation_failed", "messageId"),
    ("read-foreign-message", lambda own, mid: {"type": "read", "chatId": own,
                                               "messageId": fake_id()},
     "validation_failed", "messageId"),
    ("read-no-message", lambda own, mid: {"type": "read", "chatId": own}, "validation_failed",
     "messageId"),
    ("sync-bad", lambda own, mid: {"type": "sync", "chats": [1, 2]}, None, None),
    ("unknown-type", lambda own, mid: {"type": "no.such"}, "bad_request", None),
    ("auth-again", lambda own, mid: {"type": "auth", "token": "x"}, "bad_request", None),
    ("send-invalid", lambda own, mid: {"type": "message.send", "chatId": own, "text": ""},
     "validation_failed", "text"),
]


@pytest.mark.parametrize("name,build,code,field", ERROR_FRAMES, ids=[e[0] for e in ERROR_FRAMES])
def test_error_frames_echo_client_id(server, name, build, code, field):
    a, ta = register(server)
    b, tb = register(server)
    c, tc = register(server)
    own = make_chat(server, ta, [b["id"]])
    other = make_chat(server, tb, [c["id"]])
    mid = send_msg(server, tb, other["id"], "not yours")["id"]
    target = other["id"] if "not-member" in name else own["id"]
    w, _ = connect(server, ta)
    try:
        frame = build(target, mid)
        frame["clientId"] = "cid-" + name
        w.send(frame)
        err = w.recv_type("error")
        assert err["clientId"] == "cid-" + name, err
        if code:
            assert err["code"] == code, err
        if field:
            assert err.get("field") == field, err
        assert isinstance(err["message"], str)
        # a frame without clientId gets an error without one
        del frame["clientId"]
        w.send(frame)
        err = w.recv_type("error")
        assert "clientId" not in err, err
    finally:
        w.close()
