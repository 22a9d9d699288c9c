#!/usr/bin/env bash
# Run apt-get or apt-cache against another Debian suite (bullseye, trixie)
# through a private configuration, so that nothing from that suite is ever
# installed on this machine: we only download and unpack.
#
#   scripts/apt-foreign.sh SUITE apt-get download PKG
#   scripts/apt-foreign.sh SUITE apt-get source --download-only PKG=VER
#
# Package lists live under $TMEM_CACHE/apt/SUITE and are refreshed when
# older than a day.
set -euo pipefail

suite=$1; shift
cache=${TMEM_CACHE:-/var/cache/virtio-tmem}
dir=$cache/apt/$suite
key=/usr/share/keyrings/debian-archive-keyring.gpg

mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
if [ ! -f "$dir/sources.list" ]; then
	for uri in http://deb.debian.org/debian; do
		for t in deb deb-src; do
			echo "$t [signed-by=$key] $uri $suite main"
		done
	done >"$dir/sources.list"
fi
opts=(
	-o "Dir::Etc::SourceList=$dir/sources.list"
	-o "Dir::Etc::SourceParts=/dev/null"
	-o "Dir::State::Lists=$dir/lists"
	-o "Dir::Cache=$dir/cache"
	-o "APT::Sandbox::User=root"
)
stamp=$dir/lists/.updated
if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
	echo "apt-foreign: updating $suite package lists" >&2
	apt-get "${opts[@]}" -qq update
	touch "$stamp"
fi
cmd=$1; shift
exec "$cmd" "${opts[@]}" "$@"
