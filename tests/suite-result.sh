#!/usr/bin/env bash
# Close a test suite: record its counts for scripts/run-tests.sh and print
# "NAME: N passed, N failed[, N skipped]".  Exits non-zero if any failed.
#
#   tests/suite-result.sh NAME PASS FAIL [SKIP]
set -euo pipefail

name=$1 pass=$2 fail=$3 skip=${4:-0}
results=${BUILD:-build}/test/results
mkdir -p "$results"
echo "$pass $fail $skip" >"$results/$name"
line="$pass passed, $fail failed"
if [ "$skip" -gt 0 ]; then
	line="$line, $skip skipped"
fi
echo "$name: $line"
[ "$fail" -eq 0 ]
