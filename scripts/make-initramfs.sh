#!/usr/bin/env bash
# Make a guest initramfs: Debian 12's busybox-static, an /init, and any
# extra files (test programs, the module) given as SRC=DEST pairs.
#
#   scripts/make-initramfs.sh OUT.cpio INIT_SCRIPT [SRC=DEST ...]
#
# The archive is an uncompressed newc cpio, which every kernel reads.
set -euo pipefail

out=$1 init=$2
shift 2

"$(dirname "$0")/ensure-packages.sh" busybox-static

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,mnt}
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
install -m 0755 "$init" "$root/init"
for pair in "$@"; do
	dest=$root/${pair#*=}
	mkdir -p "$(dirname "$dest")"
	cp "${pair%%=*}" "$dest"
done
(cd "$root" && find . | cpio -o -H newc --quiet) >"$out"
