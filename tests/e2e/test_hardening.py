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


# ---- defects 4 and 9: strict HTTP/1.1 on every request of a connection -----

def read_all(sock, deadline_s=5.0):
    """Every byte until EOF (or reset, or the deadline): (bytes, how)."""
    buf = b""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return buf, "timeout"
        except ConnectionResetError:
            return buf, "reset"
        if not chunk:
            return buf, "eof"
        buf += chunk
    return buf, "timeout"


def responses(raw):
    """The status lines of the responses in `raw`, in order."""
    return [int(line.split(b" ")[1]) for line in raw.split(b"\r\n")
            if line.startswith(b"HTTP/1.")]


BAD_HEADS = {
    "two_content_length": b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                          b"Content-Length: 9\r\nContent-Type: application/json\r\n\r\n{}",
    "cl_and_te": b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_gzip_chunked": b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\n"
                       b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "te_gzip": b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    "space_before_colon": b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length : 27\r\n\r\n"
                          b"GET /healthz HTTP/1.1\r\n\r\n",
    "non_token_name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad(Name): v\r\n\r\n",
    "nul_in_value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nX-B: c\r\n\r\n",
    "nul_in_last_value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00bc\r\n\r\n",
    "ctl_in_value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "no_host": b"GET /healthz HTTP/1.1\r\n\r\n",
    "two_hosts": b"GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    "tab_in_request_line": b"GET\t/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(BAD_HEADS))
def test_issue8_strict_head_first_request(server, case):
    s = raw_connect(server)
    try:
        s.sendall(BAD_HEADS[case])
        raw, how = read_all(s)
    finally:
        s.close()
    assert how == "eof", (case, how, raw[:300])
    assert responses(raw) == [400], (case, raw[:400])
    assert b'"code":"bad_request"' in raw, raw[:400]


@pytest.mark.parametrize("case", sorted(BAD_HEADS))
def test_issue8_strict_head_keepalive_request(server, case):
    """The same heads as the second request of a keep-alive connection:
    400 and the connection closed, and nothing of the head served."""
    s = raw_connect(server)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first, _, _ = read_response(s)
        assert first.status == 200
        s.sendall(BAD_HEADS[case])
        raw, how = read_all(s)
    finally:
        s.close()
    assert how in ("eof", "reset"), (case, how, raw[:300])
    assert responses(raw) == [400], (case, raw[:400])


def test_issue8_chunk_extension_100k_is_4xx(server):
    s = raw_connect(server)
    try:
        s.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n2;" + b"e" * 100 * 1024 + b"\r\n{}\r\n0\r\n\r\n")
        raw, how = read_all(s)
    except (ConnectionResetError, BrokenPipeError):
        raw, how = b"", "reset"
    finally:
        s.close()
    st = responses(raw)
    assert st and st[0] in (400, 431), (how, raw[:300])


