# Helpers of the benchmark guests (busybox sh), installed as
# /e2e/bench-lib.sh next to the e2e guests' /e2e/lib.sh, whose say,
# result, stats, sync_point, module_load and knob they use.  The plan that
# tests/guest-bench/run-bench.py writes sources this file, sets up one
# configuration (swap on the disk, on zram or none; the module or not) and
# runs one workload between two sync points, which the host times.

# swap_disk: swap on the virtio-blk disk labelled e2eswap.
swap_disk() {
	dev=$(findfs LABEL=e2eswap) && swapon "$dev" &&
		result swapon="$dev" || { result swapon=failed; return 1; }
}

# swap_zram BYTES: in-guest compressed swap, LZ4 like the host's store.
swap_zram() {
	z=/sys/block/zram0
	[ -d $z ] || { result swapon=no-zram; return 1; }
	echo lz4 >$z/comp_algorithm && echo "$1" >$z/disksize &&
		mkswap /dev/zram0 >/dev/null && swapon /dev/zram0 &&
		result swapon=/dev/zram0 comp="$(cat $z/comp_algorithm | tr ' ' ,)" ||
		{ result swapon=failed; return 1; }
}

# data_ro: the benchmark's file set, ext4 on the disk labelled e2edata,
# read-only: every guest reads the same image, which the host made once.
data_ro() {
	mkdir -p /mnt/data
	dev=$(findfs LABEL=e2edata) && mount -t ext4 -o ro "$dev" /mnt/data &&
		result mount="$dev" || { result mount=failed; return 1; }
}

# snap LABEL: the guest's own counters as E2E-STATS lines: zram.LABEL
# (zram's mm_stat and its sectors read and written, if zram is the swap)
# and LABEL (the driver's debugfs stats, or "missing").  Interrupts are
# counted on the host: without PCI_MSI the virtio devices share INTx lines,
# so the guest's /proc/interrupts cannot tell them apart.
snap() {
	if grep -q zram0 /proc/swaps; then
		say "E2E-STATS zram.$1 $(awk '{ printf "orig_data_size=%s compr_data_size=%s mem_used_total=%s mem_used_max=%s", $1, $2, $3, $5 }' /sys/block/zram0/mm_stat) $(awk '{ printf "sectors_read=%s sectors_written=%s", $3, $7 }' /sys/block/zram0/stat)"
	fi
	stats "$1"
}

# prof_begin / prof_end / prof_dump LABEL: the kernel's tick profile,
# only where the command line has "profile=N" (profile.py --guest).  The
# counters are reset before the workload and copied to tmpfs right after
# it (idle ticks at the sync point would follow otherwise); the copy's
# non-zero buckets are printed later, outside the timed window, as
# "E2E-PROF LABEL BUCKET COUNT" (bucket 0 is /proc/profile's first
# counter, the last takes every module's ticks), with /proc/stat's cpu
# line at both ends for the user time that the profile does not see.
prof_begin() {
	[ -e /proc/profile ] || return 0
	echo 0 >/proc/profile
	say "E2E-PROFSTAT $1.begin $(head -n 1 /proc/stat)"
}

prof_end() {
	[ -e /proc/profile ] || return 0
	mkdir -p /tmp && cat /proc/profile >/tmp/profile
	say "E2E-PROFSTAT $1.end $(head -n 1 /proc/stat)"
}

prof_dump() {
	[ -e /tmp/profile ] || return 0
	od -A n -t u4 -v /tmp/profile | awk -v l="$1" '
		{ for (i = 1; i <= NF; i++) {
			if (n > 0 && $i > 0)
				printf "E2E-PROF %s %d %s\n", l, n - 1, $i
			else if (n == 0)
				printf "E2E-PROF %s step %s\n", l, $i
			n++ } }
		END { printf "E2E-PROF %s buckets %d\n", l, n - 1 }'
	rm -f /tmp/profile
}

# bench NAME CMD...: one timed workload, under bench-run (its faults).
# The host times it from its answer at NAME.begin to NAME.end; the
# snapshots are outside that window.
bench() {
	name=$1
	shift
	sync
	snap "$name.before"
	sync_point "$name.begin"
	say "E2E-BEGIN $name"
	prof_begin "$name"
	bench-run "$@"
	rc=$?
	prof_end "$name"
	sync_point "$name.end"
	say "E2E-END $name rc=$rc"
	snap "$name.after"
	prof_dump "$name"
	return $rc
}
