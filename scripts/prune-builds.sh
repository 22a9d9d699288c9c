#!/usr/bin/env bash
# Remove the cached build trees in DIR of VARIANT other than KEEP: a tree
# whose key changed is never used again, and each is up to a gigabyte.
#
#   scripts/prune-builds.sh DIR KEEP VARIANT
set -euo pipefail

dir=$1 keep=$2 variant=$3
for old in "$dir"/*; do
	if [ "$old" != "$keep" ] &&
	   [ "$(cat "$old/.variant" 2>/dev/null)" = "$variant" ]; then
		rm -rf "$old"
	fi
done
