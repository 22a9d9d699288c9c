#!/usr/bin/env bash
# Build QEMU 10.0 with the virtio-tmem device added, cached outside the
# checkout.  The work tree and build directory are keyed by everything
# that needs a fresh configure: the QEMU version, our patch to QEMU's
# build files, and the configure flags.  The device's own sources are
# synced in on every run, so editing them costs an incremental ninja.
# Prints the path of the qemu-system-x86_64 it built.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

cache=${TMEM_CACHE:-/var/cache/virtio-tmem}
patch=qemu-device/qemu-build.patch
flags=(
	--target-list=x86_64-softmmu --without-default-features
	--enable-tcg --enable-fdt=system --disable-docs --disable-werror
	--disable-install-blobs --python=/usr/bin/python3
)

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
need=()
for p in ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev pkg-config \
	 flex bison python3-venv; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "build-qemu: installing ${need[*]}" >&2
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >&2
fi

src=$(scripts/fetch-qemu.sh)
key=$( { echo "$src"; [ -f "$patch" ] && cat "$patch"; echo "${flags[*]}";
	 cat scripts/build-qemu.sh; } | sha256sum | cut -c1-16)
work=$cache/qemu-build/$key
export PYTHONPATH=$cache/pytools/root/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}
export PATH=$cache/pytools/root/usr/bin:$PATH

if [ ! -f "$work/.configured" ]; then
	echo "build-qemu: new work tree $work" >&2
	rm -rf "$work"
	mkdir -p "$work"
	cp -a "$src" "$work/src"
	[ -f "$patch" ] && patch -d "$work/src" -p1 -s <"$patch"
	# meson checks at configure time that every listed file exists
	make -s lib
	qemu-device/sync-into-qemu.sh "$work/src" "$top"
	mkdir -p "$work/build"
	(cd "$work/build" && ../src/configure "${flags[@]}" >configure.log 2>&1) || {
		tail -n 30 "$work/build/configure.log" >&2
		exit 1
	}
	touch "$work/.configured"
fi
make -s lib
qemu-device/sync-into-qemu.sh "$work/src" "$top"
echo "build-qemu: building in $work/build (progress: $work/build/ninja.log)" >&2
ninja -C "$work/build" qemu-system-x86_64 "$@" >"$work/build/ninja.log" 2>&1 || {
	tail -n 40 "$work/build/ninja.log" >&2
	exit 1
}
ln -sfn "$work" "$cache/qemu-current"
echo "$work/build/qemu-system-x86_64"
