#!/usr/bin/env bash
#  tests/bench/run.sh - build Release, start pb-journal on a temp dir and
#  free loopback ports, run pb_bench against it, print the figures.
#
#  run.sh [--build-dir DIR] [--no-build] [pb_bench options...]
#    --build-dir DIR   where to build (default /tmp/pb-bench-build)
#    --no-build        use the binaries already in --build-dir
#    other options go to pb_bench (--quick, --events N, --producers 1,4,16,
#    --window N, --events-w1 N, --lmdb-events N, --zmq-events N, --flood N,
#    --replays N: whole-log replays during the last pipelined run, default 2,
#    --pairs N: one-in-flight runs back to back with their LMDB floor, default 4)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${PB_BENCH_BUILD:-/tmp/pb-bench-build}"
do_build=1
bench_args=()
while (($#)); do
    case "$1" in
        --build-dir) build="$2"; shift 2 ;;
        --no-build) do_build=0; shift ;;
        *) bench_args+=("$1"); shift ;;
    esac
done

if ((do_build)); then
    cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPB_CRASHPOINTS=OFF \
          -DPB_SANITIZE=OFF >/dev/null
    cmake --build "$build" -j2 --target pb-journal pb_bench >/dev/null
fi
journal="$build/services/journal/pb-journal"
bench="$build/tests/bench/pb_bench"
for bin in "$journal" "$bench"; do
    [[ -x "$bin" ]] || { echo "run.sh: $bin not built" >&2; exit 1; }
done

free_port () {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
ports=()
while ((${#ports[@]} < 3)); do
    p="$(free_port)"
    [[ " ${ports[*]-} " == *" $p "* ]] || ports+=("$p")
done
work="$(mktemp -d /tmp/pb-bench-XXXXXX)"
jpid=""
cleanup () {
    if [[ -n "$jpid" ]] && kill -0 "$jpid" 2>/dev/null; then
        kill -TERM "$jpid" 2>/dev/null || true
        wait "$jpid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$journal" --data-dir "$work/log" --clock manual \
    --ingest "tcp://127.0.0.1:${ports[0]}" --fanout "tcp://127.0.0.1:${ports[1]}" \
    --replay "tcp://127.0.0.1:${ports[2]}" >"$work/journal.log" 2>&1 &
jpid=$!
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/${ports[0]}") 2>/dev/null; then break; fi
    kill -0 "$jpid" 2>/dev/null || { echo "run.sh: pb-journal exited:" >&2; cat "$work/journal.log" >&2; exit 1; }
    sleep 0.05
done

echo "pb-journal pid $jpid, data $work/log, build $build ($(nproc) cores, $(uname -r))"
rc=0
"$bench" --ingest "tcp://127.0.0.1:${ports[0]}" --replay "tcp://127.0.0.1:${ports[2]}" \
    --pid "$jpid" --tmp "$work" --log "$work/log" \
    "${bench_args[@]+"${bench_args[@]}"}" || rc=$?
echo "log size: $(du -sh "$work/log" | cut -f1)"
exit "$rc"
