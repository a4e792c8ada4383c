#!/usr/bin/python3
"""Writes the raw malformed-request corpus: one `<name>.http` file of raw
bytes per case, plus manifest.json with what the server may answer.

Run it after editing CASES; the generated files are committed so the corpus
can be read and replayed by hand (e.g. `nc 127.0.0.1 8080 < x.http`).

Placeholders substituted by test_malformed.py before sending:
  @TOKEN@  a valid bearer token
  @LEN@    the byte length of everything after the first blank line

`expect` lists acceptable outcomes: HTTP status codes, or "close" for a
connection closed without a response.  A crash, a hang past the deadline,
or any other status fails the case; /healthz must answer 200 afterwards.
"""
import json
import os

H = b"Host: 127.0.0.1\r\nConnection: close\r\n"
AUTH = b"Authorization: Bearer @TOKEN@\r\n"
JSONCT = b"Content-Type: application/json\r\n"
CLOSE = "close"
PROTO_ERR = [400, CLOSE]   # a request MHD (or the acceptor) cannot parse


def req(line, headers=b"", body=b"", auth=True, length=True):
    head = line + b"\r\n" + H + (AUTH if auth else b"") + headers
    if body and length:
        head += b"Content-Length: @LEN@\r\n"
    return head + b"\r\n" + body


