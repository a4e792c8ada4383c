"""Issue 8 (hardening), HTTP side: auth-route limits, strict HTTP/1.1 on
every request of a connection, the WebSocket handshake checks, request
deadlines and the per-address connection cap (CONTRACT.md sections 1 and 6,
v1.2).  Each test starts its own server."""
import socket
import time

import pytest

from helpers import (PASSWORD, api, assert_error, raw_connect, read_response, register,
                     unique_name)

pytestmark = pytest.mark.own_server


def login(srv, login_name, password, token=None, headers=None):
    return api(srv, "POST", "/api/auth/login", token,
               json={"email": login_name, "password": password}, headers=headers)


# ---- defect 2: /api/auth/* limits ------------------------------------------

def test_issue8_auth_limit_ignores_authorization(start_server):
    """The old bypass: with the IP's budget spent, a valid token moved login to
    the user's bucket (114 guesses went through with RATE_LIMIT_MAX=20)."""
    srv = start_server(RATE_LIMIT_MAX=20, LOGIN_FAIL_MAX=0)
    user, tok = register(srv)                        # 1 of the IP's 20
    passed = 0
    for _ in range(60):
        r = login(srv, user["username"], "wrong password!", token=tok)
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) > 0
            assert_error(r, 429, "rate_limited")
            continue
        assert r.status_code == 401, r.text
        passed += 1
    assert passed == 19
    # register with a token is counted per IP too
    r = api(srv, "POST", "/api/auth/register", tok,
            json={"username": unique_name(), "email": unique_name() + "@example.com",
                  "password": PASSWORD})
    assert_error(r, 429, "rate_limited")
    # while the token's own bucket is untouched for the rest of /api
    assert api(srv, "GET", "/api/users/me", tok).status_code == 200


def test_issue8_failed_logins_limited_per_account(start_server):
    srv = start_server(RATE_LIMIT_MAX=0, LOGIN_FAIL_MAX=3, LOGIN_FAIL_WINDOW_S=60,
                       TRUST_PROXY=1)
    victim, _ = register(srv)
    other, _ = register(srv)
    name = victim["username"]
    # a new client address per guess does not help: the count is per account
    for i in range(3):
        r = login(srv, name, "guess %d nope" % i, headers={"X-Forwarded-For": "10.0.0.%d" % i})
        assert_error(r, 401, "invalid_credentials")
    for pw in ("guess 4 nope", PASSWORD):            # the right password is refused too
        r = login(srv, "  " + name.upper() + " ", pw, headers={"X-Forwarded-For": "10.0.1.1"})
        assert_error(r, 429, "rate_limited")
        assert 0 < int(r.headers["Retry-After"]) <= 60
    # another account is not affected, and successes are not counted
    for _ in range(5):
        assert login(srv, other["username"], PASSWORD).status_code == 200
