"""Uploads (CONTRACT.md section 8; issue 11): POST /api/uploads, /uploads/,
and the Cloudinary adapter against a loopback fake (fake_cloudinary.py).

The images are made here, byte by byte, small and of known size: a PNG
(zlib-compressed scanlines, real CRCs), an animated GIF (two frames and a
NETSCAPE loop block), baseline and progressive JPEGs (one grey component,
DC-only scans with one-symbol Huffman tables), and WebP files in its three
layouts (VP8 key frame header, VP8L header, VP8X canvas with ANIM/ANMF
chunks for an animation).  The server only reads headers, so the JPEG and
WebP payloads are minimal rather than pictures anyone would look at.
"""
import os
import socket
import struct
import threading
import time
import zlib

import pytest
import requests

from fake_cloudinary import FakeCloudinary
from helpers import (api, assert_error, assert_json, http_request_bytes, make_chat, make_post,
                     raw_connect, raw_exchange, read_response, register, send_msg)

NAME_RE = r"^[0-9a-f]{64}\.(png|gif|jpg|webp)$"


# ---------------------------------------------------------------------------
# images

def png(w, h):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + b"\x10\x20\x30" * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def gif_animated(w, h, frames=2):
    out = b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"          # loop forever
    for i in range(frames):
        out += b"\x21\xf9\x04\x04\x0a\x00\x00\x00"                  # 0.1 s per frame
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0)
        out += b"\x02\x02\x44\x01\x00"                               # LZW: a tiny data block
    return out + b"\x3b"


def _seg(marker, payload):
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg(w, h, progressive=False):
    """Grey, 1 component; Huffman tables with one symbol each (code "0"):
    every block is DC category 0 then end-of-block: two bits."""
    blocks = ((w + 7) // 8) * ((h + 7) // 8)
    bits = "00" * blocks
    bits += "1" * (-len(bits) % 8)
    scan = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)).replace(b"\xff", b"\xff\x00")
    dht_dc = b"\x00" + bytes([1] + [0] * 15) + b"\x00"
    dht_ac = b"\x10" + bytes([1] + [0] * 15) + b"\x00"
    out = b"\xff\xd8" + _seg(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0")
    out += _seg(0xE1, b"Exif\0\0" + b"\0" * 300)                      # a segment to walk past
    out += _seg(0xDB, b"\x00" + bytes([1] * 64))
    sof = b"\x08" + struct.pack(">HH", h, w) + b"\x01\x01\x11\x00"
    out += _seg(0xC2 if progressive else 0xC0, sof) + _seg(0xC4, dht_dc) + _seg(0xC4, dht_ac)
    if progressive:
        out += _seg(0xDA, b"\x01\x01\x00\x00\x00\x00") + scan           # DC scan
        out += _seg(0xDA, b"\x01\x01\x00\x01\x3f\x00") + b"\x00" * (blocks // 8 + 1)  # AC: EOB runs
    else:
        out += _seg(0xDA, b"\x01\x01\x00\x00\x3f\x00") + scan
    return out + b"\xff\xd9"


def _riff(chunks):
    body = b"WEBP" + chunks
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _chunk(fourcc, data):
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def webp_lossy(w, h):
    frame = b"\x10\x02\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", w, h) + b"\0" * 10
    return _riff(_chunk(b"VP8 ", frame))


def webp_lossless(w, h):
    bits = (w - 1) | ((h - 1) << 14) | (1 << 28)   # alpha hint, version 0
    return _riff(_chunk(b"VP8L", b"\x2f" + struct.pack("<I", bits) + b"\0" * 8))


def webp_animated(w, h):
    vp8x = struct.pack("<I", 0x02 | 0x10)[:1] + b"\0\0\0" + struct.pack("<I", w - 1)[:3] \
        + struct.pack("<I", h - 1)[:3]
    anim = struct.pack("<IH", 0xFFFFFFFF, 0)
    frame = struct.pack("<I", 0)[:3] * 2 + struct.pack("<I", w - 1)[:3] + struct.pack("<I", h - 1)[:3] \
        + struct.pack("<I", 100)[:3] + b"\0" + _chunk(b"VP8L", b"\x2f" + struct.pack(
            "<I", (w - 1) | ((h - 1) << 14)) + b"\0" * 4)
    return _riff(_chunk(b"VP8X", vp8x) + _chunk(b"ANIM", anim) + _chunk(b"ANMF", frame)
                 + _chunk(b"ANMF", frame))


IMAGES = {
    "png": (lambda: png(7, 5), "png", "image/png", 7, 5),
    "gif_animated": (lambda: gif_animated(9, 4), "gif", "image/gif", 9, 4),
    "jpeg_baseline": (lambda: jpeg(17, 9), "jpg", "image/jpeg", 17, 9),
    "jpeg_progressive": (lambda: jpeg(33, 20, progressive=True), "jpg", "image/jpeg", 33, 20),
    "webp_lossy": (lambda: webp_lossy(30, 12), "webp", "image/webp", 30, 12),
    "webp_lossless": (lambda: webp_lossless(300, 2), "webp", "image/webp", 300, 2),
    "webp_animated": (lambda: webp_animated(640, 480), "webp", "image/webp", 640, 480),
}


# ---------------------------------------------------------------------------
# helpers

def upload(server, token, data, filename="x.png", field="file", ctype="application/octet-stream",
           timeout=30):
    h = {"Authorization": "Bearer " + token} if token else {}
    return requests.post(server.url + "/api/uploads", headers=h,
                         files={field: (filename, data, ctype)}, timeout=timeout)


def multipart(data, boundary="chatliboundary42", field="file"):
    head = ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"a.png\"\r\n"
            "Content-Type: image/png\r\n\r\n" % (boundary, field)).encode()
    return head + data + ("\r\n--%s--\r\n" % boundary).encode()


