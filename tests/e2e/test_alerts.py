"""config/alerts.yml against a live server: the alert rules (the scaling
guide's five warning signs, docs/scaling.md) may only use metrics chatli
really exports.

- alerts.yml parses (PyYAML), every rule has an expr, a `for`, a severity
  and a summary, and the guide's five signs are all there;
- every metric an expression names is a sample name of this server's
  /metrics (after some traffic: a registration, a 404, a WebSocket opened
  and closed), and every label it matches on or aggregates by is one of
  those series' labels (or `instance`/`job`, which Prometheus adds);
- anything else in an expression is a PromQL function, keyword or
  duration: a misspelt or invented metric cannot hide as "a function";
- where promtool is installed (Debian's `prometheus` package), `promtool
  check rules` accepts the file (PromQL syntax, templates);
- the two metrics added for these rules move as documented:
  chatli_ws_disconnections_total counts a close, chatli_memory_limit_bytes
  is above the process's resident memory.
"""
import re
import shutil
import subprocess
import time

import pytest
import yaml

from conftest import REPO_ROOT
from helpers import api, assert_error, register
from ws_fixtures import connect

pytestmark = [pytest.mark.own_server]

ALERTS = REPO_ROOT / "config" / "alerts.yml"

# The guide's "Warning Signs to Watch", in its order.
GUIDE_SIGNS = ["ChatliMemoryHigh", "ChatliSlowResponses", "ChatliStorePoolNearlyFull",
               "ChatliErrorRateHigh", "ChatliWebSocketDisconnectsRising"]

PROMQL_WORDS = {
    # functions this file may use
    "rate", "irate", "increase", "delta", "deriv", "sum", "avg", "max", "min", "count",
    "histogram_quantile", "abs", "clamp_min", "clamp_max", "avg_over_time", "max_over_time",
    # keywords
    "by", "without", "and", "or", "unless", "offset", "on", "ignoring", "bool",
    "group_left", "group_right",
}
SCRAPE_LABELS = {"instance", "job"}


def rules():
    doc = yaml.safe_load(ALERTS.read_text())
    out = []
    for g in doc["groups"]:
        assert g["name"] and g["rules"]
        out.extend(g["rules"])
    return out


def scrape(srv):
    """{sample name: set of label names} from /metrics."""
    r = api(srv, "GET", "/metrics")
    assert r.status_code == 200
    series = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? ", line)
        assert m, "unparsable /metrics line: %r" % line
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
        series.setdefault(m.group(1), set()).update(labels)
    return series


def sample(srv, name):
    for line in api(srv, "GET", "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no sample %s" % name)


def expr_names(expr):
    """(metric names, label names used, other identifiers) of a PromQL
    expression, with strings, durations and numbers taken out."""
    e = re.sub(r'"(\\.|[^"\\])*"', '""', expr)          # string literals
    e = re.sub(r"\[[0-9smhdwy:]+\]", " ", e)             # range selectors
    e = re.sub(r"\boffset\s+[0-9]+[smhdwy]\b", " ", e)   # offsets
    labels = set()
    for m in re.finditer(r"\{([^}]*)\}", e):             # matchers
        labels.update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(1)))
    e = re.sub(r"\{[^}]*\}", " ", e)
    for m in re.finditer(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", e):
        labels.update(x.strip() for x in m.group(1).split(",") if x.strip())
    e = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", r" \1 ", e)
    idents = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", e))
    metrics = {i for i in idents if i.startswith(("chatli_", "process_"))}
    return metrics, labels, idents - metrics


def test_alerts_file_is_well_formed_and_covers_the_guide():
    rs = rules()
    names = [r["alert"] for r in rs]
    assert len(names) == len(set(names)), "duplicate alert names"
    for sign in GUIDE_SIGNS:
        assert sign in names, "the guide's warning sign %s has no rule" % sign
    for r in rs:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r["alert"]
        assert isinstance(r["expr"], str) and r["expr"].strip()
        assert re.fullmatch(r"[0-9]+[smh]", r["for"]), r["alert"]
        assert r["labels"]["severity"] in ("warning", "critical")
        assert r["annotations"]["summary"].strip()
        assert r["expr"].count("(") == r["expr"].count(")"), r["alert"]


def test_every_metric_in_alerts_exists_in_a_live_server(start_server):
    srv = start_server()
    # Traffic, so that the labelled series appear (they are created on use).
    _, t = register(srv)
    assert api(srv, "GET", "/api/users/me", t).status_code == 200
    assert_error(api(srv, "GET", "/api/no/such/route", t), 404, "not_found")
    w, _ = connect(srv, t)
    w.close()
    series = scrape(srv)

    used = set()
    for r in rules():
        metrics, labels, others = expr_names(r["expr"])
        assert metrics, "%s uses no chatli metric" % r["alert"]
        unknown = others - PROMQL_WORDS
        assert not unknown, "%s: not a metric chatli exports, nor PromQL: %s" % (
            r["alert"], sorted(unknown))
        for m in metrics:
            assert m in series, "%s: %s is not in /metrics (have: %s)" % (
                r["alert"], m, ", ".join(sorted(series)))
        have = set().union(*(series[m] for m in metrics)) | SCRAPE_LABELS
        assert labels <= have, "%s: labels %s are on none of %s" % (
            r["alert"], sorted(labels - have), sorted(metrics))
        used |= metrics
    # The histogram the latency rule reads really is one (buckets with le).
    assert "le" in series["chatli_http_request_duration_seconds_bucket"]
    assert "status" in series["chatli_http_requests_total"]
    assert {"chatli_ws_disconnections_total", "chatli_memory_limit_bytes"} <= used


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_rules():
    r = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: %d rules found" % len(rules()) in r.stdout


def test_the_checker_refuses_an_unknown_metric():
    """The name extraction above is what the live check relies on: an
    invented metric or a misspelt function must not pass as PromQL."""
    metrics, labels, others = expr_names(
        'sum by (instance) (rate(chatli_http_requests_totl{status=~"5.."}[5m])) '
        '/ node_memory_MemTotal_bytes > 0.01')
    assert metrics == {"chatli_http_requests_totl"}
    assert labels == {"instance", "status"}
    assert "node_memory_MemTotal_bytes" in others - PROMQL_WORDS


def test_metrics_added_for_the_alerts_move(start_server):
    srv = start_server()
    _, t = register(srv)
    before = sample(srv, "chatli_ws_disconnections_total")
    w, _ = connect(srv, t)
    assert sample(srv, "chatli_ws_disconnections_total") == before
    w.close()
    counted = False
    for _ in range(250):  # the server sees the close asynchronously: up to 5 s
        if sample(srv, "chatli_ws_disconnections_total") == before + 1:
            counted = True
            break
        time.sleep(0.02)
    assert counted, "a WebSocket close was not counted"
    limit = sample(srv, "chatli_memory_limit_bytes")
    assert limit > sample(srv, "process_resident_memory_bytes") > 0
