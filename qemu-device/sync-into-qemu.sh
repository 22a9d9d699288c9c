#!/usr/bin/env bash
# Copy the device, its tests, the protocol header and the host library
# into a QEMU source tree prepared with qemu-build.patch.  Files are only
# copied when they differ, so ninja rebuilds just what changed.  The
# protocol header gets the rewrite QEMU's update-linux-headers.sh gives
# kernel headers (__le32 -> uint32_t, <linux/x.h> -> standard-headers).
#
#   qemu-device/sync-into-qemu.sh QEMU_SRC PROJECT_TOP
set -euo pipefail

qemu=$1
top=$2
dev=$top/qemu-device

put() {
	local from=$1 to=$qemu/$2

	mkdir -p "$(dirname "$to")"
	cmp -s "$from" "$to" || cp "$from" "$to"
}

put "$dev/virtio-tmem.c" hw/virtio/virtio-tmem.c
put "$dev/virtio-tmem-req.c" hw/virtio/virtio-tmem-req.c
put "$dev/virtio-tmem-events.c" hw/virtio/virtio-tmem-events.c
put "$dev/virtio-tmem-migration.c" hw/virtio/virtio-tmem-migration.c
put "$dev/virtio-tmem-live.c" hw/virtio/virtio-tmem-live.c
put "$dev/virtio-tmem-qmp.c" hw/virtio/virtio-tmem-qmp.c
put "$dev/virtio-tmem-pci.c" hw/virtio/virtio-tmem-pci.c
put "$dev/virtio-tmem.h" include/hw/virtio/virtio-tmem.h
# the store object and the block driver, in their homes in QEMU
put "$dev/tmem-store.c" backends/tmem-store.c
put "$dev/tmem-store.h" include/system/tmem-store.h
put "$dev/tmem-live.c" backends/tmem-live.c
put "$dev/tmem-live.h" include/system/tmem-live.h
put "$dev/tmem-spill-blk.c" backends/tmem-spill-blk.c
put "$dev/tmem-spill-blk.h" include/system/tmem-spill-blk.h
put "$dev/tmem-block.c" block/tmem.c
put "$dev/tmem-block.h" include/block/tmem.h
for f in "$dev"/tests/virtio-tmem-*.[ch]; do
	put "$f" "tests/qtest/${f##*/}"
done
# the store's old index hash, for the hostile qtest's colliding keys
put "$top/tests/host-lib/old_hash.h" tests/qtest/virtio-tmem-old-hash.h
put "$dev/tests/libqos/virtio-tmem.c" tests/qtest/libqos/virtio-tmem.c
put "$dev/tests/libqos/virtio-tmem.h" tests/qtest/libqos/virtio-tmem.h
for f in "$dev"/tests/fuzz/*.[ch]; do
	put "$f" "tests/qtest/fuzz/${f##*/}"
done
put "$top/include/tmem.h" hw/virtio/tmem/tmem.h
put "$top/build/release/libtmem.a" hw/virtio/tmem/libtmem.a

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
sed -e 's/__u\([0-9][0-9]*\)\b/uint\1_t/g' \
    -e 's/__le\([0-9][0-9]*\)\b/uint\1_t/g' \
    -e 's|#include <linux/\([^>]*\)>|#include "standard-headers/linux/\1"|' \
    "$top/include/virtio_tmem.h" >"$tmp"
put "$tmp" include/standard-headers/linux/virtio_tmem.h
