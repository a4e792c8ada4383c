"""CONTRACT.md section 1: content types, error shape, status precedence, auth
header handling, 415/400/413, ids and timestamps, security headers, CORS."""
import threading
import time

import pytest

from helpers import (JSON_CT, api, assert_error, assert_json, check_id, check_time,
                     http_request_bytes, make_post, raw_connect, raw_exchange, read_response,
                     register)

# every route of sections 3-5 with its methods (uploads aside)
ROUTES = {
    "/api/auth/register": {"POST"},
    "/api/auth/login": {"POST"},
    "/api/auth/logout": {"POST"},
    "/api/users/me": {"GET", "PATCH", "DELETE"},
    "/api/users/{id}": {"GET"},
    "/api/users": {"GET"},
    "/api/posts": {"GET", "POST"},
    "/api/posts/{id}": {"GET", "PATCH", "DELETE"},
    "/api/posts/{id}/like": {"PUT", "DELETE"},
    "/api/posts/{id}/comments": {"GET", "POST"},
    "/api/chats": {"GET", "POST"},
    "/api/chats/{id}": {"GET", "PATCH"},
    "/api/chats/{id}/members": {"POST"},
    "/api/chats/{id}/members/{id}": {"DELETE"},
    "/api/chats/{id}/messages": {"GET", "POST"},
    "/api/chats/{id}/read": {"POST"},
    "/api/auth/password": {"POST"},
    "/api/auth/logout-all": {"POST"},
}
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
ID = "0123456789abcdef01234567"


def concrete(route):
    return route.replace("{id}", ID)


def allow_set(r):
    return {m.strip().upper() for m in r.headers.get("Allow", "").split(",") if m.strip()}


# ---------------------------------------------------------------- 404 / 405 / precedence

@pytest.mark.parametrize("path", ["/nope", "/api", "/api/", "/api/nope", "/api/posts/x/y/z",
                                  "/api/users/me/extra", "/api/chats/%s/unknown" % ID,
                                  "/API/posts", "/api/auth", "/api/auth/register/x",
                                  "/healthzz", "/api/posts/%s/like/x" % ID])
@pytest.mark.parametrize("with_token", [False, True])
def test_unknown_route_404(server, path, with_token):
    tok = register(server)[1] if with_token else None
    for method in ("GET", "POST", "DELETE"):
        assert_error(api(server, method, path, tok), 404, "not_found")


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_wrong_method_405_with_allow_even_without_token(server, route):
    path = concrete(route)
    for method in ALL_METHODS:
        if method in ROUTES[route]:
            continue
        r = api(server, method, path)
        assert_error(r, 405, "method_not_allowed")
        assert ROUTES[route] <= allow_set(r), (route, method, r.headers.get("Allow"))
        assert not (allow_set(r) - ROUTES[route] - {"HEAD", "OPTIONS"}), r.headers.get("Allow")


def test_wrong_method_405_before_validation_with_token(server):
    _, tok = register(server)
    r = api(server, "PUT", "/api/posts", tok, data=b"{not json", headers={"Content-Type": "text/plain"})
    assert_error(r, 405, "method_not_allowed")


@pytest.mark.parametrize("route", sorted(r for r in ROUTES
                                         if r not in ("/api/auth/register", "/api/auth/login")))
def test_every_protected_route_401_without_token(server, route):
    for method in sorted(ROUTES[route]):
        body = None if method in ("GET", "DELETE", "PUT") else {"x": 1}
        assert_error(api(server, method, concrete(route), json=body), 401, "unauthorized")


def test_auth_before_validation(server):
    # invalid body, no token: 401 wins over 400/415/422
    assert_error(api(server, "POST", "/api/posts", json={"text": ""}), 401, "unauthorized")
    assert_error(api(server, "POST", "/api/posts", data=b"{bad json",
                     headers={"Content-Type": "application/json"}), 401, "unauthorized")
    assert_error(api(server, "GET", "/api/posts", params={"limit": "0"}), 401, "unauthorized")
    assert_error(api(server, "GET", "/api/users/not-an-id"), 401, "unauthorized")


def test_malformed_id_404_after_auth(server):
    assert_error(api(server, "GET", "/api/posts/zzz"), 401, "unauthorized")
    _, tok = register(server)
    assert_error(api(server, "GET", "/api/posts/zzz", tok), 404, "not_found")


# ---------------------------------------------------------------- 401 variants

