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

exec "$(dirname "$0")/ensure-packages.sh" "${pkgs[@]}"
