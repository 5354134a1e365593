#!/usr/bin/env bash
#  Set up and run partnerbus on this machine with embedded defaults:
#  install the Debian packages, build, then hand over to 'pbctl up', which
#  starts the journal and the three workers, loads the reference data on
#  first start, supervises them (a crashed process is restarted with
#  backoff) and stops everything cleanly on Ctrl-C.
#
#  Usage: deploy/run.sh [DATA_DIR] [pbctl up OPTIONS...]   (default ./var)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
DATA="${1:-$ROOT/var}"
[ $# -gt 0 ] && shift
BUILD="$ROOT/build/release"

bash deploy/install-deps.sh
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPB_CRASHPOINTS=OFF >/dev/null
cmake --build "$BUILD" -j "$(nproc)" >/dev/null
exec "$BUILD/services/ctl/pbctl" up --data-dir "$DATA" \
    --bin-dir "$BUILD" --registry "$ROOT/deploy/registry.jsonl" "$@"
