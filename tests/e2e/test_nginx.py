"""Issue 10 behind nginx: three chatli instances on one MongoDB (FerretDB in
CI) and one private redis-server, with Debian's nginx in front running
config/nginx.conf itself (its listen port and upstream servers replaced
between the marker lines).  Clients only talk to nginx:

- every connection of a member (spread over the instances by least_conn)
  gets a message sent through nginx exactly once;
- X-Forwarded-For is set by nginx from the real peer, so with TRUST_PROXY=1
  a client cannot dodge the shared rate limit by sending its own;
- kill -9 of one instance: REST through nginx keeps answering (the next
  instance is tried on a refused connect), WebSockets reconnect to the
  others and `sync` finds every acked message.

Runs only on MongoDB (the mongo-e2e phase) and where nginx is installed
(scripts/install-deps.sh test installs nginx-light).
"""
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from conftest import REPO_ROOT, STORE, free_port
from helpers import api, assert_error, assert_json, make_chat, register
from test_scaleout import Redis, eventually
from ws_fixtures import WS

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

pytestmark = [
    pytest.mark.own_server,
    pytest.mark.skipif(STORE != "mongo", reason="needs MONGODB_URI: instances share the store"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
    pytest.mark.skipif(NGINX is None, reason="nginx not installed (scripts/install-deps.sh test)"),
]


class Nginx:
    def __init__(self, workdir, ports):
        self.dir = workdir
        self.port = free_port()
        conf = (REPO_ROOT / "config" / "nginx.conf").read_text()
        servers = "".join("        server 127.0.0.1:%d max_fails=1 fail_timeout=2s;\n" % p
                          for p in ports)
        for block in ("rest", "ws", "sio"):
            conf = re.sub(r"(# BEGIN chatli instances \(%s\)\n).*?(\s*# END)" % block,
                          lambda m: m.group(1) + servers + m.group(2), conf, flags=re.S)
        conf = re.sub(r"(# BEGIN listen\n).*?(\s*# END)",
                      lambda m: m.group(1) + "        listen 127.0.0.1:%d;" % self.port
                      + m.group(2), conf, flags=re.S)
        tmp = str(workdir)
        conf = conf.replace("http {\n", "http {\n    client_body_temp_path %s/body;\n"
                            "    proxy_temp_path %s/proxy;\n" % (tmp, tmp), 1)
        if os.geteuid() == 0:  # workers would otherwise run as nobody
            conf = "user root;\n" + conf
        conf = conf.replace("worker_processes auto;", "worker_processes 1;")
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(conf)
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d" % self.port

    def start(self):
        d = str(self.dir)
        self.proc = subprocess.Popen(
            [NGINX, "-p", d, "-c", str(self.conf), "-g",
             "daemon off; pid %s/nginx.pid; error_log %s/error.log;" % (d, d)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert eventually(lambda: self._up(), 10), self.proc.stderr.read().decode()

    def _up(self):
        try:
            return api(self, "GET", "/healthz").status_code == 200
        except Exception:
            return False

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def cluster(start_server, session_tmp):
    d = session_tmp / ("nginx-" + uuid.uuid4().hex[:8])
    d.mkdir()
    redis = Redis(d)
    redis.start()
    db = "chatli_e2e_nginx_" + uuid.uuid4().hex[:10]
    env = dict(REDIS_URL=redis.url, MONGODB_DB=db, TRUST_PROXY=1, RATE_LIMIT_MAX=0)
    insts = [start_server(**env) for _ in range(3)]
    ngx = Nginx(d, [s.port for s in insts])
    ngx.start()
    yield ngx, insts, redis
    ngx.stop()
    redis.kill()


def test_fanout_through_nginx_reaches_every_connection_once(cluster):
    ngx, insts, _ = cluster
    u1, t1 = register(ngx)
    u2, t2 = register(ngx)
    chat = make_chat(ngx, t1, [u2["id"]])
    socks = [WS(ngx, t2) for _ in range(3)]
    try:
        for w in socks:
            w.ready()
        for i in range(5):
            assert_json(api(ngx, "POST", "/api/chats/%s/messages" % chat["id"], t1,
                            json={"text": "n%d" % i}), 201)
        for w in socks:
            got = [w.recv_type("message.new", 10)["message"]["text"] for _ in range(5)]
            assert sorted(got) == ["n%d" % i for i in range(5)]
            assert not [f for f in w.barrier() if f.get("type") == "message.new"]
    finally:
        for w in socks:
            w.close()


def test_forwarded_for_cannot_dodge_shared_limit(start_server, session_tmp):
    d = session_tmp / ("nginx-rl-" + uuid.uuid4().hex[:8])
    d.mkdir()
    redis = Redis(d)
    redis.start()
    db = "chatli_e2e_nginx_" + uuid.uuid4().hex[:10]
    env = dict(REDIS_URL=redis.url, MONGODB_DB=db, TRUST_PROXY=1, RATE_LIMIT_MAX=4,
               RATE_LIMIT_WINDOW_MS=60000)
    insts = [start_server(**env) for _ in range(2)]
    ngx = Nginx(d, [s.port for s in insts])
    ngx.start()
    try:
        body = {"email": "nobody@example.com", "password": "whatever1"}
        for i in range(4):
            r = api(ngx, "POST", "/api/auth/login", json=body,
                    headers={"X-Forwarded-For": "10.0.0.%d" % i})
            assert r.status_code == 401, r.text
        r = api(ngx, "POST", "/api/auth/login", json=body,
                headers={"X-Forwarded-For": "10.9.9.9"})
        assert_error(r, 429, "rate_limited")
    finally:
        ngx.stop()
        redis.kill()


def test_kill9_one_instance_clients_move_on(cluster):
    ngx, insts, _ = cluster
    u1, t1 = register(ngx)
    u2, t2 = register(ngx)
    chat = make_chat(ngx, t1, [u2["id"]])
    acked = [assert_json(api(ngx, "POST", "/api/chats/%s/messages" % chat["id"], t1,
                             json={"text": "before %d" % i}), 201)["id"] for i in range(3)]
    insts[0].kill9()
    # REST keeps answering through nginx, whichever instance it picks.
    for i in range(6):
        acked.append(assert_json(api(ngx, "POST", "/api/chats/%s/messages" % chat["id"], t1,
                                     json={"text": "after %d" % i}), 201)["id"])
    # A client reconnecting lands on a live instance and syncs everything.
    w = WS(ngx, t2)
    try:
        w.ready()
        w.send({"type": "sync", "chats": {chat["id"]: 0}})
        ids = []
        while True:
            f = w.recv(10)
            if f["type"] == "sync.done":
                break
            if f["type"] == "message.new":
                ids.append(f["message"]["id"])
        assert ids == acked
    finally:
        w.close()


def test_socketio_default_transports_through_nginx(cluster):
    """Polling then the upgrade, through the three instances: every request
    of the session must reach the instance holding it (chatli_sio)."""
    import socketio
    ngx, insts, _ = cluster
    u1, t1 = register(ngx)
    u2, t2 = register(ngx)
    chat = make_chat(ngx, t1, [u2["id"]])
    got = []
    clients = []
    for transports in (None, ["polling"]):
        c = socketio.Client(reconnection=False)
        c.on("message.new", lambda d: got.append(d["message"]["text"]))
        c.connect(ngx.url, auth={"token": t2}, transports=transports, wait_timeout=10)
        clients.append(c)
    try:
        assert_json(api(ngx, "POST", "/api/chats/%s/messages" % chat["id"], t1,
                        json={"text": "via nginx"}), 201)
        deadline = time.monotonic() + 10
        while (len(got) < 2 or clients[0].transport() != "websocket") \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got == ["via nginx", "via nginx"]
        assert clients[0].transport() == "websocket" and clients[1].transport() == "polling"
    finally:
        for c in clients:
            c.disconnect()
