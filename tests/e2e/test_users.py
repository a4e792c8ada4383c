"""CONTRACT.md section 3: /api/users/me, /api/users/{id}, user search."""
import uuid

import pytest

from helpers import (PASSWORD, api, assert_error, assert_json, check_page, check_user,
                     fake_id, page_all, register)


def patch_me(server, token, **body):
    return api(server, "PATCH", "/api/users/me", token, json=body)


# ---------------------------------------------------------------- /users/me

def test_me_returns_own_view(server):
    user, token = register(server, display_name="Me Myself")
    me = assert_json(api(server, "GET", "/api/users/me", token), 200)
    check_user(me, own=True)
    assert me == user


def test_me_needs_token(server):
    assert_error(api(server, "GET", "/api/users/me"), 401, "unauthorized")
    assert_error(api(server, "PATCH", "/api/users/me", json={"bio": "x"}), 401, "unauthorized")


def test_patch_me_each_field(server):
    user, token = register(server)
    me = assert_json(patch_me(server, token, displayName="New Name"), 200)
    check_user(me, own=True)
    assert me["displayName"] == "New Name"
    assert me["bio"] == "" and me["avatarUrl"] is None

    me = assert_json(patch_me(server, token, bio="hello there"), 200)
    assert me["bio"] == "hello there" and me["displayName"] == "New Name"

    me = assert_json(patch_me(server, token, avatarUrl="https://cdn.example.com/a.png"), 200)
    assert me["avatarUrl"] == "https://cdn.example.com/a.png"
    me = assert_json(patch_me(server, token, avatarUrl="http://example.com/b.jpg"), 200)
    assert me["avatarUrl"] == "http://example.com/b.jpg"

    me = assert_json(patch_me(server, token, avatarUrl=None), 200)
    assert me["avatarUrl"] is None
    assert me["bio"] == "hello there"

    me = assert_json(patch_me(server, token, bio=""), 200)
    assert me["bio"] == ""

    # persisted, and visible in the public view without email
    again = assert_json(api(server, "GET", "/api/users/me", token), 200)
    assert again == me
    _, other = register(server)
    pub = assert_json(api(server, "GET", "/api/users/" + user["id"], other), 200)
    check_user(pub)
    assert pub["displayName"] == "New Name"
    assert pub["id"] == user["id"] and pub["username"] == user["username"]


def test_profile_change_shows_in_embedded_authors(server):
    """Author/Sender objects show the current profile, not a copy from the
    time of writing (what clients of the Node version saw via populate)."""
    me, tok = register(server)
    other, otok = register(server)
    post = assert_json(api(server, "POST", "/api/posts", tok, json={"text": "x"}), 201)
    com = assert_json(api(server, "POST", "/api/posts/%s/comments" % post["id"], tok,
                          json={"text": "c"}), 201)
    chat = assert_json(api(server, "POST", "/api/chats", tok, json={"memberIds": [other["id"]]}), 201)
    msg = assert_json(api(server, "POST", "/api/chats/%s/messages" % chat["id"], tok,
                          json={"text": "m"}), 201)
    assert_json(patch_me(server, tok, displayName="Renamed", avatarUrl="https://x.example/n.png"), 200)
    want = {"id": me["id"], "username": me["username"], "displayName": "Renamed",
            "avatarUrl": "https://x.example/n.png"}
    p = assert_json(api(server, "GET", "/api/posts/" + post["id"], otok), 200)
    assert p["author"] == want
    items, _ = check_page(assert_json(api(server, "GET", "/api/posts/%s/comments" % post["id"], otok), 200))
    assert [c["author"] for c in items if c["id"] == com["id"]] == [want]
    items, _ = check_page(assert_json(api(server, "GET", "/api/chats/%s/messages" % chat["id"], otok), 200))
    assert [m["sender"] for m in items if m["id"] == msg["id"]] == [want]
    c = assert_json(api(server, "GET", "/api/chats/" + chat["id"], otok), 200)
    assert want in c["members"]


def test_patch_me_several_fields_at_once(server):
    _, token = register(server)
    me = assert_json(patch_me(server, token, displayName="D", bio="B",
                              avatarUrl="https://x.example/p.png"), 200)
    assert (me["displayName"], me["bio"], me["avatarUrl"]) == ("D", "B", "https://x.example/p.png")