def rss_kb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for %d" % (field, pid))


@pytest.fixture(scope="module")
def up_server(session_tmp):
    """An instance with a 1 MiB upload cap and no upload limit, shared by the
    local-mode tests of this module."""
    from conftest import ServerProcess, _LIVE_SERVERS, sanitizer_report
    srv = ServerProcess(session_tmp / "uploads", {"MAX_UPLOAD_BYTES": str(1 << 20),
                                                  "UPLOAD_RATE_LIMIT_MAX": "0"},
                        name="uploads-server")
    srv.start()
    _LIVE_SERVERS.append(srv)
    yield srv
    _LIVE_SERVERS.remove(srv)
    code = srv.stop()
    report = sanitizer_report(srv)
    assert report is None, report
    assert code == 0, srv.logs()


@pytest.fixture
def fake():
    f = FakeCloudinary().start()
    yield f
    f.stop()


# ---------------------------------------------------------------------------
# local mode

@pytest.mark.parametrize("name", sorted(IMAGES))
def test_each_image_type_is_stored_and_served(up_server, name):
    make, fmt, mime, w, h = IMAGES[name]
    data = make()
    _, tok = register(up_server)
    body = assert_json(upload(up_server, tok, data, filename="whatever.bin"), 201)
    assert set(body) == {"url", "publicId", "bytes", "format", "width", "height"}, body
    assert (body["format"], body["width"], body["height"], body["bytes"]) == (fmt, w, h, len(data))
    assert body["url"] == "%s/uploads/%s" % (up_server.url, body["publicId"])
    assert body["publicId"].endswith("." + fmt)
    r = requests.get(body["url"], timeout=10)
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["Content-Type"] == mime
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "max-age=31536000" in r.headers["Cache-Control"]
    assert r.headers["ETag"]


def test_same_content_is_one_asset(up_server):
    _, tok = register(up_server)
    a = assert_json(upload(up_server, tok, png(3, 3)), 201)
    b = assert_json(upload(up_server, tok, png(3, 3), filename="other.png"), 201)
    assert a["url"] == b["url"]


def test_text_named_png_is_415(up_server):
    _, tok = register(up_server)
    r = upload(up_server, tok, b"just some text, not an image at all\n" * 10, filename="cat.png",
               ctype="image/png")
    assert_error(r, 415, "unsupported_media_type")


