"""Client-side helpers for the e2e suite: HTTP calls, unique users, raw
sockets, and assertions for the contract's shapes (CONTRACT.md sections 1-2)."""
import itertools
import json as jsonlib
import os
import re
import socket
import threading
import time
import uuid

import requests

import openapi_check

ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ID_RE = re.compile(r"^[0-9a-f]{24}$")
JSON_CT = "application/json; charset=utf-8"
PASSWORD = "correct horse battery"

USER_KEYS = {"id", "username", "displayName", "bio", "avatarUrl", "createdAt"}
AUTHOR_KEYS = {"id", "username", "displayName", "avatarUrl"}
POST_KEYS = {"id", "author", "text", "imageUrl", "likeCount", "commentCount", "likedByMe", "createdAt",
             "editedAt"}
COMMENT_KEYS = {"id", "postId", "author", "text", "createdAt"}
CHAT_KEYS = {"id", "type", "name", "members", "lastMessage", "unreadCount", "lastSeq",
             "createdAt", "updatedAt"}
MESSAGE_KEYS = {"id", "chatId", "seq", "sender", "text", "attachmentUrl", "clientId", "createdAt",
                "editedAt", "deleted"}

_counter = itertools.count(1)
_run = uuid.uuid4().hex[:6]
_tls = threading.local()


def unique_name(prefix="u"):
    """A fresh valid username (3..32 of [A-Za-z0-9_]), unique across runs."""
    return "%s%s_%d" % (prefix, _run, next(_counter))


def _session():
    s = getattr(_tls, "session", None)
    if s is None:
        s = requests.Session()
        _tls.session = s
    return s


def api(server, method, path, token=None, json=None, data=None, headers=None,
        params=None, timeout=15, **kw):
    """One request to the server; returns the requests.Response.  `json` is
    serialized by requests (Content-Type application/json); `data` is sent raw."""
    h = {}
    if token is not None:
        h["Authorization"] = "Bearer " + token
    if headers:
        h.update(headers)
    url = path if path.startswith("http") else server.url + path
    return _session().request(method, url, json=json, data=data, headers=h,
                              params=params, timeout=timeout, **kw)


def register(server, username=None, email=None, password=PASSWORD, display_name=None,
             expect=201):
    """Registers a fresh user; returns (user, token)."""
    username = username or unique_name()
    body = {"username": username, "email": email or (username.lower() + "@example.com"),
            "password": password}
    if display_name is not None:
        body["displayName"] = display_name
    r = api(server, "POST", "/api/auth/register", json=body)
    assert r.status_code == expect, "register %s: %d %s" % (username, r.status_code, r.text)
    j = r.json()
    return j["user"], j["token"]


def users(server, n):
    return [register(server) for _ in range(n)]


# ---------------------------------------------------------------------------
# assertions

def assert_json(r, status):
    assert r.status_code == status, "expected %d, got %d: %s" % (status, r.status_code, r.text[:500])
    assert r.headers.get("Content-Type") == JSON_CT, r.headers.get("Content-Type")
    return r.json()


def assert_error(r, status, code, field=None):
    """The contract's error body: {"error":{"code","message","field"?}}; field
    only for validation errors."""
    assert r.status_code == status, "expected %d %s, got %d: %s" % (
        status, code, r.status_code, r.text[:500])
    assert r.headers.get("Content-Type") == JSON_CT, r.headers.get("Content-Type")
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err.get("code") == code, body
    assert isinstance(err.get("message"), str) and err["message"], body
    assert set(err) <= {"code", "message", "field"}, body
    if field is not None:
        assert err.get("field") == field, body
    elif status != 422:
        assert "field" not in err, body
    if status == 422:
        assert isinstance(err.get("field"), str) and err["field"], body
    return err


def check_time(v):
    assert isinstance(v, str) and ISO_RE.match(v), v


def check_id(v):
    assert isinstance(v, str) and ID_RE.match(v), v


