#!/usr/bin/env python3
"""bench/http/rss_idle.py - resident memory per idle REST keep-alive connection.

Usage: rss_idle.py CHATLI_BIN [N=2000]

Starts the server on a free loopback port (temp DATA_DIR, MAX_CONNS_PER_ADDR=0,
HTTP_THREADS=4), warms it with 50 short connections, then opens N keep-alive
connections that each send one GET /healthz and read the answer, and prints
the server's VmRSS before and after and the difference per connection."""
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time


def main():
    binp = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 256)), hard))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1", DATA_DIR=tempfile.mkdtemp(),
               LOG_LEVEL="warn", RATE_LIMIT_MAX="0", HTTP_THREADS="4", MAX_CONNS_PER_ADDR="0")
    p = subprocess.Popen([binp], env=env, stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.0)

        def rss_kib():
            with open("/proc/%d/status" % p.pid) as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))

        def one():
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(4096)
            return s

        for s in [one() for _ in range(50)]:
            s.close()
        time.sleep(0.5)
        r0 = rss_kib()
        socks = [one() for _ in range(n)]
        time.sleep(1.0)
        r1 = rss_kib()
        print("connections=%d rss_before=%d KiB rss_after=%d KiB per_connection=%.1f KiB"
              % (n, r0, r1, (r1 - r0) / n))
        for s in socks:
            s.close()
    finally:
        p.terminate()
        p.wait()


if __name__ == "__main__":
    main()
