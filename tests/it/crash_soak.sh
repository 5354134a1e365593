#!/usr/bin/env bash
#  tests/it/crash_soak.sh - a long crash run: kill -9 the journal many times
#  while producers publish, and check after each restart that nothing ACKed
#  was lost or duplicated. Prints the figures (kills by crash point, ACKs,
#  resends, restart time) and exits non-zero on any violation.
#
#  crash_soak.sh BUILD_DIR [KILLS] [extra it_crash.py options, e.g. --seed N]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: crash_soak.sh BUILD_DIR [KILLS] [options]}"
kills="${2:-2000}"
shift $(( $# >= 2 ? 2 : 1 ))
exec /usr/bin/python3 "$here/it_crash.py" --bin-dir "$build" --kills "$kills" "$@"
