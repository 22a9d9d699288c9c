#!/usr/bin/env bash
# Fuzz the virtio-tmem device with QEMU's libFuzzer binary, built with
# clang, ASan and UBSan.  Each target runs SECONDS (default
# $FUZZ_SECONDS, else 60):
#   virtio-tmem-fuzz                  well-formed request batches, mostly,
#                                     on the main loop, checked against a
#                                     model of the pools
#   virtio-tmem-spill-iothread-fuzz   the same in an iothread, with a small
#                                     budget and a spill file
#   virtio-tmem-migration-fuzz        the device's incoming migration
#                                     section, from the fuzzer's bytes
#   generic-fuzz-virtio-tmem          QEMU's random MMIO, PIO and DMA
#   tmem-blk-fuzz                     requests on a tmem block node
#                                     through the block layer, checked
#                                     against a model of the disk
# Each starts from its seeds in qemu-device/tests/fuzz-corpus/.  A
# crash, a sanitizer report or a model mismatch fails, and the
# artifact's reproducer is printed.  Per target it prints the runs, the
# edges reached in the request decoder (virtio_tmem_handle_request) or
# the migration load (virtio_tmem_load and the live section's
# tmem_live_load*), from libFuzzer's
# -print_coverage report (the decoder's edges are those of
# virtio_tmem_handle_request, virtio_tmem_run_op and
# virtio_tmem_get_range, which the compiler may or may not inline into
# it), and what the target says it ran.  The request
# targets fail below $decoder_floor decoder edges, the migration target
# below $load_floor load edges, the block target below $blk_floor edges
# of the driver's request path and section.  Closes with "qemu-fuzz: N passed, N
# failed".
set -uo pipefail
cd "$(dirname "$0")/.."

secs=${1:-${FUZZ_SECONDS:-60}}
build=${BUILD:-build}
work=$build/fuzz/qemu
mkdir -p "$work/artifacts"
# Measured: 246-252 of 451-461 decoder edges and 45 of 76 load edges in 60 s
# before GET_RANGE; with it, 248 of 452 plus 46 of 89 in virtio_tmem_get_range
decoder_floor=150
load_floor=25
# tmem-blk-fuzz: 100 of 186 request-path edges in 60 s, 140 of 269 in 90 s
# with the migration section's load and save
blk_floor=60

scripts/ensure-packages.sh llvm	# llvm-symbolizer, for -print_coverage
bin=$(TMEM_QEMU_VARIANT=fuzz scripts/build-qemu.sh) || {
	echo "qemu-fuzz: cannot build QEMU's fuzzer"
	exec tests/suite-result.sh qemu-fuzz 0 1
}
pass=0 fail=0
for target in virtio-tmem-fuzz virtio-tmem-spill-iothread-fuzz \
	      virtio-tmem-migration-fuzz generic-fuzz-virtio-tmem \
	      tmem-blk-fuzz; do
	log=$work/$target.log
	funcs="virtio_tmem_handle_request virtio_tmem_run_op virtio_tmem_get_range"
	floor=$decoder_floor opts=()
	case $target in
	virtio-tmem-migration-fuzz)
		# the table's load, and the live section's (backends/tmem-live.c)
		funcs="virtio_tmem_load tmem_live_load tmem_live_load_key"
		funcs+=" tmem_live_load_form tmem_live_load_slot"
		floor=$load_floor;;
	tmem-blk-fuzz)
		# the block driver's request path, through the block layer
		funcs="tmem_blk_run tmem_blk_read_work tmem_blk_write_work"
		funcs+=" tmem_blk_discard_work tmem_blk_co_pdiscard"
		funcs+=" tmem_blk_co_pwrite_zeroes tmem_blk_live_mark tmem_live_load"
		funcs+=" tmem_live_load_key tmem_live_load_form tmem_live_load_slot"
		floor=$blk_floor;;
	generic-*) floor=0;;
	esac
	# A per-input leak check costs these targets nine inputs in ten;
	# each input frees what it made (the device is reset at its end).
	[ "$floor" -gt 0 ] && opts+=(-detect_leaks=0)
	mkdir -p "$work/corpus/$target"
	seeds=qemu-device/tests/fuzz-corpus/$target
	[ -d "$seeds" ] || seeds=
	rm -f "$work"/artifacts/"$target"-*
	"$bin" --fuzz-target="$target" -max_total_time="$secs" \
		-rss_limit_mb=4096 -artifact_prefix="$work/artifacts/$target-" \
		-print_coverage=1 "${opts[@]}" "$work/corpus/$target" $seeds \
		>"$log" 2>&1
	rc=$?
	runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -n 1)
	edges=$(for f in $funcs; do
		grep -o "^COVERED_FUNC: .* $f " "$log" |
			grep -o 'edges: [0-9/]*' | head -n 1
	done | awk -F'[ /]' '{ hit += $2; all += $3 }
		END { if (NR) printf "edges: %d/%d", hit, all }')
	ran=$(grep -E "^$target: |^virtio-tmem-fuzz: " "$log" | tail -n 1)
	ran=${ran#*: }
	n=${edges#edges: }
	n=${n%/*}
	summary="${secs}s, ${runs:-no summary}, ${funcs// /+} ${edges:-not reached}${ran:+; $ran}"
	if [ $rc -eq 0 ] && [ "${n:-0}" -lt "$floor" ]; then
		echo "FAIL qemu-fuzz/$target ($summary): fewer than $floor edges"
		fail=$((fail + 1))
		continue
	fi
	if [ $rc -eq 0 ]; then
		echo "PASS qemu-fuzz/$target ($summary)"
		pass=$((pass + 1))
		continue
	fi
	fail=$((fail + 1))
	echo "FAIL qemu-fuzz/$target (exit $rc); last lines of $log:"
	grep -v ': virtio\(-tmem\)\?: ' "$log" | tail -n 30 | sed 's/^/    /'
	for a in "$work"/artifacts/"$target"-*; do
		[ -e "$a" ] && echo "    reproduce: $bin --fuzz-target=$target $a"
	done
done
exec tests/suite-result.sh qemu-fuzz $pass $fail
