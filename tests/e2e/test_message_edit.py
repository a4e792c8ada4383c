"""CONTRACT.md v1.2 sections 2, 5 and 6: message edit and delete (PATCH / DELETE
/api/chats/{id}/messages/{messageId}), the message.updated / message.deleted frames,
tombstones in history, and the exact catch-up of changes through sync (each change takes
the chat's next position; docs/api.md "Edits, deletions and catch-up")."""
import uuid

import pytest

from helpers import (api, assert_error, assert_json, check_chat, check_message, fake_id,
                     get_chat, make_chat, register, send_msg)
from ws_fixtures import connect, messages_after


def msg_path(chat_id, message_id):
    return "/api/chats/%s/messages/%s" % (chat_id, message_id)


def edit(server, token, chat_id, message_id, body):
    return api(server, "PATCH", msg_path(chat_id, message_id), token, json=body)


def delete(server, token, chat_id, message_id):
    return api(server, "DELETE", msg_path(chat_id, message_id), token)


def position(frame):
    """The chat position a frame brings its client to: the top-level seq of
    message.updated / message.deleted (and of sync's message.new), else the
    message's own seq."""
    return frame["seq"] if "seq" in frame else frame["message"]["seq"]


def sync(w, chat_id, after):
    """Sends sync for one chat; returns its frames (in order) up to sync.done."""
    w.send({"type": "sync", "chats": {chat_id: after}})
    frames = []
    while True:
        f = w.recv(10)
        if f["type"] == "sync.done":
            assert f["complete"] is True
            return frames
        if f["type"] in ("message.new", "message.updated", "message.deleted"):
            frames.append(f)


def apply(state, frame):
    """A client's local copy of a chat (id -> Message) after one frame."""
    if frame["type"] == "message.deleted":
        m = state[frame["messageId"]]
        state[frame["messageId"]] = dict(m, deleted=True, text="", attachmentUrl=None)
    else:
        state[frame["message"]["id"]] = frame["message"]


def test_edit_returns_the_edited_message(server):
    a, ta = register(server)
    b, tb = register(server)
    chat = make_chat(server, ta, [b["id"]])
    m = send_msg(server, ta, chat["id"], "helo")
    assert m["editedAt"] is None and m["deleted"] is False
    other = send_msg(server, ta, chat["id"], "later")
    r = assert_json(edit(server, ta, chat["id"], m["id"], {"text": "  hello \u3000"}), 200)
    check_message(r)
    assert r["text"] == "hello"
    assert r["editedAt"] is not None and r["editedAt"] >= m["createdAt"]
    assert r["deleted"] is False
    # the message keeps its identity and its place in the chat
    for k in ("id", "chatId", "seq", "sender", "attachmentUrl", "clientId", "createdAt"):
        assert r[k] == m[k], k
    history = assert_json(api(server, "GET", "/api/chats/%s/messages" % chat["id"], tb), 200)
    assert [x["id"] for x in history["items"]] == [other["id"], m["id"]]
    assert history["items"][1] == r
    # lastSeq stays the highest message seq; the edit is no new message
    c = get_chat(server, tb, chat["id"])
    assert c["lastSeq"] == other["seq"]
    assert c["lastMessage"]["id"] == other["id"]
    # editing the last message shows in the chat's lastMessage
    r2 = assert_json(edit(server, ta, chat["id"], other["id"], {"text": "later!"}), 200)
    c = get_chat(server, tb, chat["id"])
    check_chat(c)
    assert c["lastMessage"] == r2 and c["lastSeq"] == other["seq"]


