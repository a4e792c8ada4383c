"""The cost of GET /api/chats (run with /usr/bin/python3).

  chats_list.py [--chats N] [--members M] [--requests R]

Starts $CHATLI_BIN (default build/chatli) on a free loopback port with an
embedded SQLite store in a temporary directory (or on $MONGODB_URI when set,
in a fresh database), registers one user and the others it needs, creates N
groups of M members (the user and M-1 others), sends one message in each and
has every member mark it read, then times R sequential
GET /api/chats?limit=min(N,100) and reads the store operations per request
from /metrics (chatli_store_op_duration_seconds_count by op).  Prints the
median and p90 latency and the store operations each request made: the
figure that shows whether listing chats costs a query per chat or per member.
"""
import argparse
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def store_ops(base):
    """{op: (count, seconds)} from /metrics."""
    text = requests.get(base + "/metrics", timeout=10).text
    ops = {}
    for m in re.finditer(r'^chatli_store_op_duration_seconds_(count|sum)\{op="([^"]+)"\} (\S+)',
                         text, re.M):
        c, t = ops.get(m.group(2), (0, 0.0))
        if m.group(1) == "count":
            c = int(float(m.group(3)))
        else:
            t = float(m.group(3))
        ops[m.group(2)] = (c, t)
    return ops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chats", type=int, default=100)
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200)
    a = ap.parse_args()
    binary = os.environ.get("CHATLI_BIN", os.path.join(ROOT, "build", "chatli"))
    tmp = tempfile.mkdtemp(prefix="chats-list-")
    port = free_port()
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1", DATA_DIR=tmp, RATE_LIMIT_MAX="0",
               PWHASH_OPSLIMIT="1", PWHASH_MEMLIMIT="8192", LOG_LEVEL="warn")
    if env.get("MONGODB_URI"):
        env["MONGODB_DB"] = "chats_list_" + secrets.token_hex(4)
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL)
    base = "http://127.0.0.1:%d" % port
    try:
        for _ in range(300):
            try:
                if requests.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.05)
        s = requests.Session()
        run = secrets.token_hex(3)

        def reg(i):
            r = s.post(base + "/api/auth/register", timeout=30, json={
                "username": "cl%s_%d" % (run, i), "email": "cl%s_%d@example.com" % (run, i),
                "password": "benchmark password"})
            r.raise_for_status()
            j = r.json()
            return j["user"]["id"], j["token"]

        users = [reg(i) for i in range(a.members)]
        me_id, me_tok = users[0]
        for n in range(a.chats):
            r = s.post(base + "/api/chats", timeout=30, headers={"Authorization": "Bearer " + me_tok},
                       json={"memberIds": [u for u, _ in users[1:]], "name": "g%d" % n})
            r.raise_for_status()
            cid = r.json()["id"]
            r = s.post(base + "/api/chats/%s/messages" % cid, timeout=30,
                       headers={"Authorization": "Bearer " + me_tok}, json={"text": "hi"})
            r.raise_for_status()
            mid = r.json()["id"]
            for _, tok in users[1:]:
                s.post(base + "/api/chats/%s/read" % cid, timeout=30,
                       headers={"Authorization": "Bearer " + tok},
                       json={"messageId": mid}).raise_for_status()
        limit = min(a.chats, 100)
        h = {"Authorization": "Bearer " + me_tok}
        for _ in range(10):  # warm up
            s.get(base + "/api/chats", params={"limit": limit}, headers=h, timeout=30)
        before = store_ops(base)
        lat = []
        for _ in range(a.requests):
            t0 = time.perf_counter()
            r = s.get(base + "/api/chats", params={"limit": limit}, headers=h, timeout=30)
            lat.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
        after = store_ops(base)
        items = r.json()["items"]
        has_marks = bool(items) and "readMarks" in items[0]
        ops = {k: (after[k][0] - before.get(k, (0, 0))[0]) / a.requests for k in after
               if after[k][0] != before.get(k, (0, 0))[0]}
        lc = after.get("list_chats", (0, 0.0))
        lc0 = before.get("list_chats", (0, 0.0))
        lc_ms = (lc[1] - lc0[1]) * 1000 / max(1, lc[0] - lc0[0])
        lat.sort()
        print("store=%s chats=%d members=%d limit=%d requests=%d readMarks=%s" % (
            "mongodb" if env.get("MONGODB_URI") else "sqlite", a.chats, a.members, limit,
            a.requests, has_marks))
        print("GET /api/chats: median %.2f ms, p90 %.2f ms, %d bytes" % (
            statistics.median(lat), lat[int(len(lat) * 0.9)], len(r.content)))
        print("store list_chats: mean %.2f ms" % lc_ms)
        print("store operations per request: %s" % (
            ", ".join("%s %.2f" % kv for kv in sorted(ops.items())) or "none"))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
