#!/usr/bin/env bash
# Run test programs as one suite.  Each program exits 0 (pass), 77 (skip)
# or anything else (fail) and is killed after TEST_TIMEOUT seconds.  Prints
# one line per program and closes with "N passed, N failed[, N skipped]";
# the counts also go to $BUILD/test/results/<suite> for scripts/run-tests.sh.
set -uo pipefail

suite=$1; shift
timeout_s=${TEST_TIMEOUT:-900}
logs=${BUILD:-build}/test/logs/$suite
mkdir -p "$logs"

pass=0 fail=0 skip=0
for t in "$@"; do
	name=$(basename "$t")
	log=$logs/$name.log
	start=$(date +%s%N)
	timeout --kill-after=10 "$timeout_s" "$t" >"$log" 2>&1
	rc=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	secs=$((ms / 1000)).$((ms % 1000 / 100))
	case $rc in
	0)  pass=$((pass + 1)); echo "PASS $suite/$name (${secs}s)";;
	77) skip=$((skip + 1)); echo "SKIP $suite/$name: $(tail -n 1 "$log")";;
	*)  fail=$((fail + 1))
	    [ $rc -eq 124 ] && why="timed out after ${timeout_s}s" || why="exit $rc"
	    echo "FAIL $suite/$name ($why, ${secs}s); last lines of $log:"
	    tail -n 30 "$log" | sed 's/^/    /';;
	esac
done
exec "$(dirname "$0")/suite-result.sh" "$suite" $pass $fail $skip