def test_patch_me_empty_object_changes_nothing(server):
    user, token = register(server)
    me = assert_json(patch_me(server, token), 200)
    assert me == user


def test_patch_me_cannot_change_identity(server):
    user, token = register(server)
    r = patch_me(server, token, username="hijack_" + uuid.uuid4().hex[:8],
                 email="hijack@example.com", id=fake_id())
    # unknown/immutable fields: either ignored or rejected, never applied
    if r.status_code == 200:
        me = r.json()
    else:
        assert r.status_code in (400, 422), r.text
        me = assert_json(api(server, "GET", "/api/users/me", token), 200)
    assert me["username"] == user["username"]
    assert me["email"] == user["email"]
    assert me["id"] == user["id"]


@pytest.mark.parametrize("value", ["", "x" * 65, "\U0001F600" * 65])
def test_patch_me_bad_display_name(server, value):
    _, token = register(server)
    assert_error(patch_me(server, token, displayName=value), 422, "validation_failed", "displayName")


@pytest.mark.parametrize("value", ["x", "x" * 64, "\U0001F600" * 64])
def test_patch_me_display_name_bounds_ok(server, value):
    _, token = register(server)
    assert assert_json(patch_me(server, token, displayName=value), 200)["displayName"] == value


def test_patch_me_bio_bounds(server):
    _, token = register(server)
    assert assert_json(patch_me(server, token, bio="b" * 500), 200)["bio"] == "b" * 500
    assert assert_json(patch_me(server, token, bio="\U0001F600" * 500), 200)["bio"] == "\U0001F600" * 500
    assert_error(patch_me(server, token, bio="b" * 501), 422, "validation_failed", "bio")
    assert_error(patch_me(server, token, bio="é" * 501), 422, "validation_failed", "bio")
    # a failed PATCH changes nothing
    assert assert_json(api(server, "GET", "/api/users/me", token), 200)["bio"] == "\U0001F600" * 500


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "example.com/a.png", "not a url",
                                 "javascript:alert(1)", "https://", "http//x.com/a",
                                 "data:image/png;base64,AAAA", "https://exa mple.com/a.png",
                                 "https://example.com/" + "a" * 2100])
def test_patch_me_bad_avatar_url(server, url):
    _, token = register(server)
    assert_error(patch_me(server, token, avatarUrl=url), 422, "validation_failed", "avatarUrl")


@pytest.mark.parametrize("field,value", [("displayName", 5), ("displayName", None),
                                         ("bio", 7), ("bio", ["x"]), ("avatarUrl", 3),
                                         ("avatarUrl", {"u": "https://x"}), ("displayName", True)])
def test_patch_me_wrong_types(server, field, value):
    _, token = register(server)
    assert_error(patch_me(server, token, **{field: value}), 422, "validation_failed", field)


def test_patch_me_blank_avatar_counts_as_null(server):
    # docs/api.md choice: a blank URL string counts as null
    _, token = register(server)
    assert_json(patch_me(server, token, avatarUrl="https://x.example/a.png"), 200)
    assert assert_json(patch_me(server, token, avatarUrl=""), 200)["avatarUrl"] is None


def test_patch_me_display_name_trimmed(server):
    _, token = register(server)
    assert assert_json(patch_me(server, token, displayName="  Trim Me \t"), 200)["displayName"] == "Trim Me"
    assert_error(patch_me(server, token, displayName="   "), 422, "validation_failed", "displayName")


def test_patch_me_nul_in_string_is_422(server):
    _, token = register(server)
    assert_error(patch_me(server, token, bio="a\u0000b"), 422, "validation_failed", "bio")


def test_patch_me_partial_failure_is_atomic(server):
    user, token = register(server)
    assert_error(patch_me(server, token, displayName="Good", bio="b" * 501), 422,
                 "validation_failed", "bio")
    me = assert_json(api(server, "GET", "/api/users/me", token), 200)
    assert me["displayName"] == user["displayName"]


# ---------------------------------------------------------------- /users/{id}

def test_get_user_by_id_public_view(server):
    user, _ = register(server)
    _, other = register(server)
    pub = assert_json(api(server, "GET", "/api/users/" + user["id"], other), 200)
    check_user(pub)
    assert "email" not in pub
    assert {k: pub[k] for k in pub} == {k: user[k] for k in pub}


def test_get_user_needs_token(server):
    user, _ = register(server)
    assert_error(api(server, "GET", "/api/users/" + user["id"]), 401, "unauthorized")


