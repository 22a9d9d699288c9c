#!/usr/bin/env bash
# Style checks, each part against its home's own checker: QEMU's
# scripts/checkpatch.pl on qemu-device/ (from the pinned QEMU source), and
# the kernel's (from the pinned Linux 5.10 source, with --strict) on
# guest-driver/.  One result per file; closes with
# "checkpatch: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

qemu_src=$(scripts/fetch-qemu.sh) || {
	echo "checkpatch: cannot fetch QEMU's source"
	exec tests/suite-result.sh checkpatch 0 1
}

pass=0 fail=0
# From qemu-device/, so test files are under tests/ as in QEMU's tree,
# where checkpatch allows the g_assert_cmp* family.
while IFS= read -r f; do
	out=$(cd qemu-device &&
	      perl "$qemu_src/scripts/checkpatch.pl" --no-tree -f "${f#qemu-device/}" 2>&1)
	if echo "$out" | grep -q '^total: 0 errors, 0 warnings'; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "FAIL checkpatch/$f:"
		echo "$out" | sed 's/^/    /'
	fi
done < <(git ls-files 'qemu-device/*.c' 'qemu-device/*.h')

linux_src=$(scripts/build-kernel.sh source) || {
	echo "checkpatch: cannot fetch Linux's source"
	exec tests/suite-result.sh checkpatch $pass $((fail + 1))
}
while IFS= read -r f; do
	out=$(perl "$linux_src/scripts/checkpatch.pl" --no-tree --strict -f "$f" 2>&1)
	if echo "$out" | grep -q '^total: 0 errors, 0 warnings, 0 checks'; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "FAIL checkpatch/$f:"
		echo "$out" | sed 's/^/    /'
	fi
done < <(git ls-files 'guest-driver/*.c' 'guest-driver/*.h')
exec tests/suite-result.sh checkpatch $pass $fail
