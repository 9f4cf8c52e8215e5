#!/usr/bin/env bash
# `make coverage`: line and branch coverage per directory (gcovr), after the
# unit, fuzz-replay and end-to-end tests ran against the coverage build.
# Reports land in $build/coverage-*.txt; the summary lines go to stdout.
# (Never point gcovr's -o at /dev/null: it replaces the output file, and as
# root that turns /dev/null into a regular file.)
set -euo pipefail
build=${1:-build-cov}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
for d in src/lib src/procmond src/agent src/cli; do
	[ -d "$d" ] || continue
	name=${d//\//-}
	gcovr -r . "$build" --filter "$d/" --exclude '.*\.pb-c\.c' --exclude '.*\.bpf\.c' \
		--print-summary -o "$build/coverage-$name.txt" |
		sed "s|^|$d: |"
done
