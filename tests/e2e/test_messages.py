"""CONTRACT.md section 5: messages, catch-up by seq, read marks."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import (api, assert_error, assert_json, check_message, check_page, fake_id,
                     get_chat, make_chat, page_all, register, send_msg)

EMOJI = "\U0001F600"


@pytest.fixture
def pair(server):
    a, ta = register(server)
    b, tb = register(server)
    chat = make_chat(server, ta, [b["id"]])
    return (a, ta), (b, tb), chat


def msgs_path(cid):
    return "/api/chats/%s/messages" % cid


def post_msg(server, tok, cid, **body):
    return api(server, "POST", msgs_path(cid), tok, json=body)


# ---------------------------------------------------------------- send

def test_send_message_shape_and_seq(server, pair):
    (a, ta), (b, tb), chat = pair
    m1 = send_msg(server, ta, chat["id"], "  hello  ")
    check_message(m1)
    assert m1["chatId"] == chat["id"] and m1["text"] == "hello"
    assert m1["seq"] == 1 and m1["attachmentUrl"] is None and m1["clientId"] is None
    assert m1["sender"] == {"id": a["id"], "username": a["username"],
                            "displayName": a["displayName"], "avatarUrl": a["avatarUrl"]}
    m2 = send_msg(server, tb, chat["id"], "hi back")
    assert m2["seq"] > m1["seq"]
    c = get_chat(server, ta, chat["id"])
    assert c["lastSeq"] == m2["seq"]
    assert c["lastMessage"] == m2
    assert c["updatedAt"] == m2["createdAt"]


def test_seq_strictly_increasing_under_concurrency(server, pair):
    (a, ta), (b, tb), chat = pair

    def send(i):
        return send_msg(server, ta if i % 2 else tb, chat["id"], "m%d" % i)

    with ThreadPoolExecutor(8) as ex:
        sent = list(ex.map(send, range(40)))
    seqs = [m["seq"] for m in sent]
    assert len(set(seqs)) == 40
    assert min(seqs) >= 1
    pages = page_all(server, msgs_path(chat["id"]), ta, 100)
    listed = [m for p in pages for m in p]
    assert len(listed) == 40
    got = [m["seq"] for m in listed]
    assert got == sorted(got, reverse=True) and len(set(got)) == 40
    assert get_chat(server, ta, chat["id"])["lastSeq"] == max(seqs)


def test_first_seq_is_one_per_chat(server, pair):
    (a, ta), (b, tb), chat = pair
    c, _ = register(server)
    other = make_chat(server, ta, [c["id"]])
    assert send_msg(server, ta, chat["id"])["seq"] == 1
    assert send_msg(server, ta, chat["id"])["seq"] >= 2
    assert send_msg(server, ta, other["id"])["seq"] == 1


def test_message_text_bounds(server, pair):
    (a, ta), _, chat = pair
    assert send_msg(server, ta, chat["id"], "t" * 4000)["text"] == "t" * 4000
    assert send_msg(server, ta, chat["id"], EMOJI * 4000)["text"] == EMOJI * 4000
    for bad in ("t" * 4001, EMOJI * 4001, "", "   \n", None, 5, ["x"]):
        assert_error(post_msg(server, ta, chat["id"], text=bad), 422, "validation_failed", "text")
    assert_error(post_msg(server, ta, chat["id"]), 422, "validation_failed", "text")


def test_message_with_attachment_and_empty_text(server, pair):
    (a, ta), _, chat = pair
    m = send_msg(server, ta, chat["id"], "", attachmentUrl="https://files.example/x.png")
    assert m["text"] == "" and m["attachmentUrl"] == "https://files.example/x.png"
    m = send_msg(server, ta, chat["id"], "see pic", attachmentUrl="https://files.example/y.png")
    assert m["text"] == "see pic"
    assert_error(post_msg(server, ta, chat["id"], text="t" * 4001,
                          attachmentUrl="https://files.example/z.png"),
                 422, "validation_failed", "text")
    assert_error(post_msg(server, ta, chat["id"], text="x", attachmentUrl=5),
                 422, "validation_failed", "attachmentUrl")


def test_client_id_dedupe(server, pair):
    (a, ta), (b, tb), chat = pair
    m1 = send_msg(server, ta, chat["id"], "once", clientId="c-1")
    assert m1["clientId"] == "c-1"
    again = send_msg(server, ta, chat["id"], "once (retry)", clientId="c-1", expect=200)
    assert again == m1
    # another sender, same clientId: a different message
    mb = send_msg(server, tb, chat["id"], "theirs", clientId="c-1", expect=201)
    assert mb["id"] != m1["id"]
    # same sender, same clientId, another chat: a different message
    c, _ = register(server)
    other = make_chat(server, ta, [c["id"]])
    mo = send_msg(server, ta, other["id"], "elsewhere", clientId="c-1", expect=201)
    assert mo["id"] != m1["id"]
    pages = page_all(server, msgs_path(chat["id"]), ta, 100)
    assert [m["id"] for p in pages for m in p] == [mb["id"], m1["id"]]


def test_client_id_dedupe_concurrent_retries(server, pair):
    (a, ta), _, chat = pair

    def send(_):
        r = post_msg(server, ta, chat["id"], text="retry storm", clientId="storm")
        return r.status_code, r.json()["id"]

    with ThreadPoolExecutor(8) as ex:
        res = list(ex.map(send, range(16)))
    assert len({i for _, i in res}) == 1, res
    codes = sorted(c for c, _ in res)
    assert codes.count(201) == 1 and codes.count(200) == 15, codes
    assert get_chat(server, ta, chat["id"])["lastSeq"] == 1


@pytest.mark.parametrize("cid", [5, ["x"], {"a": 1}, True])
def test_client_id_wrong_type(server, pair, cid):
    (a, ta), _, chat = pair
    assert_error(post_msg(server, ta, chat["id"], text="x", clientId=cid),
                 422, "validation_failed", "clientId")


def test_send_non_member_and_unknown_chat(server, pair):
    _, _, chat = pair
    _, tc = register(server)
    assert_error(post_msg(server, tc, chat["id"], text="intruder"), 404, "not_found")
    assert_error(post_msg(server, tc, fake_id(), text="x"), 404, "not_found")
    assert_error(post_msg(server, tc, "bad", text="x"), 404, "not_found")
    assert_error(api(server, "GET", msgs_path(chat["id"]), tc), 404, "not_found")


def test_messages_need_token(server, pair):
    _, _, chat = pair
    assert_error(api(server, "GET", msgs_path(chat["id"])), 401, "unauthorized")
    assert_error(api(server, "POST", msgs_path(chat["id"]), json={"text": "x"}), 401, "unauthorized")
    assert_error(api(server, "POST", "/api/chats/%s/read" % chat["id"],
                     json={"messageId": fake_id()}), 401, "unauthorized")


# ---------------------------------------------------------------- list and catch-up

def test_list_newest_first_and_paging(server, pair):
    (a, ta), (b, tb), chat = pair
    sent = [send_msg(server, ta if i % 3 else tb, chat["id"], "m%d" % i) for i in range(7)]
    items, cursor = check_page(assert_json(api(server, "GET", msgs_path(chat["id"]), tb), 200))
    assert [m["id"] for m in items] == [m["id"] for m in reversed(sent)] and cursor is None
    for m in items:
        check_message(m)
    pages = page_all(server, msgs_path(chat["id"]), ta, 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [m["id"] for p in pages for m in p] == [m["id"] for m in reversed(sent)]


def test_after_seq_catch_up_oldest_first(server, pair):
    (a, ta), (b, tb), chat = pair
    sent = [send_msg(server, ta, chat["id"], "m%d" % i) for i in range(5)]
    seqs = [m["seq"] for m in sent]

    def catch(after, limit):
        r = api(server, "GET", msgs_path(chat["id"]), tb,
                params={"afterSeq": after, "limit": limit})
        return check_page(assert_json(r, 200))

    items, cur = catch(0, 2)
    assert [m["seq"] for m in items] == seqs[:2] and cur == str(seqs[1])
    items, cur = catch(cur, 2)
    assert [m["seq"] for m in items] == seqs[2:4] and cur == str(seqs[3])
    items, cur = catch(cur, 2)
    assert [m["seq"] for m in items] == seqs[4:] and cur is None
    items, cur = catch(seqs[-1], 2)
    assert items == [] and cur is None
    # a later message continues from where the client left off
    m6 = send_msg(server, ta, chat["id"], "m6")
    items, cur = catch(seqs[-1], 20)
    assert [m["id"] for m in items] == [m6["id"]] and cur is None
    # from the middle
    items, cur = catch(seqs[1], 100)
    assert [m["seq"] for m in items] == seqs[2:] + [m6["seq"]]


def test_after_seq_default_limit(server, pair):
    (a, ta), _, chat = pair
    for i in range(23):
        send_msg(server, ta, chat["id"], "m%d" % i)
    items, cur = check_page(assert_json(api(server, "GET", msgs_path(chat["id"]), ta,
                                            params={"afterSeq": 0}), 200))
    assert len(items) == 20 and cur == str(items[-1]["seq"])
    items2, cur2 = check_page(assert_json(api(server, "GET", msgs_path(chat["id"]), ta,
                                              params={"afterSeq": cur}), 200))
    assert len(items2) == 3 and cur2 is None


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", "0x10"])
def test_after_seq_malformed(server, pair, after):
    (a, ta), _, chat = pair
    assert_error(api(server, "GET", msgs_path(chat["id"]), ta, params={"afterSeq": after}),
                 422, "validation_failed", "afterSeq")


def test_list_messages_after_seq_non_member(server, pair):
    _, _, chat = pair
    _, tc = register(server)
    assert_error(api(server, "GET", msgs_path(chat["id"]), tc, params={"afterSeq": 0}),
                 404, "not_found")


# ---------------------------------------------------------------- read marks

def read(server, tok, cid, mid):
    return api(server, "POST", "/api/chats/%s/read" % cid, tok, json={"messageId": mid})


def unread(server, tok, cid):
    return get_chat(server, tok, cid)["unreadCount"]


def test_read_marks_and_unread_count(server, pair):
    (a, ta), (b, tb), chat = pair
    cid = chat["id"]
    ms = [send_msg(server, ta, cid, "m%d" % i) for i in range(3)]
    assert unread(server, tb, cid) == 3
    assert unread(server, ta, cid) == 0          # own messages never count
    r = read(server, tb, cid, ms[0]["id"])
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert unread(server, tb, cid) == 2
    assert read(server, tb, cid, ms[2]["id"]).status_code == 204
    assert unread(server, tb, cid) == 0
    # never backwards
    assert read(server, tb, cid, ms[1]["id"]).status_code == 204
    assert unread(server, tb, cid) == 0
    mb = send_msg(server, tb, cid, "from b")
    assert unread(server, tb, cid) == 0
    assert unread(server, ta, cid) == 1
    send_msg(server, ta, cid, "from a again")
    assert unread(server, tb, cid) == 1
    assert unread(server, ta, cid) == 1
    assert read(server, ta, cid, mb["id"]).status_code == 204
    assert unread(server, ta, cid) == 0
    # the list shows the same counts
    items, _ = check_page(assert_json(api(server, "GET", "/api/chats", tb), 200))
    assert [c["unreadCount"] for c in items if c["id"] == cid] == [1]


def test_read_mark_on_own_message(server, pair):
    (a, ta), (b, tb), chat = pair
    cid = chat["id"]
    send_msg(server, tb, cid, "x")
    mine = send_msg(server, ta, cid, "y")
    assert unread(server, ta, cid) == 1
    assert read(server, ta, cid, mine["id"]).status_code == 204
    assert unread(server, ta, cid) == 0


def test_read_mark_message_not_in_chat(server, pair):
    (a, ta), (b, tb), chat = pair
    c, _ = register(server)
    other = make_chat(server, ta, [c["id"]])
    foreign = send_msg(server, ta, other["id"], "elsewhere")
    for mid in (foreign["id"], fake_id(), "abc", 5, None):
        assert_error(read(server, ta, chat["id"], mid), 422, "validation_failed", "messageId")
    assert_error(api(server, "POST", "/api/chats/%s/read" % chat["id"], ta, json={}),
                 422, "validation_failed", "messageId")


def test_read_mark_non_member(server, pair):
    (a, ta), _, chat = pair
    m = send_msg(server, ta, chat["id"], "x")
    _, tc = register(server)
    assert_error(read(server, tc, chat["id"], m["id"]), 404, "not_found")
    assert_error(read(server, tc, fake_id(), m["id"]), 404, "not_found")
