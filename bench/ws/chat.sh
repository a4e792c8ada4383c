#!/usr/bin/env bash
# bench/ws/chat.sh - only the 1:1 chat runs of bench/ws/run.sh, for A/B
# comparisons of the message path: one server, then an open-loop run at RATE
# msg/s and a closed-loop run with WINDOW frames in flight, each DURATION s
# between PAIRS direct chats (64-byte texts).  Prints the generator's report,
# including server user/sys CPU per message and the generator's own CPU.
#   CHATLI_BIN=build/chatli RATE=2000 PAIRS=200 bench/ws/chat.sh
# WSB_ARGS adds generator flags: WSB_ARGS=--sio runs the same over Socket.IO
# at /socket.io/ (issue 12).
# Extra NAME=VALUE arguments go to the server's environment.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"

BUILD=${BUILD:-$BENCH_ROOT/build-bench}
PAIRS=${PAIRS:-200}
RATE=${RATE:-2000}
WINDOW=${WINDOW:-8}
DURATION=${DURATION:-10}
MODES=${MODES:-rate closed}

[ -n "${WSB:-}" ] || bench_build_wsbench
export CHATLI_BIN

trap bench_stop_server EXIT
bench_machine
bench_start_server "$@"
read -ra extra <<<"${WSB_ARGS:-}"
common=(--url "$BASE" --server-pid "$SERVER_PID" --tokens "$BENCH_TMP/tokens.txt" "${extra[@]}")
for mode in $MODES; do
    case $mode in
    rate) "$WSB" "${common[@]}" --pairs "$PAIRS" --rate "$RATE" --duration "$DURATION" chat ;;
    closed) "$WSB" "${common[@]}" --pairs "$PAIRS" --window "$WINDOW" --duration "$DURATION" chat ;;
    *) echo "unknown mode $mode (rate, closed)" >&2; exit 2 ;;
    esac
    echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
done
