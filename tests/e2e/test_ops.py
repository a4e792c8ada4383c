"""CONTRACT.md section 9: /healthz, /readyz, /metrics, configuration, --help,
token expiry, logs."""
import json
import re
import subprocess
import time

import pytest

from conftest import CHATLI_BIN, STORE, ServerProcess
from helpers import JSON_CT, PASSWORD, api, assert_error, assert_json, fake_id, register


# ---------------------------------------------------------------- health

def test_healthz(server):
    r = api(server, "GET", "/healthz")
    assert assert_json(r, 200) == {"status": "ok"}


def test_readyz(server):
    body = assert_json(api(server, "GET", "/readyz"), 200)
    assert body["status"] == "ok"
    assert body["checks"]["store"] == "ok"
    assert body["checks"]["redis"] == "disabled"
    assert body["checks"]["media"] == "local"
    assert set(body) == {"status", "checks"}
    assert set(body["checks"]) == {"store", "redis", "media"}


@pytest.mark.own_server
def test_readyz_reports_wired_adapters_not_env(start_server):
    """REDIS_URL wires the Redis adapters even when nothing answers there:
    the instance starts and serves, and /readyz says "degraded" with 200 and
    "redis": "down" (CONTRACT section 10).  CLOUDINARY_URL wires the
    Cloudinary media adapter ("cloudinary"; uploads: test_uploads.py), and
    neither URL's credentials reach the log.  Redis up: test_scaleout.py."""
    srv = start_server(REDIS_URL="redis://:r3dispass@127.0.0.1:1/0",
                       CLOUDINARY_URL="cloudinary://k3y:s3cr3tvalue@demo")
    body = assert_json(api(srv, "GET", "/readyz"), 200)
    assert body == {"status": "degraded",
                    "checks": {"store": "ok", "redis": "down", "media": "cloudinary"}}
    assert_json(api(srv, "GET", "/healthz"), 200)
    assert srv.stop() == 0
    logs = srv.stdout_text() + srv.stderr_text()
    assert "s3cr3tvalue" not in logs, "CLOUDINARY_URL's secret leaked into the log"
    assert "r3dispass" not in logs, "REDIS_URL's password leaked into the log"


def test_ops_endpoints_need_no_token_and_reject_other_methods(server):
    for path in ("/healthz", "/readyz", "/metrics"):
        r = api(server, "POST", path, json={})
        assert_error(r, 405, "method_not_allowed")
        assert "GET" in r.headers.get("Allow", "")


