#!/usr/bin/env bash
# bench/http/run.sh - REST throughput of the built server, measured with wrk.
#
# Starts the server (CHATLI_BIN, else build-bench/chatli, else build/chatli) on
# a free loopback port with a temp DATA_DIR, RATE_LIMIT_MAX=0 and a cheap
# Argon2 cost, seeds two users, SEED_POSTS posts and a direct chat, then runs
# wrk (--latency) against:
#   GET  /api/posts?limit=20           (the feed's first page)
#   POST /api/posts
#   POST /api/chats/{id}/messages      (unique clientIds; BENCH_CLIENT_ID=0: none)
# For each it prints req/s, p50/p99 latency, server RSS before and after, and
# server CPU (utime+stime) per request.  Afterwards it counts the stored posts
# and messages through the API and compares them with the 2xx responses wrk
# counted.  Knobs: THREADS (2), CONNS (64), DURATION (10s), SEED_POSTS (200),
# BENCH_LOG_LEVEL (warn), BENCH_KEEP=1 keeps the temp dir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"

THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
DURATION=${DURATION:-10s}
SEED_POSTS=${SEED_POSTS:-200}
export BENCH_LUA_DIR=$here BENCH_RUN=$(date +%s) BENCH_CLIENT_ID=${BENCH_CLIENT_ID:-1}

trap bench_stop_server EXIT
bench_machine
bench_start_server
echo "wrk: $THREADS threads, $CONNS connections, $DURATION per scenario, on the same machine"
eval "$("$PY" "$here/seed.py" seed "$BASE" --posts "$SEED_POSTS")"
export BENCH_TOKEN=$TOKEN BENCH_CHAT_ID=$CHAT_ID
echo "seeded: 2 users, $SEED_POSTS posts, chat $CHAT_ID"

rows=()
ok=1
# run_wrk NAME SCRIPT URL_PATH: one scenario; sets LAST_2XX.
run_wrk() {
    local name=$1 script=$2 path=$3 out cpu0 cpu1 rss0 rss1 box0 box1
    rss0=$(proc_rss_kib "$SERVER_PID")
    cpu0=$(proc_cpu_s "$SERVER_PID")
    box0=$(box_cpu)
    out=$(wrk -t "$THREADS" -c "$CONNS" -d "$DURATION" --latency -s "$here/$script" "$BASE$path")
    box1=$(box_cpu)
    cpu1=$(proc_cpu_s "$SERVER_PID")
    rss1=$(proc_rss_kib "$SERVER_PID")
    echo "---- $name"
    echo "$out" | grep -v '^BENCH' | sed 's/^/  /'
    local line
    line=$(echo "$out" | grep '^BENCH')
    # shellcheck disable=SC2086
    eval "$(echo "${line#BENCH }" | tr ' ' '\n' | sed 's/^/W_/')"
    local secs rps cpu_us busy total
    secs=$(awk -v d="$W_duration_us" 'BEGIN{printf "%.3f", d/1e6}')
    LAST_2XX=$((W_requests - W_non2xx))
    rps=$(awk -v n="$LAST_2XX" -v s="$secs" 'BEGIN{printf "%.0f", n/s}')
    cpu_us=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$W_requests" 'BEGIN{printf "%.1f", n ? (b-a)*1e6/n : 0}')
    busy=$(awk -v a="${box0% *}" -v b="${box1% *}" 'BEGIN{printf "%.1f", b-a}')
    total=$(awk -v a="${box0#* }" -v b="${box1#* }" 'BEGIN{printf "%.1f", b-a}')
    echo "  => $rps successful req/s (${LAST_2XX} 2xx, ${W_non2xx} other, errors: connect $W_connect_err read $W_read_err write $W_write_err timeout $W_timeout_err)"
    echo "  => latency p50 $((W_p50_us / 1000)).$(printf %03d $((W_p50_us % 1000))) ms, p99 $((W_p99_us / 1000)).$(printf %03d $((W_p99_us % 1000))) ms"
    echo "  => server CPU $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{printf "%.2f", b-a}') s = $cpu_us us/request; RSS $rss0 -> $rss1 KiB; box busy $busy of $total core-s (server's share included)"
    rows+=("$(printf '%-34s %9s %9s %9s %12s %17s' "$name" "$rps" "$(awk -v v="$W_p50_us" 'BEGIN{printf "%.2f", v/1000}')" "$(awk -v v="$W_p99_us" 'BEGIN{printf "%.2f", v/1000}')" "$cpu_us" "$rss0->$rss1")")
    if [ "$W_non2xx" -ne 0 ] || [ "$W_connect_err" -ne 0 ]; then
        echo "  !! $name had non-2xx responses or connect errors"
        ok=0
    fi
}

run_wrk "GET /api/posts?limit=20" get_posts.lua "/api/posts?limit=20"
run_wrk "POST /api/posts" post_posts.lua "/api/posts"
posts_2xx=$LAST_2XX
run_wrk "POST /api/chats/{id}/messages" post_messages.lua "/api/chats/$CHAT_ID/messages"
msgs_2xx=$LAST_2XX

# wrk stops with up to CONNS requests in flight: the server may commit those
# after wrk stopped counting, so stored - counted is 0..CONNS, never negative.
sleep 1
stored_msgs=$("$PY" "$here/seed.py" count-messages "$BASE" "$TOKEN" "$CHAT_ID")
stored_posts=$(( $("$PY" "$here/seed.py" count-posts "$BASE" "$TOKEN" "$USER_ID") - SEED_POSTS ))
check() {
    local what=$1 stored=$2 counted=$3 d=$(($2 - $3))
    if [ "$d" -ge 0 ] && [ "$d" -le "$CONNS" ]; then
        echo "verify $what: stored $stored, wrk counted $counted 2xx (+$d in flight when wrk stopped): ok"
    else
        echo "verify $what: stored $stored, wrk counted $counted 2xx: MISMATCH"
        ok=0
    fi
}
echo
check "messages" "$stored_msgs" "$msgs_2xx"
check "posts" "$stored_posts" "$posts_2xx"

echo
printf '%-34s %9s %9s %9s %12s %17s\n' "scenario" "2xx/s" "p50 ms" "p99 ms" "CPU us/req" "RSS KiB"
printf '%s\n' "${rows[@]}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$ok" = 1 ]
