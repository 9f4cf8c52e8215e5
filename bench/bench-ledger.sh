#!/usr/bin/env bash
# The audit ledger: appends/s with checkpoints on (batched and fsync-per-append)
# beside their floors, and `daemoneye-cli ledger verify` on a 1,000,000-entry
# ledger beside one SHA-256 pass over the same file (sha256sum).
# BENCH_LEDGER_N overrides the entry count.
set -euo pipefail
build=${DE_BUILD_DIR:-build}
n=${BENCH_LEDGER_N:-1000000}
tmp=$(mktemp -d /tmp/bench-ledger.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

"$build/bench/bench-ledger" "$tmp" "$n"

# The operator's view: the CLI end to end (process start, reading, every hash,
# every signature) on the ledger bench-ledger wrote.
mkdir -p "$tmp/dd" && mv "$tmp/big" "$tmp/dd/ledger"
t0=$(date +%s.%N)
"$build/src/cli/daemoneye-cli" --data-dir "$tmp/dd" --format json ledger verify >"$tmp/out.json"
t1=$(date +%s.%N)
sha256sum "$tmp/dd/ledger/entries.log" >/dev/null
t2=$(date +%s.%N)
size=$(stat -c %s "$tmp/dd/ledger/entries.log")
awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$n" -v sz="$size" 'BEGIN {
	v = b - a; f = c - b;
	printf "cli-verify      %d entries (%.0f MB): daemoneye-cli ledger verify %.2f s; floor (sha256sum of entries.log) %.2f s; ratio %.1fx\n", n, sz / 1e6, v, f, v / f }'
grep -q '"ok": true' "$tmp/out.json"
