"""CONTRACT.md section 9, lifecycle: graceful SIGTERM with requests in flight,
data surviving a restart, and acked data surviving kill -9."""
import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from helpers import (PASSWORD, api, assert_error, assert_json, check_page, get_chat,
                     http_request_bytes, make_chat, make_post, page_all, raw_connect,
                     read_response, register, send_msg)

pytestmark = [pytest.mark.own_server, pytest.mark.slow]

GRACE = 5


def probe_readyz(srv):
    """During drain /readyz must be 503 (draining) or refused; returns what was seen."""
    try:
        r = requests.get(srv.url + "/readyz", timeout=2)
    except requests.ConnectionError:
        return "refused"
    except requests.Timeout:
        return "timeout"
    if r.status_code == 503:
        assert r.json()["status"] == "draining", r.text
        return "503"
    return "status %d" % r.status_code


def wait_exit(srv, t0, grace=GRACE):
    try:
        code = srv.proc.wait(timeout=grace + 3)
    except Exception:
        pytest.fail("server did not exit within the grace period + 3 s")
    took = time.monotonic() - t0
    return code, took


def test_sigterm_lets_a_trickled_request_finish(start_server):
    srv = start_server(SHUTDOWN_GRACE_S=GRACE)
    _, tok = register(srv)
    body = json.dumps({"text": "in flight " + "x" * 3000}).encode()
    head = http_request_bytes("POST", "/api/posts", {"Authorization": "Bearer " + tok,
                                                     "Content-Type": "application/json",
                                                     "Content-Length": str(len(body))}, b"")
    s = raw_connect(srv, timeout=10)
    try:
        s.sendall(head + body[:1000])
        time.sleep(0.2)
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        time.sleep(0.3)
        seen = probe_readyz(srv)
        assert seen in ("503", "refused"), "during drain /readyz gave %s" % seen
        for i in range(1000, len(body), 500):     # trickle the rest
            try:
                s.sendall(body[i:i + 500])
            except OSError as e:
                pytest.fail("server dropped the in-flight request during drain: %r" % e)
            time.sleep(0.05)
        resp, raw, how = read_response(s, deadline_s=GRACE)
    finally:
        s.close()
    assert resp is not None and resp.complete, (how, raw[:300])
    assert resp.status == 201, resp
    assert resp.json()["text"].startswith("in flight")
    code, took = wait_exit(srv, t0)
    assert code == 0, "exit code %s after SIGTERM" % code
    assert took <= GRACE + 1, "took %.1fs to exit" % took


def test_sigterm_lets_a_slow_register_finish(start_server):
    # a costly Argon2 makes register take a noticeable time
    srv = start_server(SHUTDOWN_GRACE_S=GRACE, PWHASH_OPSLIMIT=4, PWHASH_MEMLIMIT=64 * 1024 * 1024)
    t = time.monotonic()
    register(srv)
    cost = time.monotonic() - t
    result = {}

    def slow():
        try:
            name = "slowreg%d" % int(time.time() * 1000)
            result["r"] = requests.post(srv.url + "/api/auth/register", timeout=GRACE + 5, json={
                "username": name, "email": name + "@example.com", "password": PASSWORD})
        except Exception as e:
            result["e"] = e

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(min(0.05, cost / 4))
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    th.join(timeout=GRACE + 6)
    assert "e" not in result, "in-flight register failed: %r (hash took %.2fs)" % (result.get("e"), cost)
    assert result["r"].status_code == 201, result["r"].text
    code, took = wait_exit(srv, t0)
    assert code == 0


def test_sigterm_idle_server_exits_zero_quickly(start_server):
    srv = start_server(SHUTDOWN_GRACE_S=GRACE)
    register(srv)
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    code, took = wait_exit(srv, t0)
    assert code == 0 and took < GRACE, (code, took)


def test_sigint_also_graceful(start_server):
    srv = start_server(SHUTDOWN_GRACE_S=GRACE)
    t0 = time.monotonic()
    srv.signal(signal.SIGINT)
    code, _ = wait_exit(srv, t0)
    assert code == 0


def test_sigterm_with_idle_keepalive_connection(start_server):
    """An idle keep-alive connection must not hold the process past the grace."""
    srv = start_server(SHUTDOWN_GRACE_S=2)
    s = raw_connect(srv)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    resp, _, _ = read_response(s, 5)
    assert resp.status == 200
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    code, took = wait_exit(srv, t0, grace=2)
    s.close()
    assert code == 0 and took <= 3, (code, took)


# ---------------------------------------------------------------- restart

def populate(srv):
    a, ta = register(srv)
    b, tb = register(srv)
    assert_json(api(srv, "PATCH", "/api/users/me", ta, json={"bio": "persisted bio"}), 200)
    p = make_post(srv, ta, "survives")
    assert_json(api(srv, "PUT", "/api/posts/%s/like" % p["id"], tb), 200)
    c = assert_json(api(srv, "POST", "/api/posts/%s/comments" % p["id"], tb,
                        json={"text": "comment survives"}), 201)
    chat = make_chat(srv, ta, [b["id"]])
    ms = [send_msg(srv, ta, chat["id"], "m%d" % i, clientId="k%d" % i) for i in range(5)]
    assert api(srv, "POST", "/api/chats/%s/read" % chat["id"], tb,
               json={"messageId": ms[1]["id"]}).status_code == 204
    return dict(a=a, ta=ta, b=b, tb=tb, post=p, comment=c, chat=chat, msgs=ms)


