"""CONTRACT.md v1.2 section 3: account lifecycle - POST /api/auth/password,
POST /api/auth/logout-all, DELETE /api/users/me - and what docs/api.md
("Account lifecycle") says becomes of a deleted account's data."""
import time

import pytest

# the two-instance fixtures (one store, one Redis) of the scale-out tests
from test_scaleout import BUS_BOUND_S, eventually, pair, redis, scale  # noqa: F401
from helpers import (PASSWORD, api, assert_error, assert_json, check_chat, check_user, fake_id,
                     get_chat, make_chat, make_post, register, send_msg, unique_name)
from ws_fixtures import connect

NEW_PASSWORD = "a brand new passphrase"


def login(server, login_name, password=PASSWORD):
    return api(server, "POST", "/api/auth/login", json={"email": login_name, "password": password})


def second_token(server, user, password=PASSWORD):
    return assert_json(login(server, user["email"], password), 200)["token"]


def me_status(server, token):
    return api(server, "GET", "/api/users/me", token).status_code


def change_password(server, token, body):
    return api(server, "POST", "/api/auth/password", token, json=body)


def delete_me(server, token, body):
    return api(server, "DELETE", "/api/users/me", token, json=body)


# ---- password change --------------------------------------------------------

def test_password_change_revokes_other_tokens_only(server):
    a, t1 = register(server)
    b, tb = register(server)
    t2 = second_token(server, a)
    t3 = second_token(server, a)
    w2, _ = connect(server, t2)
    w1, _ = connect(server, t1)
    try:
        r = change_password(server, t1, {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD})
        assert r.status_code == 204, r.text
        assert r.content == b""
        # the caller's token and socket keep working
        assert me_status(server, t1) == 200
        assert w1.barrier() is not None
        # every other token of the user: 401 on REST, its socket closed 4401
        for t in (t2, t3):
            assert_error(api(server, "GET", "/api/users/me", t), 401, "unauthorized")
        assert w2.wait_close() == 4401
        # and a new socket with it is refused
        from ws_fixtures import WS
        w3 = WS(server, t2)
        try:
            assert w3.wait_close() == 4401
        finally:
            w3.close()
        # another user's token is untouched
        assert me_status(server, tb) == 200
        # the old password no longer logs in, the new one does
        assert_error(login(server, a["email"]), 401, "invalid_credentials")
        assert_json(login(server, a["username"], NEW_PASSWORD), 200)
    finally:
        w1.close()
        w2.close()


def test_password_change_wrong_current(server):
    a, t1 = register(server)
    t2 = second_token(server, a)
    r = change_password(server, t1, {"currentPassword": PASSWORD + "x",
                                     "newPassword": NEW_PASSWORD})
    assert_error(r, 401, "invalid_credentials")
    # nothing changed: both tokens work, the old password logs in
    assert me_status(server, t1) == 200 and me_status(server, t2) == 200
    assert_json(login(server, a["email"]), 200)
    assert_error(login(server, a["email"], NEW_PASSWORD), 401, "invalid_credentials")


