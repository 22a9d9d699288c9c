#!/usr/bin/env bash
# Build the guest module virtio_tmem.ko against the guest kernel that
# scripts/build-kernel.sh builds (same variant), and print its path.
#
#   scripts/build-guest-module.sh [plain|debug]
#
# Linux 5.10 builds external modules in their source directory, so the
# sources are copied to build/guest-driver-VARIANT first.  Any compiler
# warning fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."

variant=${1:-plain}
kdir=$(scripts/build-kernel.sh "$variant")
out=$PWD/${BUILD:-build}/guest-driver-$variant
mkdir -p "$out"
for f in guest-driver/Kbuild guest-driver/*.[ch]; do
	cmp -s "$f" "$out/${f##*/}" || cp "$f" "$out/"
done
log=$out/build.log
if ! make -C "$kdir" M="$out" TMEM_INCLUDE="$PWD/include" W=1 \
	-j"$(nproc)" modules >"$log" 2>&1; then
	cat "$log" >&2
	exit 1
fi
if grep -q 'warning:' "$log"; then
	grep -B2 -A4 'warning:' "$log" >&2
	# Touch the sources so the next run rebuilds and warns again.
	touch "$out"/*.c
	exit 1
fi
echo "$out/virtio_tmem.ko"