def verify(srv, d):
    r = api(srv, "POST", "/api/auth/login", json={"email": d["a"]["email"], "password": PASSWORD})
    assert_json(r, 200)
    me = assert_json(api(srv, "GET", "/api/users/me", d["ta"]), 200)  # old token still valid
    assert me["bio"] == "persisted bio"
    p = assert_json(api(srv, "GET", "/api/posts/" + d["post"]["id"], d["tb"]), 200)
    assert (p["text"], p["likeCount"], p["commentCount"], p["likedByMe"]) == ("survives", 1, 1, True)
    items, _ = check_page(assert_json(api(srv, "GET", "/api/posts/%s/comments" % d["post"]["id"],
                                          d["ta"]), 200))
    assert [c["id"] for c in items] == [d["comment"]["id"]]
    pages = page_all(srv, "/api/chats/%s/messages" % d["chat"]["id"], d["ta"], 100)
    got = [m for pg in pages for m in pg]
    assert [m["id"] for m in got] == [m["id"] for m in reversed(d["msgs"])]
    assert [m["seq"] for m in got] == [m["seq"] for m in reversed(d["msgs"])]
    assert get_chat(srv, d["tb"], d["chat"]["id"])["unreadCount"] == 3
    # the direct chat is still unique, clientIds still dedupe, seq continues
    assert make_chat(srv, d["tb"], [d["a"]["id"]], expect=200)["id"] == d["chat"]["id"]
    again = send_msg(srv, d["ta"], d["chat"]["id"], "dup", clientId="k0", expect=200)
    assert again["id"] == d["msgs"][0]["id"]
    nxt = send_msg(srv, d["ta"], d["chat"]["id"], "after restart")
    assert nxt["seq"] > d["msgs"][-1]["seq"]
    # uniqueness survives
    r = api(srv, "POST", "/api/auth/register", json={
        "username": d["a"]["username"].upper(), "email": "other-" + d["a"]["email"],
        "password": PASSWORD})
    assert_error(r, 409, "username_taken")


def test_data_survives_graceful_restart(start_server):
    srv = start_server()
    d = populate(srv)
    assert srv.stop() == 0
    srv.start()
    verify(srv, d)


def test_logout_survives_restart(start_server):
    srv = start_server()
    _, tok = register(srv)
    assert api(srv, "POST", "/api/auth/logout", tok).status_code == 204
    assert srv.stop() == 0
    srv.start()
    assert_error(api(srv, "GET", "/api/users/me", tok), 401, "unauthorized")


@pytest.mark.sqlite_only
def test_data_survives_kill9(start_server):
    srv = start_server()
    d = populate(srv)
    srv.kill9()
    srv.start()
    verify(srv, d)


@pytest.mark.sqlite_only
@pytest.mark.time_limit(90)
def test_acked_messages_survive_kill9_under_load(start_server):
    """Every message and post answered 201 before the kill is there after it."""
    srv = start_server()
    a, ta = register(srv)
    b, tb = register(srv)
    chat = make_chat(srv, ta, [b["id"]])
    acked_msgs, acked_posts = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(i):
        sess = requests.Session()
        n = 0
        while not stop.is_set() and n < 2000:
            n += 1
            try:
                if i % 3 == 2:
                    r = sess.post(srv.url + "/api/posts", json={"text": "p%d-%d" % (i, n)},
                                  headers={"Authorization": "Bearer " + ta}, timeout=5)
                    if r.status_code == 201:
                        with lock:
                            acked_posts.append(r.json()["id"])
                else:
                    r = sess.post(srv.url + "/api/chats/%s/messages" % chat["id"],
                                  json={"text": "m%d-%d" % (i, n)},
                                  headers={"Authorization": "Bearer " + (ta if i % 2 else tb)},
                                  timeout=5)
                    if r.status_code == 201:
                        with lock:
                            acked_msgs.append(r.json()["id"])
            except requests.RequestException:
                return

    ex = ThreadPoolExecutor(6)
    futs = [ex.submit(worker, i) for i in range(6)]
    time.sleep(1.5)
    srv.kill9()
    stop.set()
    for f in futs:
        f.result(timeout=10)
    ex.shutdown()
    with lock:
        msgs, posts = list(acked_msgs), list(acked_posts)
    assert msgs and posts, "no load was acked before the kill"
    srv.start()
    pages = page_all(srv, "/api/chats/%s/messages" % chat["id"], ta, 100, max_pages=500)
    present = {m["id"] for pg in pages for m in pg}
    lost = set(msgs) - present
    assert not lost, "%d of %d acked messages lost after kill -9" % (len(lost), len(msgs))
    seqs = [m["seq"] for pg in pages for m in pg]
    assert len(seqs) == len(set(seqs))
    pages = page_all(srv, "/api/posts", ta, 100, params={"author": a["id"]}, max_pages=500)
    present = {p["id"] for pg in pages for p in pg}
    lost = set(posts) - present
    assert not lost, "%d of %d acked posts lost after kill -9" % (len(lost), len(posts))
