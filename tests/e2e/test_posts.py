"""CONTRACT.md section 4: posts, the feed, likes, comments."""
import pytest

from helpers import (api, assert_error, assert_json, check_comment, check_page, check_post,
                     fake_id, make_post, page_all, register)

EMOJI = "\U0001F600"


def post(server, token, **body):
    return api(server, "POST", "/api/posts", token, json=body)


# ---------------------------------------------------------------- create

def test_create_post_shape(server):
    user, token = register(server)
    p = assert_json(post(server, token, text="first post"), 201)
    check_post(p)
    assert p["text"] == "first post"
    assert p["imageUrl"] is None
    assert (p["likeCount"], p["commentCount"], p["likedByMe"]) == (0, 0, False)
    assert p["author"] == {"id": user["id"], "username": user["username"],
                           "displayName": user["displayName"], "avatarUrl": user["avatarUrl"]}
    got = assert_json(api(server, "GET", "/api/posts/" + p["id"], token), 200)
    assert got == p


def test_create_post_text_trimmed(server):
    _, token = register(server)
    p = assert_json(post(server, token, text="  \n\t spaced out \r\n "), 201)
    assert p["text"] == "spaced out"


def test_create_post_unicode_whitespace_trimmed(server):
    # docs/api.md choice: JavaScript trim() whitespace, e.g. NBSP, ideographic space, BOM
    _, token = register(server)
    p = assert_json(post(server, token, text="\u00a0\u3000\ufeff hi there \u2028\u00a0"), 201)
    assert p["text"] == "hi there"
    assert_error(post(server, token, text="\u00a0\u3000\u2003"), 422, "validation_failed", "text")


def test_create_post_counts_code_points_not_graphemes(server):
    # "e" + COMBINING ACUTE is one grapheme but two code points
    _, token = register(server)
    assert_json(post(server, token, text="e\u0301" * 2500), 201)
    assert_error(post(server, token, text="e\u0301" * 2500 + "e"), 422, "validation_failed", "text")


@pytest.mark.parametrize("text", ["", "   ", "\n\t \r\n"])
def test_create_post_empty_text(server, text):
    _, token = register(server)
    assert_error(post(server, token, text=text), 422, "validation_failed", "text")


def test_create_post_missing_text(server):
    _, token = register(server)
    assert_error(post(server, token), 422, "validation_failed", "text")


def test_create_post_text_bounds_code_points(server):
    _, token = register(server)
    assert assert_json(post(server, token, text="a" * 5000), 201)["text"] == "a" * 5000
    p = assert_json(post(server, token, text=EMOJI * 5000), 201)
    assert p["text"] == EMOJI * 5000
    assert_json(post(server, token, text="  " + "é" * 5000 + "  "), 201)
    assert_error(post(server, token, text="a" * 5001), 422, "validation_failed", "text")
    assert_error(post(server, token, text=EMOJI * 5001), 422, "validation_failed", "text")


def test_create_post_nul_in_text_is_422(server):
    _, token = register(server)
    assert_error(post(server, token, text="a\u0000b"), 422, "validation_failed", "text")


def test_create_post_blank_image_url_counts_as_null(server):
    _, token = register(server)
    assert_error(post(server, token, text="", imageUrl=""), 422, "validation_failed", "text")
    p = assert_json(post(server, token, text="x", imageUrl="  "), 201)
    assert p["imageUrl"] is None


def test_create_post_with_image_and_empty_text(server):
    _, token = register(server)
    p = assert_json(post(server, token, text="", imageUrl="https://img.example/a.png"), 201)
    assert p["text"] == "" and p["imageUrl"] == "https://img.example/a.png"
    p = assert_json(post(server, token, text="   ", imageUrl="https://img.example/b.png"), 201)
    assert p["text"] == ""
    p = assert_json(post(server, token, text="caption", imageUrl="https://img.example/c.png"), 201)
    assert p["text"] == "caption" and p["imageUrl"] == "https://img.example/c.png"
    # the image does not lift the upper bound
    assert_error(post(server, token, text="a" * 5001, imageUrl="https://img.example/d.png"),
                 422, "validation_failed", "text")


@pytest.mark.parametrize("body,field", [({"text": 5}, "text"), ({"text": ["a"]}, "text"),
                                        ({"text": None}, "text"), ({"text": {"a": 1}}, "text"),
                                        ({"text": "x", "imageUrl": 5}, "imageUrl"),
                                        ({"text": "x", "imageUrl": ["u"]}, "imageUrl"),
                                        ({"text": "", "imageUrl": "ftp://x.example/a.png"}, "imageUrl")])
def test_create_post_bad_fields(server, body, field):
    _, token = register(server)
    assert_error(post(server, token, **body), 422, "validation_failed", field)


