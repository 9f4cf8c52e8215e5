#!/usr/bin/env bash
# Store ingest events/s (store_ingest_batch) beside the floor: plain batched
# prepared INSERTs into the same schema. Issue 5 goal: at least half the floor.
# Twice: mixed events in batches of 1,000, and an exec burst's starts and
# stops in batches of 16 (what procmond sends at 1,000 exec/s).
# BENCH_INGEST_N / BENCH_INGEST_BATCH override the first run's sizes.
set -euo pipefail
build=${DE_BUILD_DIR:-build}
"$build/bench/bench-ingest" "${BENCH_INGEST_N:-100000}" "${BENCH_INGEST_BATCH:-1000}"
"$build/bench/bench-ingest" 32000 16 execs
