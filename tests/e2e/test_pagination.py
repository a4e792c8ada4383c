"""CONTRACT.md section 1, pagination: limit bounds, bad cursors, and no item
repeated or skipped when items share a timestamp or new ones arrive while a
client pages."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import (api, assert_error, assert_json, check_page, make_chat, make_post,
                     page_all, register, send_msg, users)


@pytest.fixture(scope="module")
def world(server):
    """One user with a post (with comments), a chat (with messages)."""
    me, tok = register(server)
    other, otok = register(server)
    post = make_post(server, tok, "paging post")
    for i in range(3):
        assert_json(api(server, "POST", "/api/posts/%s/comments" % post["id"], tok,
                        json={"text": "c%d" % i}), 201)
    chat = make_chat(server, tok, [other["id"]])
    for i in range(3):
        send_msg(server, tok, chat["id"], "m%d" % i)
    return {"me": me, "tok": tok, "post": post, "chat": chat, "other": other}


def list_endpoints(w):
    return [
        ("/api/posts", {}),
        ("/api/posts", {"author": w["me"]["id"]}),
        ("/api/posts/%s/comments" % w["post"]["id"], {}),
        ("/api/users", {"q": w["me"]["username"][:4]}),
        ("/api/chats", {}),
        ("/api/chats/%s/messages" % w["chat"]["id"], {}),
        ("/api/chats/%s/messages" % w["chat"]["id"], {"afterSeq": "0"}),
    ]


def ids(pages):
    return [i["id"] for p in pages for i in p]


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1e2", "5.5", "99999999999999999999"])
def test_limit_out_of_range(server, world, limit):
    for path, params in list_endpoints(world):
        r = api(server, "GET", path, world["tok"], params=dict(params, limit=limit))
        assert_error(r, 422, "validation_failed", "limit")


@pytest.mark.parametrize("limit", ["1", "100"])
def test_limit_bounds_ok(server, world, limit):
    for path, params in list_endpoints(world):
        body = assert_json(api(server, "GET", path, world["tok"],
                               params=dict(params, limit=limit)), 200)
        items, _ = check_page(body)
        assert 1 <= len(items) <= int(limit), (path, params)


@pytest.mark.parametrize("cursor", ["garbage", "!!!!", "%%%", "{}", "Z" * 200, "\u00e9\u00e9",
                                    "a" * 5000, "-1", "\\x00"])
def test_undecodable_cursor(server, world, cursor):
    for path, params in list_endpoints(world):
        if "afterSeq" in params:
            continue
        if path == "/api/users" and cursor.isalnum():
            continue  # could be a username-shaped cursor: nothing to assert
        r = api(server, "GET", path, world["tok"], params=dict(params, before=cursor))
        assert_error(r, 422, "validation_failed", "before")


def test_cursor_with_a_high_byte_is_422(server, world):
    """A real cursor with one character replaced by the byte 0xFF, which
    libsodium 1.0.18 decodes as '_' (found by fuzz/fuzz_cursor.c): before
    the fix it read as another page."""
    path = "/api/chats/%s/messages" % world["chat"]["id"]
    cur = assert_json(api(server, "GET", path, world["tok"], params={"limit": 1}), 200)["nextCursor"]
    assert cur is not None
    r = api(server, "GET", path + "?before=" + cur[:6] + "%FF" + cur[7:], world["tok"])
    assert_error(r, 422, "validation_failed", "before")


def test_default_limit_is_20(server):
    me, tok = register(server)
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda i: make_post(server, tok, "d%d" % i), range(23)))
    items, cursor = check_page(assert_json(
        api(server, "GET", "/api/posts", tok, params={"author": me["id"]}), 200))
    assert len(items) == 20 and cursor is not None


def test_cursor_from_one_list_is_not_a_crash_in_another(server, world):
    tok = world["tok"]
    body = assert_json(api(server, "GET", "/api/chats/%s/messages" % world["chat"]["id"], tok,
                           params={"limit": 1}), 200)
    cur = body["nextCursor"]
    assert cur is not None
    for path, params in list_endpoints(world):
        if "afterSeq" in params:
            continue
        r = api(server, "GET", path, tok, params=dict(params, before=cur))
        if path.endswith("/messages"):
            assert_json(r, 200)  # its own list
        else:
            # docs/api.md choice: a cursor from another list is 422 field before
            assert_error(r, 422, "validation_failed", "before")


def test_next_cursor_null_exactly_at_the_end(server):
    """docs/api.md choice: a cursor never leads to an empty page."""
    me, tok = register(server)
    for i in range(4):
        make_post(server, tok, "e%d" % i)
    pages = page_all(server, "/api/posts", tok, 2, params={"author": me["id"]})
    assert [len(p) for p in pages] == [2, 2]
    pages = page_all(server, "/api/posts", tok, 4, params={"author": me["id"]})
    assert [len(p) for p in pages] == [4]


def test_before_with_after_seq_is_422(server, world):
    tok = world["tok"]
    path = "/api/chats/%s/messages" % world["chat"]["id"]
    body = assert_json(api(server, "GET", path, tok, params={"limit": 1}), 200)
    r = api(server, "GET", path, tok, params={"afterSeq": 0, "before": body["nextCursor"]})
    assert_error(r, 422, "validation_failed", "afterSeq")


# ------------------------------------------------------------ equal timestamps

def _burst(fn, n, workers=8):
    with ThreadPoolExecutor(workers) as ex:
        return list(ex.map(fn, range(n)))


def _assert_exact(pages, expected_ids, key_time="createdAt"):
    got = ids(pages)
    assert len(got) == len(set(got)), "repeated items across pages"
    assert set(got) == set(expected_ids), ("skipped", set(expected_ids) - set(got),
                                           "extra", set(got) - set(expected_ids))
    flat = [i for p in pages for i in p]
    stamps = [i[key_time] for i in flat]
    assert stamps == sorted(stamps, reverse=True), "not newest first"


@pytest.mark.slow
def test_posts_equal_timestamps_no_repeats_or_skips(server):
    me, tok = register(server)
    posts = _burst(lambda i: make_post(server, tok, "burst %d" % i), 80)
    # 8 writers at once: many posts share a millisecond (typically a few dozen)
    for limit in (1, 3, 7, 100):
        pages = page_all(server, "/api/posts", tok, limit, params={"author": me["id"]})
        _assert_exact(pages, [p["id"] for p in posts])


@pytest.mark.slow
def test_comments_equal_timestamps_no_repeats_or_skips(server):
    _, tok = register(server)
    pid = make_post(server, tok)["id"]
    path = "/api/posts/%s/comments" % pid
    cs = _burst(lambda i: assert_json(api(server, "POST", path, tok, json={"text": "c%d" % i}), 201), 60)
    for limit in (1, 4, 100):
        _assert_exact(page_all(server, path, tok, limit), [c["id"] for c in cs])


@pytest.mark.slow
def test_chats_equal_timestamps_no_repeats_or_skips(server):
    _, tok = register(server)
    others = users(server, 3)
    ids_ = [others[0][0]["id"], others[1][0]["id"]]
    chats = _burst(lambda i: make_chat(server, tok, ids_, name="g%d" % i), 40)
    for limit in (1, 3, 100):
        _assert_exact(page_all(server, "/api/chats", tok, limit), [c["id"] for c in chats],
                      key_time="updatedAt")


@pytest.mark.slow
def test_messages_paging_is_exact(server):
    _, tok = register(server)
    other, otok = register(server)
    cid = make_chat(server, tok, [other["id"]])["id"]
    path = "/api/chats/%s/messages" % cid
    ms = _burst(lambda i: send_msg(server, tok if i % 2 else otok, cid, "m%d" % i), 60)
    for limit in (1, 7, 100):
        pages = page_all(server, path, tok, limit)
        got = [m["seq"] for p in pages for m in p]
        assert got == sorted((m["seq"] for m in ms), reverse=True)
        pages = page_all(server, path, tok, limit, params={"afterSeq": 0}, cursor_param="afterSeq")
        got = [m["seq"] for p in pages for m in p]
        assert got == sorted(m["seq"] for m in ms)


# ------------------------------------------------------------ inserts while paging

class Inserter(threading.Thread):
    """Creates items (bounded) until told to stop; remembers their ids."""

    def __init__(self, fn, max_items=300):
        super().__init__(daemon=True)
        self.fn = fn
        self.max_items = max_items
        self.stop_ev = threading.Event()
        self.created = []
        self.errors = []

    def run(self):
        try:
            while not self.stop_ev.is_set() and len(self.created) < self.max_items:
                self.created.append(self.fn(len(self.created)))
        except Exception as e:  # reported by the test
            self.errors.append(e)

    def finish(self):
        self.stop_ev.set()
        self.join(timeout=30)
        assert not self.is_alive()
        assert not self.errors, self.errors


def _page_while_inserting(server, tok, path, params, limit, insert_fn, cursor_param="before"):
    first = assert_json(api(server, "GET", path, tok, params=dict(params, limit=limit)), 200)
    items, cursor = check_page(first)
    ins = [Inserter(insert_fn) for _ in range(2)]
    for t in ins:
        t.start()
    pages = [items]
    try:
        for _ in range(1000):
            if cursor is None:
                break
            body = assert_json(api(server, "GET", path, tok,
                                   params=dict(params, limit=limit, **{cursor_param: cursor})), 200)
            items, cursor = check_page(body)
            pages.append(items)
        assert cursor is None
    finally:
        for t in ins:
            t.finish()
    new_ids = [x["id"] for t in ins for x in t.created]
    return pages, new_ids


@pytest.mark.slow
def test_posts_paging_while_new_posts_arrive(server):
    me, tok = register(server)
    pre = _burst(lambda i: make_post(server, tok, "pre %d" % i), 50)
    pages, new = _page_while_inserting(server, tok, "/api/posts", {"author": me["id"]}, 4,
                                       lambda i: make_post(server, tok, "new %d" % i))
    assert new, "no inserts happened while paging"
    # the first page was taken before any insert: the paged set is the pre-existing set
    _assert_exact(pages, [p["id"] for p in pre])


@pytest.mark.slow
def test_global_feed_paging_while_new_posts_arrive(server):
    _, tok = register(server)
    mine = _burst(lambda i: make_post(server, tok, "global pre %d" % i), 30)
    pages, new = _page_while_inserting(server, tok, "/api/posts", {}, 50,
                                       lambda i: make_post(server, tok, "global new %d" % i))
    got = ids(pages)
    assert len(got) == len(set(got)), "repeated items"
    assert set(p["id"] for p in mine) <= set(got), "skipped items"
    assert not (set(new) & set(got)), "items created after the first page showed up in older pages"
    stamps = [i["createdAt"] for p in pages for i in p]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.slow
def test_comments_paging_while_new_comments_arrive(server):
    _, tok = register(server)
    pid = make_post(server, tok)["id"]
    path = "/api/posts/%s/comments" % pid

    def mk(i):
        return assert_json(api(server, "POST", path, tok, json={"text": "x%d" % i}), 201)

    pre = _burst(mk, 40)
    pages, new = _page_while_inserting(server, tok, path, {}, 3, mk)
    assert new
    _assert_exact(pages, [c["id"] for c in pre])


@pytest.mark.slow
def test_messages_paging_while_new_messages_arrive(server):
    _, tok = register(server)
    other, _ = register(server)
    cid = make_chat(server, tok, [other["id"]])["id"]
    path = "/api/chats/%s/messages" % cid
    pre = _burst(lambda i: send_msg(server, tok, cid, "pre%d" % i), 40)
    pages, new = _page_while_inserting(server, tok, path, {}, 3,
                                       lambda i: send_msg(server, tok, cid, "new%d" % i))
    assert new
    got = ids(pages)
    assert len(got) == len(set(got))
    assert set(got) == set(m["id"] for m in pre)


@pytest.mark.slow
def test_chats_paging_while_new_chats_arrive(server):
    _, tok = register(server)
    others = users(server, 2)
    mids = [u["id"] for u, _ in others]
    pre = _burst(lambda i: make_chat(server, tok, mids, name="pre%d" % i), 30)
    pages, new = _page_while_inserting(server, tok, "/api/chats", {}, 3,
                                       lambda i: make_chat(server, tok, mids, name="new%d" % i))
    assert new
    got = ids(pages)
    assert len(got) == len(set(got))
    assert set(got) == set(c["id"] for c in pre)


@pytest.mark.slow
def test_user_search_paging_while_new_users_arrive(server):
    import itertools
    import uuid
    prefix = "pg" + uuid.uuid4().hex[:6]
    seq = itertools.count()   # shared by both inserter threads
    pre = [register(server, username="%s_m%02d" % (prefix, i))[0] for i in range(20)]
    _, tok = register(server)
    # new names sort both before and after the ones being paged
    pages, new = _page_while_inserting(
        server, tok, "/api/users", {"q": prefix}, 3,
        lambda i: register(server, username="%s_%s%04d" % (prefix, "az"[i % 2], next(seq)))[0])
    got = [u["username"] for p in pages for u in p]
    assert len(got) == len(set(got)), "repeated users"
    assert set(u["username"] for u in pre) <= set(got), "skipped users"
    assert got == sorted(got, key=str.lower)
