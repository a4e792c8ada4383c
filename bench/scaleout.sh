#!/usr/bin/env bash
# bench/scaleout.sh - chatli scaled out: bench/ws's generator through nginx
# (config/nginx.conf itself) against 1, 2 and 3 instances on one MongoDB
# (FerretDB here) and one redis-server, everything on loopback, started and
# stopped by this script, every step bounded in time (timeout).
#
# Per instance count N (fresh instances, nginx and database each time; one
# FerretDB and one Redis for the whole run):
#   1. idle: IDLE_CONNS WebSockets held through nginx (connections held,
#      chatli RSS per connection summed over the instances);
#   2. typing, open loop through nginx at TYPING_RATE frames/s over
#      TYPING_PAIRS pairs: the fan-out without a store write, so what the
#      instances and Redis cost; with N instances and nginx's least_conn,
#      about (N-1)/N of the deliveries cross instances.  Delivery p50/p99
#      and chatli CPU per delivered frame (all instances summed);
#   3. chat, closed loop through nginx: PAIRS direct chats, WINDOW frames
#      in flight per connection, DURATION s: the messages/s the box gives
#      (on FerretDB: what FerretDB gives, ten or so per second).  Last: it
#      leaves messages queued at FerretDB.
# Then the Redis hop on its own, two instances with REDIS_URL, the generator
# talking to them directly (no nginx, so only the hop differs):
#   same-instance: both users of every pair on instance A (--ws-ports A);
#   cross-instance: one user of every pair on A, the other on B
#      (--ws-ports A,B), so every delivery goes A -> Redis -> B;
#   4. typing at TYPING_RATE/s, same then cross, twice (alternated: on a
#      shared box one run says little): delivery p50/p99 and chatli CPU per
#      frame (A + B);
#   5. messages at RATE/s, same then cross: delivery minus ack latency (on
#      FerretDB the store's queue dominates these).
# Redis's own CPU over each of those runs is read from /proc too.
#
# The load average before each run is printed next to its figures: this box
# may be shared, and then every figure here is pessimistic.
#
# Environment: BUILD (default build-bench), IDLE_CONNS (500; each handshake
# lists the user's chats, a scan on FerretDB: a few dozen per second here),
# PAIRS (20), WINDOW (1), DURATION (8), RATE (10), TYPING_PAIRS (100),
# TYPING_RATE (500), COUNTS ("1 2 3"), MONGODB_URI (use
# that server instead of starting FerretDB), BENCH_KEEP=1 keeps logs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

BUILD=${BUILD:-$BENCH_ROOT/build-bench}
IDLE_CONNS=${IDLE_CONNS:-500}
PAIRS=${PAIRS:-20}
WINDOW=${WINDOW:-1}
DURATION=${DURATION:-8}
RATE=${RATE:-10}
TYPING_PAIRS=${TYPING_PAIRS:-100}
TYPING_RATE=${TYPING_RATE:-500}
COUNTS=${COUNTS:-"1 2 3"}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "scaleout: nginx not installed (scripts/install-deps.sh test)" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "scaleout: redis-server not installed" >&2; exit 2; }

bench_build_wsbench
BIN=$CHATLI_BIN

TMP=$(mktemp -d /tmp/chatli-scaleout.XXXXXX)
PIDS=()        # chatli instances of the current step
NGINX_PID=
REDIS_PID=
OWN_FDB=

stop_instances() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        timeout 15 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    PIDS=()
    if [ -n "$NGINX_PID" ]; then
        kill -TERM "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
        NGINX_PID=
    fi
}

