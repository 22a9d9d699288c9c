#!/bin/sh
# /init of the end-to-end guests (busybox sh).  It sets the guest up, then
# sources /e2e/plan.sh, which the host harness (tests/e2e/run-e2e.py)
# writes for each test out of the helpers in /e2e/lib.sh
# (tests/e2e/guest/e2e-lib.sh), and ends at a last sync
# point so the host can read its QMP figures before the guest goes away.
#
# Every line meant for the harness starts with "E2E-" (see
# tests/e2e/guest/e2e-common.h for the protocol).
export PATH=/bin:/sbin:/e2e

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
# A distribution kernel's own virtio drivers, when it has them as modules
# (the harness packs them in load order).
for m in /e2e/kmod/*.ko; do
	[ -f "$m" ] && insmod "$m"
done
# The host writes answers on the console: do not echo them back.
stty -echo 2>/dev/null

. /e2e/lib.sh

say "E2E-BOOT kernel=$(uname -r) mem_kb=$(awk '/MemTotal/ { print $2 }' /proc/meminfo)"
. /e2e/plan.sh
say "E2E-DMESG-BEGIN"
dmesg
say "E2E-DMESG-END"
sync_point end
say "E2E-DONE"
sync
reboot -f