CASES = [
    # -- request line ---------------------------------------------------
    ("garbage-line", b"HELLO\r\n\r\n", PROTO_ERR + [404, 405, 501, 505]),
    ("method-only", b"GET\r\n\r\n", PROTO_ERR + [505]),
    ("empty-lines", b"\r\n\r\n\r\n\r\n", PROTO_ERR),
    ("http09", b"GET /healthz\r\n\r\n", PROTO_ERR + [505]),
    ("http-9-9", b"GET /healthz HTTP/9.9\r\n" + H + b"\r\n", PROTO_ERR + [505]),
    ("http-1-0-no-host", b"GET /healthz HTTP/1.0\r\n\r\n", [200]),
    ("http-1-1-no-host", b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", [200, 400]),
    ("http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", PROTO_ERR + [404, 405, 505]),
    ("tls-client-hello", bytes.fromhex("16030100a5010000a10303") + bytes(range(64)), PROTO_ERR),
    ("binary-garbage", bytes(range(256)) * 4, PROTO_ERR),
    ("lowercase-method", req(b"get /api/posts HTTP/1.1"), PROTO_ERR + [404, 405, 501]),
    ("garbage-method", req(b"BREW /api/posts HTTP/1.1"), [405, 400, 501]),
    ("method-bad-chars", req(b"G{}T /api/posts HTTP/1.1"), PROTO_ERR + [405, 501]),
    ("trace", req(b"TRACE /api/posts HTTP/1.1"), [405]),
    ("patch-on-posts", req(b"PATCH /api/posts HTTP/1.1"), [405]),
    ("connect", req(b"CONNECT 127.0.0.1:22 HTTP/1.1"), PROTO_ERR + [404, 405, 501]),
    ("asterisk-get", req(b"GET * HTTP/1.1"), PROTO_ERR + [404]),
    ("options-asterisk", req(b"OPTIONS * HTTP/1.1"), PROTO_ERR + [200, 204, 404]),
    ("absolute-uri", req(b"GET http://127.0.0.1/healthz HTTP/1.1"), PROTO_ERR + [200, 404]),
    ("leading-crlf", b"\r\n" + req(b"GET /healthz HTTP/1.1"), PROTO_ERR + [200]),
    ("no-path", req(b"GET  HTTP/1.1"), PROTO_ERR + [404]),
    ("relative-path", req(b"GET healthz HTTP/1.1"), PROTO_ERR + [404]),
    ("double-space", req(b"GET  /healthz  HTTP/1.1"), PROTO_ERR + [200]),
    ("tab-separated", req(b"GET\t/healthz\tHTTP/1.1"), PROTO_ERR + [200]),
    ("lf-only", b"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n", PROTO_ERR + [200]),
    # -- URL --------------------------------------------------------------
    ("nul-in-path", req(b"GET /api/posts/\x00abc HTTP/1.1"), PROTO_ERR + [404]),
    ("raw-invalid-utf8-path", req(b"GET /api/users/\xff\xfe\xfd HTTP/1.1"), PROTO_ERR + [404]),
    ("raw-invalid-utf8-query", req(b"GET /api/users?q=\xff\xfe HTTP/1.1"), PROTO_ERR + [200, 422]),
    ("pct-invalid-utf8-path", req(b"GET /api/users/%ff%fe HTTP/1.1"), [404, 400]),
    ("pct-invalid-utf8-query", req(b"GET /api/users?q=%ff%fe HTTP/1.1"), [200, 400, 422]),
    ("pct-nul-path", req(b"GET /api/posts/%00 HTTP/1.1"), [404, 400]),
    ("pct-nul-query", req(b"GET /api/users?q=ab%00cd HTTP/1.1"), [200, 400, 422]),
    ("pct-bad-zz", req(b"GET /api/users/%zz HTTP/1.1"), [404, 400]),
    ("pct-truncated", req(b"GET /api/users/% HTTP/1.1"), [404, 400]),
    ("pct-truncated2", req(b"GET /api/users/%4 HTTP/1.1"), [404, 400]),
    ("pct-bad-query", req(b"GET /api/posts?limit=%zz HTTP/1.1"), [422, 400]),
    ("pct-slash-id", req(b"GET /api/posts/abc%2fdef HTTP/1.1"), [404, 400]),
    ("dot-segments", req(b"GET /api/../../../etc/passwd HTTP/1.1"), [404, 400]),
    ("dot-segments-pct", req(b"GET /api/%2e%2e/%2e%2e/etc/passwd HTTP/1.1"), [404, 400]),
    ("uploads-traversal", req(b"GET /uploads/../../../../etc/passwd HTTP/1.1"), [404, 400]),
    ("uploads-traversal-pct", req(b"GET /uploads/..%2f..%2f..%2fetc%2fpasswd HTTP/1.1"), [404, 400]),
    ("double-slash", req(b"GET //api//posts HTTP/1.1"), [404, 200, 400]),
    ("query-only-junk", req(b"GET /api/posts?&&&==&limit HTTP/1.1"), [200, 422, 400]),
    ("repeated-limit", req(b"GET /api/posts?limit=5&limit=500 HTTP/1.1"), [200, 422]),
    ("fragment", req(b"GET /healthz#frag HTTP/1.1"), [200, 400, 404]),
    # -- headers ------------------------------------------------------------
    ("header-no-colon", req(b"GET /healthz HTTP/1.1", b"NoColonHere\r\n"), PROTO_ERR + [200]),
    ("header-nul", req(b"GET /healthz HTTP/1.1", b"X-A: a\x00b\r\n"), PROTO_ERR + [200]),
    ("header-obs-fold", req(b"GET /healthz HTTP/1.1", b"X-A: a\r\n folded\r\n"), PROTO_ERR + [200]),
    ("header-space-before-colon", req(b"GET /healthz HTTP/1.1", b"X-A : b\r\n"), PROTO_ERR + [200]),
    ("header-invalid-utf8", req(b"GET /healthz HTTP/1.1", b"X-A: \xff\xfe\r\n"), PROTO_ERR + [200]),
    ("auth-nul", req(b"GET /api/users/me HTTP/1.1", b"Authorization: Bearer ab\x00cd\r\n", auth=False),
     PROTO_ERR + [401]),
    ("auth-invalid-utf8", req(b"GET /api/users/me HTTP/1.1", b"Authorization: Bearer \xff\xfe\r\n",
                              auth=False), PROTO_ERR + [401]),
    ("auth-twice", req(b"GET /api/users/me HTTP/1.1", b"Authorization: Bearer nope\r\n"),
     PROTO_ERR + [200, 401]),
    # -- bodies and framing ---------------------------------------------------
    ("cl-negative", req(b"POST /api/posts HTTP/1.1", JSONCT + b"Content-Length: -1\r\n", length=False),
     PROTO_ERR + [413]),
    ("cl-garbage", req(b"POST /api/posts HTTP/1.1", JSONCT + b"Content-Length: abc\r\n", length=False),
     PROTO_ERR + [413]),
    ("cl-huge-number", req(b"POST /api/posts HTTP/1.1",
                           JSONCT + b"Content-Length: 99999999999999999999999999\r\n", length=False),
     PROTO_ERR + [413]),
    ("cl-two-different", req(b"POST /api/posts HTTP/1.1",
                             JSONCT + b"Content-Length: 12\r\nContent-Length: 3\r\n",
                             b'{"text":"x"}', length=False), PROTO_ERR + [201]),
    ("cl-and-chunked", req(b"POST /api/posts HTTP/1.1",
                           JSONCT + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                           b'c\r\n{"text":"x"}\r\n0\r\n\r\n', length=False), PROTO_ERR + [201]),
    ("chunked-ok", req(b"POST /api/posts HTTP/1.1", JSONCT + b"Transfer-Encoding: chunked\r\n",
                       b'c\r\n{"text":"x"}\r\n0\r\n\r\n', length=False), [201, 411]),
    ("chunked-bad-size", req(b"POST /api/posts HTTP/1.1", JSONCT + b"Transfer-Encoding: chunked\r\n",
                             b'zz\r\n{"text":"x"}\r\n0\r\n\r\n', length=False), PROTO_ERR + [411]),
    ("chunked-unknown-te", req(b"POST /api/posts HTTP/1.1", JSONCT + b"Transfer-Encoding: gzip\r\n",
                               b'{"text":"x"}', length=False), PROTO_ERR + [411, 501, 415]),
    ("body-nul-raw", req(b"POST /api/posts HTTP/1.1", JSONCT, b'{"text":"a\x00b"}'), [400]),
    ("body-nul-escaped", req(b"POST /api/posts HTTP/1.1", JSONCT, b'{"text":"a\\u0000b"}'), [422]),
    ("body-lone-surrogate", req(b"POST /api/posts HTTP/1.1", JSONCT, b'{"text":"\\ud800"}'), [400, 422]),
    ("body-invalid-utf8", req(b"POST /api/posts HTTP/1.1", JSONCT, b'{"text":"\xc0\xaf"}'), [400]),
    ("body-utf16", req(b"POST /api/posts HTTP/1.1", JSONCT, '{"text":"x"}'.encode("utf-16")), [400]),
    ("body-bom", req(b"POST /api/posts HTTP/1.1", JSONCT, b'\xef\xbb\xbf{"text":"bom"}'), [400, 201]),
    ("body-dup-keys", req(b"POST /api/posts HTTP/1.1", JSONCT, b'{"text":"a","text":"b"}'), [400, 201, 422]),
    ("body-big-number", req(b"POST /api/chats HTTP/1.1", JSONCT, b'{"memberIds":[1e999999]}'), [400, 422]),
    ("body-huge-int", req(b"POST /api/posts HTTP/1.1", JSONCT, b'{"text":123456789012345678901234567890}'),
     [400, 422]),
    ("body-on-get", req(b"GET /api/users/me HTTP/1.1", JSONCT, b'{"x":1}'), [200]),
    ("expect-100-huge", req(b"POST /api/posts HTTP/1.1",
                            JSONCT + b"Expect: 100-continue\r\nContent-Length: 104857600\r\n",
                            length=False), [413]),
    ("expect-unknown", req(b"POST /api/posts HTTP/1.1", JSONCT + b"Expect: teapot\r\n",
                           b'{"text":"x"}'), [417, 201, 400]),
    ("form-body", req(b"POST /api/auth/login HTTP/1.1",
                      b"Content-Type: application/x-www-form-urlencoded\r\n",
                      b"email=a&password=b", auth=False), [415]),
    # -- WebSocket upgrades that are not for /ws -----------------------------
    ("ws-upgrade-unknown-path", req(b"GET /nope HTTP/1.1",
                                    b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                    b"Sec-WebSocket-Version: 13\r\n", auth=False), [404, 400, CLOSE]),
    ("ws-upgrade-api-path", req(b"GET /api/posts HTTP/1.1",
                                b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                b"Sec-WebSocket-Version: 13\r\n"), [200, 400, 404, 426, CLOSE]),
    ("ws-upgrade-bad-version", req(b"GET /ws HTTP/1.1",
                                   b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                   b"Sec-WebSocket-Version: 99\r\n", auth=False),
     # RFC 6455 4.4 wants 426; libwebsockets 4.1.6 ignores the version and upgrades
     [400, 426, 403, 404, CLOSE, 101]),
    ("ws-upgrade-no-key", req(b"GET /ws HTTP/1.1", b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                              b"Sec-WebSocket-Version: 13\r\n", auth=False),
     [400, 426, 403, 404, CLOSE]),
    ("ws-path-plain-get", req(b"GET /ws HTTP/1.1", auth=False), [400, 403, 404, 426, CLOSE]),
]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    raw = os.path.join(here, "raw")
    os.makedirs(raw, exist_ok=True)
    for f in os.listdir(raw):
        if f.endswith(".http"):
            os.unlink(os.path.join(raw, f))
    manifest = {}
    for i, (name, data, expect) in enumerate(CASES):
        fname = "%03d-%s.http" % (i, name)
        with open(os.path.join(raw, fname), "wb") as f:
            f.write(data)
        manifest[fname] = {"expect": expect}
    with open(os.path.join(here, "manifest.json"), "w") as f:
        f.write("{\n")
        f.write(",\n".join(' %s: %s' % (json.dumps(k), json.dumps(manifest[k]))
                             for k in sorted(manifest)))
        f.write("\n}\n")


if __name__ == "__main__":
    main()
