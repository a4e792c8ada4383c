#!/usr/bin/env bash
# fuzz.sh - builds the libFuzzer targets of fuzz/ and runs them.
#
#   scripts/fuzz.sh [SECONDS | -runs=N] [TARGET...]
#
# SECONDS (default 60) is the time per target (-max_total_time); -runs=N
# runs N inputs per target instead.  TARGETs are names from fuzz/ without
# the fuzz_ prefix (classify ws_frame validate cursor router config sio);
# default all, one after the other.  The build goes to build-fuzz/ (clang,
# -DCHATLI_FUZZ=ON: ASan+UBSan, coverage) unless FUZZ_BUILD_DIR says
# otherwise; packages come from scripts/install-deps.sh fuzz.
#
# Each target starts from its seeds in fuzz/corpus/<target>/ (read only)
# and grows a working corpus in $FUZZ_BUILD_DIR/corpus/<target>/, kept
# between runs; fuzz/dict/<target>.dict is used when present.  Extra
# libFuzzer flags can be given in FUZZ_FLAGS (e.g. FUZZ_FLAGS=-jobs=2).
# The last lines of each target's log (executions, exec/s, cov, ft, corpus)
# are printed.  Exit status is non-zero when any target found a crash, a
# sanitizer report, a leak, a timeout or an out-of-memory; libFuzzer leaves
# the input in $FUZZ_BUILD_DIR/artifacts/<target>/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
all=(classify ws_frame validate cursor router config media_image sio)
dir=${FUZZ_BUILD_DIR:-$root/build-fuzz}
case "$dir" in /*) ;; *) dir=$PWD/$dir ;; esac

limit=(-max_total_time=60)
if [ $# -gt 0 ]; then
    case "$1" in
    -runs=[0-9]*) limit=("$1"); shift ;;
    [0-9]*) limit=(-max_total_time="$1"); shift ;;
    esac
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
    [ -f "$root/fuzz/fuzz_$t.c" ] || { echo "fuzz.sh: no target $t (fuzz/fuzz_$t.c)" >&2; exit 2; }
done

cmake -S "$root" -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCHATLI_FUZZ=ON -DCHATLI_WERROR=ON >/dev/null
build=()
for t in "${targets[@]}"; do build+=(--target "fuzz_$t"); done
cmake --build "$dir" -j "$(nproc 2>/dev/null || echo 2)" "${build[@]}"

# Leaks are findings too; a report aborts so libFuzzer saves the input.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
for t in "${targets[@]}"; do
    work=$dir/corpus/$t
    art=$dir/artifacts/$t
    log=$dir/logs/$t.log
    mkdir -p "$work" "$art" "$(dirname "$log")"
    flags=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art/")
    if [ -f "$root/fuzz/dict/$t.dict" ]; then
        flags+=(-dict="$root/fuzz/dict/$t.dict")
    fi
    echo "fuzz.sh: $t: fuzz_$t ${flags[*]} ${limit[*]} ${FUZZ_FLAGS:-} $work $root/fuzz/corpus/$t"
    start=$SECONDS
    # shellcheck disable=SC2086  # FUZZ_FLAGS is a list of flags on purpose
    if "$dir/fuzz/fuzz_$t" "${flags[@]}" "${limit[@]}" ${FUZZ_FLAGS:-} \
        "$work" "$root/fuzz/corpus/$t" >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$t")
    fi
    echo "fuzz.sh: $t: $status after $((SECONDS - start)) s; log $log"
    grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1 || true
    grep -E '^stat::' "$log" || true
    if [ "$status" = FAILED ]; then
        grep -E 'ERROR:|property failed|SUMMARY|Test unit written' "$log" | head -n 20 || true
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: findings in: ${failed[*]}"
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} target(s), no findings"
