/* Ingest: one collector batch into the store, exactly once, then detection
 * (docs/pipeline.md "Exactly once").
 *
 * Each batch is converted from protobuf and handed to store_ingest_batch(),
 * which writes it in ONE transaction together with the collector's high-water
 * sequence; events at or below the stored high-water are replays and are
 * skipped. Only then is the batch acknowledged (the caller sends the Ack), so
 * a crash anywhere leaves either the whole batch and its high-water or
 * neither. New events then go to detection (detect_on_batch). */
#ifndef DE_AGENT_INGEST_H
#define DE_AGENT_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc.h"
#include "registry.h"

struct json_t;
struct store;
struct detect;
struct ingest;

/* Called when a batch starts above high-water + 1: sequences in between were
 * lost before they reached the agent (a damaged WAL). */
typedef void (*ingest_gap_fn)(void *ctx, const struct collector *c, uint64_t from, uint64_t to);

/* st and det are borrowed (det may be NULL: no detection). Returns 0 and
 * sets *ret, or -ENOMEM. */
int ingest_new(struct store *st, struct detect *det, struct ingest **ret);
void ingest_free(struct ingest *ing);
void ingest_set_detect(struct ingest *ing, struct detect *det);
void ingest_set_gap_observer(struct ingest *ing, ingest_gap_fn fn, void *ctx);

/* Stores one batch for collector c and runs detection on its new events.
 * On success sets *ret_high_water (the sequence to acknowledge) and updates
 * c's counters. Returns the number of new events, -EBADMSG for an event that
 * does not convert, or the store's -errno (nothing stored then). */
int ingest_batch(struct ingest *ing, struct collector *c, const Daemoneye__ProcessEventBatch *b,
                 uint64_t *ret_high_water);

/* {"batches","events","new","replayed","errors","gaps","last_batch_ms"}. */
struct json_t *ingest_json(const struct ingest *ing);

#endif
