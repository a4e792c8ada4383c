"""Malformed input: every broken request gets the right code or a clean close,
and the server stays up.  Runs against its own instance (module-scoped) so a
crash here does not take the rest of the suite down with it.

Raw-socket cases live in corpus/ (see corpus/generate.py); the JSON-level
tables (wrong types, huge strings, deep nesting, bad ids) are built below."""
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import _LIVE_SERVERS, ServerProcess, _check_binary, sanitizer_report
from helpers import (parse_response, api, assert_error, assert_json, fake_id, healthy, make_chat, make_post,
                     raw_connect, read_response, register, send_msg, unique_name, PASSWORD)

CORPUS = Path(__file__).resolve().parent / "corpus"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
MIB = 1024 * 1024

# statuses our router produces carry the JSON error body; protocol-level ones
# (from the HTTP library before routing) may not
ROUTER_ERRORS = {401, 403, 404, 405, 413, 415, 422, 429}


@pytest.fixture(scope="module")
def msrv(session_tmp):
    _check_binary()
    srv = ServerProcess(session_tmp / "malformed", name="malformed-server")
    srv.start()
    _LIVE_SERVERS.append(srv)
    yield srv
    _LIVE_SERVERS.remove(srv)
    code = srv.stop()
    report = sanitizer_report(srv)
    assert report is None, "sanitizer report:\n" + report
    assert code == 0, "malformed-input server exited %s on SIGTERM" % code


@pytest.fixture(scope="module")
def world(msrv):
    a, ta = register(msrv)
    b, tb = register(msrv)
    post = make_post(msrv, ta, "target")
    chat = make_chat(msrv, ta, [b["id"]], name="grp")
    msg = send_msg(msrv, ta, chat["id"], "hello")
    return dict(a=a, ta=ta, b=b, tb=tb, post=post, chat=chat, msg=msg)


def still_up(srv):
    assert srv.alive(), "server process died (exit %s)" % srv.proc.returncode
    assert healthy(srv), "/healthz not 200 after the case"


# ---------------------------------------------------------------- raw corpus

def _materialize(data, token):
    data = data.replace(b"@TOKEN@", token.encode())
    if b"@LEN@" in data:
        head, sep, body = data.partition(b"\r\n\r\n")
        data = head.replace(b"@LEN@", str(len(body)).encode()) + sep + body
    return data


def exchange(srv, data, phase_s=2.5):
    """Sends raw bytes and reads one response.  If nothing comes back within
    `phase_s`, half-closes our side (no more bytes will come, so a parser
    waiting for more must decide) and waits once more.  Returns
    (RawResponse|None, raw bytes, how)."""
    s = raw_connect(srv)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass
        resp, raw, how = read_response(s, deadline_s=phase_s)
        if how == "timeout" and (resp is None or not resp.complete):
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            resp2, raw2, how = read_response(s, deadline_s=phase_s)
            raw = raw + raw2
            resp = parse_response(raw)
        return resp, raw, how
    finally:
        s.close()


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_raw_corpus(msrv, world, name):
    expect = MANIFEST[name]["expect"]
    data = _materialize((CORPUS / "raw" / name).read_bytes(), world["ta"])
    resp, raw, how = exchange(msrv, data)
    if resp is not None:
        assert resp.status in expect, "%s: got %d, expected one of %s\n%r" % (
            name, resp.status, expect, raw[:400])
        assert resp.status != 101 or 101 in expect
        # one well-formed response: the body is not another status line + headers
        assert not resp.body.startswith(b"HTTP/"), "%s: malformed response, header block " \
            "sent twice:\n%r" % (name, raw[:600])
        if resp.status in ROUTER_ERRORS:
            assert resp.headers.get("content-type") == "application/json; charset=utf-8", resp.headers
            err = resp.json()["error"]
            assert isinstance(err["code"], str) and err["message"]
        assert b"root:" not in resp.body, "file contents leaked"
    else:
        assert how != "timeout", "%s: no answer and no close within 5 s" % name
        assert not raw, "%s: unparseable answer %r" % (name, raw[:200])
        assert "close" in expect, "%s: closed without a response, expected %s" % (name, expect)
    still_up(msrv)


def test_raw_long_url(msrv, world):
    for n in (8 * 1024, 100 * 1024):
        path = "/api/posts/" + "a" * n
        data = ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer %s\r\n\r\n"
                % (path, world["ta"])).encode()
        resp, raw, how = exchange(msrv, data)
        if resp is not None:
            assert resp.status in (404, 414, 431, 400, 413), (n, resp)
            assert not resp.body.startswith(b"HTTP/"), raw[:600]
        else:
            assert how in ("eof", "reset"), (n, how)
        still_up(msrv)


