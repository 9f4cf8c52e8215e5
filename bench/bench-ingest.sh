#!/usr/bin/env bash
# Store ingest events/s (store_ingest_batch) beside the floor: plain batched
# prepared INSERTs into the same schema. Issue 5 goal: at least half the floor.
# BENCH_INGEST_N / BENCH_INGEST_BATCH override the sizes.
set -euo pipefail
build=${DE_BUILD_DIR:-build}
"$build/bench/bench-ingest" "${BENCH_INGEST_N:-100000}" "${BENCH_INGEST_BATCH:-1000}"
