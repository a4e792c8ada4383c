#!/usr/bin/env bash
# test.sh - the one test command: installs, builds and runs every suite.
#
#   scripts/test.sh
#
# Phases, in order (each prints a banner; a summary with each phase's result
# and time closes the run):
#   deps          scripts/install-deps.sh test
#   source        scripts/check-source.sh (per-folder include allow-lists,
#                 each header compiles alone, openapi.yaml validates)
#   redis         a private redis-server on a free loopback port, exported to
#                 the suites as CHATLI_TEST_REDIS_URL (test_bus_redis and
#                 test_cache_redis run against it in both ctest phases, and
#                 start their own redis-server to kill and restart)
#   ferretdb      when scripts/ferretdb.sh exists and CHATLI_SKIP_MONGO is
#                 unset: FerretDB (MongoDB wire protocol) on a free loopback
#                 port, exported as CHATLI_TEST_MONGODB_URI, so the store
#                 contract tests run against it in both ctest phases
#   build         Release into build/ with -DCHATLI_WERROR=ON
#   runtime-deps  every library build/chatli links comes from a package the
#                 Docker runtime stage installs (scripts/check-runtime-deps.sh)
#   calls         no call circle between the files of one src/ folder, read
#                 from build/'s object files (scripts/check-calls.py)
#   ctest         unit + contract tests (build/)
#   e2e           tests/e2e against build/chatli (CHATLI_BIN); every response
#                 is checked against docs/openapi.yaml (tests/e2e/openapi_check.py)
#   browser       tests/browser: the web client at / in Debian's headless
#                 Chromium (playwright-core from `npm ci` of the committed lock)
#                 against build/chatli; screenshots in build/browser-artifacts/
#   sio           tests/sio: the real socket.io-client 4.x (from `npm ci` of the
#                 committed lock) against build/chatli's /socket.io/
#   mongo-e2e     tests/e2e again, the server on FerretDB: MONGODB_URI set and
#                 CHATLI_E2E_STORE=mongo for the e2e fixture; this phase also
#                 runs the scale-out suites (test_scaleout.py: two instances on
#                 one database and a private Redis; test_nginx.py: three behind
#                 Debian's nginx with config/nginx.conf), skipped on SQLite
#   asan-build    build-asan/ with -DCHATLI_SANITIZE="address;undefined"
#   asan-ctest    unit + contract tests under ASan+UBSan+LSan
#   asan-e2e      tests/e2e against build-asan/chatli
#   fuzz          scripts/fuzz.sh 15: the libFuzzer targets of fuzz/, built
#                 with clang (ASan+UBSan) in build-fuzz/, 15 s each from
#                 their seeds in fuzz/corpus/ (about 2 min in all); any
#                 crash, sanitizer report or broken property fails it
#
# A failed phase does not stop the independent ones (a failed build skips
# only what needs it), so one run shows everything that is wrong.  A ctest
# phase fails when any test did not run while every service is up: in CI
# nothing is skipped.  Every long phase runs under `timeout`, so the whole
# run is bounded.  Exit status is 0 only when no phase failed.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

PY=/usr/bin/python3 # the pyenv python on PATH lacks the Debian test modules
jobs=$(nproc 2>/dev/null || echo 2)
# Generous per-phase caps (seconds); typical runs are far below them.
T_BUILD=1200
T_CTEST=1200
T_E2E=900
T_MONGO_START=1500 # the first start builds FerretDB with Go (minutes)
T_BROWSER=300      # the browser phase takes about 25 s
T_SIO=180          # the sio phase takes a few seconds after npm ci

names=()
states=()
times=()
notes=()
run_start=$SECONDS

banner() {
    printf '\n======== %s ========\n' "$*"
}

record() { # name state seconds note
    names+=("$1")
    states+=("$2")
    times+=("$3")
    notes+=("${4:-}")
}

# phase NAME CMD...: runs CMD, records PASS/FAIL with its duration, and
# returns CMD's status.
phase() {
    local name=$1
    shift
    banner "$name: $*"
    local t0=$SECONDS rc
    "$@"
    rc=$?
    local dt=$((SECONDS - t0))
    if [ $rc -eq 0 ]; then
        record "$name" PASS "$dt"
    elif [ $rc -eq 124 ]; then
        record "$name" FAIL "$dt" "timed out"
    else
        record "$name" FAIL "$dt" "exit $rc"
    fi
    return $rc
}

skip() { # name reason
    banner "$1: skipped ($2)"
    record "$1" SKIP 0 "$2"
}

have_e2e_tests() {
    [ -n "$(find tests/e2e -name 'test_*.py' -print -quit 2>/dev/null)" ]
}