def test_password_change_validation(server):
    a, t = register(server)
    cases = [
        ({"newPassword": NEW_PASSWORD}, "currentPassword"),
        ({"currentPassword": 5, "newPassword": NEW_PASSWORD}, "currentPassword"),
        ({"currentPassword": PASSWORD}, "newPassword"),
        ({"currentPassword": PASSWORD, "newPassword": "short7!"}, "newPassword"),
        ({"currentPassword": PASSWORD, "newPassword": "x" * 129}, "newPassword"),
        ({"currentPassword": PASSWORD, "newPassword": None}, "newPassword"),
    ]
    for body, field in cases:
        assert_error(change_password(server, t, body), 422, "validation_failed", field)
    r = api(server, "POST", "/api/auth/password", t, data=b"[1]",
            headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")
    r = api(server, "POST", "/api/auth/password", t, data=b"{",
            headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")
    # limits are register's: 8 and 128 characters are fine
    r = change_password(server, t, {"currentPassword": PASSWORD, "newPassword": "y" * 128})
    assert r.status_code == 204, r.text
    r = change_password(server, t, {"currentPassword": "y" * 128, "newPassword": "z" * 8})
    assert r.status_code == 204, r.text
    assert_json(login(server, a["email"], "z" * 8), 200)


# ---- logout everywhere -------------------------------------------------------

def test_logout_all_revokes_every_token_and_closes_sockets(server):
    a, t1 = register(server)
    _, tb = register(server)
    t2 = second_token(server, a)
    w1, _ = connect(server, t1)
    w2, _ = connect(server, t2)
    try:
        r = api(server, "POST", "/api/auth/logout-all", t1)
        assert r.status_code == 204, r.text
        for t in (t1, t2):
            assert_error(api(server, "GET", "/api/users/me", t), 401, "unauthorized")
        assert w1.wait_close() == 4401  # the caller's own socket too
        assert w2.wait_close() == 4401
        assert me_status(server, tb) == 200
        # logging in again works and gives a working token
        t3 = second_token(server, a)
        assert me_status(server, t3) == 200
        # a revoked token cannot log out everywhere again
        assert_error(api(server, "POST", "/api/auth/logout-all", t1), 401, "unauthorized")
    finally:
        w1.close()
        w2.close()


# ---- the authorization matrix ------------------------------------------------

def test_routes_need_a_valid_token(server):
    _, t = register(server)
    bad = "A" * 43
    for token in (None, bad):
        assert_error(api(server, "POST", "/api/auth/password", token,
                         json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}),
                     401, "unauthorized")
        assert_error(api(server, "POST", "/api/auth/logout-all", token), 401, "unauthorized")
        assert_error(delete_me(server, token, {"password": PASSWORD}), 401, "unauthorized")
    # wrong methods: 405 with the Allow list
    r = api(server, "GET", "/api/auth/password", t)
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "POST"
    r = api(server, "DELETE", "/api/auth/logout-all", t)
    assert_error(r, 405, "method_not_allowed")
    r = api(server, "PUT", "/api/users/me", t, json={})
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, PATCH, DELETE"
    assert me_status(server, t) == 200


def test_delete_account_checks_password_and_body(server):
    a, t = register(server)
    assert_error(delete_me(server, t, {"password": PASSWORD + "x"}), 401, "invalid_credentials")
    assert_error(delete_me(server, t, {}), 422, "validation_failed", "password")
    assert_error(delete_me(server, t, {"password": 12}), 422, "validation_failed", "password")
    r = api(server, "DELETE", "/api/users/me", t)
    assert_error(r, 400, "invalid_json")
    # nothing happened
    me = assert_json(api(server, "GET", "/api/users/me", t), 200)
    assert me["username"] == a["username"]
    assert_json(login(server, a["email"]), 200)


def test_deleted_prefix_is_reserved(server):
    for name in ("deleted_" + fake_id(), "Deleted_x", "DELETED_abc"):
        r = api(server, "POST", "/api/auth/register",
                json={"username": name, "email": unique_name() + "@example.com",
                      "password": PASSWORD})
        assert_error(r, 422, "validation_failed", "username")


# ---- account deletion --------------------------------------------------------

def test_delete_account_data_as_documented(server):
    x, tx = register(server)
    y, ty = register(server)
    z, tz = register(server)
    # x's post, liked and commented by y; y's post, liked and commented by x and z
    px = make_post(server, tx, "x's post")
    py = make_post(server, ty, "y's post")
    assert api(server, "PUT", "/api/posts/%s/like" % px["id"], ty).status_code == 200
    for t in (tx, tz):
        assert api(server, "PUT", "/api/posts/%s/like" % py["id"], t).status_code == 200
        assert api(server, "POST", "/api/posts/%s/comments" % py["id"], t,
                   json={"text": "hi"}).status_code == 201
    assert api(server, "POST", "/api/posts/%s/comments" % px["id"], ty,
               json={"text": "on x"}).status_code == 201
    group = make_chat(server, tx, [y["id"], z["id"]], name="three")
    direct = make_chat(server, ty, [x["id"]])
    m1 = send_msg(server, tx, direct["id"], "from x")
    send_msg(server, ty, direct["id"], "from y")
    send_msg(server, tx, group["id"], "x in group")
    assert api(server, "POST", "/api/chats/%s/read" % direct["id"], tx,
               json={"messageId": m1["id"]}).status_code == 204

    wx, _ = connect(server, tx)
    wy, _ = connect(server, ty)
    try:
        r = delete_me(server, tx, {"password": PASSWORD})
        assert r.status_code == 204, r.text
        # the token is dead, the socket closed
        assert_error(api(server, "GET", "/api/users/me", tx), 401, "unauthorized")
        assert wx.wait_close() == 4401
        # y hears the group change: x is no longer a member
        upd = wy.recv_type("chat.updated", pred=lambda f: f["chat"]["id"] == group["id"])
        check_chat(upd["chat"])
        assert sorted(m["id"] for m in upd["chat"]["members"]) == sorted([y["id"], z["id"]])
        assert x["id"] not in upd["chat"]["readMarks"]
    finally:
        wx.close()
        wy.close()

    # posts: x's is gone; y's has lost x's like and comment
    assert_error(api(server, "GET", "/api/posts/" + px["id"], ty), 404, "not_found")
    p = assert_json(api(server, "GET", "/api/posts/" + py["id"], ty), 200)
    assert (p["likeCount"], p["commentCount"]) == (1, 1), p
    comments = assert_json(api(server, "GET", "/api/posts/%s/comments" % py["id"], ty), 200)
    assert [c["author"]["id"] for c in comments["items"]] == [z["id"]]
    feed = assert_json(api(server, "GET", "/api/posts", ty, params={"author": x["id"]}), 200)
    assert feed["items"] == []
    # the group lives on without x
    g = get_chat(server, ty, group["id"])
    assert sorted(m["id"] for m in g["members"]) == sorted([y["id"], z["id"]])
    # the direct chat stays for y, its messages kept, sent by "Deleted user"
    d = get_chat(server, ty, direct["id"])
    check_chat(d)
    gone = [m for m in d["members"] if m["id"] == x["id"]]
    assert len(gone) == 1
    assert gone[0]["displayName"] == "Deleted user"
    assert gone[0]["username"] == "deleted_" + x["id"]
    assert gone[0]["avatarUrl"] is None
    assert d["readMarks"][x["id"]] == m1["seq"]
    msgs = assert_json(api(server, "GET", "/api/chats/%s/messages" % direct["id"], ty), 200)
    texts = {m["text"]: m["sender"] for m in msgs["items"]}
    assert set(texts) == {"from x", "from y"}
    assert texts["from x"]["id"] == x["id"]
    assert texts["from x"]["displayName"] == "Deleted user"
    # the profile is gone and search does not find it
    assert_error(api(server, "GET", "/api/users/" + x["id"], ty), 404, "not_found")
    for q in (x["username"], "deleted_"):
        found = assert_json(api(server, "GET", "/api/users", ty, params={"q": q}), 200)
        assert x["id"] not in [u["id"] for u in found["items"]]
    # the old credentials no longer log in as x
    assert_error(login(server, x["email"]), 401, "invalid_credentials")
    # the username and email are free: a new account takes them
    nu, nt = register(server, username=x["username"], email=x["email"])
    check_user(nu, own=True)
    assert nu["id"] != x["id"]
    assert assert_json(login(server, x["email"]), 200)["user"]["id"] == nu["id"]
    # the newcomer inherits nothing
    chats = assert_json(api(server, "GET", "/api/chats", nt), 200)
    assert chats["items"] == []
    # a deleted account cannot be deleted again, nor its token reused
    assert_error(delete_me(server, tx, {"password": PASSWORD}), 401, "unauthorized")
    # a deleted account is an unknown user to new chats and to groups
    r = api(server, "POST", "/api/chats", ty, json={"memberIds": [x["id"]]})
    assert_error(r, 422, "validation_failed", "memberIds")
    r = api(server, "POST", "/api/chats/%s/members" % group["id"], ty, json={"userId": x["id"]})
    assert_error(r, 422, "validation_failed", "userId")
    # z still sees x's message in the group (kept, from "Deleted user")
    gm = assert_json(api(server, "GET", "/api/chats/%s/messages" % group["id"], tz), 200)
    assert [m["sender"]["displayName"] for m in gm["items"]] == ["Deleted user"]


def test_delete_account_revokes_every_token(server):
    a, t1 = register(server)
    t2 = second_token(server, a)
    w2, _ = connect(server, t2)
    try:
        assert delete_me(server, t1, {"password": PASSWORD}).status_code == 204
        for t in (t1, t2):
            assert_error(api(server, "GET", "/api/users/me", t), 401, "unauthorized")
        assert w2.wait_close() == 4401
    finally:
        w2.close()


# ---- several instances (Redis bus): revocations reach every instance ----------


@pytest.mark.own_server
@scale
def test_password_change_and_logout_all_on_a_revoke_on_b(pair):
    a, b = pair
    u, t1 = register(a)
    t2 = second_token(b, u)
    t3 = second_token(b, u)
    assert me_status(b, t2) == 200 and me_status(b, t3) == 200  # B caches the sessions
    w2, _ = connect(b, t2)
    try:
        r = change_password(a, t1, {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD})
        assert r.status_code == 204, r.text
        assert w2.wait_close(10) == 4401
        assert eventually(lambda: me_status(b, t2) == 401 and me_status(b, t3) == 401,
                          BUS_BOUND_S)
        assert me_status(b, t1) == 200
    finally:
        w2.close()
    t4 = second_token(b, u, NEW_PASSWORD)
    assert me_status(b, t4) == 200 and me_status(a, t4) == 200
    w4, _ = connect(b, t4)
    try:
        t0 = time.monotonic()
        assert api(a, "POST", "/api/auth/logout-all", t1).status_code == 204
        assert w4.wait_close(10) == 4401
        assert eventually(lambda: me_status(b, t4) == 401 and me_status(b, t1) == 401,
                          BUS_BOUND_S)
        assert time.monotonic() - t0 < 10
    finally:
        w4.close()


@pytest.mark.own_server
def test_wrong_passwords_are_limited_per_account(start_server):
    """Password change and account deletion share login's per-account failure
    limit (LOGIN_FAIL_MAX), per user: a stolen token cannot guess faster."""
    srv = start_server(LOGIN_FAIL_MAX=3, LOGIN_FAIL_WINDOW_S=600)
    a, ta = register(srv)
    _, tb = register(srv)
    wrong = {"currentPassword": "not it at all", "newPassword": NEW_PASSWORD}
    assert_error(change_password(srv, ta, wrong), 401, "invalid_credentials")
    assert_error(delete_me(srv, ta, {"password": "not it either"}), 401, "invalid_credentials")
    assert_error(change_password(srv, ta, wrong), 401, "invalid_credentials")  # the 3rd
    # blocked now, even with the right password, on both routes
    r = change_password(srv, ta, {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD})
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) > 0
    assert_error(delete_me(srv, ta, {"password": PASSWORD}), 429, "rate_limited")
    # nothing changed, and the other user is not affected
    assert me_status(srv, ta) == 200
    assert_json(login(srv, a["email"]), 200)
    r = change_password(srv, tb, {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD})
    assert r.status_code == 204, r.text
