#!/usr/bin/env bash
# Fetch QEMU 10.0 from Debian 13's source package, pinned and verified, and
# unpack it with Debian's patches applied (the +ds tarball does not
# configure without them).  Also unpacks the newer meson and pycotap that
# QEMU 10 needs from Debian 13, without installing them.  Prints the source
# directory.  Everything lives under $TMEM_CACHE and is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

QEMU_VERSION=1:10.0.13+ds-0+deb13u1
QEMU_DSC=qemu_10.0.13+ds-0+deb13u1.dsc
QEMU_DSC_SHA256=a426c892e5369058c3423816c8625bc8010bb5a58ece57261f62b64ee4d765ad
PYTOOLS=(meson=1.7.0-1 python3-pycotap=1.3.1-2)

cache=${TMEM_CACHE:-/var/cache/virtio-tmem}
src=$cache/src
tree=$src/qemu-${QEMU_VERSION#1:}
pytools=$cache/pytools

scripts/ensure-packages.sh dpkg-dev xz-utils

mkdir -p "$src" "$pytools"
if [ ! -f "$tree/.unpacked" ]; then
	(cd "$src" && [ -f "$QEMU_DSC" ] ||
		"$OLDPWD/scripts/apt-foreign.sh" trixie apt-get -qq source \
			--download-only "qemu=$QEMU_VERSION" >&2)
	echo "$QEMU_DSC_SHA256  $src/$QEMU_DSC" | sha256sum -c --quiet -
	rm -rf "$tree"
	echo "fetch-qemu: unpacking $QEMU_DSC" >&2
	# dpkg-source checks the tarballs against the .dsc we just verified.
	(cd "$src" && dpkg-source -x "$QEMU_DSC" "$tree" >&2)
	touch "$tree/.unpacked"
fi

if [ ! -f "$pytools/.unpacked" ]; then
	(cd "$pytools" && rm -f ./*.deb &&
		"$OLDPWD/scripts/apt-foreign.sh" trixie apt-get -qq download \
			"${PYTOOLS[@]}" >&2 &&
		for d in ./*.deb; do dpkg -x "$d" root; done)
	touch "$pytools/.unpacked"
fi
echo "$tree"
