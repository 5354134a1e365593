#!/usr/bin/env bash
#  Run the libFuzzer targets of tests/fuzz for as long as asked.
#
#    tests/fuzz/run.sh [BUILD_DIR] [SECONDS_EACH] [TARGET ...]
#
#  BUILD_DIR (default build/fuzz) is configured with clang and -DPB_FUZZ=ON
#  (the script configures and builds it if needed). Each target runs for
#  SECONDS_EACH (default 60) from its committed corpus tests/fuzz/corpus/
#  <target>/ plus a working corpus in BUILD_DIR/fuzz-work/<target>/ (new
#  inputs go there, never into the repository), with the msgpack
#  dictionary. Prints per target the executions, executions per second,
#  coverage (edges, features) and corpus size, then a summary line.
#  A crash leaves its input in BUILD_DIR/fuzz-work/<target>-crash-*: add it
#  to the corpus as regress-<what> with its fix, so ctest replays it.
#  Exit status: 0 if no target crashed.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT="$(pwd)"
BUILD="${1:-build/fuzz}"
SECONDS_EACH="${2:-60}"
shift 2 2>/dev/null || shift $#
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(envelope wire log_record config ctl_json ingest rights)
JOBS="${PB_JOBS:-2}"

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    CC=clang cmake -S "$ROOT" -B "$BUILD" -DPB_FUZZ=ON -DPB_WERROR=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
fi
cmake --build "$BUILD" -j "$JOBS" --target pb_fuzz >/dev/null || exit 1

WORK="$BUILD/fuzz-work"
mkdir -p "$WORK"
TMP="$(mktemp -d "${PB_FUZZ_TMP_BASE:-/dev/shm}/pb-fuzz.XXXXXX" 2>/dev/null \
       || mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
export PB_FUZZ_TMP="$TMP"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=()
total_execs=0
printf '%-12s %10s %8s %7s %7s %6s  %s\n' target execs exec/s cov ft corpus result
for t in "${TARGETS[@]}"; do
    bin="$BUILD/tests/fuzz/pb_fuzz_$t"
    [ -x "$bin" ] || { echo "no fuzz target $bin"; failed+=("$t"); continue; }
    mkdir -p "$WORK/$t"
    log="$WORK/$t.log"
    "$bin" -max_total_time="$SECONDS_EACH" -timeout=30 -rss_limit_mb=2048 \
        -dict="$ROOT/tests/fuzz/pb_msgpack.dict" -print_final_stats=1 \
        -close_fd_mask=3 -artifact_prefix="$WORK/$t-" \
        "$WORK/$t" "$ROOT/tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*')
    ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*')
    corp=$(echo "$last" | grep -o 'corp: [0-9]*' | grep -o '[0-9]*')
    result=ok
    if [ $rc -ne 0 ]; then
        result="CRASH (exit $rc, see $log)"
        failed+=("$t")
    fi
    total_execs=$((total_execs + ${execs:-0}))
    printf '%-12s %10s %8s %7s %7s %6s  %s\n' "$t" "${execs:-?}" "${rate:-?}" \
        "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done
echo "fuzz: ${#TARGETS[@]} targets, ${SECONDS_EACH}s each, $total_execs executions," \
     "${#failed[@]} crashed${failed[*]:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
