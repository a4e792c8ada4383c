#!/usr/bin/env bash
# install-deps.sh - installs chatli's Debian 12 packages for one or more profiles.
#
#   scripts/install-deps.sh runtime        shared libraries the binary loads, plus curl
#                                          (the Docker HEALTHCHECK uses it)
#   scripts/install-deps.sh build          runtime + compiler, CMake and the -dev packages
#   scripts/install-deps.sh test           build + what the test suites use (pytest,
#                                          requests, websocket-client, python-socketio,
#                                          PyYAML, redis-server, nginx-light for
#                                          the scale-out e2e behind nginx)
#   scripts/install-deps.sh browser        Debian's chromium and Node.js (+ npm) for
#                                          tests/browser (the web client at /); `test`
#                                          includes it
#   scripts/install-deps.sh bench          wrk, for bench/ only
#   scripts/install-deps.sh fuzz           build + Debian's clang and its libFuzzer/sanitizer
#                                          runtimes, for fuzz/ (scripts/fuzz.sh); test includes it
#   scripts/install-deps.sh --list PROFILE  print the profile's packages and exit
#
# It is idempotent and quick when everything is there: it asks dpkg-query
# first and only then runs `apt-get update` and `apt-get install` for what is
# missing.  run.sh, test.sh and the Dockerfile all go through here, so the
# package list lives in one place.
set -euo pipefail

# libwebsockets-evlib-ev is a plugin lws dlopen()s for LWS_SERVER_OPTION_LIBEV
# (the gateway's epoll loop); without it the gateway falls back to poll().
runtime_pkgs=(
    libmicrohttpd12 libwebsockets17 libwebsockets-evlib-ev libjansson4 libsodium23
    libsqlite3-0 libcurl4
    libmongoc-1.0-0 libbson-1.0-0 libhiredis0.14
    curl ca-certificates
)
build_pkgs=(
    build-essential cmake pkg-config
    libmicrohttpd-dev libwebsockets-dev libjansson-dev libsodium-dev libsqlite3-dev
    libcurl4-openssl-dev libmongoc-dev libbson-dev libhiredis-dev
    libev-dev # ws/server.c makes each loop's libev loop (libwebsockets-dev pulls it in too)
)
test_pkgs=(
    python3 python3-pytest python3-requests python3-websocket python3-socketio python3-yaml
    python3-jsonschema # tests/e2e/openapi_check.py: responses against docs/openapi.yaml
    redis-server
    nginx-light
)
bench_pkgs=(wrk)
# tests/browser: playwright-core (npm, pinned in tests/browser/package-lock.json)
# drives this chromium; no browser is downloaded.  npm is its own Debian
# package only where Node.js came from Debian: a NodeSource nodejs already
# holds npm and conflicts with Debian's.
browser_pkgs=(chromium nodejs)
if ! command -v npm >/dev/null 2>&1; then
    browser_pkgs+=(npm)
fi
# fuzz/ (libFuzzer targets, scripts/fuzz.sh): clang 14 and libclang-rt-14-dev,
# which holds libFuzzer and the ASan/UBSan runtimes.
fuzz_pkgs=(clang libclang-rt-14-dev)

usage() {
    echo "usage: $0 [--list] runtime|build|test|browser|bench|fuzz ..." >&2
    exit 2
}

[ $# -gt 0 ] || usage
list_only=
if [ "$1" = --list ]; then
    list_only=1
    shift
    [ $# -gt 0 ] || usage
fi
want=()
for profile in "$@"; do
    case "$profile" in
    runtime) want+=("${runtime_pkgs[@]}") ;;
    build) want+=("${runtime_pkgs[@]}" "${build_pkgs[@]}") ;;
    test) want+=("${runtime_pkgs[@]}" "${build_pkgs[@]}" "${test_pkgs[@]}" "${browser_pkgs[@]}"
                 "${fuzz_pkgs[@]}") ;;
    browser) want+=("${browser_pkgs[@]}") ;;
    bench) want+=("${bench_pkgs[@]}") ;;
    fuzz) want+=("${runtime_pkgs[@]}" "${build_pkgs[@]}" "${fuzz_pkgs[@]}") ;;
    *) usage ;;
    esac
done

if [ -n "$list_only" ]; then
    printf '%s\n' "${want[@]}" | awk '!seen[$0]++'
    exit 0
fi

# dpkg-query prints "ii " for a package that is fully installed; anything
# else (absent, half-configured, removed with config left) needs apt-get.
missing=()
for pkg in "${want[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
    case "$status" in
    ii*) ;;
    *) missing+=("$pkg") ;;
    esac
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#want[@]} packages for '$*' already installed"
    exit 0
fi

# Deduplicate while keeping order (profiles overlap).
declare -A seen=()
todo=()
for pkg in "${missing[@]}"; do
    if [ -z "${seen[$pkg]:-}" ]; then
        seen[$pkg]=1
        todo+=("$pkg")
    fi
done

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "install-deps: missing packages and not root: ${todo[*]}" >&2
        exit 1
    fi
fi

echo "install-deps: installing ${todo[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${todo[@]}"
