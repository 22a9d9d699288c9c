# Helpers of the end-to-end guests (busybox sh), installed as /e2e/lib.sh.
# /init sources it, so the plan /init runs has these helpers too.  A
# command the host sends at a sync point runs in a child shell, so it
# sources the file itself: "sh . /e2e/lib.sh; unbind".  State that must outlive one shell
# (the device unbind took away) lives in /tmp.
STATS=/sys/kernel/debug/virtio_tmem/stats
LATENCY=/sys/kernel/debug/virtio_tmem/latency
DRV=/sys/bus/virtio/drivers/virtio_tmem

say() { echo "$*"; }
result() { say "E2E-RESULT $*"; }

# stats LABEL: the driver's debugfs stats on one line, or "missing"; then
# its latency histograms as lat.LABEL, class.lower_ns=count per bucket.
stats() {
	if [ -r "$STATS" ]; then
		say "E2E-STATS $1 $(awk '{ printf "%s%s=%s", sep, $1, $2; sep = " " }' "$STATS")"
	else
		say "E2E-STATS $1 missing"
	fi
	[ -r "$LATENCY" ] &&
		say "E2E-STATS lat.$1 $(awk '{ printf "%s%s.%s=%s", sep, $1, $2, $3; sep = " " }' "$LATENCY")"
	return 0
}

# sync_point NAME: wait for "go" from the host; run "sh CMD" lines meanwhile.
sync_point() {
	say "E2E-SYNC $1"
	while read -r line; do
		case $line in
		go) return 0;;
		"sh "*) eval "${line#sh }"; say "E2E-SH rc=$?";;
		esac
	done
	say "E2E-SYNC-EOF $1"
}

# module_load [PARAMS...]: insmod the driver, if the harness packed it.
module_load() {
	if [ ! -f /e2e/virtio_tmem.ko ]; then
		result module=missing
		return 1
	fi
	if insmod /e2e/virtio_tmem.ko "$@"; then
		result module=loaded params="$*"
		[ -r "$STATS" ] || result module_stats=missing
	else
		result module=insmod-failed
		return 1
	fi
}

# disks_up: swap on the disk labelled e2eswap, ext4 e2edata on /mnt/data.
disks_up() {
	swapdev=$(findfs LABEL=e2eswap) && swapon "$swapdev" &&
		result swapon=$swapdev || result swapon=failed
	mkdir -p /mnt/data
	datadev=$(findfs LABEL=e2edata) && mount -t ext4 "$datadev" /mnt/data &&
		result mount=$datadev || result mount=failed
}

