#!/usr/bin/env bash
#  Run black-box tests with every service process under valgrind memcheck.
#
#    tests/valgrind.sh [BUILD_DIR] [TEST ...]
#
#  BUILD_DIR (default build/rel) is a normal, non-sanitizer build. TESTs
#  are tests/it/ script names (default: the journal and worker tests that
#  fit valgrind's 20-50x slowdown). Each runs with PB_WRAP set, so that
#  pbtest.py and system.py start pb-journal and the workers as
#    valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite
#             --log-file=OUT/vg.%p.log ...
#  Then every valgrind log is read: errors (invalid reads and writes, use
#  of uninitialised values, bad frees, bad syscall parameters) and, for
#  the processes that exited (SIGTERM; a kill -9 leaves no leak report),
#  definitely lost blocks. Prints a line per test and a summary; exit 0
#  only if every test passed and no valgrind error was found.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
BUILD="$(realpath "${1:-build/rel}")"
shift 2>/dev/null || true
TESTS=("$@")
[ ${#TESTS[@]} -eq 0 ] && TESTS=(it_stranger_client it_idempotency it_replay
                                 it_shutdown it_nak_table it_nac it_cpe it_activity)
command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 1; }
OUT="$(mktemp -d /tmp/pb-valgrind.XXXXXX)"
export PB_WRAP="valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --num-callers=30 --log-file=$OUT/vg.%p.log"
failed=()
for t in "${TESTS[@]}"; do
    start=$(date +%s)
    /usr/bin/python3 "$ROOT/tests/it/$t.py" --bin-dir "$BUILD" >"$OUT/$t.out" 2>&1
    rc=$?
    echo "$t: exit $rc in $(( $(date +%s) - start ))s ($(tail -1 "$OUT/$t.out"))"
    [ $rc -ne 0 ] && failed+=("$t")
done
logs=$(ls "$OUT"/vg.*.log 2>/dev/null | wc -l)
errors=0; leaks=0; exited=0
for f in "$OUT"/vg.*.log; do
    [ -f "$f" ] || continue
    n=$(grep -cE '== (Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap)' "$f")
    if grep -q 'ERROR SUMMARY' "$f"; then
        exited=$((exited + 1))
        l=$(grep -oE 'definitely lost: [0-9,]+ bytes' "$f" | grep -oE '[0-9,]+' | tr -d , | head -1)
        [ -n "$l" ] && [ "$l" -gt 0 ] && { leaks=$((leaks + 1)); echo "LEAK in $f:"; grep -B2 -A12 'definitely lost in' "$f" | head -40; }
    fi
    if [ "$n" -gt 0 ]; then
        errors=$((errors + n))
        echo "ERRORS in $f:"; grep -A15 -E '== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and)' "$f" | head -60
    fi
done
echo "valgrind: ${#TESTS[@]} tests (${#failed[@]} failed${failed[*]:+: ${failed[*]}})," \
     "$logs processes under memcheck ($exited exited and were leak-checked)," \
     "$errors errors, $leaks with definite leaks; logs in $OUT"
[ ${#failed[@]} -eq 0 ] && [ $errors -eq 0 ] && [ $leaks -eq 0 ]
