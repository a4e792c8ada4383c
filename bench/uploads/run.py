#!/usr/bin/python3
"""bench/uploads/run.py - uploads/s and server cost for 1 MiB images.

Starts the built server twice on free loopback ports with a temp DATA_DIR:
once with local storage, once against the loopback fake Cloudinary of the e2e
suite (tests/e2e/fake_cloudinary.py, in this process).  CLIENTS threads each
upload distinct 1 MiB PNG files (a valid header, then filler: the server only
reads headers, the fake only the PNG size) for DURATION seconds over keep-alive
connections.  Prints uploads/s, client-side latency percentiles, the server's
CPU (utime+stime from /proc) per upload and its resident memory (VmRSS before,
VmHWM after).  The load generator shares the machine, so CPU per upload is the
fairer figure.

Knobs (environment): CLIENTS=8 DURATION=10 SIZE=1048576 CHATLI_BIN.
"""
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from fake_cloudinary import FakeCloudinary  # noqa: E402

CLIENTS = int(os.environ.get("CLIENTS", "8"))
DURATION = float(os.environ.get("DURATION", "10"))
SIZE = int(os.environ.get("SIZE", str(1 << 20)))
TCK = os.sysconf("SC_CLK_TCK")


def find_bin():
    for p in (os.environ.get("CHATLI_BIN"), os.path.join(ROOT, "build-bench", "chatli"),
              os.path.join(ROOT, "build", "chatli")):
        if p and os.access(p, os.X_OK):
            return p
    sys.exit("no chatli binary: build it or set CHATLI_BIN")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def image(i):
    """A distinct SIZE-byte PNG: header of a 1000x700 image, then filler."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1000, 700, 8, 2, 0, 0, 0))
    tag = struct.pack(">Q", i)
    return head + tag + b"\x42" * (SIZE - len(head) - len(tag))


def run(label, env_extra, fake=None):
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="chatli-bench-up-")
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1", DATA_DIR=os.path.join(tmp, "data"),
               RATE_LIMIT_MAX="0", UPLOAD_RATE_LIMIT_MAX="0", PWHASH_OPSLIMIT="1",
               PWHASH_MEMLIMIT="8192", LOG_LEVEL="warn", MAX_UPLOAD_BYTES=str(SIZE + 4096),
               **env_extra)
    proc = subprocess.Popen([find_bin()], env=env, stdout=subprocess.DEVNULL, cwd=tmp)
    base = "http://127.0.0.1:%d" % port
    try:
        for _ in range(100):
            try:
                if requests.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.05)
        r = requests.post(base + "/api/auth/register", json={
            "username": "bench_up", "email": "bench_up@example.com", "password": "bench password"})
        tok = r.json()["token"]
        lat, errors, counter = [], [], [0]
        lock = threading.Lock()
        stop_at = time.monotonic() + DURATION

        def client(k):
            s = requests.Session()
            s.headers["Authorization"] = "Bearer " + tok
            n = 0
            while time.monotonic() < stop_at:
                data = image(k * 1000000 + n)
                n += 1
                t0 = time.monotonic()
                r = s.post(base + "/api/uploads", files={"file": ("a.png", data, "image/png")},
                           timeout=60)
                with lock:
                    if r.status_code == 201:
                        lat.append(time.monotonic() - t0)
                    else:
                        errors.append(r.status_code)

        rss0 = status_kib(proc.pid, "VmRSS")
        cpu0, t0 = cpu_s(proc.pid), time.monotonic()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        secs, cpu = time.monotonic() - t0, cpu_s(proc.pid) - cpu0
        lat.sort()
        n = len(lat)
        pct = lambda p: lat[min(n - 1, int(p * n))] * 1000 if n else float("nan")  # noqa: E731
        print("%-10s %d clients x %.0f s, %d KiB files: %d uploads, %.1f uploads/s (%.1f MiB/s), "
              "errors %s; latency p50 %.1f ms p99 %.1f ms; server CPU %.2f ms/upload; "
              "RSS %d KiB before, peak %d KiB%s"
              % (label, CLIENTS, DURATION, SIZE // 1024, n, n / secs, n * SIZE / secs / 2**20,
                 sorted(set(errors)) or "none", pct(0.5), pct(0.99),
                 cpu * 1000 / max(n, 1), rss0, status_kib(proc.pid, "VmHWM"),
                 "; fake saw %d requests" % len(fake.requests) if fake else ""))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    print("machine: %d cores, load average %s" % (os.cpu_count(), open("/proc/loadavg").read().split()[:3]))
    run("local", {})
    fake = FakeCloudinary().start()
    try:
        run("cloudinary", {"CLOUDINARY_URL": fake.cloudinary_url(), "CLOUDINARY_API_BASE": fake.base},
            fake)
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