# blk_swap_on SERIAL: make swap on the virtio disk whose serial is SERIAL
# (a tmem block node behind stock virtio-blk) and swap on it, freed pages
# discarded as they go (swapon --discard=pages), so the host lets them go.
# Linux discards freed swap only on a disk it takes for an SSD, and takes
# every virtio-blk disk for a rotating one: say it is not.
blk_swap_on() {
	dev=
	for b in /sys/block/vd*; do
		[ "$(cat "$b/serial" 2>/dev/null)" = "$1" ] && dev=/dev/${b##*/}
	done
	[ -n "$dev" ] && echo 0 >"/sys/block/${dev#/dev/}/queue/rotational" &&
		mkswap "$dev" >/dev/null && swapon -dpages "$dev" &&
		result swapon="$dev" || { result swapon=failed; return 1; }
}

# rootfs_swap_in: read back every file of the initramfs.  They are tmpfs
# pages, which reclaim swaps out among a test program's pages; each one
# left in swap keeps its swap cluster from being freed, and so discarded,
# once the program exits.  A tmpfs page read back gives its block up.
rootfs_swap_in() {
	find / -xdev -type f -exec cat {} + >/dev/null 2>&1
	return 0
}

# swap_in_use: the swap the guest still holds (SwapTotal - SwapFree) and,
# of it, the swap cache's (SwapCached: pages back in RAM that kept their
# block), in KiB; a block held is not discarded, nor is its cluster.
swap_in_use() {
	result "$(awk '/^Swap(Total|Free|Cached):/ { v[$1] = $2 }
		END { printf "swap_used_kb=%d swap_cached_kb=%d",
		      v["SwapTotal:"] - v["SwapFree:"], v["SwapCached:"] }' /proc/meminfo)"
}

# tmem_dev: the virtio device the driver is bound to (e.g. virtio2).
tmem_dev() {
	for d in "$DRV"/virtio*; do
		[ -e "$d" ] && { basename "$d"; return 0; }
	done
	return 1
}

# unbind / bind: detach the driver from its device and attach it again.
unbind() {
	dev=$(tmem_dev) || { result unbind=no-device; return 1; }
	echo "$dev" >/tmp/tmem-dev
	echo "$dev" >"$DRV/unbind" && result unbind="$dev" ||
		{ result unbind=failed; return 1; }
}
bind() {
	dev=$(cat /tmp/tmem-dev 2>/dev/null) || { result bind=no-device; return 1; }
	echo "$dev" >"$DRV/bind" && result bind="$dev" ||
		{ result bind=failed; return 1; }
}

# run NAME CMD...: one test program, bracketed by markers and stats.
run() {
	name=$1
	shift
	stats "$name.before"
	say "E2E-BEGIN $name"
	"$@"
	rc=$?
	say "E2E-END $name rc=$rc"
	stats "$name.after"
	return $rc
}

# swapfile_on MB: swap on a file of MB MiB on /mnt/data instead of the
# swap disk, so that pages go back to a swap file's blocks.
swapfile_on() {
	mkdir -p /mnt/data
	mount -t ext4 "$(findfs LABEL=e2edata)" /mnt/data &&
		result mount=/mnt/data || { result mount=failed; return 1; }
	swapfile_on_mounted "$1"
}
swapfile_on_mounted() {
	f=/mnt/data/swapfile
	dd if=/dev/zero of=$f bs=1M count="$1" 2>/dev/null && chmod 600 $f &&
		mkswap $f >/dev/null && swapon $f &&
		result swapon=$f || result swapon=failed
}

# verify_sums NAME LIST BYTES: md5sum -c over the files LIST names (made on
# the host); reported like the test programs report what they verified.
verify_sums() {
	bad=$(md5sum -c "$2" 2>&1 | grep -vc ': OK$')
	if [ "$bad" -eq 0 ]; then
		result prog="$1" bytes_verified="$3" corruptions=0
	else
		say "E2E-CORRUPT prog=$1 files_failed=$bad"
		result prog="$1" bytes_verified=0 corruptions="$bad"
		return 1
	fi
}

# knob PATH VALUE: write VALUE to the driver's debugfs file
# virtio_tmem/PATH (guest-driver/profile.c: profile).
knob() {
	echo "$2" >"/sys/kernel/debug/virtio_tmem/$1" &&
		result "knob_$1=$2" || result "knob_$1=failed"
}

# fault NAME VALUE: set one of the driver's fault-injection knobs
# (guest-driver/fault.c).
fault() {
	echo "$2" >"/sys/kernel/debug/virtio_tmem/fault/$1" &&
		result "fault_$1=$2" || result "fault_$1=failed"
}

# torture NAME ARGS...: the driver's torture test (guest-driver/torture.c);
# its figures are reported like a test program's.
torture() {
	name=$1
	shift
	stats "$name.before"
	say "E2E-BEGIN $name"
	echo "$*" >/sys/kernel/debug/virtio_tmem/torture
	rc=$?
	say "E2E-RESULT prog=$name $(cat /sys/kernel/debug/virtio_tmem/torture)"
	say "E2E-END $name rc=$rc"
	stats "$name.after"
	return $rc
}

# suspend_devices [KEY]: suspend to idle with pm_test=devices, so that
# every driver's freeze and restore run, and resume 5 s later; result
# KEY (suspend) = resumed or failed.
suspend_devices() {
	echo devices >/sys/power/pm_test &&
		echo freeze >/sys/power/state && result "${1:-suspend}=resumed" ||
		result "${1:-suspend}=failed"
	echo none >/sys/power/pm_test
}

# hibernate: hibernate to the swap disk and take the machine down.  The
# harness starts QEMU again on the same disks; the kernel's command line
# has resume=, so it restores the image, and the write returns then.
# (5.10's test_resume cannot read the image back while swap is on.)
hibernate() {
	echo reboot >/sys/power/disk &&
		echo disk >/sys/power/state && result hibernate=resumed ||
		result hibernate=failed
}

# swapfile_pad_on MB: like swapfile_on, after a 1 KiB file, so that on a
# filesystem of 1 KiB blocks the swap file's blocks are not page-aligned.
swapfile_pad_on() {
	mkdir -p /mnt/data
	mount -t ext4 "$(findfs LABEL=e2edata)" /mnt/data &&
		result mount=/mnt/data || { result mount=failed; return 1; }
	dd if=/dev/zero of=/mnt/data/pad bs=1k count=1 2>/dev/null && sync
	swapfile_on_mounted "$1"
}