def check_user(u, own=False):
    keys = USER_KEYS | ({"email"} if own else set())
    assert set(u) == keys, u
    check_id(u["id"])
    check_time(u["createdAt"])
    assert isinstance(u["username"], str)
    assert isinstance(u["displayName"], str)
    assert isinstance(u["bio"], str)
    assert u["avatarUrl"] is None or isinstance(u["avatarUrl"], str)
    if own:
        assert isinstance(u["email"], str)


def check_author(a):
    assert set(a) == AUTHOR_KEYS, a
    check_id(a["id"])


def check_post(p):
    assert set(p) == POST_KEYS, p
    check_id(p["id"])
    check_author(p["author"])
    check_time(p["createdAt"])
    assert isinstance(p["text"], str)
    assert p["imageUrl"] is None or isinstance(p["imageUrl"], str)
    assert isinstance(p["likeCount"], int) and not isinstance(p["likeCount"], bool)
    assert isinstance(p["commentCount"], int) and not isinstance(p["commentCount"], bool)
    assert isinstance(p["likedByMe"], bool)
    if p["editedAt"] is not None:
        check_time(p["editedAt"])


def check_comment(c):
    assert set(c) == COMMENT_KEYS, c
    check_id(c["id"])
    check_id(c["postId"])
    check_author(c["author"])
    check_time(c["createdAt"])


def check_message(m):
    assert set(m) == MESSAGE_KEYS, m
    check_id(m["id"])
    check_id(m["chatId"])
    assert isinstance(m["seq"], int) and not isinstance(m["seq"], bool) and m["seq"] >= 1, m
    check_author(m["sender"])
    check_time(m["createdAt"])
    assert m["attachmentUrl"] is None or isinstance(m["attachmentUrl"], str)
    assert m["clientId"] is None or isinstance(m["clientId"], str)
    assert m["editedAt"] is None or check_time(m["editedAt"]) is None, m
    assert m["deleted"] is False or (m["deleted"] is True and m["text"] == ""
                                     and m["attachmentUrl"] is None), m


def check_chat(c):
    assert set(c) == CHAT_KEYS, c
    check_id(c["id"])
    assert c["type"] in ("direct", "group"), c
    assert c["name"] is None or isinstance(c["name"], str)
    for m in c["members"]:
        check_author(m)
    if c["lastMessage"] is not None:
        check_message(c["lastMessage"])
    assert isinstance(c["unreadCount"], int) and c["unreadCount"] >= 0
    assert isinstance(c["lastSeq"], int) and c["lastSeq"] >= 0
    check_time(c["createdAt"])
    check_time(c["updatedAt"])


def check_page(body):
    assert set(body) == {"items", "nextCursor"}, body
    assert isinstance(body["items"], list)
    assert body["nextCursor"] is None or isinstance(body["nextCursor"], str)
    return body["items"], body["nextCursor"]


def page_all(server, path, token, limit, params=None, max_pages=1000, cursor_param="before"):
    """Follows nextCursor to the end; returns the list of pages (lists of items)."""
    pages = []
    cursor = None
    for _ in range(max_pages):
        p = dict(params or {})
        p["limit"] = limit
        if cursor is not None:
            p[cursor_param] = cursor
        body = assert_json(api(server, "GET", path, token, params=p), 200)
        items, cursor = check_page(body)
        assert len(items) <= limit
        pages.append(items)
        if cursor is None:
            return pages
    raise AssertionError("pagination did not end after %d pages" % max_pages)


# ---------------------------------------------------------------------------
# domain shortcuts

def make_post(server, token, text="hello", **extra):
    body = {"text": text}
    body.update(extra)
    return assert_json(api(server, "POST", "/api/posts", token, json=body), 201)


def make_chat(server, token, member_ids, name=None, expect=201):
    body = {"memberIds": list(member_ids)}
    if name is not None:
        body["name"] = name
    return assert_json(api(server, "POST", "/api/chats", token, json=body), expect)


def send_msg(server, token, chat_id, text="hi", expect=201, **extra):
    body = {"text": text}
    body.update(extra)
    return assert_json(api(server, "POST", "/api/chats/%s/messages" % chat_id, token, json=body),
                       expect)


