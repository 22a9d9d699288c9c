#!/usr/bin/env bash
# Run libFuzzer targets: tests/fuzz/run-fuzzers.sh SECONDS BIN...
#
# Each target starts from its committed seeds (tests/fuzz/corpus/<bin>/),
# copied into a working corpus under $BUILD/fuzz/work/<bin> that keeps
# growing from run to run, and fuzzes for SECONDS.  A crash, leak or
# timeout fails the target and leaves its input in $BUILD/fuzz/artifacts/;
# the line to reproduce it is printed.  Like tests/run-suite.sh, the
# "pass fail skip" counts go to $BUILD/test/results/fuzz and the last line
# is "fuzz: N passed, N failed".
set -euo pipefail

if [ $# -lt 1 ]; then
	echo "usage: $0 SECONDS BIN..." >&2
	exit 2
fi
secs=$1; shift

here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD:-build}
artifacts=$build/fuzz/artifacts
logs=$build/fuzz/logs
mkdir -p "$artifacts" "$logs"

pass=0 fail=0 skip=0
for bin in "$@"; do
	name=$(basename "$bin")
	if [ ! -x "$bin" ]; then
		fail=$((fail + 1))
		echo "FAIL fuzz/$name: no such fuzzer binary"
		continue
	fi
	if [ "$secs" -le 0 ]; then
		skip=$((skip + 1))
		echo "SKIP fuzz/$name: 0 seconds"
		continue
	fi

	work=$build/fuzz/work/$name
	log=$logs/$name.log
	mkdir -p "$work"
	if [ -d "$here/corpus/$name" ]; then
		cp -n "$here/corpus/$name"/* "$work"/ 2>/dev/null || true
	fi
	# Only this run's artifacts count: stamp the start.
	stamp=$(mktemp "$build/fuzz/.stamp.XXXXXX")

	rc=0
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 \
		-print_final_stats=1 -artifact_prefix="$artifacts/$name-" \
		"$work" >"$log" 2>&1 || rc=$?

	found=$(find "$artifacts" -maxdepth 1 -type f -name "$name-*" \
		-newer "$stamp" | head -n 1)
	rm -f "$stamp"
	if [ $rc -eq 0 ] && [ -z "$found" ]; then
		pass=$((pass + 1))
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		echo "PASS fuzz/$name (${secs}s, ${runs:-?} runs)"
	else
		fail=$((fail + 1))
		echo "FAIL fuzz/$name (exit $rc); last lines of $log:"
		tail -n 30 "$log" | sed 's/^/    /'
		if [ -n "$found" ]; then
			echo "    reproduce: $bin $found"
		fi
	fi
done

exec "$(dirname "$0")/../suite-result.sh" fuzz $pass $fail $skip
