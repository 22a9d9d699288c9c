#!/bin/sh
# /init of the end-to-end guests (busybox sh).  It sets the guest up, then
# sources /e2e/plan.sh, which the host harness (tests/e2e/run-e2e.py)
# writes for each test out of the helpers below, and ends at a last sync
# point so the host can read its QMP figures before the guest goes away.
#
# Every line meant for the harness starts with "E2E-" (see
# tests/e2e/guest/e2e-common.h for the protocol).
export PATH=/bin:/sbin:/e2e
STATS=/sys/kernel/debug/virtio_tmem/stats
DRV=/sys/bus/virtio/drivers/virtio_tmem

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
# The host writes answers on the console: do not echo them back.
stty -echo 2>/dev/null

say() { echo "$*"; }
result() { say "E2E-RESULT $*"; }

# stats LABEL: the driver's debugfs stats on one line, or "missing".
stats() {
	if [ -r "$STATS" ]; then
		say "E2E-STATS $1 $(awk '{ printf "%s%s=%s", sep, $1, $2; sep = " " }' "$STATS")"
	else
		say "E2E-STATS $1 missing"
	fi
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

# tmem_dev: the virtio device the driver is bound to (e.g. virtio2).
tmem_dev() {
	for d in "$DRV"/virtio*; do
		[ -e "$d" ] && { basename "$d"; return 0; }
	done
	return 1
}

# unbind / bind: detach the driver from its device and attach it again.
TMEM_DEV=
unbind() {
	TMEM_DEV=$(tmem_dev) || { result unbind=no-device; return 1; }
	echo "$TMEM_DEV" >"$DRV/unbind" && result unbind="$TMEM_DEV" ||
		{ result unbind=failed; return 1; }
}
bind() {
	[ -n "$TMEM_DEV" ] || { result bind=no-device; return 1; }
	echo "$TMEM_DEV" >"$DRV/bind" && result bind="$TMEM_DEV" ||
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

say "E2E-BOOT kernel=$(uname -r) mem_kb=$(awk '/MemTotal/ { print $2 }' /proc/meminfo)"
. /e2e/plan.sh
say "E2E-DMESG-BEGIN"
dmesg
say "E2E-DMESG-END"
sync_point end
say "E2E-DONE"
sync
reboot -f
