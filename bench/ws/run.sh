#!/usr/bin/env bash
# bench/ws/run.sh - the /ws gateway under load, with bench/ws's generator.
#
# Builds chatli and chatli_wsbench (CMake targets, in BUILD, default build-bench), starts
# the server like bench/http/run.sh (temp DATA_DIR, loopback, RATE_LIMIT_MAX=0,
# WS_RATE_PER_S=0 so flood control does not cap the generator, cheap Argon2),
# then runs, each bounded in time:
#   1. idle + broadcast: IDLE_CONNS authenticated connections (default 19900,
#      the ceiling of one server process under the 20,000-fd limit), held
#      HOLD s, server RSS per connection; then BCAST_ROUNDS posts, each timed
#      until every held connection has its post.new;
#   2. chat, closed loop: PAIRS direct chats, WINDOW frames in flight per
#      connection, for DURATION s: the most messages/s the box gives;
#   3. chat, open loop at half the rate step 2 reached: latency at a load
#      the server sustains;
#   4. typing, open loop at TYPING_RATE frames/s (default 2,000): CPU per frame;
#   5. chat, open loop at RATE msg/s (default 25,000, half the 50,000 target);
#   6. floor (no server): the kernel's CPU for one send() per connection over
#      IDLE_CONNS loopback connections, with and without a POLLOUT round
#      trip, the least a broadcast delivery can cost on this box.
# Then a summary table from the generator's RESULT lines.
# STEPS picks steps by name (default all: idle chat typing overload floor), e.g.
# STEPS=idle for the broadcast alone.  Extra NAME=VALUE arguments go to the
# server's environment (WS_LOOPS=2).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"

BUILD=${BUILD:-$BENCH_ROOT/build-bench}
IDLE_CONNS=${IDLE_CONNS:-19900}
HOLD=${HOLD:-10}
BCAST_ROUNDS=${BCAST_ROUNDS:-10}
PAIRS=${PAIRS:-500}
WINDOW=${WINDOW:-4}
RATE=${RATE:-25000}
DURATION=${DURATION:-10}
TYPING_RATE=${TYPING_RATE:-2000}
STEPS=" ${STEPS:-idle chat typing overload floor} "
want() { [[ $STEPS == *" $1 "* ]]; }

bench_build_wsbench
export CHATLI_BIN

trap bench_stop_server EXIT
bench_machine
bench_start_server "$@"
tokens=$BENCH_TMP/tokens.txt
common=(--url "$BASE" --server-pid "$SERVER_PID" --tokens "$tokens")
log=$BENCH_TMP/wsbench.out
: >"$log"

if want idle; then
    "$WSB" "${common[@]}" --conns "$IDLE_CONNS" --hold "$HOLD" --bcast "$BCAST_ROUNDS" idle | tee -a "$log"
    echo
fi
if want chat; then
    "$WSB" "${common[@]}" --pairs "$PAIRS" --window "$WINDOW" --duration "$DURATION" chat | tee -a "$log"
    echo
    half=$(grep '^RESULT mode=closed' "$log" | tr ' ' '\n' | sed -n 's/^delivered_per_s=//p' | awk '{printf "%d", $1 / 2}')
    if [ "${half:-0}" -gt 0 ]; then
        "$WSB" "${common[@]}" --pairs "$PAIRS" --rate "$half" --duration "$DURATION" chat | tee -a "$log"
        echo
    fi
fi
if want typing; then
    "$WSB" "${common[@]}" --pairs "$PAIRS" --rate "$TYPING_RATE" --duration "$DURATION" typing | tee -a "$log"
    echo
fi
# Last among the server runs: it overloads the server, and what it leaves
# queued would weigh on any run after it.
if want overload; then
    "$WSB" "${common[@]}" --pairs "$PAIRS" --rate "$RATE" --duration "$DURATION" chat | tee -a "$log"
    echo
fi
if want floor; then
    "$WSB" --conns "$IDLE_CONNS" --bcast 10 floor | tee -a "$log"
fi

val() { grep "^RESULT $1" "$log" | sed -n "${2}p" | tr ' ' '\n' | sed -n "s/^$3=//p"; }
echo
echo "summary ($(nproc) cores shared by server and generator; server cost from /proc/$SERVER_PID)"
printf '  %-44s %s\n' "idle connections held" "$(val idle_conns 1 idle_conns) of $IDLE_CONNS"
printf '  %-44s %s\n' "server RSS per idle connection (bytes)" "$(val idle_conns 1 rss_per_conn_bytes)"
printf '  %-44s %s\n' "broadcast to all: last delivery median/max ms" "$(val bcast_deliveries 1 bcast_last_ms_median) / $(val bcast_deliveries 1 bcast_last_ms_max)"
printf '  %-44s %s\n' "broadcast: server CPU us per delivery" "$(val bcast_deliveries 1 bcast_cpu_us_per_delivery)"
chat='mode=[rc]' # the chat runs' RESULT lines (closed, rate), in run order
for i in $(seq 1 "$(grep -c "^RESULT $chat" "$log")"); do
    printf '  %-44s %s msg/s, ack p50/p99/p99.9 %s/%s/%s ms, delivery p99 %s ms, %s us CPU/msg, all delivered: %s\n' \
        "chat $(val "$chat" $i mode) (target $(val "$chat" $i rate_target)/s)" \
        "$(val "$chat" $i delivered_per_s)" "$(val "$chat" $i ack_p50_ms)" "$(val "$chat" $i ack_p99_ms)" \
        "$(val "$chat" $i ack_p999_ms)" "$(val "$chat" $i deliv_p99_ms)" "$(val "$chat" $i cpu_us_per_msg)" "$(val "$chat" $i ok)"
done
printf '  %-44s %s frames/s, %s us CPU/frame, all delivered: %s\n' "typing (target $TYPING_RATE/s)" \
    "$(val mode=typing 1 delivered_per_s)" "$(val mode=typing 1 cpu_us_per_frame)" "$(val mode=typing 1 ok)"
printf '  %-44s %s us plain, %s us with a POLLOUT round trip\n' "kernel floor per 300-byte send() (no server)" \
    "$(val floor_conns 1 send_us)" "$(val floor_conns 1 pollout_send_us)"