@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Bearer  ", "Basic dXNlcjpwYXNz",
                                    "Token abc", "Bearer not-a-real-token",
                                    "Bearer " + "a" * 64, "Bearer " + "x" * 5000,
                                    "Bearer \u00e9\u00e9".encode("utf-8").decode("latin-1"),
                                    "bearer", "Bearer a b c"])
def test_bad_bearer_401(server, header):
    r = api(server, "GET", "/api/users/me", headers={"Authorization": header})
    assert_error(r, 401, "unauthorized")


def test_valid_token_with_garbage_appended_or_prefix_cut(server):
    _, tok = register(server)
    for bad in (tok + "x", tok[:-1], tok[1:], tok.upper() if tok != tok.upper() else tok + "A",
                "Bearer " + tok):
        r = api(server, "GET", "/api/users/me", headers={"Authorization": "Bearer " + bad})
        assert_error(r, 401, "unauthorized")


def test_token_in_query_is_not_rest_auth(server):
    _, tok = register(server)
    r = api(server, "GET", "/api/users/me", params={"token": tok})
    assert_error(r, 401, "unauthorized")


# ---------------------------------------------------------------- content type, bodies

def test_json_content_type_on_success_and_error(server):
    _, tok = register(server)
    for r in (api(server, "GET", "/api/users/me", tok), api(server, "GET", "/healthz"),
              api(server, "GET", "/readyz"), api(server, "GET", "/nope"),
              api(server, "GET", "/api/users/me"), api(server, "PUT", "/api/users/me")):
        assert r.headers.get("Content-Type") == JSON_CT, (r.url, r.headers.get("Content-Type"))


def test_json_content_type_with_charset_accepted(server):
    _, tok = register(server)
    for ct in ("application/json", "application/json; charset=utf-8",
               "application/json;charset=UTF-8"):
        r = api(server, "POST", "/api/posts", tok, data=b'{"text":"ct"}',
                headers={"Content-Type": ct})
        assert_json(r, 201)


@pytest.mark.parametrize("ct", ["text/plain", "application/x-www-form-urlencoded",
                                "multipart/form-data; boundary=x", "application/jsonx",
                                "application/xml", "json", None])
def test_wrong_content_type_415(server, ct):
    _, tok = register(server)
    headers = {} if ct is None else {"Content-Type": ct}
    # requests adds no Content-Type for raw bytes
    r = api(server, "POST", "/api/posts", tok, data=b'{"text":"x"}', headers=headers)
    assert_error(r, 415, "unsupported_media_type")
    r = api(server, "POST", "/api/auth/register", data=b'{"username":"x"}', headers=headers)
    assert_error(r, 415, "unsupported_media_type")
    r = api(server, "PATCH", "/api/users/me", tok, data=b'{"bio":"x"}', headers=headers)
    assert_error(r, 415, "unsupported_media_type")


@pytest.mark.parametrize("body", [b"{", b"{\"text\":}", b"nul", b"{'text':'x'}", b"{\"text\":\"x\"",
                                  b"{\"text\":\"x\"} trailing", b"[]", b"[{\"text\":\"x\"}]",
                                  b"\"text\"", b"42", b"null", b"true",
                                  b"{\"text\":\"\xff\xfe\"}", b"{\"text\":\"\xc3\x28\"}",
                                  b"{\"text\":\"\xed\xa0\x80\"}",  # UTF-16 surrogate as UTF-8
                                  b"{\"text\":\"\xf8\x88\x80\x80\x80\"}",
                                  b"{\"a\":1,}",
                                  b"{\"text\":\"x\"}\x00"])