def test_raw_long_and_many_headers(msrv):
    cases = [
        b"X-Long: " + b"v" * (100 * 1024) + b"\r\n",
        b"Authorization: Bearer " + b"t" * (64 * 1024) + b"\r\n",
        b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(3000)),
        b"Cookie: " + b"c=1; " * 20000 + b"\r\n",
    ]
    for extra in cases:
        data = b"GET /api/users/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra + b"\r\n"
        resp, raw, how = exchange(msrv, data)
        if resp is not None:
            assert resp.status in (400, 401, 413, 414, 431), resp
            assert not resp.body.startswith(b"HTTP/"), raw[:600]
        else:
            assert how in ("eof", "reset"), how
        still_up(msrv)


@pytest.mark.slow
@pytest.mark.parametrize("declared,sent", [(100, 10), (5000, 0), (MIB, 1000)])
def test_truncated_body_times_out_or_answers(msrv, world, declared, sent):
    """Content-Length larger than what is sent: the server may wait (then
    time out) or answer, but never crash; it keeps serving others meanwhile."""
    head = ("POST /api/posts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (world["ta"], declared)).encode()
    s = raw_connect(msrv)
    try:
        s.sendall(head + (b'{"text":"' + b"a" * sent)[:sent])
        # others are served while this request is stuck
        assert healthy(msrv)
        assert_json(api(msrv, "GET", "/api/users/me", world["ta"]), 200)
        resp, raw, how = read_response(s, deadline_s=3)
        if resp is not None:
            assert resp.status in (400, 408, 413), resp
    finally:
        s.close()
    still_up(msrv)


@pytest.mark.slow
def test_many_idle_half_requests_do_not_block_service(msrv):
    socks = []
    try:
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", msrv.port), timeout=5)
            s.sendall(b"GET /heal" if i % 2 else b"")
            socks.append(s)
        t = time.monotonic()
        assert healthy(msrv, timeout=5), "server stopped serving with idle sockets open"
        assert time.monotonic() - t < 3
    finally:
        for s in socks:
            s.close()
    still_up(msrv)


def test_abrupt_disconnects_mid_request(msrv, world):
    body = json.dumps({"text": "x" * 50000}).encode()
    for cut in (5, 40, 200, len(body) // 2):
        s = raw_connect(msrv)
        req = ("POST /api/posts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % (world["ta"], len(body))).encode() + body
        s.sendall(req[:cut])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST
    time.sleep(0.2)
    still_up(msrv)


def test_pipelined_requests(msrv):
    one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    s = raw_connect(msrv)
    try:
        s.sendall(one * 5 + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    assert data.count(b"HTTP/1.1 200") == 6, data[:500]
    still_up(msrv)


def test_chunked_body_over_limit_is_413(msrv, world):
    head = ("POST /api/posts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            % world["ta"]).encode()
    chunk = b"a" * 65536
    s = raw_connect(msrv, timeout=10)
    result = {}

    def writer():
        try:
            s.sendall(head + b'9\r\n{"text":"\r\n')
            for _ in range(40):  # 2.5 MiB
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            s.sendall(b'2\r\n"}\r\n0\r\n\r\n')
        except OSError as e:
            result["e"] = e

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        resp, raw, how = read_response(s, deadline_s=15)
    finally:
        t.join(15)
        s.close()
    assert resp is not None and resp.complete, (how, raw[:200])
    assert resp.status == 413, resp
    assert resp.json()["error"]["code"] == "payload_too_large"
    still_up(msrv)


# ---------------------------------------------------------------- JSON-level tables

def body_endpoints(w):
    """(method, path, token, valid body factory, string fields, nullable/optional fields)."""
    def reg_body():
        n = unique_name("m")
        return {"username": n, "email": n.lower() + "@example.com", "password": PASSWORD,
                "displayName": "M"}
    cid, pid = w["chat"]["id"], w["post"]["id"]
    return [
        ("POST", "/api/auth/register", None, reg_body,
         ["username", "email", "password", "displayName"], []),
        ("POST", "/api/auth/login", None, lambda: {"email": w["a"]["email"], "password": PASSWORD},
         ["email", "password"], []),
        ("PATCH", "/api/users/me", w["tb"], lambda: {"displayName": "D", "bio": "B",
                                                      "avatarUrl": "https://x.example/a.png"},
         ["displayName", "bio", "avatarUrl"], ["avatarUrl"]),
        ("POST", "/api/posts", w["ta"], lambda: {"text": "t", "imageUrl": "https://x.example/i.png"},
         ["text", "imageUrl"], ["imageUrl"]),
        ("POST", "/api/posts/%s/comments" % pid, w["ta"], lambda: {"text": "c"}, ["text"], []),
        ("POST", "/api/chats", w["ta"], lambda: {"memberIds": [w["b"]["id"]], "name": "n"},
         ["name"], ["name"]),
        ("POST", "/api/chats/%s/members" % cid, w["ta"], lambda: {"userId": w["b"]["id"]},
         ["userId"], []),
        ("POST", "/api/chats/%s/messages" % cid, w["ta"],
         lambda: {"text": "m", "attachmentUrl": "https://x.example/f.png",
                  "clientId": "cid-" + fake_id()},
         ["text", "attachmentUrl", "clientId"], ["attachmentUrl", "clientId"]),
        ("POST", "/api/chats/%s/read" % cid, w["ta"], lambda: {"messageId": w["msg"]["id"]},
         ["messageId"], []),
    ]


WRONG_TYPES = [5, -1, 1.5, True, False, [], ["x"], {}, {"a": "b"}]


def test_valid_bodies_are_accepted(msrv, world):
    """Sanity for the tables below: each base body is valid as is."""
    for method, path, tok, mk, _, _ in body_endpoints(world):
        r = api(msrv, method, path, tok, json=mk())
        assert r.status_code in (200, 201, 204), (path, r.status_code, r.text)


def test_wrong_types_for_every_field(msrv, world):
    failures = []
    for method, path, tok, mk, fields, nullable in body_endpoints(world):
        all_fields = list(mk().keys())
        for field in all_fields:
            values = list(WRONG_TYPES)
            # null is a wrong type only where it cannot mean "unset": optional
            # fields, bio (null clears it) and text beside an image/attachment
            # (then text may be empty) are left out
            if field not in nullable and field not in ("displayName", "bio") and not (
                    field == "text" and len(all_fields) > 1):
                values.append(None)
            if field == "memberIds":
                values = [5, "x", True, {}, None, [5], [None], [[]], [{}]]
            for v in values:
                body = mk()
                body[field] = v
                r = api(msrv, method, path, tok, json=body)
                ok = (r.status_code == 422 and r.headers.get("Content-Type", "").startswith(
                    "application/json") and r.json()["error"].get("field") == field
                    and r.json()["error"]["code"] == "validation_failed")
                if not ok:
                    failures.append("%s %s %s=%r -> %d %s" % (method, path, field, v,
                                                            r.status_code, r.text[:150]))
    still_up(msrv)
    assert not failures, "\n".join(failures)


def test_unknown_fields_are_ignored(msrv, world):
    failures = []
    for method, path, tok, mk, fields, nullable in body_endpoints(world):
        body = mk()
        body["zzUnknown"] = {"deep": [1, 2, 3]}
        r = api(msrv, method, path, tok, json=body)
        if r.status_code not in (200, 201, 204):
            failures.append("extra field: %s %s -> %d %s" % (method, path, r.status_code, r.text[:150]))
    assert not failures, "\n".join(failures)
    still_up(msrv)


def test_nul_and_huge_strings_in_every_string_field(msrv, world):
    failures = []
    huge = "h" * (900 * 1024)  # under 1 MiB with the rest of the body
    for method, path, tok, mk, fields, nullable in body_endpoints(world):
        for field in fields:
            for label, v in (("nul", "ab\u0000cd"), ("huge", huge)):
                body = mk()
                body[field] = v
                r = api(msrv, method, path, tok, json=body, timeout=30)
                if path.endswith("/auth/login"):
                    good = r.status_code in (401, 422)
                elif label == "huge" and field in ("name", "clientId"):
                    good = r.status_code in (201, 422)   # bound not fixed by the contract
                else:
                    good = (r.status_code == 422 and r.json()["error"].get("field") == field)
                if not good:
                    failures.append("%s %s %s=%s -> %d %s" % (method, path, field, label,
                                                            r.status_code, r.text[:150]))
    still_up(msrv)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("shape", ["array", "object", "in-field", "mixed"])
def test_deeply_nested_json(msrv, world, shape):
    depth = 10000
    if shape == "array":
        body = "[" * depth + "]" * depth
    elif shape == "object":
        body = '{"a":' * depth + "1" + "}" * depth
    elif shape == "in-field":
        body = '{"text":' + "[" * depth + "]" * depth + "}"
    else:
        body = '{"text":' + '[{"a":' * (depth // 2) + "1" + "}]" * (depth // 2) + "}"
    r = api(msrv, "POST", "/api/posts", world["ta"], data=body.encode(),
            headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422), (r.status_code, r.text[:200])
    if r.status_code == 400:
        assert_error(r, 400, "invalid_json")
    elif shape != "array":
        assert_error(r, 422, "validation_failed", "text")
    still_up(msrv)


def test_unclosed_deep_nesting(msrv, world):
    r = api(msrv, "POST", "/api/posts", world["ta"], data=b"[" * 200000,
            headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")
    still_up(msrv)


BAD_IDS = ["x", "0" * 23, "0" * 25, "g" * 24, "A" * 24, "%00", "%ff", "%2e%2e", "'%20OR%201=1--",
           "0x" + "0" * 22, "%20" * 24, "-1", "null", "undefined", "%7B%7D", "a%2Fb",
           "0" * 2000, "%C3%A9" * 12]

ID_ROUTES = [
    ("GET", "/api/users/{id}"),
    ("GET", "/api/posts/{id}"), ("DELETE", "/api/posts/{id}"),
    ("PUT", "/api/posts/{id}/like"), ("DELETE", "/api/posts/{id}/like"),
    ("GET", "/api/posts/{id}/comments"), ("POST", "/api/posts/{id}/comments"),
    ("GET", "/api/chats/{id}"), ("POST", "/api/chats/{id}/members"),
    ("DELETE", "/api/chats/{id}/members/{uid}"),
    ("GET", "/api/chats/{id}/messages"), ("POST", "/api/chats/{id}/messages"),
    ("POST", "/api/chats/{id}/read"),
]


def test_bad_ids_in_every_path(msrv, world):
    failures = []
    bodies = {"comments": {"text": "x"}, "members": {"userId": world["b"]["id"]},
              "messages": {"text": "x"}, "read": {"messageId": world["msg"]["id"]}}
    for method, tmpl in ID_ROUTES:
        body = None
        if method == "POST":
            body = bodies[tmpl.rsplit("/", 1)[-1]]
        for bad in BAD_IDS:
            paths = [tmpl.replace("{id}", bad).replace("{uid}", world["a"]["id"])]
            if "{uid}" in tmpl:
                paths.append(tmpl.replace("{id}", world["chat"]["id"]).replace("{uid}", bad))
            for path in paths:
                r = api(msrv, method, path, world["ta"], json=body)
                if r.status_code != 404 or r.json().get("error", {}).get("code") != "not_found":
                    failures.append("%s %s -> %d %s" % (method, path[:80], r.status_code, r.text[:120]))
    still_up(msrv)
    assert not failures, "\n".join(failures)


def test_bad_ids_in_bodies(msrv, world):
    cid = world["chat"]["id"]
    failures = []
    for bad in ["x", "0" * 23, "A" * 24, "g" * 24, "", " " * 24, "\u00e9" * 24, fake_id()]:
        for method, path, body, field in (
                ("POST", "/api/chats", {"memberIds": [bad]}, "memberIds"),
                ("POST", "/api/chats/%s/members" % cid, {"userId": bad}, "userId"),
                ("POST", "/api/chats/%s/read" % cid, {"messageId": bad}, "messageId")):
            r = api(msrv, method, path, world["ta"], json=body)
            if not (r.status_code == 422 and r.json()["error"].get("field") == field):
                failures.append("%s %s %r -> %d %s" % (method, path, body, r.status_code, r.text[:120]))
    for bad in ["x", "0" * 23, "A" * 24, "g" * 24, "", " " * 24, "\u00e9" * 24, "0" * 25]:
        r = api(msrv, "GET", "/api/posts", world["ta"], params={"author": bad})
        if not (r.status_code == 422 and r.json()["error"].get("field") == "author"):
            failures.append("author=%r -> %d %s" % (bad, r.status_code, r.text[:120]))
    still_up(msrv)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("method", ["PATCH", "TRACE", "BREW", "PROPFIND", "SEARCH"])
def test_unknown_methods_on_known_routes(msrv, method):
    r = api(msrv, method, "/api/posts")
    if method in ("PATCH", "TRACE"):
        assert_error(r, 405, "method_not_allowed")
        assert "GET" in r.headers.get("Allow", "") and "POST" in r.headers.get("Allow", "")
    else:
        assert r.status_code in (405, 400, 501), r.status_code
    r = api(msrv, method, "/api/nowhere")
    assert r.status_code in (404, 400, 501), r.status_code
    if method in ("PATCH", "TRACE"):
        assert_error(r, 404, "not_found")
    still_up(msrv)


def test_server_clean_at_the_end(msrv):
    still_up(msrv)
    report = sanitizer_report(msrv)
    assert report is None, "sanitizer/crash report on stderr:\n" + report