def test_create_post_needs_token(server):
    assert_error(post(server, None, text="x"), 401, "unauthorized")


# ---------------------------------------------------------------- read / feed

def test_feed_newest_first_and_author_filter(server):
    user, token = register(server)
    other, otoken = register(server)
    mine = [make_post(server, token, "p%d" % i) for i in range(5)]
    make_post(server, otoken, "not mine")
    items, cursor = check_page(assert_json(
        api(server, "GET", "/api/posts", token, params={"author": user["id"]}), 200))
    assert [p["id"] for p in items] == [p["id"] for p in reversed(mine)]
    assert cursor is None
    for p in items:
        check_post(p)
    stamps = [p["createdAt"] for p in items]
    assert stamps == sorted(stamps, reverse=True)


def test_feed_unfiltered_contains_recent_posts(server):
    _, token = register(server)
    p = make_post(server, token, "global feed")
    items, _ = check_page(assert_json(api(server, "GET", "/api/posts", token), 200))
    assert p["id"] in [i["id"] for i in items]
    stamps = [i["createdAt"] for i in items]
    assert stamps == sorted(stamps, reverse=True)


def test_feed_author_unknown_is_empty(server):
    _, token = register(server)
    items, cursor = check_page(assert_json(
        api(server, "GET", "/api/posts", token, params={"author": fake_id()}), 200))
    assert items == [] and cursor is None


@pytest.mark.parametrize("author", ["abc", "Z" * 24, "0" * 23, "0" * 25, ""])
def test_feed_author_malformed(server, author):
    _, token = register(server)
    r = api(server, "GET", "/api/posts", token, params={"author": author})
    assert_error(r, 422, "validation_failed", "author")


def test_feed_paging_by_author(server):
    user, token = register(server)
    mine = [make_post(server, token, "p%d" % i)["id"] for i in range(7)]
    pages = page_all(server, "/api/posts", token, 3, params={"author": user["id"]})
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [p["id"] for pg in pages for p in pg] == list(reversed(mine))


def test_get_post_unknown_and_malformed(server):
    _, token = register(server)
    for pid in (fake_id(), "abc", "Z" * 24, "0" * 25):
        assert_error(api(server, "GET", "/api/posts/" + pid, token), 404, "not_found")


def test_get_post_needs_token(server):
    _, token = register(server)
    p = make_post(server, token)
    assert_error(api(server, "GET", "/api/posts/" + p["id"]), 401, "unauthorized")
    assert_error(api(server, "GET", "/api/posts"), 401, "unauthorized")


# ---------------------------------------------------------------- delete

def test_delete_post_author_only(server):
    _, token = register(server)
    _, other = register(server)
    p = make_post(server, token)
    assert_error(api(server, "DELETE", "/api/posts/" + p["id"], other), 403, "forbidden")
    assert_json(api(server, "GET", "/api/posts/" + p["id"], other), 200)
    r = api(server, "DELETE", "/api/posts/" + p["id"], token)
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert_error(api(server, "GET", "/api/posts/" + p["id"], token), 404, "not_found")
    assert_error(api(server, "DELETE", "/api/posts/" + p["id"], token), 404, "not_found")


def test_delete_post_unknown_and_malformed(server):
    _, token = register(server)
    for pid in (fake_id(), "abc"):
        assert_error(api(server, "DELETE", "/api/posts/" + pid, token), 404, "not_found")


def test_delete_post_cascades(server):
    user, token = register(server)
    _, other = register(server)
    p = make_post(server, token, "doomed")
    pid = p["id"]
    assert_json(api(server, "PUT", "/api/posts/%s/like" % pid, other), 200)
    c = assert_json(api(server, "POST", "/api/posts/%s/comments" % pid, other,
                        json={"text": "nice"}), 201)
    assert api(server, "DELETE", "/api/posts/" + pid, token).status_code == 204
    assert_error(api(server, "GET", "/api/posts/%s/comments" % pid, other), 404, "not_found")
    assert_error(api(server, "PUT", "/api/posts/%s/like" % pid, other), 404, "not_found")
    assert_error(api(server, "DELETE", "/api/posts/%s/like" % pid, other), 404, "not_found")
    assert_error(api(server, "POST", "/api/posts/%s/comments" % pid, other, json={"text": "late"}),
                 404, "not_found")
    items, _ = check_page(assert_json(
        api(server, "GET", "/api/posts", token, params={"author": user["id"]}), 200))
    assert pid not in [i["id"] for i in items]
    assert c["postId"] == pid


# ---------------------------------------------------------------- edit (v1.2)

def patch(server, token, pid, body):
    return api(server, "PATCH", "/api/posts/" + pid, token, json=body)