@pytest.mark.parametrize("uid", ["unknown", "malformed_short", "upper", "long", "nonhex", "me2"])
def test_get_user_unknown_or_malformed_404(server, uid):
    user, token = register(server)
    value = {"unknown": fake_id(), "malformed_short": "abc", "upper": user["id"].upper(),
             "long": user["id"] + "0", "nonhex": "z" * 24, "me2": "me2"}[uid]
    if uid == "upper" and value == user["id"]:
        pytest.skip("id has no letters")
    assert_error(api(server, "GET", "/api/users/" + value, token), 404, "not_found")


# ---------------------------------------------------------------- search

@pytest.fixture(scope="module")
def search_set(server):
    """Users sharing a fresh prefix; names chosen so that byte order, case and
    underscores matter."""
    prefix = "Srch" + uuid.uuid4().hex[:6]
    suffixes = ["b", "A", "c_", "C0", "_z", "a9", "Zed", "m", "Mm", "x_y", "Xa", "q"]
    created = []
    for s in suffixes:
        u, tok = register(server, username=prefix + s)
        created.append(u)
    return prefix, created, tok


def _search(server, token, **params):
    return api(server, "GET", "/api/users", token, params=params)


def test_search_prefix_case_insensitive_and_ordered(server, search_set):
    prefix, created, token = search_set
    expected = sorted((u["username"] for u in created), key=str.lower)
    for q in (prefix, prefix.lower(), prefix.upper()):
        items, cursor = check_page(assert_json(_search(server, token, q=q, limit=100), 200))
        for u in items:
            check_user(u)
            assert "email" not in u
        assert [u["username"] for u in items] == expected, q
        assert cursor is None


def test_search_narrower_prefix(server, search_set):
    prefix, created, token = search_set
    items, _ = check_page(assert_json(_search(server, token, q=prefix + "m"), 200))
    assert [u["username"] for u in items] == [prefix + "m", prefix + "Mm"]


def test_search_underscore_and_percent_are_literal(server, search_set):
    """'_' and '%' are LIKE wildcards in SQL; the prefix must match literally."""
    prefix, created, token = search_set
    items, _ = check_page(assert_json(_search(server, token, q=prefix + "_"), 200))
    assert [u["username"] for u in items] == [prefix + "_z"]
    items, _ = check_page(assert_json(_search(server, token, q=prefix + "%"), 200))
    assert items == []
    items, _ = check_page(assert_json(_search(server, token, q=prefix[:-1] + "_"), 200))
    assert items == []
    items, _ = check_page(assert_json(_search(server, token, q=prefix + ".*"), 200))
    assert items == []


def test_search_paging(server, search_set):
    prefix, created, token = search_set
    expected = sorted((u["username"] for u in created), key=str.lower)
    for limit in (1, 2, 5):
        pages = page_all(server, "/api/users", token, limit, params={"q": prefix})
        got = [u["username"] for p in pages for u in p]
        assert got == expected, limit
        assert all(len(p) == limit for p in pages[:-1])


def test_search_default_limit_is_20(server):
    prefix = "Lim" + uuid.uuid4().hex[:6]
    tok = None
    for i in range(22):
        _, tok = register(server, username="%s%02d" % (prefix, i))
    items, cursor = check_page(assert_json(_search(server, tok, q=prefix), 200))
    assert len(items) == 20 and cursor is not None
    items2, cursor2 = check_page(assert_json(_search(server, tok, q=prefix, before=cursor), 200))
    assert [u["username"] for u in items2] == ["%s20" % prefix, "%s21" % prefix]
    assert cursor2 is None


def test_search_no_match(server):
    _, token = register(server)
    items, cursor = check_page(assert_json(_search(server, token, q="zz" + uuid.uuid4().hex[:20]), 200))
    assert items == [] and cursor is None


@pytest.mark.parametrize("q", [None, "", "x" * 33])
def test_search_q_bounds(server, q):
    _, token = register(server)
    params = {} if q is None else {"q": q}
    assert_error(_search(server, token, **params), 422, "validation_failed", "q")


def test_search_q_32_chars_ok(server):
    _, token = register(server)
    items, _ = check_page(assert_json(_search(server, token, q="y" * 32), 200))
    assert items == []


def test_search_needs_token(server):
    assert_error(api(server, "GET", "/api/users", params={"q": "abc"}), 401, "unauthorized")