def test_issue8_te_gzip_then_eof_is_answered(server):
    s = raw_connect(server)
    try:
        s.sendall(b"POST /api/posts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        raw, how = read_all(s)
    finally:
        s.close()
    assert responses(raw) == [400], raw[:300]


# ---- defect 5 (handshake): WebSocket upgrade acceptance ---------------------

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def upgrade(server, version="HTTP/1.1", headers=None):
    h = {"Host": "x", "Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": KEY}
    h.update(headers or {})
    lines = ["GET /ws %s" % version]
    for k, v in h.items():
        for one in (v if isinstance(v, list) else [v]):
            if one is not None:
                lines.append("%s: %s" % (k, one))
    s = raw_connect(server)
    try:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        r, raw, how = read_response(s, 5.0)
    finally:
        s.close()
    return r


@pytest.mark.parametrize("headers,version,status", [
    ({}, "HTTP/1.1", 101),
    ({"Sec-WebSocket-Version": "12"}, "HTTP/1.1", 426),
    ({"Sec-WebSocket-Version": "99999999"}, "HTTP/1.1", 426),
    ({"Sec-WebSocket-Version": None}, "HTTP/1.1", 400),
    ({"Sec-WebSocket-Key": None}, "HTTP/1.1", 400),
    ({"Sec-WebSocket-Key": "c2hvcnQ="}, "HTTP/1.1", 400),
    ({"Sec-WebSocket-Key": [KEY, KEY]}, "HTTP/1.1", 400),
    ({"Connection": None}, "HTTP/1.1", 400),
    ({}, "HTTP/1.0", 400),
])
def test_issue8_ws_handshake(server, headers, version, status):
    r = upgrade(server, version, headers)
    assert r is not None and r.status == status, (headers, version, r)
    if status == 426:
        assert r.headers.get("sec-websocket-version") == "13"
    if status != 101:
        assert b"bad_request" in r.body


# ---- defect 3: slow clients -----------------------------------------------

def trickle_until_closed(s, pieces, every_s):
    """Sends `pieces` one by one, `every_s` apart; returns how many were sent
    before the server closed the connection (len(pieces) if it never did)."""
    for i, p in enumerate(pieces):
        try:
            s.sendall(p)
        except (BrokenPipeError, ConnectionResetError):
            return i
        s.settimeout(every_s)
        try:
            data = s.recv(4096)
            if data == b"" or data.startswith(b"HTTP/1.1 "):
                return i + 1
        except socket.timeout:
            pass
        except ConnectionResetError:
            return i + 1
    return len(pieces)


def test_issue8_head_deadline_on_keepalive_request(start_server):
    """A keep-alive request whose header lines trickle in (one every 0.5 s)
    is cut at REQUEST_HEAD_TIMEOUT_S, not kept while bytes keep coming."""
    srv = start_server(REQUEST_HEAD_TIMEOUT_S=1)
    s = raw_connect(srv)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        r, _, _ = read_response(s)
        assert r.status == 200
        pieces = [b"GET /healthz HTTP/1.1\r\nHost: x\r\n"] + [b"X-Slow-%d: 1\r\n" % i
                                                            for i in range(30)]
        sent = trickle_until_closed(s, pieces, 0.5)
    finally:
        s.close()
    assert sent < len(pieces), "the connection outlived 30 header lines at 0.5 s each"


def test_issue8_body_deadline(start_server):
    srv = start_server(REQUEST_BODY_TIMEOUT_S=1)
    s = raw_connect(srv)
    try:
        s.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 40\r\n\r\n")
        sent = trickle_until_closed(s, [b" "] * 30, 0.5)
    finally:
        s.close()
    assert sent < 30, "a body trickling one byte per 0.5 s was never cut"


def test_issue8_deadlines_do_not_cut_normal_keepalive(start_server):
    srv = start_server(REQUEST_HEAD_TIMEOUT_S=1, REQUEST_BODY_TIMEOUT_S=1)
    s = raw_connect(srv)
    try:
        for _ in range(3):            # idle between requests is not a head
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            r, _, _ = read_response(s)
            assert r.status == 200
            time.sleep(1.5)
    finally:
        s.close()


# ---- defect 10: password hashing parameters --------------------------------

def test_issue8_weak_pwhash_warns_and_login_rehashes(start_server):
    srv = start_server(LOG_LEVEL="info")              # e2e runs Argon2id at its minimum
    assert "below libsodium's interactive limits" in srv.stdout_text()
    user, _ = register(srv)
    assert srv.stop() == 0
    # stronger parameters: the first login rehashes, the next ones do not
    srv.start(PWHASH_OPSLIMIT=2, PWHASH_MEMLIMIT=16384)
    for _ in range(3):
        assert login(srv, user["username"], PASSWORD).status_code == 200
    assert login(srv, user["username"], "wrong password!").status_code == 401
    out = srv.stdout_text()
    assert out.count("rehashed user %s's password" % user["id"]) == 1, out[-2000:]
    assert "below libsodium's interactive limits" in out    # still under 64 MiB / 2
    assert srv.stop() == 0
    # and the new hash is what is stored: it verifies after another restart
    srv.start(PWHASH_OPSLIMIT=2, PWHASH_MEMLIMIT=16384)
    assert login(srv, user["username"], PASSWORD).status_code == 200
    assert "rehashed" not in srv.stdout_text()