def test_edit_post_sets_edited_at(server):
    _, token = register(server)
    p = make_post(server, token, "before")
    assert p["editedAt"] is None
    e = assert_json(patch(server, token, p["id"], {"text": "  after  "}), 200)
    check_post(e)
    assert e["text"] == "after"
    assert e["editedAt"] is not None and e["editedAt"] >= p["createdAt"]
    assert (e["id"], e["createdAt"], e["imageUrl"]) == (p["id"], p["createdAt"], None)
    got = assert_json(api(server, "GET", "/api/posts/" + p["id"], token), 200)
    assert got == e


def test_edit_post_shows_in_feed_at_once(server):
    # the feed page cache is invalidated by the edit
    user, token = register(server)
    p = make_post(server, token, "cached text")
    params = {"author": user["id"]}
    items, _ = check_page(assert_json(api(server, "GET", "/api/posts", token, params=params), 200))
    assert [i["text"] for i in items] == ["cached text"]
    assert_json(patch(server, token, p["id"], {"text": "fresh text"}), 200)
    items, _ = check_page(assert_json(api(server, "GET", "/api/posts", token, params=params), 200))
    assert [(i["text"], i["editedAt"] is not None) for i in items] == [("fresh text", True)]


def test_edit_post_image_rules(server):
    _, token = register(server)
    p = make_post(server, token, "with words")
    img = "https://img.example.com/a.png"
    e = assert_json(patch(server, token, p["id"], {"imageUrl": img, "text": ""}), 200)
    assert (e["text"], e["imageUrl"]) == ("", img)
    # removing the image of a post without text breaks the create rule
    assert_error(patch(server, token, p["id"], {"imageUrl": None}), 422, "validation_failed",
                 "text")
    e = assert_json(patch(server, token, p["id"], {"imageUrl": None, "text": "words"}), 200)
    assert (e["text"], e["imageUrl"]) == ("words", None)
    assert_error(patch(server, token, p["id"], {"text": "  "}), 422, "validation_failed", "text")
    assert_error(patch(server, token, p["id"], {"text": "x" * 5001}), 422, "validation_failed",
                 "text")
    assert_error(patch(server, token, p["id"], {"imageUrl": "ftp://x"}), 422,
                 "validation_failed", "imageUrl")
    assert_error(patch(server, token, p["id"], {"text": 5}), 422, "validation_failed", "text")
    got = assert_json(api(server, "GET", "/api/posts/" + p["id"], token), 200)
    assert (got["text"], got["imageUrl"]) == ("words", None)


def test_edit_post_empty_body_changes_nothing(server):
    _, token = register(server)
    p = make_post(server, token, "same")
    assert assert_json(patch(server, token, p["id"], {}), 200) == p


