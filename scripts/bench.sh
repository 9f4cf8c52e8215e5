#!/usr/bin/env bash
# `make bench`: every benchmark under bench/ prints our figure beside a peer's
# or the floor's, measured in the same run, as a ratio.
set -uo pipefail
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
rc=0
for b in bench/bench-*.sh bench/bench-*.py; do
	[ -e "$b" ] || continue
	echo "== $b"
	case "$b" in
	*.py) DE_BUILD_DIR="$top/$build" /usr/bin/python3 "$b" || rc=1 ;;
	*.sh) DE_BUILD_DIR="$top/$build" bash "$b" || rc=1 ;;
	esac
done
exit $rc
