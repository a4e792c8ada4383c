#!/usr/bin/env bash
# ferretdb.sh - a throwaway MongoDB-compatible server for chatli's tests.
#
#   scripts/ferretdb.sh install   builds FerretDB v1.24.2 once into a cache
#   scripts/ferretdb.sh start     starts it on a free loopback port, SQLite
#                                 backend in a temporary directory, and prints
#                                 MONGODB_URI=mongodb://127.0.0.1:PORT/
#                                 (also written to $FERRETDB_URI_FILE if set)
#   scripts/ferretdb.sh stop      stops it and removes its data
#   scripts/ferretdb.sh status    exit 0 and the URI while it runs, 1 otherwise
#
# Environment:
#   FERRETDB_BIN        the binary (default $GOPATH/bin/ferretdb-v1.24.2,
#                       i.e. ~/go/bin/ferretdb-v1.24.2); `install` builds it there
#   FERRETDB_STATE_DIR  where start keeps pid, port, log and data (default
#                       /tmp/chatli-ferretdb-$UID); one server per state dir
#   FERRETDB_URI_FILE   start also writes the MONGODB_URI=... line to this file
#   FERRETDB_START_TIMEOUT_S  how long start waits for the port (default 60)
#
# Why FerretDB: it speaks the MongoDB wire protocol (OP_MSG) on top of SQLite,
# so the real mongo-c-driver code path is tested without a MongoDB server,
# which Debian does not package.  It is a stand-in with known gaps, listed in
# docs/data-model.md; production runs on MongoDB.
#
# Why not plain `go install ...@v1.24.2`: the binary it produces panics at
# start ("Invalid build/version/version.txt file content"), because the
# module zip lacks the generated build/version/version.txt and the check runs
# whenever the main module is github.com/FerretDB/FerretDB.  FerretDB's own
# doc for that panic says to create the file by hand, so `install` builds
# the same module source, fetched through the Go module proxy, with
# version.txt written in a scratch copy.
set -euo pipefail

FERRETDB_VERSION=v1.24.2
GO_MIN_MINOR=24 # FerretDB v1.24.2's go.mod says "go 1.24"

state_dir=${FERRETDB_STATE_DIR:-/tmp/chatli-ferretdb-$(id -u)}

die() {
    echo "ferretdb.sh: $*" >&2
    exit 1
}