def test_truncated_image_header_is_415(up_server):
    _, tok = register(up_server)
    assert_error(upload(up_server, tok, png(4, 4)[:20]), 415, "unsupported_media_type")
    assert_error(upload(up_server, tok, jpeg(8, 8)[:40]), 415, "unsupported_media_type")


def test_no_file_part_is_422(up_server):
    _, tok = register(up_server)
    r = upload(up_server, tok, png(2, 2), field="picture")
    assert_error(r, 422, "validation_failed", field="file")
    r = requests.post(up_server.url + "/api/uploads", headers={"Authorization": "Bearer " + tok},
                      files={"caption": (None, "hello")}, timeout=10)
    assert_error(r, 422, "validation_failed", field="file")


def test_not_multipart_is_415(up_server):
    _, tok = register(up_server)
    r = api(up_server, "POST", "/api/uploads", tok, json={"file": "x"})
    assert_error(r, 415, "unsupported_media_type")


def test_only_the_first_file_part_counts(up_server):
    """Fields before and after, then a second file part: the first file
    part is stored, whole, and nothing else."""
    _, tok = register(up_server)
    first, second = png(11, 3), gif_animated(4, 4)
    r = requests.post(up_server.url + "/api/uploads", headers={"Authorization": "Bearer " + tok},
                      files=[("caption", (None, "x" * 5000)), ("file", ("a.png", first, "image/png")),
                             ("note", (None, "y")), ("file", ("b.gif", second, "image/gif"))],
                      timeout=10)
    body = assert_json(r, 201)
    assert (body["format"], body["width"], body["height"], body["bytes"]) == ("png", 11, 3, len(first))
    assert requests.get(body["url"], timeout=10).content == first


def test_multipart_without_boundary_is_400(up_server):
    _, tok = register(up_server)
    r = api(up_server, "POST", "/api/uploads", tok, data=multipart(png(2, 2)),
            headers={"Content-Type": "multipart/form-data"})
    assert_error(r, 400, "bad_request")
    # garbage where the parts should be: MHD reads it as a preamble, so no
    # part named file arrives
    r = api(up_server, "POST", "/api/uploads", tok, data=b"\x00\xff garbage" * 100,
            headers={"Content-Type": "multipart/form-data; boundary=zzzzzz"})
    assert_error(r, 422, "validation_failed", field="file")
    assert requests.get(up_server.url + "/healthz", timeout=5).status_code == 200


def test_over_the_cap_declared_is_413_readable(up_server):
    """Content-Length over the cap: answered before the body, and readable
    while the client is still sending."""
    _, tok = register(up_server)
    big = multipart(b"\x89PNG\r\n\x1a\n" + b"\0" * (3 << 20))
    r = upload(up_server, tok, big)  # requests sends Content-Length
    assert_error(r, 413, "payload_too_large")


def test_over_the_cap_streamed_is_413_readable(up_server):
    """Chunked (no length): read and discarded past the cap, then 413."""
    _, tok = register(up_server)
    payload = multipart(b"\x89PNG\r\n\x1a\n" + b"\0" * (3 << 20))

    def gen():
        for i in range(0, len(payload), 65536):
            yield payload[i:i + 65536]
    r = requests.post(up_server.url + "/api/uploads", data=gen(), timeout=30,
                      headers={"Authorization": "Bearer " + tok,
                               "Content-Type": "multipart/form-data; boundary=chatliboundary42"})
    assert_error(r, 413, "payload_too_large")
    # the connection's next request is still served
    assert requests.get(up_server.url + "/healthz", timeout=5).status_code == 200


