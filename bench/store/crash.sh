#!/usr/bin/env bash
# bench/store/crash.sh - kill -9 trials of the SQLite append path, WAL
# restarts included: chatli_store_append (one message per commit, so the WAL
# starts over every ~1,600 messages) is killed at a random moment; the
# database must then pass integrity_check and hold at least every append
# it had printed as acked.  TRIALS (20) rounds; BIN the tool.
set -euo pipefail
BIN=${BIN:-build/bench/chatli_store_append}
TRIALS=${TRIALS:-20}
fails=0
for t in $(seq 1 "$TRIALS"); do
    dir=$(mktemp -d /tmp/chatli-crash.XXXXXX)
    "$BIN" --messages 100000000 --dir "$dir" --keep --progress >"$dir/out" 2>/dev/null &
    pid=$!
    sleep "$(awk -v s="$RANDOM" 'BEGIN{srand(s); printf "%.2f", 1 + rand() * 3}')"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    acked=$(awk '/^acked/{a=$2} END{print a+0}' "$dir/out")
    stored=$(sqlite3 "$dir/chatli.db" "SELECT count(*) FROM messages")
    check=$(sqlite3 "$dir/chatli.db" "PRAGMA integrity_check")
    restarts=$(awk -v a="$acked" 'BEGIN{printf "%d", a * 5 / 8192}')
    echo "trial $t: acked >= $acked, stored $stored, integrity $check (~$restarts WAL restarts)"
    if [ "$check" != ok ] || [ "$stored" -lt "$acked" ]; then fails=$((fails + 1)); fi
    rm -rf "$dir"
done
echo "crash trials: $TRIALS, failed: $fails"
[ "$fails" -eq 0 ]
