#!/usr/bin/env bash
# `make fuzz`: a short libFuzzer run of every target, seeded from its corpus.
# New interesting inputs land in build-fuzz/corpus-new/<name>; crashes in fuzz/crashes/.
set -uo pipefail
build=${1:-build-fuzz}
secs=${FUZZ_SECONDS:-30}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
rc=0
mkdir -p fuzz/crashes
for exe in "$build"/fuzz/fuzz-*; do
	[ -f "$exe" ] && [ -x "$exe" ] || continue
	name=${exe##*/fuzz-}
	mkdir -p "$build/corpus-new/$name"
	echo "== fuzz $name (${secs}s)"
	"$exe" -max_total_time="$secs" -artifact_prefix=fuzz/crashes/"$name"- \
		"$build/corpus-new/$name" "fuzz/corpus/$name" 2>&1 | tail -3 || rc=1
done
exit $rc