def get_chat(server, token, chat_id):
    return assert_json(api(server, "GET", "/api/chats/" + chat_id, token), 200)


def fake_id():
    """A well-formed id that names nothing."""
    return os.urandom(12).hex()


# ---------------------------------------------------------------------------
# raw sockets

class RawResponse:
    def __init__(self, status, reason, headers, body, raw, complete):
        self.status = status
        self.reason = reason
        self.headers = headers      # lower-cased names
        self.body = body
        self.raw = raw
        self.complete = complete    # body fully received per Content-Length

    def json(self):
        return jsonlib.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<RawResponse %s %r complete=%s>" % (self.status, self.body[:200], self.complete)


def parse_response(raw):
    """Parses the first HTTP response in `raw` (bytes).  Returns RawResponse or
    None when no complete header block arrived."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = raw[:end].decode("iso-8859-1")
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        return None
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    rest = raw[end + 4:]
    complete = True
    if "content-length" in headers:
        n = int(headers["content-length"])
        body = rest[:n]
        complete = len(rest) >= n
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body, complete = _dechunk(rest)
    else:
        body = rest
    return RawResponse(status, reason, headers, body, raw, complete)


def _dechunk(data):
    out = b""
    i = 0
    while True:
        j = data.find(b"\r\n", i)
        if j < 0:
            return out, False
        size = int(data[i:j].split(b";")[0] or b"0", 16)
        if size == 0:
            return out, True
        out += data[j + 2:j + 2 + size]
        if len(data) < j + 2 + size:
            return out, False
        i = j + 2 + size + 2


class RecordingSocket:
    """A socket that keeps the bytes sent on it, so read_response can check
    the first answer against docs/openapi.yaml (openapi_check.check_raw).
    Everything else is the socket's own."""

    def __init__(self, sock):
        self._sock = sock
        self.sent = b""
        self.checked = False

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def send(self, data, *args):
        n = self._sock.send(data, *args)
        self.sent += bytes(data[:n])
        return n

    def sendall(self, data, *args):
        self._sock.sendall(data, *args)
        self.sent += bytes(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._sock.close()


def raw_connect(server, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    s.settimeout(timeout)
    return RecordingSocket(s)


def _check_first_raw(sock, resp):
    if isinstance(sock, RecordingSocket) and not sock.checked and resp is not None \
            and resp.complete:
        sock.checked = True
        openapi_check.check_raw(sock.sent, resp)


def read_response(sock, deadline_s=5.0):
    """Reads until one full response (per Content-Length/chunked) or EOF or the
    deadline.  Returns (RawResponse|None, bytes, how) where how is "eof",
    "complete", "timeout" or "reset"."""
    buf = b""
    end = time.monotonic() + deadline_s
    while True:
        r = parse_response(buf)
        if r is not None and r.complete and ("content-length" in r.headers or
                                             "transfer-encoding" in r.headers):
            _check_first_raw(sock, r)
            return r, buf, "complete"
        left = end - time.monotonic()
        if left <= 0:
            return parse_response(buf), buf, "timeout"
        sock.settimeout(min(left, 1.0))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return parse_response(buf), buf, "reset"
        if not chunk:
            r = parse_response(buf)
            _check_first_raw(sock, r)
            return r, buf, "eof"
        buf += chunk


def raw_exchange(server, data, deadline_s=5.0):
    """Sends `data` (bytes) on a fresh connection, returns read_response(...)."""
    s = raw_connect(server)
    try:
        try:
            s.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            pass
        return read_response(s, deadline_s)
    finally:
        s.close()


def http_request_bytes(method, path, headers=None, body=b"", http="HTTP/1.1",
                       content_length=True):
    h = {"Host": "127.0.0.1", "Connection": "close"}
    h.update(headers or {})
    if content_length and body and "Content-Length" not in h:
        h["Content-Length"] = str(len(body))
    head = "%s %s %s\r\n" % (method, path, http)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in h.items())
    return head.encode("latin-1") + b"\r\n" + body


def healthy(server, timeout=5):
    try:
        return requests.get(server.url + "/healthz", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False