cleanup() {
    stop_instances
    if [ -n "$REDIS_PID" ]; then
        kill -TERM "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    if [ -n "$OWN_FDB" ]; then
        FERRETDB_STATE_DIR=$TMP/fdb "$BENCH_ROOT/scripts/ferretdb.sh" stop >/dev/null 2>&1 || true
    fi
    if [ -n "${BENCH_KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

wait_http() { # url, seconds
    local i
    for i in $(seq 1 $(($2 * 10))); do
        curl -fsS "$1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "scaleout: $1 did not answer in $2 s" >&2
    return 1
}

# MongoDB: the caller's, or a private FerretDB.
if [ -z "${MONGODB_URI:-}" ]; then
    FERRETDB_STATE_DIR=$TMP/fdb FERRETDB_URI_FILE=$TMP/fdb.uri \
        timeout 90 "$BENCH_ROOT/scripts/ferretdb.sh" start >/dev/null
    OWN_FDB=1
    . "$TMP/fdb.uri"
fi
export MONGODB_URI

# One redis-server for the whole run.
REDIS_PORT=$(bench_free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$TMP" --logfile "$TMP/redis.log" &
REDIS_PID=$!
for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

# Starts N instances on a fresh database (ports in PORTS, pids in PIDS).
start_instances() { # n, db
    local n=$1 db=$2 i port
    PORTS=()
    for i in $(seq 1 "$n"); do
        port=$(bench_free_port)
        mkdir -p "$TMP/data-$db-$i"
        env HOST=127.0.0.1 PORT="$port" DATA_DIR="$TMP/data-$db-$i" MONGODB_URI="$MONGODB_URI" \
            MONGODB_DB="$db" REDIS_URL="$REDIS_URL" TRUST_PROXY=1 RATE_LIMIT_MAX=0 WS_RATE_PER_S=0 \
            PWHASH_OPSLIMIT=1 PWHASH_MEMLIMIT=8192 LOG_LEVEL=warn \
            "$BIN" >"$TMP/chatli-$db-$i.log" 2>&1 &
        PIDS+=($!)
        PORTS+=("$port")
        wait_http "http://127.0.0.1:$port/readyz" 30
    done
}

# nginx running config/nginx.conf with its listen port and upstreams
# replaced between the marker lines (as tests/e2e/test_nginx.py does).
start_nginx() {
    NGINX_PORT=$(bench_free_port)
    local d=$TMP/nginx-$NGINX_PORT servers="" p
    mkdir -p "$d"
    for p in "${PORTS[@]}"; do
        servers+="        server 127.0.0.1:$p max_fails=1 fail_timeout=2s;"$'\n'
    done
    SERVERS=$servers PORT=$NGINX_PORT TMPD=$d ROOT=$(id -u) "$PY" - "$BENCH_ROOT/config/nginx.conf" \
        >"$d/nginx.conf" <<'EOF'
import os, re, sys
conf = open(sys.argv[1]).read()
servers = os.environ["SERVERS"]
for block in ("rest", "ws"):
    conf = re.sub(r"(# BEGIN chatli instances \(%s\)\n).*?(\s*# END)" % block,
                  lambda m: m.group(1) + servers + m.group(2), conf, flags=re.S)
conf = re.sub(r"(# BEGIN listen\n).*?(\s*# END)",
              lambda m: m.group(1) + "        listen 127.0.0.1:%s;" % os.environ["PORT"]
              + m.group(2), conf, flags=re.S)
t = os.environ["TMPD"]
conf = conf.replace("http {\n", "http {\n    client_body_temp_path %s/body;\n"
                    "    proxy_temp_path %s/proxy;\n" % (t, t), 1)
if os.environ["ROOT"] == "0":
    conf = "user root;\n" + conf
conf = conf.replace("worker_processes auto;", "worker_processes 1;")
sys.stdout.write(conf)
EOF
    "$NGINX" -p "$d" -c "$d/nginx.conf" -g "daemon off; pid $d/nginx.pid; error_log $d/error.log;" \
        >/dev/null 2>"$d/stderr" &
    NGINX_PID=$!
    wait_http "http://127.0.0.1:$NGINX_PORT/healthz" 10
}

pid_list() { local IFS=,; echo "${PIDS[*]}"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
redis_cpu() { proc_cpu_s "$REDIS_PID"; }
rss_sum() { local p t=0; for p in "${PIDS[@]}"; do t=$((t + $(proc_rss_kib "$p"))); done; echo "$t"; }

LOG=$TMP/results.txt
: >"$LOG"
note() { echo "$*" | tee -a "$LOG"; }
run_wsb() { # label, wsbench args...: runs bounded, keeps its RESULT lines under the label
    local label=$1 out
    shift
    local r0 l
    r0=$(redis_cpu)
    l=$(load)
    out=$TMP/wsb-$(echo "$label" | tr ' /' '__').out
    timeout 300 "$WSB" "$@" | tee "$out" | grep -E '^(RESULT|==|messages|idle|  ack|  delivery)' || true
    note "LOAD $label load_before=\"$l\" redis_cpu_s=$(awk -v a="$r0" -v b="$(redis_cpu)" 'BEGIN{printf "%.2f", b-a}')"
    sed -n "s/^RESULT /RESULT $label | /p" "$out" >>"$LOG"
}

bench_machine
echo "mongo: $MONGODB_URI (${OWN_FDB:+a private FerretDB, SQLite backend}); redis: $REDIS_URL"
echo

for n in $COUNTS; do
    db="chatli_scaleout_${n}_$$"
    echo "==== $n instance(s) behind nginx"
    start_instances "$n" "$db"
    start_nginx
    url="http://127.0.0.1:$NGINX_PORT"
    tokens=$TMP/tokens-$n.txt
    rss0=$(rss_sum)
    run_wsb "n=$n idle" --url "$url" --server-pid "$(pid_list)" --tokens "$tokens" \
        --conns "$IDLE_CONNS" --hold 3 --settle 3 --bcast 0 idle
    note "RSS n=$n idle_conns=$IDLE_CONNS chatli_rss_kib_before=$rss0 chatli_rss_kib_after_idle=$(rss_sum)"
    # Typing first: the closed loop leaves messages queued at FerretDB.
    run_wsb "n=$n typing" --url "$url" --server-pid "$(pid_list)" --tokens "$tokens" \
        --pairs "$TYPING_PAIRS" --rate "$TYPING_RATE" --duration "$DURATION" typing
    run_wsb "n=$n closed" --url "$url" --server-pid "$(pid_list)" --tokens "$tokens" \
        --pairs "$PAIRS" --window "$WINDOW" --duration "$DURATION" chat
    stop_instances
    echo
done

echo "==== the Redis hop: two instances with REDIS_URL, generator direct to them"
db="chatli_scaleout_hop_$$"
start_instances 2 "$db"
a="http://127.0.0.1:${PORTS[0]}"
tokens=$TMP/tokens-hop.txt
# The generator's WebSocket ports: all on the first instance ("same") or
# alternating between the two ("cross").
hop_ports() {
    if [ "$1" = cross ]; then echo "${PORTS[0]},${PORTS[1]}"; else echo "${PORTS[0]}"; fi
}
# Alternated and repeated: on a shared box one run says little.
for round in 1 2; do
    for where in same cross; do
        run_wsb "hop $where typing $round" --url "$a" --server-pid "$(pid_list)" --tokens "$tokens" \
            --ws-ports "$(hop_ports "$where")" --pairs "$TYPING_PAIRS" --rate "$TYPING_RATE" --duration "$DURATION" typing
    done
done
for where in same cross; do
    run_wsb "hop $where chat" --url "$a" --server-pid "$(pid_list)" --tokens "$tokens" \
        --ws-ports "$(hop_ports "$where")" --pairs "$PAIRS" --rate "$RATE" --duration "$DURATION" chat
done
stop_instances

echo
echo "summary ($(nproc) cores shared by every process here and by whatever else runs on the box)"
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
grep -E '^RESULT .* \| mode=(rate|closed)' "$LOG" | while IFS= read -r line; do
    label=$(sed 's/^RESULT \(.*\) | .*/\1/' <<<"$line")
    printf '  %-16s %6s msg/s  ack p50/p99 %s/%s ms  delivery p50/p99 %s/%s ms (delivery-ack p50 %s ms)  %s us chatli CPU/msg  all delivered: %s\n' \
        "$label" "$(field "$line" delivered_per_s)" "$(field "$line" ack_p50_ms)" "$(field "$line" ack_p99_ms)" \
        "$(field "$line" deliv_p50_ms)" "$(field "$line" deliv_p99_ms)" \
        "$(awk -v d="$(field "$line" deliv_p50_ms)" -v a="$(field "$line" ack_p50_ms)" 'BEGIN{printf "%.3f", d-a}')" \
        "$(field "$line" cpu_us_per_msg)" "$(field "$line" ok)"
done
grep '^RESULT .* | mode=typing' "$LOG" | while IFS= read -r line; do
    printf '  %-16s %6s frames/s delivered  delivery p50/p99 %s/%s ms  %s us chatli CPU/frame  all delivered: %s\n' \
        "$(sed 's/^RESULT \(.*\) | .*/\1/' <<<"$line")" "$(field "$line" delivered_per_s)" \
        "$(field "$line" deliv_p50_ms)" "$(field "$line" deliv_p99_ms)" \
        "$(field "$line" cpu_us_per_frame)" "$(field "$line" ok)"
done
grep '^RESULT .* | idle_conns=' "$LOG" | while IFS= read -r line; do
    printf '  %-16s %s connections held\n' "$(sed 's/^RESULT \(.*\) | .*/\1/' <<<"$line")" \
        "$(field "$line" idle_conns)"
done
grep -E '^(LOAD|RSS) ' "$LOG" | sed 's/^/  /'