def test_edit_text_rules(server):
    a, ta = register(server)
    b, _ = register(server)
    chat = make_chat(server, ta, [b["id"]])
    m = send_msg(server, ta, chat["id"], "text")
    for body in ({}, {"text": None}, {"text": ""}, {"text": "   "}, {"text": "x" * 4001},
                 {"text": 5}, {"text": ["x"]}):
        assert_error(edit(server, ta, chat["id"], m["id"], body), 422, "validation_failed", "text")
    r = api(server, "PATCH", msg_path(chat["id"], m["id"]), ta, data=b"{",
            headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")
    assert assert_json(edit(server, ta, chat["id"], m["id"], {"text": "x" * 4000}),
                       200)["text"] == "x" * 4000
    # with an attachment the text may become empty, and the attachment stays
    pic = send_msg(server, ta, chat["id"], "caption", attachmentUrl="https://img.example/p.png")
    r = assert_json(edit(server, ta, chat["id"], pic["id"], {"text": " "}), 200)
    assert r["text"] == "" and r["attachmentUrl"] == "https://img.example/p.png"
    assert r["editedAt"] is not None


def test_delete_leaves_a_tombstone(server):
    a, ta = register(server)
    b, tb = register(server)
    chat = make_chat(server, ta, [b["id"]])
    m = send_msg(server, ta, chat["id"], "oops", attachmentUrl="https://img.example/x.png",
                 clientId="c-" + uuid.uuid4().hex)
    after = send_msg(server, tb, chat["id"], "after")
    r = delete(server, ta, chat["id"], m["id"])
    assert r.status_code == 204 and r.content == b""
    items = messages_after(server, tb, chat["id"])
    assert [x["id"] for x in items] == [m["id"], after["id"]]
    t = items[0]
    check_message(t)
    assert t["deleted"] is True and t["text"] == "" and t["attachmentUrl"] is None
    for k in ("id", "chatId", "seq", "sender", "clientId", "createdAt"):
        assert t[k] == m[k], k
    # a tombstone cannot be edited; deleting it again changes nothing
    assert_error(edit(server, ta, chat["id"], m["id"], {"text": "back"}), 404, "not_found")
    assert delete(server, ta, chat["id"], m["id"]).status_code == 204
    assert messages_after(server, tb, chat["id"])[0] == t
    # the last message deleted: lastMessage is its tombstone
    assert delete(server, tb, chat["id"], after["id"]).status_code == 204
    c = get_chat(server, ta, chat["id"])
    check_chat(c)
    assert c["lastMessage"]["id"] == after["id"] and c["lastMessage"]["deleted"] is True
    assert c["lastSeq"] == after["seq"]
    # a retry of the deleted message's clientId still answers the first (tombstone)
    again = send_msg(server, ta, chat["id"], "oops", expect=200, clientId=m["clientId"])
    assert again == t


def test_authorization_matrix(server):
    a, ta = register(server)
    b, tb = register(server)
    _, tc = register(server)
    chat = make_chat(server, ta, [b["id"]])
    m = send_msg(server, ta, chat["id"], "mine")
    # another member's message: 403, and nothing changes
    assert_error(edit(server, tb, chat["id"], m["id"], {"text": "theirs"}), 403, "forbidden")
    assert_error(delete(server, tb, chat["id"], m["id"]), 403, "forbidden")
    # a non-member: 404, as for the chat itself
    assert_error(edit(server, tc, chat["id"], m["id"], {"text": "x"}), 404, "not_found")
    assert_error(delete(server, tc, chat["id"], m["id"]), 404, "not_found")
    # a message of another chat the caller belongs to: 404
    c2 = make_chat(server, ta, [b["id"]], name="second")
    m2 = send_msg(server, ta, c2["id"], "elsewhere")
    assert_error(edit(server, ta, chat["id"], m2["id"], {"text": "x"}), 404, "not_found")
    assert_error(delete(server, ta, chat["id"], m2["id"]), 404, "not_found")
    # unknown and malformed ids: 404; no token: 401; another method: 405
    for cid, mid in ((chat["id"], fake_id()), (chat["id"], "bad"), (fake_id(), m["id"]),
                     ("bad", m["id"])):
        assert_error(edit(server, ta, cid, mid, {"text": "x"}), 404, "not_found")
        assert_error(delete(server, ta, cid, mid), 404, "not_found")
    assert_error(edit(server, None, chat["id"], m["id"], {"text": "x"}), 401, "unauthorized")
    assert_error(delete(server, None, chat["id"], m["id"]), 401, "unauthorized")
    r = api(server, "PUT", msg_path(chat["id"], m["id"]), ta, json={"text": "x"})
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "PATCH, DELETE"
    items = messages_after(server, ta, chat["id"])
    assert items == [m]
    assert messages_after(server, ta, c2["id"]) == [m2]


def test_changes_are_live_to_every_connection_of_every_member(server):
    a, ta = register(server)
    b, tb = register(server)
    c, tc = register(server)
    chat = make_chat(server, ta, [b["id"]])
    m = send_msg(server, ta, chat["id"], "live")
    wa, _ = connect(server, ta)
    wa2, _ = connect(server, ta)
    wb, _ = connect(server, tb)
    wc, _ = connect(server, tc)
    try:
        r = assert_json(edit(server, ta, chat["id"], m["id"], {"text": "live, edited"}), 200)
        pos = None
        for w in (wa, wa2, wb):  # the editor's own devices too
            f = w.recv_type("message.updated", pred=lambda f: f["message"]["id"] == m["id"])
            assert set(f) == {"type", "seq", "message"}
            check_message(f["message"])
            assert f["message"] == r
            assert f["seq"] > m["seq"]
            assert pos is None or f["seq"] == pos
            pos = f["seq"]
        assert delete(server, ta, chat["id"], m["id"]).status_code == 204
        for w in (wa, wa2, wb):
            f = w.recv_type("message.deleted", pred=lambda f: f["messageId"] == m["id"])
            assert f == {"type": "message.deleted", "chatId": chat["id"], "messageId": m["id"],
                         "seq": f["seq"]}
            assert f["seq"] > pos
        # a new message takes the next position after the changes as its seq
        n = send_msg(server, tb, chat["id"], "next")
        assert n["seq"] > pos + 1
        assert [f for f in wc.barrier()
                if f.get("type", "").startswith("message.")] == []
        # a refused change sends nothing
        assert_error(edit(server, tb, chat["id"], m["id"], {"text": "x"}),
                     403, "forbidden")
        assert_error(delete(server, ta, chat["id"], n["id"]), 403, "forbidden")
        for w in (wa, wb):
            assert [f for f in w.barrier()
                    if f.get("type") in ("message.updated", "message.deleted")] == []
    finally:
        for w in (wa, wa2, wb, wc):
            w.close()


def test_offline_client_catches_up_exactly_through_sync(server):
    a, ta = register(server)
    b, tb = register(server)
    chat = make_chat(server, ta, [b["id"]], name="catch-up")
    cid = chat["id"]
    wb, _ = connect(server, tb)
    state, reached = {}, 0
    try:
        sent = [send_msg(server, ta, cid, "m%d" % i) for i in range(4)]
        mine = send_msg(server, tb, cid, "from b")
        for _ in range(5):
            f = wb.recv_type("message.new")
            apply(state, f)
            reached = max(reached, position(f))
    finally:
        wb.close()
    assert reached == mine["seq"]

    # while b is away: edits, deletions, new messages (one edited, one deleted)
    assert_json(edit(server, ta, cid, sent[0]["id"], {"text": "m0 v2"}), 200)
    assert delete(server, ta, cid, sent[1]["id"]).status_code == 204
    assert_json(edit(server, ta, cid, sent[0]["id"], {"text": "m0 v3"}), 200)
    n1 = send_msg(server, ta, cid, "new 1")
    n2 = send_msg(server, ta, cid, "new 2")
    assert_json(edit(server, ta, cid, n1["id"], {"text": "new 1 edited"}), 200)
    assert delete(server, ta, cid, n2["id"]).status_code == 204
    assert_json(edit(server, tb, cid, mine["id"], {"text": "from b, edited elsewhere"}), 200)
    assert delete(server, ta, cid, sent[3]["id"]).status_code == 204
    assert_json(edit(server, ta, cid, sent[2]["id"], {"text": "m2 v2"}), 200)
    n3 = send_msg(server, ta, cid, "new 3")

    wb, _ = connect(server, tb)
    try:
        frames = sync(wb, cid, reached)
        # each changed or new message once, in increasing position order
        positions = [position(f) for f in frames]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        assert all(p > reached for p in positions)
        ids = [f["messageId"] if f["type"] == "message.deleted" else f["message"]["id"]
               for f in frames]
        assert len(ids) == len(set(ids))
        by_id = dict(zip(ids, frames))
        assert set(by_id) == {sent[0]["id"], sent[1]["id"], sent[2]["id"], sent[3]["id"],
                              mine["id"], n1["id"], n2["id"], n3["id"]}
        # older messages come as changes, newer ones whole, in their final state
        assert by_id[sent[0]["id"]]["type"] == "message.updated"
        assert by_id[sent[0]["id"]]["message"]["text"] == "m0 v3"
        assert by_id[sent[1]["id"]]["type"] == "message.deleted"
        assert by_id[sent[3]["id"]]["type"] == "message.deleted"
        assert by_id[mine["id"]]["type"] == "message.updated"
        for n in (n1, n2, n3):
            assert by_id[n["id"]]["type"] == "message.new"
        assert by_id[n1["id"]]["message"]["text"] == "new 1 edited"
        assert by_id[n2["id"]]["message"]["deleted"] is True
        for f in frames:
            if f["type"] != "message.deleted":
                check_message(f["message"])
                assert f["message"]["chatId"] == cid
            else:
                assert set(f) == {"type", "chatId", "messageId", "seq"}
            apply(state, f)
            reached = max(reached, position(f))
        # the client's copy is exactly the stored history
        stored = messages_after(server, tb, cid)
        assert [state[m["id"]] for m in stored] == stored
        assert len(state) == len(stored)
        # a second sync from the position reached brings nothing
        assert sync(wb, cid, reached) == []
        # and a change after it comes on the next sync, alone
        assert_json(edit(server, ta, cid, n3["id"], {"text": "new 3 edited"}), 200)
        wb.recv_type("message.updated")
        again = sync(wb, cid, reached)
        assert [(f["type"], f["message"]["text"]) for f in again] == \
            [("message.updated", "new 3 edited")]
        assert position(again[0]) > reached
    finally:
        wb.close()


def test_after_seq_history_and_unread_count(server):
    a, ta = register(server)
    b, tb = register(server)
    chat = make_chat(server, ta, [b["id"]])
    cid = chat["id"]
    ms = [send_msg(server, ta, cid, "u%d" % i) for i in range(3)]
    assert get_chat(server, tb, cid)["unreadCount"] == 3
    r = api(server, "POST", "/api/chats/%s/read" % cid, tb, json={"messageId": ms[2]["id"]})
    assert r.status_code == 204
    # changes of read messages are no new messages
    assert_json(edit(server, ta, cid, ms[0]["id"], {"text": "u0 edited"}), 200)
    assert delete(server, ta, cid, ms[1]["id"]).status_code == 204
    c = get_chat(server, tb, cid)
    assert c["unreadCount"] == 0 and c["lastSeq"] == ms[2]["seq"]
    # afterSeq pages by seq: every message after it in its current state,
    # tombstones included; changes of older messages are sync's
    items = messages_after(server, tb, cid, ms[0]["seq"])
    assert [m["id"] for m in items] == [ms[1]["id"], ms[2]["id"]]
    assert items[0]["deleted"] is True
    assert messages_after(server, tb, cid, ms[2]["seq"]) == []
    items = messages_after(server, tb, cid, 0, limit=1)
    assert [m["text"] for m in items] == ["u0 edited", "", "u2"]
    # a new message after the changes: one unread
    send_msg(server, ta, cid, "u3")
    assert get_chat(server, tb, cid)["unreadCount"] == 1


@pytest.mark.own_server
def test_acked_edit_and_delete_survive_kill9(start_server):
    srv = start_server()
    a, ta = register(srv)
    b, tb = register(srv)
    chat = make_chat(srv, ta, [b["id"]])
    cid = chat["id"]
    m1 = send_msg(srv, ta, cid, "before crash")
    m2 = send_msg(srv, ta, cid, "doomed")
    e = assert_json(edit(srv, ta, cid, m1["id"], {"text": "edited before crash"}), 200)
    assert delete(srv, ta, cid, m2["id"]).status_code == 204
    srv.kill9()
    srv.start()
    items = messages_after(srv, tb, cid)
    assert [m["id"] for m in items] == [m1["id"], m2["id"]]
    assert items[0] == e
    assert items[1]["deleted"] is True and items[1]["text"] == ""
    # positions continue after the changes: catch-up from the first message's
    # seq sees both changes, and a new message comes after them
    w, _ = connect(srv, tb)
    try:
        frames = sync(w, cid, m2["seq"])
        assert [f["type"] for f in frames] == ["message.updated", "message.deleted"]
        n = send_msg(srv, ta, cid, "after restart")
        assert n["seq"] > max(position(f) for f in frames)
    finally:
        w.close()


# Several instances (issue 10's stand): a change made through one instance reaches a
# member connected to another through the bus, and sync there catches it up.
from test_scaleout import pair, redis, scale  # noqa: E402,F401  (fixtures)


@pytest.mark.own_server
@scale
def test_changes_reach_members_on_another_instance(pair):
    a, b = pair
    u1, t1 = register(a)
    u2, t2 = register(a)
    chat = make_chat(a, t1, [u2["id"]])
    cid = chat["id"]
    m = send_msg(a, t1, cid, "across")
    keep = send_msg(a, t1, cid, "kept")
    w2, _ = connect(b, t2)
    try:
        r = assert_json(edit(a, t1, cid, keep["id"], {"text": "kept, edited"}), 200)
        f = w2.recv_type("message.updated")
        assert f["message"] == r and f["seq"] > keep["seq"]
        assert delete(a, t1, cid, m["id"]).status_code == 204
        g = w2.recv_type("message.deleted")
        assert (g["messageId"], g["chatId"]) == (m["id"], cid) and g["seq"] > f["seq"]
        # B's store view is A's: sync through B from before both changes
        frames = sync(w2, cid, keep["seq"])
        assert [(x["type"], position(x)) for x in frames] == \
            [("message.updated", f["seq"]), ("message.deleted", g["seq"])]
        assert sync(w2, cid, g["seq"]) == []
    finally:
        w2.close()
