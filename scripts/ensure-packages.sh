#!/usr/bin/env bash
# Install those of the named Debian 12 packages that are missing.  One
# dpkg-query when all are there; apt (as root, or through sudo) when not.
#
#   scripts/ensure-packages.sh PKG...
set -euo pipefail

missing=()
for p in "$@"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "ensure-packages: installing ${missing[*]}" >&2
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
"${sudo[@]}" apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
	--no-install-recommends "${missing[@]}" >&2
