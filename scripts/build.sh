#!/usr/bin/env bash
# build.sh - configures and builds chatli with CMake.
#
#   scripts/build.sh [--target T]... [BUILD_DIR] [-DCMAKE_OPTION=...]...
#
# BUILD_DIR defaults to build/ in the repository.  The build type defaults to
# Release; any -D option given after the directory is passed to CMake last, so
# it wins (test.sh adds -DCHATLI_WERROR=ON, the ASan build
# -DCHATLI_SANITIZE="address;undefined").  Without --target everything is
# built (server and test executables); the Dockerfile builds only `chatli`.
# The packages come from install-deps.sh build; this script installs nothing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --target)
        [ $# -ge 2 ] || { echo "build.sh: --target needs a value" >&2; exit 2; }
        targets+=(--target "$2")
        shift 2
        ;;
    *) break ;;
    esac
done
dir=${1:-$root/build}
[ $# -gt 0 ] && shift
case "$dir" in /*) ;; *) dir=$PWD/$dir ;; esac

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$dir" -j "$jobs" "${targets[@]}"
