#!/usr/bin/env bash
# Build the guest module virtio_tmem.ko and print its path: against the
# guest kernel that scripts/build-kernel.sh builds (same variant), or,
# with "stock NAME", against the headers package of a distribution
# kernel listed in scripts/stock-kernels, the way a user builds it in
# such a guest (make -C .../build M=...).
#
#   scripts/build-guest-module.sh [plain|debug]
#   scripts/build-guest-module.sh stock NAME
#
# Linux 5.10 builds external modules in their source directory, so the
# sources are copied to build/guest-driver-VARIANT first.  Any compiler
# warning fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."

variant=${1:-plain}
if [ "$variant" = stock ]; then
	name=${2:?usage: $0 stock NAME}
	root=$(scripts/fetch-stock-kernel.sh "$name")
	krel=$(basename "$(echo "$root"/boot/vmlinuz-*)")
	kdir=$root/usr/src/linux-headers-${krel#vmlinuz-}
	[ -f "$kdir/Makefile" ] || {
		echo "build-guest-module: no headers for $name in $root" >&2
		exit 1
	}
	variant=stock-$name
	# Debian 11 built it with gcc-10, which its headers ask for by
	# name; this machine's gcc builds modules it loads (as in the guest
	# itself, where gcc is gcc-10).
	cc=(CC=gcc)
else
	kdir=$(scripts/build-kernel.sh "$variant")
	cc=()
fi
out=$PWD/${BUILD:-build}/guest-driver-$variant
mkdir -p "$out"
for f in guest-driver/Kbuild guest-driver/*.[ch]; do
	cmp -s "$f" "$out/${f##*/}" || cp "$f" "$out/"
done
log=$out/build.log
if ! make -C "$kdir" M="$out" TMEM_INCLUDE="$PWD/include" W=1 "${cc[@]}" \
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
