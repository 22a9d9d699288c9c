#!/usr/bin/env bash
# Download a distribution kernel listed in scripts/stock-kernels and its
# headers through the private apt setup, unpack them with dpkg -x under
# $TMEM_CACHE/stock (never onto this machine), and print the root they
# were unpacked into:
#
#   ROOT/boot/vmlinuz-KREL           the kernel
#   ROOT/lib/modules/KREL/           its modules
#   ROOT/usr/src/linux-headers-KREL  its headers, ready for M= builds
#
#   scripts/fetch-stock-kernel.sh NAME
#
# apt-get download checks each package against the suite's signed index.
set -euo pipefail
cd "$(dirname "$0")/.."

name=${1:?usage: $0 NAME (see scripts/stock-kernels)}
cache=${TMEM_CACHE:-/var/cache/virtio-tmem}
line=$(awk -v n="$name" '$1 == n' scripts/stock-kernels)
if [ -z "$line" ]; then
	echo "fetch-stock-kernel: no kernel $name in scripts/stock-kernels" >&2
	exit 2
fi
read -r _ suite version pkgs <<<"$line"
key=$(echo "$line" | sha256sum | cut -c1-16)
root=$cache/stock/$name-$key/root
if [ -f "$root/.unpacked" ]; then
	echo "$root"
	exit 0
fi

mkdir -p "$cache/stock"
exec 9>>"$cache/stock/.lock"
flock 9
if [ ! -f "$root/.unpacked" ]; then
	debs=$cache/stock/$name-$key/debs
	rm -rf "$root" "$debs"
	mkdir -p "$root" "$debs"
	echo "fetch-stock-kernel: downloading $name ($suite $version)" >&2
	(cd "$debs" && "$OLDPWD/scripts/apt-foreign.sh" "$suite" apt-get -qq \
		download $(for p in $pkgs; do echo "$p=$version"; done) >&2)
	for deb in "$debs"/*.deb; do
		dpkg -x "$deb" "$root"
	done
	# Debian's headers name their common half by its installed path.
	for mk in "$root"/usr/src/linux-headers-*/Makefile; do
		[ -f "$mk" ] || continue
		sed -i "s|^include /usr/src/|include $root/usr/src/|" "$mk"
	done
	rm -rf "$debs"
	touch "$root/.unpacked"
fi
echo "$root"