# Finds a Go toolchain new enough for FerretDB, installing Debian's golang-go
# only when its candidate version is new enough.  Prints the go binary.
find_go() {
    local go=""
    if command -v go >/dev/null 2>&1; then
        go=$(command -v go)
    elif [ -x /usr/local/go/bin/go ]; then
        go=/usr/local/go/bin/go
    fi
    if [ -z "$go" ]; then
        local cand
        cand=$(apt-cache policy golang-go 2>/dev/null | awk '/Candidate:/ {print $2}')
        # Debian versions look like 2:1.19~1: keep the 1.NN part.
        local minor
        minor=$(printf '%s' "$cand" | sed -n 's/^[0-9]*:\{0,1\}1\.\([0-9]*\).*/\1/p')
        if [ -n "$minor" ] && [ "$minor" -ge "$GO_MIN_MINOR" ]; then
            echo "ferretdb.sh: installing Debian golang-go $cand" >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >&2
            go=$(command -v go)
        else
            die "no Go toolchain found, and Debian's golang-go (${cand:-none}) is older than 1.$GO_MIN_MINOR, which FerretDB $FERRETDB_VERSION needs"
        fi
    fi
    local v
    v=$("$go" env GOVERSION)
    local minor
    minor=$(printf '%s' "$v" | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
    if [ -z "$minor" ] || [ "$minor" -lt "$GO_MIN_MINOR" ]; then
        die "$go is $v; FerretDB $FERRETDB_VERSION needs go1.$GO_MIN_MINOR or newer"
    fi
    printf '%s\n' "$go"
}

default_bin() {
    local gopath=""
    if command -v go >/dev/null 2>&1; then
        gopath=$(go env GOPATH)
    elif [ -x /usr/local/go/bin/go ]; then
        gopath=$(/usr/local/go/bin/go env GOPATH)
    fi
    printf '%s/bin/ferretdb-%s\n' "${gopath:-$HOME/go}" "$FERRETDB_VERSION"
}

bin=${FERRETDB_BIN:-$(default_bin)}

# True when $bin exists and reports the expected version.
bin_ok() {
    [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "version: $FERRETDB_VERSION"
}

cmd_install() {
    if bin_ok; then
        echo "ferretdb.sh: $bin is FerretDB $FERRETDB_VERSION"
        return 0
    fi
    local go
    go=$(find_go)
    local work
    work=$(mktemp -d /tmp/ferretdb-build.XXXXXX)
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    # Download the module (checksummed against go.sum's database) and copy
    # it, because the module cache is read-only.
    local dir
    dir=$(cd "$work" && "$go" mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -n "$dir" ] && [ -d "$dir" ] || die "go mod download gave no source directory"
    cp -r "$dir" "$work/src"
    chmod -R u+w "$work/src"
    printf '%s\n' "$FERRETDB_VERSION" >"$work/src/build/version/version.txt"
    mkdir -p "$(dirname "$bin")"
    echo "ferretdb.sh: building FerretDB $FERRETDB_VERSION into $bin (takes minutes the first time)" >&2
    (cd "$work/src" && GOFLAGS=-buildvcs=false "$go" build -trimpath -o "$bin.tmp" ./cmd/ferretdb)
    mv "$bin.tmp" "$bin"
    bin_ok || die "$bin does not report version $FERRETDB_VERSION"
    echo "ferretdb.sh: installed $bin"
}

# A free TCP port on 127.0.0.1 (bound and released; the small race with
# another process taking it is caught by the wait below).
free_port() {
    /usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

running_pid() {
    local pid
    [ -f "$state_dir/pid" ] || return 1
    pid=$(cat "$state_dir/pid")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

emit_uri() {
    local line="MONGODB_URI=mongodb://127.0.0.1:$(cat "$state_dir/port")/"
    echo "$line"
    if [ -n "${FERRETDB_URI_FILE:-}" ]; then
        printf '%s\n' "$line" >"$FERRETDB_URI_FILE"
    fi
}

cmd_start() {
    if running_pid >/dev/null; then
        echo "ferretdb.sh: already running (state in $state_dir)" >&2
        emit_uri
        return 0
    fi
    bin_ok || cmd_install >&2
    rm -rf "$state_dir"
    mkdir -p "$state_dir/data"
    local port
    port=$(free_port)
    echo "$port" >"$state_dir/port"
    # --debug-addr=- : no debug HTTP listener (its default port 8088 would
    # collide between two servers); telemetry off: no network but loopback.
    setsid "$bin" \
        --listen-addr="127.0.0.1:$port" \
        --handler=sqlite \
        --sqlite-url="file:$state_dir/data/" \
        --state-dir="$state_dir" \
        --telemetry=disable \
        --debug-addr=- \
        --log-level=warn \
        </dev/null >"$state_dir/log" 2>&1 &
    echo $! >"$state_dir/pid"
    local deadline=$((SECONDS + ${FERRETDB_START_TIMEOUT_S:-60}))
    while :; do
        if ! running_pid >/dev/null; then
            cat "$state_dir/log" >&2
            die "FerretDB exited during start"
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            break
        fi
        if [ $SECONDS -ge $deadline ]; then
            cmd_stop >&2 || true
            die "FerretDB did not accept connections on 127.0.0.1:$port in time"
        fi
        sleep 0.1
    done
    emit_uri
}

cmd_stop() {
    local pid
    if pid=$(running_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -rf "$state_dir"
}

cmd_status() {
    if running_pid >/dev/null; then
        emit_uri
        return 0
    fi
    echo "ferretdb.sh: not running" >&2
    return 1
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
    echo "usage: $0 install|start|stop|status" >&2
    exit 2
    ;;
esac
