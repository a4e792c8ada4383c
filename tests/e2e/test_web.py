"""The built-in web client at / (issue 14; CONTRACT.md section 1, WEB_UI).

Black box: the page and the files it names are served from the binary with
their Content-Type, an ETag that turns a repeat into 304, a strict
Content-Security-Policy, nosniff and Referrer-Policy; the page itself holds
nothing that policy would block (no inline script or style, no handler
attributes); WEB_UI=0 takes every web route away, so / is the plain 404 of
an API-only server.  The page in a real browser is tests/browser/."""
import re
import subprocess
from html.parser import HTMLParser

import pytest

from helpers import api, assert_error, register

CSP_NEEDS = ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
             "frame-ancestors 'none'", "base-uri 'none'", "object-src 'none'"]
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".svg": "image/svg+xml"}


class PageScan(HTMLParser):
    """Collects the page's file references and anything the CSP would refuse."""

    def __init__(self):
        super().__init__()
        self.files = []
        self.inline = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in a:
            if k == "style" or k.startswith("on"):
                self.inline.append("<%s %s=...>" % (tag, k))
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            if a.get("src"):
                self.files.append(a["src"])
            else:
                self._in_script = True
        if tag == "link" and a.get("href"):
            self.files.append(a["href"])
        if tag in ("a", "form") and (a.get("href") or a.get("action") or "").startswith("javascript:"):
            self.inline.append("javascript: URL")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append("inline <script>")


def check_web_headers(r):
    csp = r.headers.get("Content-Security-Policy", "")
    for need in CSP_NEEDS:
        assert need in csp, (need, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    assert r.headers.get("Referrer-Policy") == "no-referrer"
    assert r.headers.get("Cache-Control") == "no-cache"
    etag = r.headers.get("ETag", "")
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 18, etag
    return etag


def scan_page(server):
    r = api(server, "GET", "/")
    assert r.status_code == 200, r.text[:200]
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    scan = PageScan()
    scan.feed(r.text)
    return r, scan


def test_page_and_files_served_with_headers(server):
    r, scan = scan_page(server)
    check_web_headers(r)
    assert scan.files, "the page names its script and style files"
    assert not scan.inline, scan.inline
    for f in scan.files:
        assert f.startswith("/web/"), f
        fr = api(server, "GET", f)
        assert fr.status_code == 200, f
        ext = f[f.rfind("."):]
        assert fr.headers["Content-Type"] == TYPES[ext], (f, fr.headers["Content-Type"])
        assert fr.headers["ETag"] != r.headers["ETag"]
        check_web_headers(fr)
        assert len(fr.content) == int(fr.headers["Content-Length"]) > 0


def test_module_imports_are_served(server):
    """app.js imports its siblings by relative path: each must be there."""
    app = api(server, "GET", "/web/app.js")
    names = re.findall(r'^import .* from "\./([\w.-]+)";$', app.text, re.M)
    assert names, "app.js imports api.js and gateway.js"
    for n in names:
        r = api(server, "GET", "/web/" + n)
        assert r.status_code == 200 and r.headers["Content-Type"] == TYPES[".js"], n
        # The page keeps tokens out of URLs: the gateway authenticates with
        # its first frame, never ?token=.
        code = "\n".join(l for l in r.text.splitlines() if not l.lstrip().startswith("//"))
        assert not re.search(r"[?&]token=", code), n


def test_etag_revalidation_is_304_without_body(server):
    for path in ("/", "/web/app.js"):
        r = api(server, "GET", path)
        etag = r.headers["ETag"]
        again = api(server, "GET", path, headers={"If-None-Match": etag})
        assert again.status_code == 304, path
        assert again.content == b""
        assert again.headers["ETag"] == etag
        assert "Content-Security-Policy" in again.headers
        other = api(server, "GET", path, headers={"If-None-Match": '"0000000000000000"'})
        assert other.status_code == 200 and other.content == r.content


def test_head_and_wrong_method(server):
    r = api(server, "HEAD", "/")
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["Content-Length"]) > 0
    r = api(server, "POST", "/")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers.get("Allow") == "GET"


@pytest.mark.parametrize("path", ["/web/nope.js", "/web/index.html", "/web/", "/web/a/b",
                                  "/index.html", "/web/app.js.map",
                                  "/web/APP.JS"])
def test_unknown_files_are_404(server, path):
    assert_error(api(server, "GET", path), 404, "not_found")


def test_api_answers_keep_their_own_policy(server):
    """The page's CSP and caching apply to its files only."""
    _, tok = register(server)
    r = api(server, "GET", "/api/users/me", tok)
    assert r.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert r.headers["Cache-Control"] == "no-store"


def test_web_ui_off_makes_root_404(start_server):
    srv = start_server(WEB_UI="0")
    for method, path in (("GET", "/"), ("HEAD", "/"), ("POST", "/"), ("GET", "/web/app.js"),
                         ("GET", "/web/app.css")):
        r = api(srv, method, path)
        assert r.status_code == 404, (method, path, r.status_code)
        if method != "HEAD":
            assert_error(r, 404, "not_found")
        assert "script-src" not in r.headers.get("Content-Security-Policy", "")
    _, tok = register(srv)
    assert api(srv, "GET", "/api/users/me", tok).status_code == 200


def test_web_ui_bad_value_stops_the_start(start_server):
    srv = start_server(wait=False, WEB_UI="maybe")
    try:
        code = srv.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        srv.kill9()
        pytest.fail("WEB_UI=maybe: the server kept running (a silent default?)")
    assert code != 0
    assert "WEB_UI" in srv.stdout_text() + srv.stderr_text()
