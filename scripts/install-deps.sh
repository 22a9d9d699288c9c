#!/usr/bin/env bash
# Install, from Debian 12's packages, what building and testing the host
# library needs.  Runs on every build; apt is only called when something
# is missing, so a warm machine pays one dpkg-query.
set -euo pipefail

pkgs=(
	build-essential
	liblz4-dev
	liburing-dev
	clang			# libFuzzer builds
	libclang-rt-14-dev	# fuzzer and sanitizer runtimes for clang
	gnuplot-nox		# benchmark plots
)

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
