#!/usr/bin/env bash
# `make test`: every suite in the tree, each closing with its own
# "N passed, N failed" line, then the total.  A failing suite does not stop
# the others; the exit status is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

build=${BUILD:-build}
rm -rf "$build/test/results"
jobs=$(nproc)

suites=(
	"make -s -j$jobs test-host-lib VARIANT=release"
	"make -s -j$jobs test-host-lib VARIANT=asan"
	"make -s -j$jobs test-fuzz"
	"make -s test-qtest"
	"make -s test-qemu-fuzz"
	"scripts/checkpatch.sh"
	"make -s test-e2e"
)
status=0
for s in "${suites[@]}"; do
	echo "== $s"
	$s || status=1
done

pass=0 fail=0 skip=0
for f in "$build"/test/results/*; do
	[ -e "$f" ] || continue
	read -r p f_ s_ <"$f"
	pass=$((pass + p)); fail=$((fail + f_)); skip=$((skip + s_))
done
# A suite that failed to build left no results: count it as a failure.
n_results=$(find "$build/test/results" -type f 2>/dev/null | wc -l)
if [ "$n_results" -lt ${#suites[@]} ]; then
	fail=$((fail + ${#suites[@]} - n_results))
	status=1
fi
line="$pass passed, $fail failed"
[ $skip -gt 0 ] && line="$line, $skip skipped"
echo "total: $line"
echo "$line"
exit $status
