#!/usr/bin/env bash
#  Set up and run partnerbus on this machine with embedded defaults:
#  install the Debian packages, build, start the journal and every worker
#  that is built, load the reference data once, and supervise them until
#  Ctrl-C (which stops everything cleanly).
#
#  Usage: deploy/run.sh [DATA_DIR]        (default ./var)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
DATA="${1:-$ROOT/var}"
BUILD="$ROOT/build/release"

bash deploy/install-deps.sh
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPB_CRASHPOINTS=OFF >/dev/null
cmake --build "$BUILD" -j "$(nproc)" >/dev/null
mkdir -p "$DATA"
chmod 700 "$DATA"

pids=()
stop () {
    trap - INT TERM
    echo "run: stopping"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait || true
    exit 0
}
trap stop INT TERM

#  Start one service and restart it with backoff if it dies
supervise () {
    local name="$1"; shift
    (
        backoff=1
        while true; do
            "$@" &
            child=$!
            trap 'kill -TERM $child 2>/dev/null; wait $child; exit 0' TERM INT
            wait $child && exit 0
            echo "run: $name exited with $?, restarting in ${backoff}s" >&2
            sleep "$backoff"
            backoff=$(( backoff < 30 ? backoff * 2 : 30 ))
        done
    ) &
    pids+=($!)
}

supervise journal "$BUILD/services/journal/pb-journal" --data-dir "$DATA/journal"
for worker in nac cpe activity; do
    bin="$BUILD/services/$worker/pb-$worker"
    [ -x "$bin" ] && supervise "$worker" "$bin" --data-dir "$DATA/$worker"
done
sleep 1
if [ ! -f "$DATA/.registry-loaded" ]; then
    "$BUILD/services/ctl/pbctl" publish deploy/registry.jsonl >/dev/null \
        && touch "$DATA/.registry-loaded" \
        && echo "run: reference data loaded"
fi
echo "run: partnerbus is up, data in $DATA"
echo "run:   ingest tcp://127.0.0.1:7701  fanout tcp://127.0.0.1:7702  replay tcp://127.0.0.1:7703"
echo "run: Ctrl-C stops everything"
wait