# ctest over build dir $1.  Skipped tests (exit 77: a service missing) are
# a failure unless a service was deliberately left out (CHATLI_SKIP_MONGO).
run_ctest() {
    local dir=$1 out rc
    out=$(mktemp)
    timeout -k 30 "$T_CTEST" ctest --test-dir "$dir" --output-on-failure --no-tests=error \
        -j "$jobs" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 0 ] && grep -q 'tests did not run' "$out" && [ -z "${CHATLI_SKIP_MONGO:-}" ]; then
        echo "test.sh: some tests did not run although every service was started"
        rc=1
    fi
    rm -f "$out"
    return "$rc"
}

# pytest over tests/e2e with CHATLI_BIN=$1.  pytest's exit 5 (nothing
# collected) is a failure here: test files exist, so none running is a bug.
run_e2e() {
    local bin=$1
    if [ ! -x "$bin" ]; then
        echo "test.sh: $bin was not built"
        return 1
    fi
    CHATLI_BIN=$bin timeout -k 30 "$T_E2E" "$PY" -m pytest -q -p no:cacheprovider tests/e2e
}

# tests/browser with CHATLI_BIN=$1: npm ci (exactly the committed
# package-lock.json), then node's test runner; screenshots of each step
# stay in build/browser-artifacts/ as the CI artifact.
run_browser() {
    local bin=$1
    (cd tests/browser && timeout -k 10 "$T_BROWSER" npm ci --no-audit --no-fund --loglevel=error) ||
        return 1
    CHATLI_BIN=$bin CHATLI_ARTIFACTS=$root/build/browser-artifacts timeout -k 10 "$T_BROWSER" \
        node --test --test-concurrency=1 tests/browser/web.test.mjs
}

# tests/sio with CHATLI_BIN=$1: npm ci of the committed lock, then node's
# test runner over socket.io-client against the server it starts.
run_sio() {
    local bin=$1
    (cd tests/sio && timeout -k 10 "$T_SIO" npm ci --no-audit --no-fund --loglevel=error) ||
        return 1
    CHATLI_BIN=$bin timeout -k 10 "$T_SIO" node --test --test-concurrency=1 tests/sio/sio.test.mjs
}

# ---- services ---------------------------------------------------------------

redis_pid=
redis_dir=
mongo_started=
MONGO_URI=

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start_redis() {
    local port
    port=$(free_port) || return 1
    redis_dir=$(mktemp -d)
    redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
        --dir "$redis_dir" --logfile "$redis_dir/redis.log" --daemonize no &
    redis_pid=$!
    for _ in $(seq 1 100); do
        if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
            export CHATLI_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
            echo "test.sh: redis-server pid $redis_pid at $CHATLI_TEST_REDIS_URL"
            return 0
        fi
        if ! kill -0 "$redis_pid" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    echo "test.sh: redis-server did not start; its log:"
    cat "$redis_dir/redis.log" 2>/dev/null
    return 1
}

# scripts/ferretdb.sh (owned by the MongoDB adapter's author): `start`
# builds FerretDB on first use, returns once it accepts connections and
# prints MONGODB_URI=mongodb://127.0.0.1:PORT/ as its last stdout line;
# `stop` stops it and removes its data.
start_mongo() {
    # A private state dir: our own server, never one a developer has running
    # (ferretdb.sh keeps one server per state dir, and `stop` would end it).
    if [ -z "${FERRETDB_STATE_DIR:-}" ]; then
        FERRETDB_STATE_DIR=$(mktemp -d /tmp/chatli-test-ferretdb.XXXXXX)
        export FERRETDB_STATE_DIR
    fi
    # Output goes to a file, not a $(...): a daemon that inherited the pipe
    # would keep the substitution waiting for ever.
    local out
    out=$(mktemp)
    mongo_started=1
    if ! timeout -k 10 "$T_MONGO_START" scripts/ferretdb.sh start >"$out"; then
        cat "$out"
        rm -f "$out"
        return 1
    fi
    cat "$out"
    MONGO_URI=$(tail -n 1 "$out")
    MONGO_URI=${MONGO_URI#MONGODB_URI=}
    rm -f "$out"
    case "$MONGO_URI" in
    mongodb://*)
        export CHATLI_TEST_MONGODB_URI=$MONGO_URI
        echo "test.sh: FerretDB at $MONGO_URI (CHATLI_TEST_MONGODB_URI)"
        ;;
    *)
        echo "test.sh: scripts/ferretdb.sh start printed no MongoDB URI on its last line"
        MONGO_URI=
        return 1
        ;;
    esac
}