# ---------------------------------------------------------------- metrics

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+(\S+)(\s+-?\d+)?$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Returns (types: name->type, samples: list of (name, labels dict, value))."""
    types, samples = {}, []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        m = SAMPLE_RE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        labels = dict(LABEL_RE.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return types, samples


def get_metrics(server):
    r = api(server, "GET", "/metrics")
    assert r.status_code == 200
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers.get("Content-Type")
    return parse_metrics(r.text), r.text


def test_metrics_format_and_content(server):
    user, tok = register(server)
    api(server, "GET", "/api/users/me", tok)
    api(server, "GET", "/api/users/" + user["id"], tok)
    api(server, "GET", "/api/users/me")  # a 401
    (types, samples), text = get_metrics(server)
    names = {s[0] for s in samples}

    req = [s for s in samples if s[0] == "chatli_http_requests_total"]
    assert types.get("chatli_http_requests_total") == "counter"
    assert any(l.get("route") == "/api/users/me" and l.get("status") == "200" and v >= 1
               for _, l, v in req), req[:20]
    assert any(l.get("route") == "/api/users/me" and l.get("status") == "401" for _, l, v in req)
    assert any(l.get("route") == "/api/users/{id}" for _, l, v in req), "route templates expected"
    assert user["id"] not in text, "raw ids must not become label values"

    for hist in ("chatli_http_request_duration_seconds", "chatli_store_op_duration_seconds"):
        assert types.get(hist) == "histogram", (hist, types.get(hist))
        buckets = [s for s in samples if s[0] == hist + "_bucket"]
        assert buckets and any(l.get("le") == "+Inf" for _, l, _ in buckets), hist
        assert hist + "_sum" in names and hist + "_count" in names
        assert max(v for n, l, v in samples if n == hist + "_count") >= 1

    assert "chatli_ws_connections" in names
    rss = [v for n, _, v in samples if n == "process_resident_memory_bytes"]
    assert rss and rss[0] > 1024 * 1024
    assert any("pool" in n for n in names), "store pool in-use/size gauges expected"
    assert "chatli_errors_total" in types or any("error" in n for n in names)


def test_metrics_counts_grow(server):
    _, tok = register(server)

    def count():
        (_, samples), _ = get_metrics(server)
        return sum(v for n, l, v in samples if n == "chatli_http_requests_total"
                   and l.get("route") == "/api/posts" and l.get("status") == "201")

    before = count()
    for i in range(3):
        api(server, "POST", "/api/posts", tok, json={"text": "m%d" % i})
    assert count() == before + 3


def test_unknown_paths_do_not_explode_label_cardinality(server):
    junk = "/zz" + fake_id()
    assert api(server, "GET", junk).status_code == 404
    _, text = get_metrics(server)
    assert junk not in text


# ---------------------------------------------------------------- config

BAD_CONFIG = [
    ("PORT", "abc"), ("PORT", "70000"), ("PORT", "8080x"), ("RATE_LIMIT_MAX", "-1"),
    ("RATE_LIMIT_MAX", "lots"), ("TOKEN_TTL_S", "x"), ("TOKEN_TTL_S", "-5"),
    ("RATE_LIMIT_WINDOW_MS", "soon"), ("LOG_LEVEL", "loud"), ("SHUTDOWN_GRACE_S", "abc"),
    ("PWHASH_OPSLIMIT", "zero"), ("PWHASH_MEMLIMIT", "12abc"), ("WS_RATE_PER_S", "fast"),
    ("WS_RATE_BURST", "-3"), ("MAX_UPLOAD_BYTES", "big"), ("TRUST_PROXY", "maybe"),
]


@pytest.mark.own_server
@pytest.mark.parametrize("var,value", BAD_CONFIG)
def test_bad_config_exits_naming_variable(session_tmp, var, value):
    srv = ServerProcess(session_tmp / ("badcfg-%s-%s" % (var, abs(hash(value)))), name="bad-config")
    srv.start(wait=False, **{var: value})
    try:
        code = srv.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        srv.kill9()
        pytest.fail("%s=%s: server kept running (a silent default?)" % (var, value))
    assert code != 0, "%s=%s: exit code 0" % (var, value)
    out = srv.stdout_text() + srv.stderr_text()
    assert var in out, "%s=%s: message does not name the variable: %r" % (var, value, out[-500:])


def test_help_lists_every_variable():
    p = subprocess.run([CHATLI_BIN, "--help"], capture_output=True, timeout=10)
    assert p.returncode == 0, p
    text = (p.stdout + p.stderr).decode("utf-8", "replace")
    for var in ("PORT", "HOST", "DATA_DIR", "MONGODB_URI", "MONGODB_DB", "REDIS_URL",
                "CLOUDINARY_URL", "CLOUDINARY_API_BASE", "PUBLIC_URL", "CORS_ORIGINS",
                "TRUST_PROXY", "RATE_LIMIT_MAX", "RATE_LIMIT_WINDOW_MS", "WS_RATE_PER_S",
                "WS_RATE_BURST", "MAX_UPLOAD_BYTES", "LOG_LEVEL", "TOKEN_TTL_S",
                "SHUTDOWN_GRACE_S", "PWHASH_OPSLIMIT", "PWHASH_MEMLIMIT",
                "WS_MAX_CONNS_PER_USER", "WS_LOOPS"):
        assert re.search(r"\b%s\b" % var, text), "--help does not mention %s" % var


def test_unknown_argument_fails():
    p = subprocess.run([CHATLI_BIN, "--no-such-flag"], capture_output=True, timeout=10)
    assert p.returncode != 0


# ---------------------------------------------------------------- token expiry

@pytest.mark.own_server
@pytest.mark.slow
def test_token_expires_after_ttl(start_server):
    srv = start_server(TOKEN_TTL_S=1)
    user, tok = register(srv)
    assert_json(api(srv, "GET", "/api/users/me", tok), 200)
    time.sleep(2.2)
    assert_error(api(srv, "GET", "/api/users/me", tok), 401, "unauthorized")
    # a fresh login works again
    r = api(srv, "POST", "/api/auth/login", json={"email": user["email"], "password": PASSWORD})
    fresh = assert_json(r, 200)["token"]
    assert_json(api(srv, "GET", "/api/users/me", fresh), 200)


# ---------------------------------------------------------------- logs

REQ_ID_KEY = re.compile(r"^(req(uest)?[_-]?id|rid|reqId|requestId|request_id)$", re.I)


@pytest.mark.own_server
def test_logs_are_json_lines_with_request_fields_and_no_tokens(start_server):
    srv = start_server(LOG_LEVEL="info")
    user, tok = register(srv)
    secret = "SeCrEt" + fake_id()
    api(srv, "GET", "/api/users/me", tok)
    api(srv, "GET", "/api/users/me?token=" + secret)
    api(srv, "GET", "/api/posts?limit=5&token=" + secret + "&x=1", tok)
    api(srv, "GET", "/healthz?token=" + secret)
    api(srv, "GET", "/nope?token=" + secret)
    api(srv, "POST", "/api/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert srv.stop() == 0
    out, err = srv.stdout_text(), srv.stderr_text()

    for where, text in (("stdout", out), ("stderr", err)):
        assert secret not in text, "token query value leaked into %s" % where
        assert tok not in text, "bearer token leaked into %s" % where
        assert PASSWORD not in text, "password leaked into %s" % where

    lines = [l for l in out.splitlines() if l.strip()]
    assert lines, "no log lines on stdout at LOG_LEVEL=info"
    objs = []
    for l in lines:
        try:
            o = json.loads(l)
        except ValueError:
            pytest.fail("stdout line is not JSON: %r" % l)
        assert isinstance(o, dict), l
        objs.append(o)

    reqs = [o for o in objs if "method" in o and "status" in o]
    assert reqs, "no request lines"
    paths = [str(o.get("path")) for o in reqs]
    assert any(p.startswith("/api/users/me") for p in paths), paths
    for o in reqs:
        assert isinstance(o["status"], int), o
        dur = [k for k in o if "dur" in k.lower() or k.lower() in ("ms", "elapsed_ms", "took_ms")]
        assert dur and isinstance(o[dur[0]], (int, float)), "no duration in %s" % o
        ids = [k for k in o if REQ_ID_KEY.match(k)]
        assert ids and o[ids[0]], "no request id in %s" % o
    rid_key = [k for k in reqs[0] if REQ_ID_KEY.match(k)][0]
    rids = [o[rid_key] for o in reqs]
    assert len(set(map(str, rids))) == len(rids), "request ids repeat"
    # the ?token= requests are logged too (with the value redacted, checked above)
    assert sum(1 for p in paths if p.startswith("/nope")) == 1, paths
