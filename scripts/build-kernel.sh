#!/usr/bin/env bash
# Build the Linux 5.10 guest kernel from Debian 11's linux-source-5.10,
# cached outside the checkout and keyed by the kernel version, the config
# fragments and the variant.  The config is tinyconfig plus
# guest-driver/guest.config (and guest-debug.config for "debug"), and
# every line of the fragments is checked to have survived olddefconfig.
# Prints the kernel build directory (bzImage is arch/x86/boot/bzImage).
#
#   scripts/build-kernel.sh [plain|debug]
set -euo pipefail
cd "$(dirname "$0")/.."

variant=${1:-plain}
KVER=5.10.223-1
KDEB=linux-source-5.10_${KVER}_all.deb
KDEB_SHA256=f733d27d239d65598d96d7a72f71ac50f49f2380192a1b3b4ca2f5ad5144dd63
cache=${TMEM_CACHE:-/var/cache/virtio-tmem}
frags=(guest-driver/guest.config)
[ "$variant" = debug ] && frags+=(guest-driver/guest-debug.config)
case $variant in plain|debug|source) ;; *) echo "usage: $0 [plain|debug|source]" >&2; exit 2;; esac

scripts/ensure-packages.sh bc flex bison libelf-dev libssl-dev cpio xz-utils

# One build of the cache at a time (see scripts/build-qemu.sh).
mkdir -p "$cache/kernel-build"
exec 9>>"$cache/kernel-build/.lock"
flock 9

src=$cache/src/linux-$KVER
if [ ! -f "$src/.unpacked" ]; then
	mkdir -p "$cache/src"
	(cd "$cache/src" && [ -f "$KDEB" ] ||
		"$OLDPWD/scripts/apt-foreign.sh" bullseye apt-get -qq download \
			"linux-source-5.10=$KVER" >&2)
	echo "$KDEB_SHA256  $cache/src/$KDEB" | sha256sum -c --quiet -
	rm -rf "$src"
	mkdir -p "$src"
	echo "build-kernel: unpacking $KDEB" >&2
	dpkg -x "$cache/src/$KDEB" "$src/deb"
	tar -xaf "$src"/deb/usr/src/linux-source-5.10.tar.xz -C "$src"
	rm -rf "$src/deb"
	touch "$src/.unpacked"
fi
# "source": just the unpacked tree, e.g. for its scripts/checkpatch.pl.
if [ "$variant" = source ]; then
	echo "$src/linux-source-5.10"
	exit 0
fi

key=$( { echo "$KVER $variant"; cat "${frags[@]}"; } | sha256sum | cut -c1-16)
out=$cache/kernel-build/$key
mkdir -p "$out"
echo "$variant" >"$out/.variant"
if [ ! -f "$out/.config-ok" ]; then
	echo "build-kernel: configuring $variant kernel in $out" >&2
	make -s -C "$src/linux-source-5.10" O="$out" tinyconfig >&2
	"$src/linux-source-5.10/scripts/kconfig/merge_config.sh" -m \
		-O "$out" "$out/.config" "${frags[@]}" >/dev/null
	make -s -C "$src/linux-source-5.10" O="$out" olddefconfig >&2
	missing=0
	for line in $(grep -h '^CONFIG_' "${frags[@]}"); do
		grep -qx "$line" "$out/.config" || {
			echo "build-kernel: $line did not survive olddefconfig" >&2
			missing=1
		}
	done
	[ $missing -eq 0 ] || exit 1
	touch "$out/.config-ok"
fi
echo "build-kernel: building (log: $out/build.log)" >&2
make -C "$src/linux-source-5.10" O="$out" -j"$(nproc)" bzImage modules \
	>"$out/build.log" 2>&1 || { tail -n 30 "$out/build.log" >&2; exit 1; }
scripts/prune-builds.sh "$cache/kernel-build" "$out" "$variant"
echo "$out"
