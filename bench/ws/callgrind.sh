#!/usr/bin/env bash
# bench/ws/callgrind.sh - where the server's instructions go per chat message.
# Runs the server under valgrind's callgrind (instruction counts: the same for
# the same binary and inputs whatever else the machine does; no hardware
# counters are needed), drives it with the open-loop 1:1 chat of chat.sh at a
# rate valgrind can follow, zeroes the counters after the warm-up, dumps them
# at the end and prints the instructions per message of the whole server
# (every thread) and of its top functions, inclusive and self.  "Messages"
# are the acked message.send frames of the whole run (each also delivered).
#   RATE=200 PAIRS=20 DURATION=10 bench/ws/callgrind.sh [NAME=VALUE ...]
# Extra NAME=VALUE arguments go to the server's environment.  The output
# file stays in $OUT (default /tmp/chatli-callgrind.out).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"

BUILD=${BUILD:-$BENCH_ROOT/build-bench}
PAIRS=${PAIRS:-20}
RATE=${RATE:-200}
DURATION=${DURATION:-10}
OUT=${OUT:-/tmp/chatli-callgrind.out}
TOP=${TOP:-40}

[ -n "${WSB:-}" ] || bench_build_wsbench
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
rm -f "$OUT" "$OUT".[0-9]* "$OUT".vgdb*
real=$(CHATLI_BIN=${CHATLI_BIN:-} bench_find_bin)
wrap=$(mktemp /tmp/chatli-cg-wrap.XXXXXX)
cat >"$wrap" <<EOW
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file="$OUT" --dump-instr=no \
    --collect-atstart=yes --vgdb=yes --vgdb-prefix="$OUT.vgdb" "$real"
EOW
chmod +x "$wrap"
export CHATLI_BIN=$wrap
trap 'bench_stop_server; rm -f "$wrap"' EXIT
bench_machine
bench_start_server "$@"
"$WSB" --url "$BASE" --server-pid "$SERVER_PID" --tokens "$BENCH_TMP/tokens.txt" \
    --pairs "$PAIRS" --rate "$RATE" --warmup 3 --duration "$DURATION" --drain 10 chat \
    >"$BENCH_TMP/wsb.out" 2>&1 &
gen=$!
# Zero the counters once every connection is up (connecting and the token
# checks are not the message path); from then on, every message the run
# sends is counted, and the drain lets every one of them be acked.
want=$((PAIRS * 2))
for _ in $(seq 1 1200); do
    n=$(curl -fsS "$BASE/metrics" 2>/dev/null | awk '/^chatli_ws_connections /{print $2}')
    [ "${n:-0}" -ge "$want" ] && break
    sleep 0.1
done
# valgrind names its control files after $HOST, which the server runs with.
HOST=127.0.0.1 callgrind_control --vgdb-prefix="$OUT.vgdb" -z "$SERVER_PID" >/dev/null
wait "$gen"
HOST=127.0.0.1 callgrind_control --vgdb-prefix="$OUT.vgdb" -d "$SERVER_PID" >/dev/null
cat "$BENCH_TMP/wsb.out"
sent=$(sed -n 's/^messages: sent [0-9]*, acked \([0-9]*\),.*/\1/p' "$BENCH_TMP/wsb.out")
dump=$(ls -t "$OUT".[0-9]* | head -1)
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1; exit}')
echo "callgrind dump: $dump"
echo "RESULT callgrind messages=${sent:-?} instructions=$total per_message=$( [ -n "${sent:-}" ] && [ "$sent" -gt 0 ] && echo $((total / sent)) || echo '?')"
echo "top functions, inclusive (instructions; divide by messages=$sent):"
callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | sed -n '/^Ir/,$p' | head -"$TOP"
echo "top functions, self:"
callgrind_annotate "$dump" 2>/dev/null | sed -n '/^Ir/,$p' | head -"$TOP"
