#!/usr/bin/env bash
# 100 rules over a batch of 10,000 new processes through detect_on_batch
# (sandbox, the rows' virtual table, match building) beside the floor: the
# same SQL on a bare SQLite connection over a TEMP table. Issue 5 goal: under
# 100 ms.
# BENCH_RULES_ROWS / BENCH_RULES_N / BENCH_RULES_ROUNDS override the sizes.
set -euo pipefail
build=${DE_BUILD_DIR:-build}
"$build/bench/bench-rules" "${BENCH_RULES_ROWS:-10000}" "${BENCH_RULES_N:-100}" \
	"${BENCH_RULES_ROUNDS:-5}" 2> >(grep -v ' info: ' >&2)
# The bundled pack alone over the same batch, with its slowest rules.
"$build/bench/bench-rules" "${BENCH_RULES_ROWS:-10000}" 1 "${BENCH_RULES_ROUNDS:-5}" rules \
	2> >(grep -v ' info: ' >&2)
