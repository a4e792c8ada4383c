#!/usr/bin/env bash
# check-runtime-deps.sh - does the Docker runtime stage install every shared
# library the binary loads?
#
#   scripts/check-runtime-deps.sh [BINARY]     (default build/chatli)
#
# The runtime image gets only `scripts/install-deps.sh runtime` on top of
# debian:12-slim.  Since no Docker engine runs here, this is how CI keeps that
# list honest: each library the binary links directly (DT_NEEDED) is traced
# to the Debian package that ships it, which must be in the runtime list or
# among the packages apt installs with it (their Depends/Pre-Depends
# closure, e.g. libc6).  Indirect libraries come with their package's own
# dependencies.  Plugins the binary dlopen()s are listed by hand below.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$root/build/chatli}
[ -x "$bin" ] || { echo "check-runtime-deps: $bin not found" >&2; exit 1; }

mapfile -t runtime < <("$root/scripts/install-deps.sh" --list runtime)
declare -A allowed=() closure=()
for p in "${runtime[@]}"; do
    allowed[$p]=1
done
while IFS= read -r p; do
    closure[$p]=1
done < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "${runtime[@]}" | grep -v '^ ' | sort -u)

fail=0
n=0
# ldd resolves each DT_NEEDED name to the file the loader would use.
needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
ldd_out=$(ldd "$bin")
for lib in $needed; do
    n=$((n + 1))
    # awk reads all of ldd's output (no early exit): under pipefail a
    # SIGPIPE'd ldd would fail the substitution, and set -e the script.
    path=$(awk -v l="$lib" '$1 == l && $3 ~ /^\// && !found {print $3; found = 1}' <<<"$ldd_out")
    if [ -z "$path" ]; then
        echo "check-runtime-deps: $lib is not resolved by the loader"
        fail=1
        continue
    fi
    # dpkg knows the path as installed, which may be /lib/... or /usr/lib/...
    real=$(readlink -f "$path")
    pkg=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$real" 2>/dev/null || dpkg -S "/usr$path" 2>/dev/null ||
        dpkg -S "${path#/usr}" 2>/dev/null || true)
    pkg=${pkg%%:*}
    if [ -z "$pkg" ]; then
        echo "check-runtime-deps: $lib ($path) belongs to no Debian package"
        fail=1
        continue
    fi
    if [ -n "${allowed[$pkg]:-}" ]; then
        echo "check-runtime-deps: $lib <- $pkg (runtime list)"
    elif [ -n "${closure[$pkg]:-}" ]; then
        echo "check-runtime-deps: $lib <- $pkg (a dependency of the runtime list)"
    else
        echo "check-runtime-deps: $lib <- $pkg: NOT installed by 'install-deps.sh runtime'"
        fail=1
    fi
done
[ "$n" -gt 0 ] || { echo "check-runtime-deps: no NEEDED entries in $bin?"; exit 1; }

# Plugins loaded with dlopen() do not show up in DT_NEEDED; list them here.
# libwebsockets-evlib_ev.so: lws's libev event loop (LWS_SERVER_OPTION_LIBEV).
plugins=(libwebsockets-evlib_ev.so)
for so in "${plugins[@]}"; do
    pkg=$(dpkg -S "*/$so" 2>/dev/null | sed -n 1p || true)
    pkg=${pkg%%:*}
    if [ -z "$pkg" ]; then
        echo "check-runtime-deps: plugin $so belongs to no installed package"
        fail=1
    elif [ -n "${allowed[$pkg]:-}" ] || [ -n "${closure[$pkg]:-}" ]; then
        echo "check-runtime-deps: plugin $so <- $pkg (runtime list)"
    else
        echo "check-runtime-deps: plugin $so <- $pkg: NOT installed by 'install-deps.sh runtime'"
        fail=1
    fi
done
exit "$fail"
