"""CONTRACT.md section 5: chats and members."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import (api, assert_error, assert_json, check_chat, check_page, fake_id,
                     get_chat, make_chat, page_all, register, send_msg, users)


def author_of(u):
    return {"id": u["id"], "username": u["username"], "displayName": u["displayName"],
            "avatarUrl": u["avatarUrl"]}


def member_ids(chat):
    return sorted(m["id"] for m in chat["members"])


# ---------------------------------------------------------------- direct

def test_direct_chat_created_then_reused_from_both_sides(server):
    a, ta = register(server)
    b, tb = register(server)
    c = make_chat(server, ta, [b["id"]], expect=201)
    check_chat(c)
    assert c["type"] == "direct" and c["name"] is None
    assert member_ids(c) == sorted([a["id"], b["id"]])
    for m in c["members"]:
        assert m == author_of(a if m["id"] == a["id"] else b)
    assert c["lastMessage"] is None and c["unreadCount"] == 0 and c["lastSeq"] == 0
    again = make_chat(server, ta, [b["id"]], expect=200)
    assert again["id"] == c["id"]
    check_chat(again)
    other_side = make_chat(server, tb, [a["id"]], expect=200)
    assert other_side["id"] == c["id"]


def test_direct_chat_unique_under_concurrency(server):
    a, ta = register(server)
    b, tb = register(server)

    def create(i):
        tok, other = (ta, b) if i % 2 == 0 else (tb, a)
        r = api(server, "POST", "/api/chats", tok, json={"memberIds": [other["id"]]})
        return r.status_code, r.json().get("id")

    with ThreadPoolExecutor(8) as ex:
        res = list(ex.map(create, range(16)))
    codes = sorted(r[0] for r in res)
    ids = {r[1] for r in res}
    assert len(ids) == 1, res
    assert codes.count(201) == 1 and codes.count(200) == 15, codes


def test_direct_chat_distinct_per_pair(server):
    a, ta = register(server)
    b, _ = register(server)
    c, _ = register(server)
    ab = make_chat(server, ta, [b["id"]])
    ac = make_chat(server, ta, [c["id"]])
    assert ab["id"] != ac["id"]


def test_group_with_name_and_single_other_member(server):
    a, ta = register(server)
    b, _ = register(server)
    direct = make_chat(server, ta, [b["id"]])
    g = make_chat(server, ta, [b["id"]], name="Two of us", expect=201)
    check_chat(g)
    assert g["type"] == "group" and g["name"] == "Two of us"
    assert g["id"] != direct["id"]
    assert member_ids(g) == sorted([a["id"], b["id"]])
    # groups are never deduplicated
    g2 = make_chat(server, ta, [b["id"]], name="Two of us", expect=201)
    assert g2["id"] != g["id"]


def test_group_without_name(server):
    a, ta = register(server)
    (b, _), (c, _) = users(server, 2)
    g = make_chat(server, ta, [b["id"], c["id"]])
    assert g["type"] == "group" and g["name"] is None
    assert member_ids(g) == sorted([a["id"], b["id"], c["id"]])


def test_chat_creator_listed_once_if_in_member_ids(server):
    a, ta = register(server)
    (b, _), (c, _) = users(server, 2)
    g = make_chat(server, ta, [a["id"], b["id"], c["id"]], name="g")
    assert member_ids(g) == sorted([a["id"], b["id"], c["id"]])


def test_chat_needs_another_member(server):
    a, ta = register(server)
    assert_error(api(server, "POST", "/api/chats", ta, json={"memberIds": []}),
                 422, "validation_failed", "memberIds")
    assert_error(api(server, "POST", "/api/chats", ta, json={"memberIds": [], "name": "solo"}),
                 422, "validation_failed", "memberIds")
    # the caller alone is one member, not two
    assert_error(api(server, "POST", "/api/chats", ta, json={"memberIds": [a["id"]]}),
                 422, "validation_failed", "memberIds")
    assert_error(api(server, "POST", "/api/chats", ta, json={"memberIds": [a["id"]], "name": "me"}),
                 422, "validation_failed", "memberIds")


@pytest.mark.parametrize("body,field", [
    ({}, "memberIds"), ({"memberIds": "abc"}, "memberIds"), ({"memberIds": 5}, "memberIds"),
    ({"memberIds": None}, "memberIds"), ({"memberIds": [5]}, "memberIds"),
    ({"memberIds": [None]}, "memberIds"), ({"memberIds": ["not-an-id"]}, "memberIds"),
    ({"memberIds": [{"id": "x"}]}, "memberIds"),
])
def test_chat_bad_member_ids(server, body, field):
    _, ta = register(server)
    assert_error(api(server, "POST", "/api/chats", ta, json=body), 422, "validation_failed", field)


@pytest.mark.parametrize("name", [5, ["n"], {"n": 1}, True])
def test_chat_bad_name_type(server, name):
    _, ta = register(server)
    b, _ = register(server)
    assert_error(api(server, "POST", "/api/chats", ta,
                     json={"memberIds": [b["id"]], "name": name}), 422, "validation_failed", "name")


def test_chat_unknown_member(server):
    _, ta = register(server)
    b, _ = register(server)
    for ids in ([fake_id()], [b["id"], fake_id()]):
        assert_error(api(server, "POST", "/api/chats", ta, json={"memberIds": ids}),
                     422, "validation_failed", "memberIds")


@pytest.fixture(scope="module")
def crowd(server):
    """256 users (registered in parallel): enough for the 256-member bound."""
    with ThreadPoolExecutor(4) as ex:
        return list(ex.map(lambda _: register(server), range(257)))


@pytest.mark.slow
@pytest.mark.time_limit(120)
def test_group_size_bounds(server, crowd):
    (creator, tc) = crowd[0]
    others = [u["id"] for u, _ in crowd[1:]]
    g = make_chat(server, tc, others[:255], name="max")
    assert len(g["members"]) == 256
    assert_error(api(server, "POST", "/api/chats", tc, json={"memberIds": others[:256], "name": "x"}),
                 422, "validation_failed", "memberIds")
    # adding the 257th member to a full group fails too
    r = api(server, "POST", "/api/chats/%s/members" % g["id"], tc, json={"userId": others[255]})
    assert r.status_code in (400, 422), r.text
    assert len(get_chat(server, tc, g["id"])["members"]) == 256


def test_chat_needs_token(server):
    b, _ = register(server)
    assert_error(api(server, "POST", "/api/chats", json={"memberIds": [b["id"]]}), 401, "unauthorized")
    assert_error(api(server, "GET", "/api/chats"), 401, "unauthorized")
    assert_error(api(server, "GET", "/api/chats/" + fake_id()), 401, "unauthorized")


# ---------------------------------------------------------------- get

def test_get_chat_members_only(server):
    a, ta = register(server)
    b, tb = register(server)
    _, tc = register(server)
    ch = make_chat(server, ta, [b["id"]])
    assert get_chat(server, tb, ch["id"])["id"] == ch["id"]
    assert_error(api(server, "GET", "/api/chats/" + ch["id"], tc), 404, "not_found")
    for cid in (fake_id(), "xyz", ch["id"].upper() if ch["id"] != ch["id"].upper() else "Q" * 24):
        assert_error(api(server, "GET", "/api/chats/" + cid, ta), 404, "not_found")


# ---------------------------------------------------------------- members

def add(server, tok, cid, uid):
    return api(server, "POST", "/api/chats/%s/members" % cid, tok, json={"userId": uid})


def remove(server, tok, cid, uid):
    return api(server, "DELETE", "/api/chats/%s/members/%s" % (cid, uid), tok)


def test_add_member_by_any_member_and_noop_readd(server):
    a, ta = register(server)
    b, tb = register(server)
    c, tc = register(server)
    d, _ = register(server)
    g = make_chat(server, ta, [b["id"]], name="grp")
    assert_error(api(server, "GET", "/api/chats/" + g["id"], tc), 404, "not_found")
    g2 = assert_json(add(server, tb, g["id"], c["id"]), 200)   # a non-creator adds
    check_chat(g2)
    assert member_ids(g2) == sorted([a["id"], b["id"], c["id"]])
    assert get_chat(server, tc, g["id"])["id"] == g["id"]      # c can see it now
    g3 = assert_json(add(server, ta, g["id"], c["id"]), 200)   # again: no-op
    assert member_ids(g3) == member_ids(g2)
    g4 = assert_json(add(server, tc, g["id"], d["id"]), 200)
    assert len(g4["members"]) == 4


def test_add_member_to_direct_is_bad_request(server):
    _, ta = register(server)
    b, _ = register(server)
    c, _ = register(server)
    ch = make_chat(server, ta, [b["id"]])
    assert_error(add(server, ta, ch["id"], c["id"]), 400, "bad_request")
    assert len(get_chat(server, ta, ch["id"])["members"]) == 2


def test_add_member_unknown_or_bad_user(server):
    _, ta = register(server)
    b, _ = register(server)
    g = make_chat(server, ta, [b["id"]], name="g")
    for uid in (fake_id(), "abc", 5, None, ["x"]):
        assert_error(add(server, ta, g["id"], uid), 422, "validation_failed", "userId")
    assert_error(api(server, "POST", "/api/chats/%s/members" % g["id"], ta, json={}),
                 422, "validation_failed", "userId")


def test_add_member_by_non_member_or_unknown_chat(server):
    _, ta = register(server)
    b, _ = register(server)
    c, tc = register(server)
    g = make_chat(server, ta, [b["id"]], name="g")
    assert_error(add(server, tc, g["id"], c["id"]), 404, "not_found")
    assert_error(add(server, ta, fake_id(), c["id"]), 404, "not_found")
    assert_error(add(server, ta, "bad", c["id"]), 404, "not_found")


def test_remove_member_rules(server):
    a, ta = register(server)
    b, tb = register(server)
    c, tc = register(server)
    g = make_chat(server, ta, [b["id"], c["id"]], name="g")
    assert_error(remove(server, ta, g["id"], b["id"]), 403, "forbidden")
    assert len(get_chat(server, ta, g["id"])["members"]) == 3
    r = remove(server, tb, g["id"], b["id"])
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert_error(api(server, "GET", "/api/chats/" + g["id"], tb), 404, "not_found")
    assert member_ids(get_chat(server, ta, g["id"])) == sorted([a["id"], c["id"]])
    # b is gone: it can no longer act on the chat
    assert_error(remove(server, tb, g["id"], b["id"]), 404, "not_found")
    assert_error(send_like(server, tb, g["id"]), 404, "not_found")
    # the chat disappears from b's list
    items, _ = check_page(assert_json(api(server, "GET", "/api/chats", tb,
                                          params={"limit": 100}), 200))
    assert g["id"] not in [c_["id"] for c_ in items]


def send_like(server, tok, cid):
    return api(server, "POST", "/api/chats/%s/messages" % cid, tok, json={"text": "x"})


def test_remove_member_from_direct_is_bad_request(server):
    a, ta = register(server)
    b, _ = register(server)
    ch = make_chat(server, ta, [b["id"]])
    assert_error(remove(server, ta, ch["id"], a["id"]), 400, "bad_request")
    assert_error(remove(server, ta, ch["id"], b["id"]), 400, "bad_request")
    assert len(get_chat(server, ta, ch["id"])["members"]) == 2


def test_remove_member_unknown_chat_or_non_member(server):
    a, ta = register(server)
    b, _ = register(server)
    c, tc = register(server)
    g = make_chat(server, ta, [b["id"]], name="g")
    assert_error(remove(server, tc, g["id"], c["id"]), 404, "not_found")
    assert_error(remove(server, ta, fake_id(), a["id"]), 404, "not_found")
    assert_error(remove(server, ta, "bad", a["id"]), 404, "not_found")


def test_members_routes_need_token(server):
    a, ta = register(server)
    b, _ = register(server)
    g = make_chat(server, ta, [b["id"]], name="g")
    assert_error(api(server, "POST", "/api/chats/%s/members" % g["id"], json={"userId": a["id"]}),
                 401, "unauthorized")
    assert_error(api(server, "DELETE", "/api/chats/%s/members/%s" % (g["id"], a["id"])),
                 401, "unauthorized")


# ---------------------------------------------------------------- list

def test_chats_list_by_activity_and_paging(server):
    me, tme = register(server)
    others = users(server, 5)
    chats = [make_chat(server, tme, [u["id"]]) for u, _ in others]
    ids = [c["id"] for c in chats]
    items, cursor = check_page(assert_json(api(server, "GET", "/api/chats", tme), 200))
    for c in items:
        check_chat(c)
    assert [c["id"] for c in items] == list(reversed(ids)) and cursor is None

    # a message moves a chat to the front, for both members
    send_msg(server, others[1][1], ids[1], "bump")
    items, _ = check_page(assert_json(api(server, "GET", "/api/chats", tme), 200))
    expect = [ids[1], ids[4], ids[3], ids[2], ids[0]]
    assert [c["id"] for c in items] == expect
    assert items[0]["lastMessage"]["text"] == "bump"
    assert items[0]["unreadCount"] == 1 and items[0]["lastSeq"] == 1
    assert items[0]["updatedAt"] >= items[0]["createdAt"]
    assert items[0]["updatedAt"] == items[0]["lastMessage"]["createdAt"]
    theirs, _ = check_page(assert_json(api(server, "GET", "/api/chats", others[1][1]), 200))
    assert theirs[0]["id"] == ids[1] and theirs[0]["unreadCount"] == 0

    pages = page_all(server, "/api/chats", tme, 2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [c["id"] for p in pages for c in p] == expect


def test_group_creation_and_membership_show_in_list(server):
    _, ta = register(server)
    b, tb = register(server)
    g = make_chat(server, ta, [b["id"]], name="listed")
    items, _ = check_page(assert_json(api(server, "GET", "/api/chats", tb), 200))
    assert items[0]["id"] == g["id"]
