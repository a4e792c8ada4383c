# lib.sh - shell helpers shared by bench/http/run.sh, bench/ws/*.sh and bench/scaleout.sh:
# find the built server, start it on a free loopback port with a temp DATA_DIR,
# read its CPU and RSS from /proc, describe the machine, stop it cleanly.
# Sourced, not run.  The server is judged by its own cost (utime+stime, VmRSS)
# because the load generator shares the machine's cores with it.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3
TCK=$(getconf CLK_TCK)

bench_find_bin() {
    if [ -n "${CHATLI_BIN:-}" ]; then
        echo "$CHATLI_BIN"
    elif [ -x "$BENCH_ROOT/build-bench/chatli" ]; then
        echo "$BENCH_ROOT/build-bench/chatli"
    elif [ -x "$BENCH_ROOT/build/chatli" ]; then
        echo "$BENCH_ROOT/build/chatli"
    else
        echo "no chatli binary: build it (cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench -j2) or set CHATLI_BIN" >&2
        return 1
    fi
}

# Configures $BUILD once (Release), builds chatli and chatli_wsbench there,
# and sets WSB to the generator and CHATLI_BIN (unless set) to the server.
bench_build_wsbench() {
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        cmake -S "$BENCH_ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    fi
    cmake --build "$BUILD" --target chatli chatli_wsbench -j2 >/dev/null
    WSB=$BUILD/bench/chatli_wsbench
    : "${CHATLI_BIN:=$BUILD/chatli}"
}

bench_free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Server CPU seconds (utime+stime of all its threads) and resident KiB.
proc_cpu_s() { sed 's/.*) //' "/proc/$1/stat" | awk -v t="$TCK" '{printf "%.2f\n", ($12+$13)/t}'; }
proc_rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

# "busy total" CPU seconds of the whole box since boot, from /proc/stat.
box_cpu() { awk -v t="$TCK" '/^cpu /{b=$2+$3+$4+$7+$8+$9; printf "%.2f %.2f\n", b/t, (b+$5+$6)/t; exit}' /proc/stat; }

bench_machine() {
    echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -m | awk '/^Mem:/{print $2}') MiB RAM, kernel $(uname -r)"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "busiest other processes (%CPU since start, command):"
    ps -eo pcpu=,comm= --sort=-pcpu | head -5 | sed 's/^/  /'
}

# Starts the server with the benchmark environment plus any NAME=VALUE args.
# Sets SERVER_PID, PORT, BASE, BENCH_TMP.  Logs go to $BENCH_TMP/server.log.
bench_start_server() {
    local bin
    bin=$(bench_find_bin) || return 1
    BENCH_TMP=$(mktemp -d /tmp/chatli-bench.XXXXXX)
    PORT=$(bench_free_port)
    BASE="http://127.0.0.1:$PORT"
    echo "server: $bin on $BASE, DATA_DIR=$BENCH_TMP/data, LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}"
    mkdir -p "$BENCH_TMP/data"
    env HOST=127.0.0.1 PORT="$PORT" DATA_DIR="$BENCH_TMP/data" RATE_LIMIT_MAX=0 WS_RATE_PER_S=0 \
        PWHASH_OPSLIMIT=1 PWHASH_MEMLIMIT=8192 LOG_LEVEL="${BENCH_LOG_LEVEL:-warn}" "$@" \
        "$bin" >"$BENCH_TMP/server.log" 2>&1 &
    SERVER_PID=$!
    local i
    for i in $(seq 1 100); do
        if curl -fsS "$BASE/healthz" >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "the server exited at start:" >&2
            tail -20 "$BENCH_TMP/server.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "the server did not answer /healthz in 10 s" >&2
    return 1
}

# SIGTERM, wait for the graceful exit (SHUTDOWN_GRACE_S default 10), then clean up.
bench_stop_server() {
    if [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID"
        local i
        for i in $(seq 1 150); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "the server did not stop in 15 s after SIGTERM; killing it" >&2
            kill -KILL "$SERVER_PID"
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
    if [ -n "${BENCH_TMP:-}" ] && [ -z "${BENCH_KEEP:-}" ]; then
        rm -rf "$BENCH_TMP"
    elif [ -n "${BENCH_TMP:-}" ]; then
        echo "kept $BENCH_TMP"
    fi
}
