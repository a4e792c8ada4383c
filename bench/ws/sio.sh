#!/usr/bin/env bash
# bench/ws/sio.sh - Socket.IO over WebSocket (/socket.io/, issue 12) beside
# plain /ws on one server: the same idle + broadcast run and the same
# open-loop chat run with each protocol, so the cost of the Socket.IO
# translation reads straight off the RESULT lines (server CPU per broadcast
# delivery, per message).  Figures go to docs/performance.md.
#   CHATLI_BIN=build/chatli CONNS=2000 PAIRS=200 RATE=2000 bench/ws/sio.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"

BUILD=${BUILD:-$BENCH_ROOT/build-bench}
CONNS=${CONNS:-2000}
BCAST_ROUNDS=${BCAST_ROUNDS:-10}
PAIRS=${PAIRS:-200}
RATE=${RATE:-2000}
DURATION=${DURATION:-10}

[ -n "${WSB:-}" ] || bench_build_wsbench
export CHATLI_BIN

trap bench_stop_server EXIT
bench_machine
bench_start_server "$@"
common=(--url "$BASE" --server-pid "$SERVER_PID" --tokens "$BENCH_TMP/tokens.txt")
for proto in ws sio; do
    flag=()
    [ "$proto" = sio ] && flag=(--sio)
    echo "== $proto"
    "$WSB" "${common[@]}" "${flag[@]}" --conns "$CONNS" --hold 2 --settle 1 --bcast "$BCAST_ROUNDS" idle |
        grep -E '^RESULT|broadcast|connect:'
    "$WSB" "${common[@]}" "${flag[@]}" --pairs "$PAIRS" --rate "$RATE" --duration "$DURATION" chat |
        grep -E '^RESULT|server CPU|latency'
    echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
done
