#!/usr/bin/env bash
# Build QEMU 10.0 with the virtio-tmem device added, cached outside the
# checkout.  The work tree and build directory are keyed by what needs a
# fresh configure: the QEMU version and the configure flags.  Our patch
# to QEMU is swapped in place when it changes, and the device's sources
# are synced in on every run, so either costs an incremental ninja.
# Prints the path of the qemu-system-x86_64 it built.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

cache=${TMEM_CACHE:-/var/cache/virtio-tmem}
patch=qemu-device/qemu-build.patch
# TMEM_QEMU_VARIANT=fuzz builds QEMU's libFuzzer binary with clang, ASan
# and UBSan instead, for fuzzing the device (tests/run-qemu-fuzz.sh).
variant=${TMEM_QEMU_VARIANT:-system}
flags=(
	--target-list=x86_64-softmmu --without-default-features
	--enable-tcg --enable-fdt=system --disable-docs --disable-werror
	--disable-install-blobs --python=/usr/bin/python3
)
target=qemu-system-x86_64
case $variant in
system) ;;
fuzz)	flags+=(--cc=clang --cxx=clang++ --enable-fuzzing --enable-asan --enable-ubsan)
	target=qemu-fuzz-x86_64;;
*)	echo "build-qemu: unknown TMEM_QEMU_VARIANT $variant" >&2; exit 2;;
esac

scripts/ensure-packages.sh ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev pkg-config \
	 flex bison python3-venv seabios qemu-system-data ipxe-qemu qemu-utils

# Two builds syncing different sources into one tree at once leave
# objects compiled against different headers and ninja's dependency log
# torn (a CI run once linked a QEMU whose PCI proxy had the device's old
# size); builds of the cache wait for each other.
mkdir -p "$cache/qemu-build"
exec 9>>"$cache/qemu-build/.lock"
flock 9

src=$(scripts/fetch-qemu.sh)
key=$( { echo "$src"; echo "${flags[*]}"; } | sha256sum | cut -c1-16)
work=$cache/qemu-build/$key
export PYTHONPATH=$cache/pytools/root/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}
export PATH=$cache/pytools/root/usr/bin:$PATH

if [ ! -f "$work/.configured" ]; then
	echo "build-qemu: new work tree $work" >&2
	rm -rf "$work"
	mkdir -p "$work"
	cp -a "$src" "$work/src"
	patch -d "$work/src" -p1 -s <"$patch"
	cp "$patch" "$work/applied.patch"
	# meson checks at configure time that every listed file exists
	make -s lib
	qemu-device/sync-into-qemu.sh "$work/src" "$top"
	mkdir -p "$work/build"
	(cd "$work/build" && ../src/configure "${flags[@]}" >configure.log 2>&1) || {
		tail -n 30 "$work/build/configure.log" >&2
		exit 1
	}
	echo "$variant" >"$work/.variant"
	touch "$work/.configured"
fi
if ! cmp -s "$patch" "$work/applied.patch"; then
	echo "build-qemu: swapping in the new $patch" >&2
	patch -d "$work/src" -p1 -R -s <"$work/applied.patch"
	patch -d "$work/src" -p1 -s <"$patch"
	cp "$patch" "$work/applied.patch"
fi
make -s lib
qemu-device/sync-into-qemu.sh "$work/src" "$top"
echo "build-qemu: building in $work/build (progress: $work/build/ninja.log)" >&2
# Our files, compiled again by the next build: a build that stops (or
# warns) must not leave objects whose warnings no later log will show.
touch_ours() {
	touch -c "$work"/src/hw/virtio/virtio-tmem*.c \
	      "$work"/src/backends/tmem-store.c "$work"/src/block/tmem.c \
	      "$work"/src/tests/qtest/virtio-tmem-*.c \
	      "$work"/src/tests/qtest/libqos/virtio-tmem.c \
	      "$work"/src/tests/qtest/fuzz/virtio_tmem_fuzz.c
}
ninja -C "$work/build" "$target" "$@" >"$work/build/ninja.log" 2>&1 || {
	tail -n 40 "$work/build/ninja.log" >&2
	touch_ours
	exit 1
}
# QEMU builds with --disable-werror; our own files get no such slack (an
# implicit declaration once truncated a pointer here).
if grep -E -A3 'tmem[^ :]*\.[ch]:[0-9]+:[0-9]+: warning' \
	"$work/build/ninja.log" >&2; then
	echo "build-qemu: warnings in virtio-tmem code (above)" >&2
	# make the next build compile them again, and fail again
	touch_ours
	exit 1
fi
# The +ds source ships no firmware; a QEMU run from its build tree finds
# its data dir in qemu-bundle/, so link Debian 12's seabios and
# qemu-system-data (and ipxe-qemu's NIC option ROMs) there.
bundle=$work/build/qemu-bundle/usr/local/share/qemu
mkdir -p "$bundle"
for f in /usr/share/seabios/* /usr/share/qemu/* /usr/lib/ipxe/qemu/*; do
	[ -e "$bundle/${f##*/}" ] || ln -s "$f" "$bundle/"
done
if [ "$variant" = system ]; then
	ln -sfn "$work" "$cache/qemu-current"
fi
scripts/prune-builds.sh "$cache/qemu-build" "$work" "$variant"
echo "$work/build/$target"
