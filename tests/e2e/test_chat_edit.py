"""CONTRACT.md v1.2 sections 5 and 6: group rename (PATCH /api/chats/{id}, chat.updated)
and chat.removed to every connection of a member who leaves."""
from helpers import api, assert_error, assert_json, check_chat, fake_id, get_chat, make_chat, register
from ws_fixtures import connect


def rename(server, token, chat_id, body):
    return api(server, "PATCH", "/api/chats/" + chat_id, token, json=body)


def test_rename_group_any_member(server):
    a, ta = register(server)
    b, tb = register(server)
    g = make_chat(server, ta, [b["id"]], name="before")
    r = assert_json(rename(server, tb, g["id"], {"name": "  after  "}), 200)
    check_chat(r)
    assert r["name"] == "after"
    assert (r["id"], r["type"], r["createdAt"], r["updatedAt"]) == \
        (g["id"], "group", g["createdAt"], g["updatedAt"])
    assert sorted(m["id"] for m in r["members"]) == sorted([a["id"], b["id"]])
    assert get_chat(server, ta, g["id"])["name"] == "after"


def test_rename_unnamed_group(server):
    _, ta = register(server)
    b, _ = register(server)
    c, _ = register(server)
    g = make_chat(server, ta, [b["id"], c["id"]])
    assert g["type"] == "group" and g["name"] is None
    assert assert_json(rename(server, ta, g["id"], {"name": "named"}), 200)["name"] == "named"


def test_rename_rules(server):
    _, ta = register(server)
    b, _ = register(server)
    _, tc = register(server)
    g = make_chat(server, ta, [b["id"]], name="g")
    for body in ({}, {"name": None}, {"name": ""}, {"name": "   "}, {"name": "x" * 65},
                 {"name": 7}):
        assert_error(rename(server, ta, g["id"], body), 422, "validation_failed", "name")
    assert assert_json(rename(server, ta, g["id"], {"name": "x" * 64}), 200)["name"] == "x" * 64
    # a direct chat cannot be renamed
    d = make_chat(server, ta, [b["id"]])
    assert_error(rename(server, ta, d["id"], {"name": "nope"}), 400, "bad_request")
    assert get_chat(server, ta, d["id"])["name"] is None
    # non-members, unknown and malformed ids: 404; no token: 401
    assert_error(rename(server, tc, g["id"], {"name": "theirs"}), 404, "not_found")
    for cid in (fake_id(), "bad"):
        assert_error(rename(server, ta, cid, {"name": "x"}), 404, "not_found")
    assert_error(rename(server, None, g["id"], {"name": "x"}), 401, "unauthorized")
    r = api(server, "PATCH", "/api/chats/" + g["id"], ta, data=b"{",
            headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")
    assert get_chat(server, ta, g["id"])["name"] == "x" * 64


def test_rename_is_live_as_chat_updated(server):
    a, ta = register(server)
    b, tb = register(server)
    c, tc = register(server)
    g = make_chat(server, ta, [b["id"]], name="old")
    wa, _ = connect(server, ta)
    wa2, _ = connect(server, ta)
    wb, _ = connect(server, tb)
    wc, _ = connect(server, tc)
    try:
        assert_json(rename(server, tb, g["id"], {"name": "new"}), 200)
        for w in (wa, wa2, wb):  # every member's connections, the renamer's too
            f = w.recv_type("chat.updated", pred=lambda f: f["chat"]["id"] == g["id"])
            assert set(f) == {"type", "chat"}
            check_chat(f["chat"])
            assert f["chat"]["name"] == "new"
        assert [f for f in wc.barrier() if f.get("type") == "chat.updated"] == []
    finally:
        for w in (wa, wa2, wb, wc):
            w.close()


def test_leaving_sends_chat_removed_to_every_connection(server):
    a, ta = register(server)
    b, tb = register(server)
    g = make_chat(server, ta, [b["id"]], name="g")
    other = make_chat(server, ta, [b["id"]], name="kept")
    wb1, _ = connect(server, tb)
    wb2, _ = connect(server, tb)
    wa, _ = connect(server, ta)
    try:
        r = api(server, "DELETE", "/api/chats/%s/members/%s" % (g["id"], b["id"]), tb)
        assert r.status_code == 204, r.text
        for w in (wb1, wb2):
            f = w.recv_type("chat.removed")
            assert f == {"type": "chat.removed", "chatId": g["id"]}
        f = wa.recv_type("chat.updated", pred=lambda f: f["chat"]["id"] == g["id"])
        assert [m["id"] for m in f["chat"]["members"]] == [a["id"]]
        assert [f for f in wa.barrier() if f.get("type") == "chat.removed"] == []
        # leaving again changes nothing and sends nothing
        r = api(server, "DELETE", "/api/chats/%s/members/%s" % (g["id"], b["id"]), tb)
        assert r.status_code == 404
        assert [f for f in wb1.barrier() if f.get("type") == "chat.removed"] == []
        # the other shared chat is untouched
        assert get_chat(server, tb, other["id"])["name"] == "kept"
    finally:
        for w in (wa, wb1, wb2):
            w.close()
