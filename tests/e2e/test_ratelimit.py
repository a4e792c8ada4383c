"""CONTRACT.md section 1, rate limiting.  Each test starts its own server with
RATE_LIMIT_MAX=5 (the shared one runs with RATE_LIMIT_MAX=0)."""
import time

import pytest

from helpers import PASSWORD, api, assert_error, assert_json, register, unique_name

pytestmark = pytest.mark.own_server

RL = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def rl(r):
    return tuple(int(r.headers[h]) for h in RL)


def anon(srv, xff=None):
    h = {"X-Forwarded-For": xff} if xff else None
    # an /api request without a token: counted against the client IP
    return api(srv, "POST", "/api/auth/login", json={"email": "nobody@example.com",
                                                     "password": "whatever1"}, headers=h)


def test_headers_and_429_per_ip(start_server):
    srv = start_server(RATE_LIMIT_MAX=5, RATE_LIMIT_WINDOW_MS=60000)
    remaining = []
    for i in range(5):
        r = anon(srv)
        assert r.status_code == 401, r.text
        for h in RL:
            assert h in r.headers, (h, r.headers)
        limit, rem, reset = rl(r)
        assert limit == 5
        assert 0 < reset <= 60
        remaining.append(rem)
    assert remaining == [4, 3, 2, 1, 0]
    r = anon(srv)
    assert_error(r, 429, "rate_limited")
    assert r.headers.get("Content-Type") == "application/json; charset=utf-8"
    retry = int(r.headers["Retry-After"])
    assert 0 < retry <= 60
    assert rl(r)[0:2] == (5, 0)
    # ops endpoints are not rate limited
    assert api(srv, "GET", "/healthz").status_code == 200


def test_headers_on_every_api_response(start_server):
    srv = start_server(RATE_LIMIT_MAX=50)
    _, tok = register(srv)
    for method, path, t, body in (("GET", "/api/nowhere", tok, None),     # 404
                                  ("PUT", "/api/posts", tok, None),        # 405
                                  ("GET", "/api/users/me", None, None),    # 401
                                  ("POST", "/api/posts", tok, {"text": ""}),  # 422
                                  ("GET", "/api/posts/zzz", tok, None)):   # 404 bad id
        r = api(srv, method, path, t, json=body)
        assert r.status_code >= 400
        for h in RL:
            assert h in r.headers, (method, path, r.status_code, h)
    for path in ("/healthz", "/readyz", "/metrics"):
        r = api(srv, "GET", path)
        assert "RateLimit-Limit" not in r.headers, path


def test_per_user_keys(start_server):
    srv = start_server(RATE_LIMIT_MAX=5)
    # two registrations: 2 of the IP's 5
    a, ta = register(srv)
    b, tb = register(srv)
    for i in range(5):
        r = api(srv, "GET", "/api/users/me", ta)
        assert r.status_code == 200, r.text
        assert int(r.headers["RateLimit-Remaining"]) == 4 - i
    assert_error(api(srv, "GET", "/api/users/me", ta), 429, "rate_limited")
    # b has its own budget, and the IP still has 3 left for anonymous calls
    r = api(srv, "GET", "/api/users/me", tb)
    assert r.status_code == 200 and int(r.headers["RateLimit-Remaining"]) == 4
    r = anon(srv)
    assert r.status_code == 401 and int(r.headers["RateLimit-Remaining"]) == 2


def test_limited_user_still_limited_on_every_route(start_server):
    srv = start_server(RATE_LIMIT_MAX=3)
    _, ta = register(srv)
    for _ in range(3):
        assert api(srv, "GET", "/api/users/me", ta).status_code == 200
    for method, path in (("GET", "/api/posts"), ("POST", "/api/posts"), ("GET", "/api/chats")):
        r = api(srv, method, path, ta, json={"text": "x"} if method == "POST" else None)
        assert_error(r, 429, "rate_limited")
        assert "Retry-After" in r.headers


def test_forwarded_for_ignored_without_trust_proxy(start_server):
    srv = start_server(RATE_LIMIT_MAX=3)
    for i in range(3):
        assert anon(srv, xff="10.0.0.%d" % (i + 1)).status_code == 401
    assert_error(anon(srv, xff="10.0.0.99"), 429, "rate_limited")


def test_forwarded_for_used_with_trust_proxy(start_server):
    srv = start_server(RATE_LIMIT_MAX=3, TRUST_PROXY=1)
    for _ in range(3):
        assert anon(srv, xff="10.1.1.1").status_code == 401
    assert_error(anon(srv, xff="10.1.1.1"), 429, "rate_limited")
    r = anon(srv, xff="10.2.2.2")
    assert r.status_code == 401 and int(r.headers["RateLimit-Remaining"]) == 2


def test_window_resets(start_server):
    srv = start_server(RATE_LIMIT_MAX=2, RATE_LIMIT_WINDOW_MS=1500)
    assert anon(srv).status_code == 401
    assert anon(srv).status_code == 401
    r = anon(srv)
    assert_error(r, 429, "rate_limited")
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 2, retry
    time.sleep(retry + 0.3)
    r = anon(srv)
    assert r.status_code == 401, r.text
    assert int(r.headers["RateLimit-Remaining"]) == 1


def test_disabled_means_no_headers(server):
    user, tok = register(server)
    for r in (api(server, "GET", "/api/users/me", tok), api(server, "GET", "/api/users/me"),
              api(server, "POST", "/api/auth/login", json={"email": user["email"], "password": PASSWORD}),
              api(server, "GET", "/api/nope")):
        for h in RL + ("Retry-After",):
            assert h not in r.headers, (h, r.url)
    # and no 429 however many requests
    for _ in range(120):
        assert api(server, "GET", "/api/users/me", tok).status_code == 200


def test_register_counts_against_ip(start_server):
    srv = start_server(RATE_LIMIT_MAX=2)
    register(srv)
    register(srv)
    name = unique_name()
    r = api(srv, "POST", "/api/auth/register",
            json={"username": name, "email": name + "@example.com", "password": PASSWORD})
    assert_error(r, 429, "rate_limited")
