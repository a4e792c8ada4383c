"""A loopback stand-in for Cloudinary's upload API, written for the e2e suite.

It serves POST /v1_1/<cloud>/image/upload (multipart/form-data) the way
Cloudinary documents it and checks the request as Cloudinary would:

  * the signature, exactly as "Generating authentication signatures" says:
    every parameter sent except file, cloud_name, resource_type and api_key
    (and the signature itself), sorted by name, joined as name=value with
    '&', the API secret appended, hashed with SHA-1 (40 hex digits) or
    SHA-256 (64 hex digits); a mismatch answers 401 with Cloudinary's
    {"error": {"message": "Invalid Signature ..."}} body;
  * the api_key, and a timestamp no older than an hour (Cloudinary refuses
    stale ones with "Stale request");
  * the file part is an image it can read the size of (PNG, GIF, JPEG),
    else 400 "Invalid image file".

A success answers 200 in Cloudinary's upload response shape (public_id,
version, width, height, format, resource_type, bytes, url, secure_url, ...).

Tests steer it with `script`: a list of behaviours consumed one per request
("ok", "500", "invalid" = 400 "Invalid image file" as for a file Cloudinary
cannot decode, "timeout" = answer only after `delay_s`), "ok" when empty; and
read `requests` (one dict per request received: fields, signature_ok, ...).
"""
import email.parser
import email.policy
import hashlib
import json
import re
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EXCLUDED = {"file", "cloud_name", "resource_type", "api_key", "signature"}


def expected_signature(params, secret, algorithm):
    """Cloudinary's documented signature over `params` (a dict of str)."""
    to_sign = "&".join("%s=%s" % (k, params[k]) for k in sorted(params) if k not in EXCLUDED)
    h = hashlib.sha256 if algorithm == "sha256" else hashlib.sha1
    return h((to_sign + secret).encode("utf-8")).hexdigest()


def image_size(data):
    """(format, width, height) of a PNG, GIF or JPEG, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return "png", w, h
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return "gif", w, h
    if data[:3] == b"\xff\xd8\xff":
        i = 2
        while i + 9 < len(data) and data[i] == 0xFF:
            m = data[i + 1]
            seg = struct.unpack(">H", data[i + 2:i + 4])[0]
            if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return "jpg", w, h
            i += 2 + seg
    return None


def parse_multipart(content_type, body):
    """{name: bytes} of a multipart/form-data body (the stdlib email parser)."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields = {}
    if not msg.is_multipart():
        return fields
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = part.get_payload(decode=True) or b""
    return fields


class FakeCloudinary:
    def __init__(self, cloud="demo", api_key="123456789", api_secret="s3cr3t-Secret"):
        self.cloud = cloud
        self.api_key = api_key
        self.api_secret = api_secret
        self.script = []
        self.delay_s = 3.0
        self.requests = []
        self.lock = threading.Lock()
        self.httpd = None
        self.thread = None

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def cloudinary_url(self, secret=None):
        return "cloudinary://%s:%s@%s" % (self.api_key, secret or self.api_secret, self.cloud)

    def start(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                fake.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    # -- one request ------------------------------------------------------
    def _next_behaviour(self):
        with self.lock:
            return self.script.pop(0) if self.script else "ok"

    def handle(self, h):
        n = int(h.headers.get("Content-Length", "0"))
        body = h.rfile.read(n)
        fields = parse_multipart(h.headers.get("Content-Type", ""), body)
        params = {k: v.decode("utf-8", "replace") for k, v in fields.items() if k != "file"}
        sig = params.get("signature", "")
        algorithm = params.get("signature_algorithm") or ("sha256" if len(sig) == 64 else "sha1")
        good_sig = expected_signature(params, self.api_secret, algorithm)
        rec = {"path": h.path, "fields": params, "file_bytes": len(fields.get("file", b"")),
               "signature_ok": sig == good_sig}
        with self.lock:
            self.requests.append(rec)
        behaviour = self._next_behaviour()
        if behaviour == "timeout":
            time.sleep(self.delay_s)
        if behaviour == "500":
            return self._answer(h, 500, {"error": {"message": "General Error"}})
        m = re.fullmatch(r"/v1_1/([^/]+)/image/upload", h.path)
        if not m or m.group(1) != self.cloud:
            return self._answer(h, 404, {"error": {"message": "Resource not found"}})
        if params.get("api_key") != self.api_key:
            return self._answer(h, 401, {"error": {"message": "Invalid api_key %s" % params.get("api_key")}})
        try:
            ts = int(params.get("timestamp", ""))
        except ValueError:
            return self._answer(h, 400, {"error": {"message": "Missing required parameter - timestamp"}})
        if abs(time.time() - ts) > 3600:
            return self._answer(h, 400, {"error": {"message": "Stale request"}})
        if not rec["signature_ok"]:
            to_sign = "&".join("%s=%s" % (k, params[k]) for k in sorted(params) if k not in EXCLUDED)
            return self._answer(h, 401, {"error": {
                "message": "Invalid Signature %s. String to sign - '%s'." % (sig, to_sign)}})
        data = fields.get("file", b"")
        size = image_size(data)
        if size is None or behaviour == "invalid":
            return self._answer(h, 400, {"error": {"message": "Invalid image file"}})
        fmt, w, hgt = size
        public_id = params.get("public_id") or hashlib.sha1(data).hexdigest()[:20]
        version = int(time.time())
        url = "http://res.cloudinary.com/%s/image/upload/v%d/%s.%s" % (self.cloud, version, public_id, fmt)
        self._answer(h, 200, {
            "asset_id": hashlib.md5(data).hexdigest(), "public_id": public_id, "version": version,
            "version_id": hashlib.md5(public_id.encode()).hexdigest(),
            "signature": hashlib.sha1(("public_id=%s&version=%d" % (public_id, version) +
                                       self.api_secret).encode()).hexdigest(),
            "width": w, "height": hgt, "format": fmt, "resource_type": "image",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "tags": [],
            "bytes": len(data), "type": "upload", "etag": hashlib.md5(data).hexdigest(),
            "placeholder": False, "url": url, "secure_url": "https" + url[4:],
            "original_filename": "file"})

    def _answer(self, h, status, obj):
        data = json.dumps(obj).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json; charset=utf-8")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing to answer
