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

# The Debian archive this machine's own apt sources use (deb822 .sources
# files or one-line .list files), so that a mirror or proxy set up for
# the machine serves the other suites too; security and update suites
# live elsewhere or in the same archive, so only a plain release suite's
# URI counts.
machine_uri() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk '
			/^[ \t]*$/ { if (uri && base) exit; uri = ""; base = 0; next }
			/^URIs:/ { uri = $2 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i !~ /-/) base = 1 }
			/^Enabled:[ \t]*no/ { uri = "" }
			END { if (uri && base) print uri }
		' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		sed -E -n 's/^deb[ \t]+(\[[^]]*\][ \t]+)?([^ \t]+)[ \t]+[a-z]+[ \t].*/\2/p' "$f"
	done
}
uri=$(machine_uri | grep -v -e '-security' -e '^cdrom:' | head -n 1)
if [ -z "$uri" ]; then
	echo "apt-foreign: no Debian archive URI in this machine's apt sources" >&2
	exit 1
fi

mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
want=$(for t in deb deb-src; do
	echo "$t [signed-by=$key] $uri $suite main"
done)
if [ "$(cat "$dir/sources.list" 2>/dev/null)" != "$want" ]; then
	echo "$want" >"$dir/sources.list"
	rm -f "$dir/lists/.updated"
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
