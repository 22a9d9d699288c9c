#!/usr/bin/env bash
# Fuzz the virtio-tmem device, request decoder first of all, with QEMU's
# own libFuzzer target (generic-fuzz-virtio-tmem: random MMIO, PIO and DMA
# against a q35 machine with the device), built with clang, ASan and
# UBSan.  Runs for SECONDS (default $FUZZ_SECONDS, else 60); a crash, a
# leak or a sanitizer report fails, and the artifact's reproducer is
# printed.  virtio-tmem-fuzz starts from the seeds committed in
# qemu-device/tests/fuzz-corpus/ and must reach the request decoder
# (virtio_tmem_handle_request); its edge coverage is printed from
# libFuzzer's -print_coverage report.  Closes with
# "qemu-fuzz: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

secs=${1:-${FUZZ_SECONDS:-60}}
build=${BUILD:-build}
work=$build/fuzz/qemu
mkdir -p "$work/artifacts"

scripts/ensure-packages.sh llvm	# llvm-symbolizer, for -print_coverage
bin=$(TMEM_QEMU_VARIANT=fuzz scripts/build-qemu.sh) || {
	echo "qemu-fuzz: cannot build QEMU's fuzzer"
	exec tests/suite-result.sh qemu-fuzz 0 1
}
# virtio-tmem-fuzz builds chains on a running queue (the decoder's
# target); generic-fuzz-virtio-tmem pokes MMIO, PIO and DMA at random.
pass=0 fail=0
for target in virtio-tmem-fuzz generic-fuzz-virtio-tmem; do
	log=$work/$target.log
	mkdir -p "$work/corpus/$target"
	seeds=qemu-device/tests/fuzz-corpus/$target
	[ -d "$seeds" ] || seeds=
	"$bin" --fuzz-target="$target" -max_total_time="$secs" \
		-rss_limit_mb=4096 -artifact_prefix="$work/artifacts/$target-" \
		-print_coverage=1 "$work/corpus/$target" $seeds >"$log" 2>&1
	rc=$?
	runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -n 1)
	funcs=$(grep -c '^COVERED_FUNC: .* virtio_tmem' "$log")
	decoder=$(grep -o '^COVERED_FUNC: .* virtio_tmem_handle_request ' "$log" |
		  grep -o 'edges: [0-9/]*')
	if [ $rc -eq 0 ] && [ "$target" = virtio-tmem-fuzz ] && [ -z "$decoder" ]; then
		echo "FAIL qemu-fuzz/$target: the request decoder was never reached"
		fail=$((fail + 1))
		continue
	fi
	if [ $rc -eq 0 ]; then
		echo "PASS qemu-fuzz/$target (${secs}s, ${runs:-no summary}," \
		     "$funcs virtio-tmem functions covered," \
		     "decoder ${decoder:-not reached})"
		pass=$((pass + 1))
		continue
	fi
	fail=$((fail + 1))
	echo "FAIL qemu-fuzz/$target (exit $rc); last lines of $log:"
	tail -n 30 "$log" | sed 's/^/    /'
	for a in "$work"/artifacts/"$target"-*; do
		[ -e "$a" ] && echo "    reproduce: $bin --fuzz-target=$target $a"
	done
done
exec tests/suite-result.sh qemu-fuzz $pass $fail
