#!/usr/bin/env bash
# `make coverage`: line and branch coverage per directory (gcovr), after the
# unit, fuzz-replay and end-to-end tests ran against the coverage build.
set -euo pipefail
build=${1:-build-cov}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
gcovr -r . "$build" --filter 'src/' --exclude '.*\.pb-c\.c' --exclude '.*\.bpf\.c' \
	--txt-metric branch --sort-percentage >/dev/null 2>&1 || true
for d in src/lib src/procmond src/agent src/cli; do
	[ -d "$d" ] || continue
	gcovr -r . "$build" --filter "$d/" --exclude '.*\.pb-c\.c' --print-summary -o /dev/null |
		sed "s|^|$d: |"
done