def test_invalid_json_400(server, body):
    _, tok = register(server)
    r = api(server, "POST", "/api/posts", tok, data=body,
            headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")


@pytest.mark.parametrize("path,method", [("/api/auth/register", "POST"), ("/api/auth/login", "POST"),
                                         ("/api/posts", "POST"), ("/api/users/me", "PATCH"),
                                         ("/api/chats", "POST")])
def test_empty_body_where_required_400(server, path, method):
    _, tok = register(server)
    r = api(server, method, path, tok, data=b"", headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")
    r = api(server, method, path, tok)  # no body, no Content-Type
    assert_error(r, 400, "invalid_json")


def test_bodiless_routes_ignore_missing_content_type(server):
    _, tok = register(server)
    p = make_post(server, tok)
    r = api(server, "PUT", "/api/posts/%s/like" % p["id"], tok)
    assert_json(r, 200)
    r = api(server, "DELETE", "/api/posts/%s/like" % p["id"], tok)
    assert_json(r, 200)


# ---------------------------------------------------------------- 413

MIB = 1024 * 1024


def _send_big(server, token, total, path="/api/posts", chunk=65536, pace=0.0):
    """Sends a `total`-byte JSON body on a raw socket from a writer thread
    while the main thread reads: returns (response, how, sent_bytes)."""
    filler = total - len(b'{"text":""}')
    body = b'{"text":"' + b"a" * filler + b'"}'
    assert len(body) == total
    headers = {"Content-Type": "application/json", "Content-Length": str(total)}
    if token != "x":
        headers["Authorization"] = "Bearer " + token
    head = http_request_bytes("POST", path, headers, b"")
    s = raw_connect(server, timeout=10)
    sent = [0]

    def writer():
        try:
            s.sendall(head)
            for i in range(0, len(body), chunk):
                s.sendall(body[i:i + chunk])
                sent[0] += len(body[i:i + chunk])
                if pace:
                    time.sleep(pace)
        except OSError:
            pass

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        resp, raw, how = read_response(s, deadline_s=15)
    finally:
        t.join(timeout=15)
        s.close()
    return resp, how, sent[0]


@pytest.mark.parametrize("total", [MIB + 1, 2 * MIB])
def test_payload_too_large_is_readable(server, total):
    _, tok = register(server)
    resp, how, _ = _send_big(server, tok, total)
    assert resp is not None, "no response at all (%s)" % how
    assert how != "reset" or resp.complete, "connection reset before the 413 could be read"
    assert resp.status == 413, resp
    assert resp.complete, "413 body truncated (%s)" % how
    assert resp.headers.get("content-type") == JSON_CT
    body = resp.json()
    assert body["error"]["code"] == "payload_too_large"
    assert set(body["error"]) <= {"code", "message"}


def test_payload_too_large_via_requests(server):
    _, tok = register(server)
    body = b'{"text":"' + b"a" * (2 * MIB) + b'"}'
    try:
        r = api(server, "POST", "/api/posts", tok, data=body,
                headers={"Content-Type": "application/json"}, timeout=20)
    except Exception as e:  # a reset under the client is the bug being tested
        pytest.fail("client could not read the 413: %r" % e)
    assert_error(r, 413, "payload_too_large")


@pytest.mark.parametrize("path,token,codes", [
    ("/api/posts", False, (401, 413)),          # no token: either answer, but readable
    ("/api/nowhere", True, (404, 413)),         # unknown route
    ("/api/users/me", True, (405, 413)),        # wrong method (POST)
    ("/api/auth/register", False, (413,)),
])
def test_early_errors_with_big_body_are_readable(server, path, token, codes):
    """Errors decided before the body is read must still reach the client:
    the server drains or lingers instead of resetting the connection."""
    tok = register(server)[1] if token else "x"
    resp, how, _ = _send_big(server, tok, 2 * MIB, path=path)
    assert resp is not None, "no response (%s)" % how
    assert resp.complete, "response truncated (%s)" % how
    assert resp.status in codes, resp
    assert resp.headers.get("content-type") == JSON_CT


def test_body_of_exactly_one_mib_is_not_413(server):
    _, tok = register(server)
    resp, how, _ = _send_big(server, tok, MIB)
    assert resp is not None and resp.complete, how
    # 1 MiB is allowed; the text is far too long, so validation answers
    assert resp.status == 422, resp
    assert resp.json()["error"]["field"] == "text"


def test_declared_huge_content_length_413_without_sending(server):
    _, tok = register(server)
    req = http_request_bytes("POST", "/api/posts", {"Authorization": "Bearer " + tok,
                                                    "Content-Type": "application/json",
                                                    "Content-Length": str(50 * MIB)}, b"")
    resp, raw, how = raw_exchange(server, req + b'{"text":"', deadline_s=10)
    assert resp is not None, (how, raw[:200])
    assert resp.status == 413 and resp.complete, resp
    assert resp.json()["error"]["code"] == "payload_too_large"


def test_server_fine_after_413(server):
    _, tok = register(server)
    _send_big(server, tok, 2 * MIB)
    assert_json(api(server, "GET", "/api/users/me", tok), 200)


# ---------------------------------------------------------------- ids, times, headers

def test_ids_and_timestamps_format(server):
    user, tok = register(server)
    other, _ = register(server)
    check_id(user["id"])
    check_time(user["createdAt"])
    p = make_post(server, tok)
    check_id(p["id"])
    check_time(p["createdAt"])
    c = assert_json(api(server, "POST", "/api/chats", tok, json={"memberIds": [other["id"]]}), 201)
    check_id(c["id"])
    check_time(c["createdAt"])
    check_time(c["updatedAt"])
    ids = {user["id"], other["id"], p["id"], c["id"]}
    assert len(ids) == 4


def test_timestamps_are_current_utc(server):
    from datetime import datetime, timezone
    _, tok = register(server)
    p = make_post(server, tok)
    t = datetime.strptime(p["createdAt"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    now = datetime.now(timezone.utc)
    assert abs((now - t).total_seconds()) < 60, (p["createdAt"], now)


def test_security_headers(server):
    _, tok = register(server)
    for r in (api(server, "GET", "/api/users/me", tok), api(server, "GET", "/nope"),
              api(server, "GET", "/api/users/me"), api(server, "GET", "/healthz")):
        assert r.headers.get("X-Content-Type-Options") == "nosniff", r.url


def test_no_stack_traces_or_sql_in_errors(server):
    _, tok = register(server)
    for r in (api(server, "GET", "/api/posts/%27%20OR%201=1--", tok),
              api(server, "GET", "/api/users", tok, params={"q": "a'; DROP TABLE users;--"}),
              api(server, "POST", "/api/posts", tok, data=b"{\"text\":", headers={
                  "Content-Type": "application/json"})):
        low = r.text.lower()
        for bad in ("sqlite", "select ", "syntax error", "traceback", "segmentation", ".c:"):
            assert bad not in low, (r.status_code, r.text)


# ---------------------------------------------------------------- CORS

def test_cors_default_any_origin(server):
    _, tok = register(server)
    r = api(server, "GET", "/api/users/me", tok, headers={"Origin": "https://app.example"})
    assert r.status_code == 200
    assert r.headers.get("Access-Control-Allow-Origin") in ("*", "https://app.example")
    r = api(server, "GET", "/api/users/me", headers={"Origin": "https://app.example"})
    assert r.status_code == 401
    assert r.headers.get("Access-Control-Allow-Origin") in ("*", "https://app.example")


def _preflight(server, path, origin="https://app.example", method="POST"):
    return api(server, "OPTIONS", path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type"})


def _csv(v):
    return {x.strip().lower() for x in (v or "").split(",") if x.strip()}


@pytest.mark.parametrize("path,method", [("/api/posts", "POST"), ("/api/users/me", "PATCH"),
                                         ("/api/posts/%s/like" % ID, "PUT"),
                                         ("/api/auth/login", "POST")])
def test_cors_preflight(server, path, method):
    r = _preflight(server, path, method=method)
    assert r.status_code == 204, (r.status_code, r.text)
    assert r.headers.get("Access-Control-Allow-Origin") in ("*", "https://app.example")
    assert method.lower() in _csv(r.headers.get("Access-Control-Allow-Methods"))
    assert {"authorization", "content-type"} <= _csv(r.headers.get("Access-Control-Allow-Headers"))


@pytest.mark.own_server
def test_cors_restricted_origins(start_server):
    srv = start_server(CORS_ORIGINS="https://a.example,https://b.example")
    r = _preflight(srv, "/api/posts", origin="https://a.example")
    assert r.status_code == 204
    assert r.headers.get("Access-Control-Allow-Origin") == "https://a.example"
    assert "post" in _csv(r.headers.get("Access-Control-Allow-Methods"))
    r = _preflight(srv, "/api/posts", origin="https://b.example")
    assert r.headers.get("Access-Control-Allow-Origin") == "https://b.example"
    r = _preflight(srv, "/api/posts", origin="https://evil.example")
    assert r.status_code == 204
    for h in ("Access-Control-Allow-Origin", "Access-Control-Allow-Methods",
              "Access-Control-Allow-Headers", "Access-Control-Allow-Credentials"):
        assert h not in r.headers, (h, r.headers)
    u, tok = register(srv)
    r = api(srv, "GET", "/api/users/me", tok, headers={"Origin": "https://a.example"})
    assert r.headers.get("Access-Control-Allow-Origin") == "https://a.example"
    r = api(srv, "GET", "/api/users/me", tok, headers={"Origin": "https://evil.example"})
    assert r.status_code == 200
    assert "Access-Control-Allow-Origin" not in r.headers
