#!/usr/bin/env bash
# QEMU qtests against the patched QEMU: the virtio-tmem tests (driving
# the device over real virtio-pci, no guest) and QEMU's own virtio qos
# tests, to show the patch broke none of them.  Builds QEMU and qos-test
# if needed (cached), and closes with "qtest: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

logs=${BUILD:-build}/test/logs/qtest
mkdir -p "$logs"
fail_build() {
	echo "qtest: build failed: $1"
	exec tests/suite-result.sh qtest 0 1
}

# build-qemu.sh passes extra targets to ninja, with meson on its path
qemu=$(scripts/build-qemu.sh tests/qtest/qos-test) ||
	fail_build "scripts/build-qemu.sh tests/qtest/qos-test"
bdir=$(dirname "$qemu")
export QTEST_QEMU_BINARY=$qemu
# qos tests that need an image (virtio-scsi) make it with Debian's qemu-img
export QTEST_QEMU_IMG=/usr/bin/qemu-img
qos=$bdir/tests/qtest/qos-test

# qos-test's -p takes whole test paths: list them, by virtio PCI device.
mapfile -t all < <("$qos" -l 2>/dev/null | grep -E '^/.*/virtio-[a-z0-9-]*-pci/')
mapfile -t devs < <(printf '%s\n' "${all[@]}" |
	sed -E 's|.*/(virtio-[a-z0-9-]*-pci)/.*|\1|' | sort -u |
	awk '/virtio-tmem/ { print; next } { rest[++n] = $0 }
	     END { for (i = 1; i <= n; i++) print rest[i] }')
[ ${#devs[@]} -gt 0 ] || fail_build "qos-test lists no virtio tests"

pass=0 fail=0
for name in "${devs[@]}"; do
	log=$logs/$name.log
	args=()
	for t in "${all[@]}"; do
		case $t in */"$name"/*) args+=(-p "$t");; esac
	done
	timeout 600 "$qos" -m quick "${args[@]}" >"$log" 2>&1
	rc=$?
	ok=$(grep -c '^ok ' "$log")
	bad=$(grep -c '^not ok ' "$log")
	pass=$((pass + ok))
	fail=$((fail + bad))
	if [ $rc -ne 0 ] && [ "$bad" -eq 0 ]; then
		fail=$((fail + 1))	# died outside any one test
	fi
	if [ $rc -ne 0 ] || [ "$bad" -gt 0 ]; then
		echo "FAIL qtest/$name (exit $rc); last lines of $log:"
		tail -n 25 "$log" | sed 's/^/    /'
	else
		echo "PASS qtest/$name ($ok tests)"
	fi
done
exec tests/suite-result.sh qtest $pass $fail