def test_edit_post_authorization(server):
    _, token = register(server)
    _, other = register(server)
    p = make_post(server, token, "mine")
    assert_error(patch(server, other, p["id"], {"text": "theirs"}), 403, "forbidden")
    assert_error(patch(server, None, p["id"], {"text": "anon"}), 401, "unauthorized")
    for pid in (fake_id(), "abc"):
        assert_error(patch(server, token, pid, {"text": "x"}), 404, "not_found")
    r = api(server, "PATCH", "/api/posts/" + p["id"], token, data=b"[1,",
            headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")
    assert assert_json(api(server, "GET", "/api/posts/" + p["id"], token), 200)["text"] == "mine"


# ---------------------------------------------------------------- likes

def like(server, token, pid, method="PUT"):
    return api(server, method, "/api/posts/%s/like" % pid, token)


def test_likes_idempotent_counts_and_per_viewer(server):
    _, a = register(server)
    _, b = register(server)
    _, c = register(server)
    pid = make_post(server, a)["id"]

    assert assert_json(like(server, b, pid), 200) == {"likeCount": 1, "likedByMe": True}
    assert assert_json(like(server, b, pid), 200) == {"likeCount": 1, "likedByMe": True}
    assert assert_json(like(server, c, pid), 200) == {"likeCount": 2, "likedByMe": True}

    def view(tok):
        p = assert_json(api(server, "GET", "/api/posts/" + pid, tok), 200)
        return p["likeCount"], p["likedByMe"]

    assert view(a) == (2, False)
    assert view(b) == (2, True)
    assert view(c) == (2, True)

    assert assert_json(like(server, b, pid, "DELETE"), 200) == {"likeCount": 1, "likedByMe": False}
    assert assert_json(like(server, b, pid, "DELETE"), 200) == {"likeCount": 1, "likedByMe": False}
    assert assert_json(like(server, a, pid, "DELETE"), 200) == {"likeCount": 1, "likedByMe": False}
    assert view(b) == (1, False)
    assert view(c) == (1, True)
    # likedByMe in the feed too
    items, _ = check_page(assert_json(api(server, "GET", "/api/posts", c,
                                          params={"limit": 100}), 200))
    mine = [i for i in items if i["id"] == pid]
    if mine:
        assert (mine[0]["likeCount"], mine[0]["likedByMe"]) == (1, True)


def test_own_post_can_be_liked(server):
    _, a = register(server)
    pid = make_post(server, a)["id"]
    assert assert_json(like(server, a, pid), 200) == {"likeCount": 1, "likedByMe": True}


def test_like_unknown_post(server):
    _, a = register(server)
    for pid in (fake_id(), "nope"):
        assert_error(like(server, a, pid), 404, "not_found")
        assert_error(like(server, a, pid, "DELETE"), 404, "not_found")


def test_like_needs_token(server):
    _, a = register(server)
    pid = make_post(server, a)["id"]
    assert_error(like(server, None, pid), 401, "unauthorized")


def test_concurrent_likes_count_exactly(server):
    from concurrent.futures import ThreadPoolExecutor
    _, a = register(server)
    pid = make_post(server, a)["id"]
    toks = [register(server)[1] for _ in range(12)]
    with ThreadPoolExecutor(6) as ex:
        codes = list(ex.map(lambda t: like(server, t, pid).status_code, toks + toks))
    assert codes == [200] * 24
    p = assert_json(api(server, "GET", "/api/posts/" + pid, a), 200)
    assert p["likeCount"] == 12


# ---------------------------------------------------------------- comments

def comment(server, token, pid, text):
    return api(server, "POST", "/api/posts/%s/comments" % pid, token, json={"text": text})


def test_comment_create_and_count(server):
    _, a = register(server)
    buser, b = register(server)
    pid = make_post(server, a)["id"]
    c = assert_json(comment(server, b, pid, "  great post  "), 201)
    check_comment(c)
    assert c["postId"] == pid and c["text"] == "great post"
    assert c["author"]["id"] == buser["id"] and c["author"]["username"] == buser["username"]
    assert assert_json(api(server, "GET", "/api/posts/" + pid, a), 200)["commentCount"] == 1
    assert_json(comment(server, a, pid, "thanks"), 201)
    assert assert_json(api(server, "GET", "/api/posts/" + pid, b), 200)["commentCount"] == 2


def test_comment_text_bounds(server):
    _, a = register(server)
    pid = make_post(server, a)["id"]
    assert_json(comment(server, a, pid, "c" * 2000), 201)
    assert_json(comment(server, a, pid, EMOJI * 2000), 201)
    assert_error(comment(server, a, pid, "c" * 2001), 422, "validation_failed", "text")
    assert_error(comment(server, a, pid, EMOJI * 2001), 422, "validation_failed", "text")
    assert_error(comment(server, a, pid, ""), 422, "validation_failed", "text")
    assert_error(comment(server, a, pid, "  \n "), 422, "validation_failed", "text")
    assert_error(comment(server, a, pid, 12), 422, "validation_failed", "text")
    assert_error(api(server, "POST", "/api/posts/%s/comments" % pid, a, json={}),
                 422, "validation_failed", "text")
    assert assert_json(api(server, "GET", "/api/posts/" + pid, a), 200)["commentCount"] == 2


def test_comment_unknown_post(server):
    _, a = register(server)
    for pid in (fake_id(), "bad"):
        assert_error(comment(server, a, pid, "x"), 404, "not_found")
        assert_error(api(server, "GET", "/api/posts/%s/comments" % pid, a), 404, "not_found")


def test_comments_list_newest_first_and_paging(server):
    _, a = register(server)
    pid = make_post(server, a)["id"]
    ids = [assert_json(comment(server, a, pid, "c%d" % i), 201)["id"] for i in range(7)]
    items, cursor = check_page(assert_json(
        api(server, "GET", "/api/posts/%s/comments" % pid, a), 200))
    assert [c["id"] for c in items] == list(reversed(ids)) and cursor is None
    for c in items:
        check_comment(c)
    pages = page_all(server, "/api/posts/%s/comments" % pid, a, 2)
    assert [len(p) for p in pages] == [2, 2, 2, 1]
    assert [c["id"] for p in pages for c in p] == list(reversed(ids))


def test_comments_need_token(server):
    _, a = register(server)
    pid = make_post(server, a)["id"]
    assert_error(api(server, "GET", "/api/posts/%s/comments" % pid), 401, "unauthorized")
    assert_error(api(server, "POST", "/api/posts/%s/comments" % pid, json={"text": "x"}),
                 401, "unauthorized")