cleanup() {
    if [ -n "$mongo_started" ]; then
        scripts/ferretdb.sh stop >/dev/null 2>&1 || true
    fi
    if [ -n "$redis_pid" ]; then
        kill "$redis_pid" 2>/dev/null
        wait "$redis_pid" 2>/dev/null
    fi
    if [ -n "$redis_dir" ]; then
        rm -rf "$redis_dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- phases -----------------------------------------------------------------

if ! phase deps scripts/install-deps.sh test; then
    echo "test.sh: packages missing; the phases below will show what that breaks"
fi

phase source scripts/check-source.sh

phase redis start_redis

if [ ! -x scripts/ferretdb.sh ]; then
    skip ferretdb "no scripts/ferretdb.sh"
elif [ -n "${CHATLI_SKIP_MONGO:-}" ]; then
    skip ferretdb "CHATLI_SKIP_MONGO is set"
else
    phase ferretdb start_mongo
fi

build_ok=
if phase build timeout -k 30 "$T_BUILD" scripts/build.sh build -DCMAKE_BUILD_TYPE=Release \
    -DCHATLI_WERROR=ON -DCHATLI_SANITIZE=; then
    build_ok=1
fi

if [ -n "$build_ok" ]; then
    if [ -x build/chatli ]; then
        phase runtime-deps scripts/check-runtime-deps.sh build/chatli
    else
        record runtime-deps FAIL 0 "build/chatli was not built"
    fi
    phase calls "$PY" scripts/check-calls.py build
    phase ctest run_ctest build
    if have_e2e_tests; then
        phase e2e run_e2e "$root/build/chatli"
    else
        skip e2e "no tests/e2e/test_*.py yet"
    fi
    phase browser run_browser "$root/build/chatli"
    phase sio run_sio "$root/build/chatli"
else
    skip runtime-deps "build failed"
    skip calls "build failed"
    skip ctest "build failed"
    skip e2e "build failed"
    skip browser "build failed"
    skip sio "build failed"
fi

# The e2e suite a second time, the server on the MongoDB store.  The fixture
# passes MONGODB_URI (and a fresh MONGODB_DB per session) to the servers it
# starts; nothing else sees MONGODB_URI.
if [ -n "${CHATLI_SKIP_MONGO:-}" ] || [ ! -x scripts/ferretdb.sh ]; then
    skip mongo-e2e "no FerretDB (see ferretdb)"
elif [ -z "$MONGO_URI" ]; then
    record mongo-e2e FAIL 0 "FerretDB did not start"
elif [ -z "$build_ok" ]; then
    skip mongo-e2e "build failed"
elif have_e2e_tests; then
    CHATLI_E2E_STORE=mongo MONGODB_URI=$MONGO_URI phase mongo-e2e run_e2e "$root/build/chatli"
else
    skip mongo-e2e "no tests/e2e/test_*.py yet"
fi

# Sanitizers: abort on the first report so a finding fails the test that
# caused it.  LeakSanitizer runs too; only third-party leaks may be listed in
# tests/lsan.supp, each with its reason.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if [ -f tests/lsan.supp ]; then
    export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"
fi

asan_ok=
if phase asan-build timeout -k 30 "$T_BUILD" scripts/build.sh build-asan \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHATLI_WERROR=ON \
    '-DCHATLI_SANITIZE=address;undefined'; then
    asan_ok=1
fi
if [ -n "$asan_ok" ]; then
    phase asan-ctest run_ctest build-asan
    if have_e2e_tests; then
        phase asan-e2e run_e2e "$root/build-asan/chatli"
    else
        skip asan-e2e "no tests/e2e/test_*.py yet"
    fi
else
    skip asan-ctest "asan build failed"
    skip asan-e2e "asan build failed"
fi

# libFuzzer targets (docs/fuzzing.md): briefly here, for long runs see
# scripts/fuzz.sh.  Uses the sanitizer options exported above.
phase fuzz timeout -k 30 600 scripts/fuzz.sh 15

# ---- summary ----------------------------------------------------------------

pass=0 fail=0 skipped=0
printf '\n======== chatli test summary ========\n'
for i in "${!names[@]}"; do
    printf '  %-14s %-4s %6ss  %s\n' "${names[$i]}" "${states[$i]}" "${times[$i]}" "${notes[$i]}"
    case "${states[$i]}" in
    PASS) pass=$((pass + 1)) ;;
    FAIL) fail=$((fail + 1)) ;;
    SKIP) skipped=$((skipped + 1)) ;;
    esac
done
printf '  %-14s %11ss\n' total $((SECONDS - run_start))
echo "phases: $pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