@pytest.mark.slow
@pytest.mark.time_limit(240)
def test_rss_stays_flat_while_10_clients_send_50_mib_each(up_server):
    """10 parallel clients each stream 50 MiB (chunked, so nothing is
    refused up front): all get a readable 413 and the server's peak resident
    memory grows by far less than one client's body."""
    _, tok = register(up_server)
    pid = up_server.proc.pid
    before = rss_kb(pid)
    chunk = b"\x89PNG\r\n\x1a\n" + b"\x5a" * (256 * 1024 - 8)
    head = multipart(b"")[:-len("\r\n--chatliboundary42--\r\n")]
    results = []

    def client():
        def gen():
            yield head
            for _ in range(200):   # 200 x 256 KiB = 50 MiB
                yield chunk
            yield b"\r\n--chatliboundary42--\r\n"
        try:
            r = requests.post(up_server.url + "/api/uploads", data=gen(), timeout=120,
                              headers={"Authorization": "Bearer " + tok,
                                       "Content-Type": "multipart/form-data; boundary=chatliboundary42"})
            results.append((r.status_code, r.json()["error"]["code"]))
        except Exception as e:  # noqa: BLE001 - reported below
            results.append(("exception", repr(e)))

    threads = [threading.Thread(target=client) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [(413, "payload_too_large")] * 10, results
    peak = rss_kb(pid, "VmHWM")
    # 500 MiB went through; a server that held bodies would grow by >= 50 MiB.
    print("RSS before %d kB, peak after %d kB" % (before, peak))
    assert peak - before < 40 * 1024, "RSS %d kB before, peak %d kB" % (before, peak)


def test_no_token_is_401_before_the_body_is_read(up_server):
    """Only the head is sent, announcing 50 MiB: the 401 must come without
    the server waiting for any of the body."""
    s = raw_connect(up_server)
    try:
        s.sendall(http_request_bytes("POST", "/api/uploads", {
            "Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(50 << 20)}))
        r, _, how = read_response(s, deadline_s=5.0)
    finally:
        s.close()
    assert r is not None and r.status == 401, (how, r)
    assert b"unauthorized" in r.body
    s = raw_connect(up_server)
    try:
        s.sendall(http_request_bytes("POST", "/api/uploads", {
            "Authorization": "Bearer not-a-token",
            "Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(50 << 20)}))
        r, _, how = read_response(s, deadline_s=5.0)
    finally:
        s.close()
    assert r is not None and r.status == 401, (how, r)


@pytest.mark.parametrize("path", [
    "/uploads/../chatli.db", "/uploads/..%2fchatli.db", "/uploads/%2e%2e/chatli.db",
    "/uploads/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/uploads/.tmp", "/uploads/.tmp/x",
    "/uploads/..%5c..%5cchatli.db", "/uploads/%00.png", "/uploads/" + "a" * 64 + ".exe",
    "/uploads/" + "A" * 64 + ".png", "/uploads/" + "a" * 64 + ".png",
])
def test_path_traversal_is_404(up_server, path):
    r, _, _ = raw_exchange(up_server, http_request_bytes("GET", path))
    assert r is not None and r.status in (404, 400), r
    assert b"SQLite" not in r.body and b"root:" not in r.body


def test_etag_revalidation(up_server):
    _, tok = register(up_server)
    body = assert_json(upload(up_server, tok, gif_animated(5, 6)), 201)
    r = requests.get(body["url"], timeout=10)
    etag = r.headers["ETag"]
    r2 = requests.get(body["url"], headers={"If-None-Match": etag}, timeout=10)
    assert r2.status_code == 304 and r2.content == b""
    assert r2.headers["ETag"] == etag
    r3 = requests.get(body["url"], headers={"If-None-Match": '"something-else"'}, timeout=10)
    assert r3.status_code == 200 and r3.content == r.content
    r4 = requests.head(body["url"], timeout=10)
    assert r4.status_code == 200 and r4.headers["Content-Length"] == str(len(r.content))


def test_post_message_and_avatar_use_uploaded_urls(up_server):
    me, tok = register(up_server)
    other, _ = register(up_server)
    img = assert_json(upload(up_server, tok, png(12, 8)), 201)["url"]
    post = make_post(up_server, tok, text="look", imageUrl=img)
    got = assert_json(api(up_server, "GET", "/api/posts/" + post["id"], tok), 200)
    assert got["imageUrl"] == img
    chat = make_chat(up_server, tok, [other["id"]])
    msg = send_msg(up_server, tok, chat["id"], text="pic", attachmentUrl=img)
    page = assert_json(api(up_server, "GET", "/api/chats/%s/messages" % chat["id"], tok), 200)
    assert [m["attachmentUrl"] for m in page["items"] if m["id"] == msg["id"]] == [img]
    r = api(up_server, "PATCH", "/api/users/me", tok, json={"avatarUrl": img})
    assert_json(r, 200)
    assert assert_json(api(up_server, "GET", "/api/users/" + me["id"], tok), 200)["avatarUrl"] == img
    # old assets are kept (docs/api.md): the file is still served after the
    # post is deleted and after the avatar is replaced
    assert api(up_server, "DELETE", "/api/posts/" + post["id"], tok).status_code == 204
    assert requests.get(img, timeout=10).status_code == 200
    img2 = assert_json(upload(up_server, tok, png(13, 8)), 201)["url"]
    assert_json(api(up_server, "PATCH", "/api/users/me", tok, json={"avatarUrl": img2}), 200)
    assert requests.get(img, timeout=10).status_code == 200


def test_public_url_prefixes_local_urls(start_server):
    srv = start_server(PUBLIC_URL="https://media.example.test/")
    _, tok = register(srv)
    body = assert_json(upload(srv, tok, png(2, 2)), 201)
    assert body["url"] == "https://media.example.test/uploads/" + body["publicId"]


def test_upload_rate_limit_per_user(start_server):
    srv = start_server(UPLOAD_RATE_LIMIT_MAX="2")
    _, tok = register(srv)
    _, tok2 = register(srv)
    for _ in range(2):
        assert_json(upload(srv, tok, png(2, 2)), 201)
    r = upload(srv, tok, png(2, 2))
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1
    assert_json(upload(srv, tok2, png(2, 2)), 201)   # per user


def test_readyz_and_metrics_local(up_server):
    r = assert_json(requests.get(up_server.url + "/readyz", timeout=5), 200)
    assert r["checks"]["media"] == "local"
    _, tok = register(up_server)
    assert_json(upload(up_server, tok, png(6, 6)), 201)
    text = requests.get(up_server.url + "/metrics", timeout=5).text
    vals = {l.split()[0]: float(l.split()[1]) for l in text.splitlines()
            if l and not l.startswith("#")}
    assert vals["chatli_uploads_total"] >= 1
    assert vals["chatli_upload_bytes_total"] >= len(png(6, 6))


# ---------------------------------------------------------------------------
# Cloudinary mode, against the loopback fake

def cloud_server(start_server, fake, secret=None, **env):
    return start_server(CLOUDINARY_URL=fake.cloudinary_url(secret), CLOUDINARY_API_BASE=fake.base,
                        UPLOAD_RATE_LIMIT_MAX="0", **env)


def test_cloudinary_success(start_server, fake):
    srv = cloud_server(start_server, fake)
    assert assert_json(requests.get(srv.url + "/readyz", timeout=5), 200)["checks"]["media"] == "cloudinary"
    _, tok = register(srv)
    data = png(21, 13)
    body = assert_json(upload(srv, tok, data), 201)
    assert len(fake.requests) == 1
    req = fake.requests[0]
    assert req["signature_ok"], req
    assert req["path"] == "/v1_1/demo/image/upload"
    assert req["file_bytes"] == len(data)
    assert len(req["fields"]["signature"]) == 64
    assert body["url"].startswith("https://res.cloudinary.com/demo/image/upload/")
    assert body["publicId"] == req["fields"]["public_id"]
    assert (body["bytes"], body["format"], body["width"], body["height"]) == (len(data), "png", 21, 13)
    # nothing is kept locally, and /uploads/ serves nothing
    assert requests.get(srv.url + "/uploads/" + "a" * 64 + ".png", timeout=5).status_code == 404
    leftovers = [f for f in os.listdir(os.path.join(srv.data_dir, "tmp"))]
    assert leftovers == []
    text = requests.get(srv.url + "/metrics", timeout=5).text
    assert "chatli_cloudinary_request_seconds_count 1" in text


def test_cloudinary_rejected_signature_is_503(start_server, fake):
    srv = cloud_server(start_server, fake, secret="wrong-secret")
    _, tok = register(srv)
    assert_error(upload(srv, tok, png(3, 3)), 503, "unavailable")
    assert len(fake.requests) == 1 and not fake.requests[0]["signature_ok"]


@pytest.mark.time_limit(60)
def test_cloudinary_timeout_retries_once_then_503(start_server, fake):
    srv = cloud_server(start_server, fake, CLOUDINARY_TIMEOUT_MS="700")
    fake.script = ["timeout", "timeout"]
    fake.delay_s = 3.0
    _, tok = register(srv)
    assert_error(upload(srv, tok, png(3, 3)), 503, "unavailable")
    assert len(fake.requests) == 2
    fake.script = ["timeout"]   # the retry succeeds
    assert_json(upload(srv, tok, png(4, 3)), 201)
    assert len(fake.requests) == 4


def test_cloudinary_500_then_success(start_server, fake):
    srv = cloud_server(start_server, fake)
    fake.script = ["500"]
    _, tok = register(srv)
    body = assert_json(upload(srv, tok, gif_animated(8, 8)), 201)
    assert body["format"] == "gif" and (body["width"], body["height"]) == (8, 8)
    assert len(fake.requests) == 2 and all(r["signature_ok"] for r in fake.requests)


def test_cloudinary_500_twice_is_503(start_server, fake):
    srv = cloud_server(start_server, fake)
    fake.script = ["500", "500"]
    _, tok = register(srv)
    assert_error(upload(srv, tok, png(3, 3)), 503, "unavailable")
    assert len(fake.requests) == 2


def test_cloudinary_refusing_the_image_is_415(start_server, fake):
    srv = cloud_server(start_server, fake)
    fake.script = ["invalid"]
    _, tok = register(srv)
    assert_error(upload(srv, tok, png(3, 3)), 415, "unsupported_media_type")
    assert len(fake.requests) == 1   # a refusal is not retried


def test_cloudinary_down_is_503(start_server, fake):
    srv = cloud_server(start_server, fake, CLOUDINARY_CONNECT_TIMEOUT_MS="500")
    fake.stop()
    _, tok = register(srv)
    assert_error(upload(srv, tok, png(3, 3)), 503, "unavailable")
    assert requests.get(srv.url + "/healthz", timeout=5).status_code == 200


def test_cloudinary_url_used_by_post_message_and_avatar(start_server, fake):
    srv = cloud_server(start_server, fake)
    me, tok = register(srv)
    other, _ = register(srv)
    url = assert_json(upload(srv, tok, png(5, 5)), 201)["url"]
    post = make_post(srv, tok, text="", imageUrl=url)
    assert assert_json(api(srv, "GET", "/api/posts/" + post["id"], tok), 200)["imageUrl"] == url
    chat = make_chat(srv, tok, [other["id"]])
    msg = send_msg(srv, tok, chat["id"], text="", attachmentUrl=url)
    assert msg["attachmentUrl"] == url
    assert_json(api(srv, "PATCH", "/api/users/me", tok, json={"avatarUrl": url}), 200)
    assert assert_json(api(srv, "GET", "/api/users/me", tok), 200)["avatarUrl"] == url


def test_bad_cloudinary_url_stops_start(start_server):
    with pytest.raises(RuntimeError) as e:
        start_server(CLOUDINARY_URL="cloudinary://key:secret@")
    assert "CLOUDINARY_URL" in str(e.value)


@pytest.mark.time_limit(60)
def test_sigterm_during_a_slow_cloudinary_upload(start_server, fake):
    """SIGTERM while an upload waits on a Cloudinary that answers only after
    30 s (its timeout is 60 s): the upload is answered 503 and the server
    exits 0 instead of waiting for Cloudinary past its grace period."""
    # A 5 s grace: the abort reaches curl through its progress callback
    # (about once a second while it waits), and on a loaded box 2 s left
    # too little room for the 503 to go out before the server stopped.
    srv = cloud_server(start_server, fake, SHUTDOWN_GRACE_S="5")
    fake.script = ["timeout"]
    fake.delay_s = 30.0
    _, tok = register(srv)
    got = []
    t = threading.Thread(target=lambda: got.append(upload(srv, tok, png(3, 3))))
    t.start()
    while not fake.requests:
        time.sleep(0.05)
    srv.signal(15)
    t.join(timeout=20)
    assert got and got[0].status_code == 503, got
    assert srv.proc.wait(timeout=20) == 0
    assert len(fake.requests) == 1   # no retry of an abort
