/* Detection: runs the SQL rules over each ingested batch (SPEC §5).
 *
 * A process is evaluated when it starts (or is first seen in a snapshot) and
 * again when its record changes (modified, suspicious); stops and replays
 * are not. Per batch, the rows under evaluation (the latest record of each
 * process instance in the batch) are served, straight from evs, by the
 * virtual table `processes` that shadows the store's view (store-eval.c),
 * and every enabled rule, compiled once per rule set, runs over it under its
 * time limit. Each returned row becomes one alert_match
 * for alerts_submit(). A rule that fails or times out is counted and
 * reported in detect_health_json(); after DETECT_QUARANTINE_AFTER failures
 * in a row it is set aside until the next load; the other rules keep running.
 *
 * Threads: detect_on_batch() and detect_load_rules() from the engine thread;
 * detect_health_json() from any thread. */
#ifndef DE_AGENT_DETECT_H
#define DE_AGENT_DETECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "errbuf.h"
#include "process.h"
#include "rule.h"

struct detect;
struct store;
struct alerts;

/* A run that returns more than ROWS_PER_PROCESS x rows-under-evaluation +
 * ROWS_EXTRA rows is stopped and counted as an error: rows are alerts. */
#define DETECT_ROWS_PER_PROCESS 10
#define DETECT_ROWS_EXTRA       1000
#define DETECT_SLOWEST          5          /* rules listed under "slowest" in the health */
#define DETECT_QUARANTINE_AFTER 5          /* consecutive failures */
#define DETECT_SEEN_MAX         (1u << 20) /* process instances remembered */

/* Creates the engine on st (an open RW store; it gets a second, sandboxed,
 * read-only connection). al may be NULL: matches are then only counted.
 * cfg->detection.rule_timeout_ms is copied. No rules until
 * detect_load_rules(). Returns 0 and sets *ret, or -errno with err. */
int detect_new(struct detect **ret, struct store *st, const struct de_config *cfg,
               struct alerts *al, struct errbuf *err);

/* Loads and validates every rule of dirs and swaps the set in atomically.
 * Rejected rule files are logged (warn) with their reason, skipped, and
 * counted; the good ones run. Returns the number rejected (>= 0). On error
 * (a directory cannot be read, memory) the old set stays and -errno is
 * returned with the reason in err. */
int detect_load_rules(struct detect *d, const char *const *dirs, size_t n, struct errbuf *err);

/* Observer of rule-set loads (main ledgers them): called after every
 * successful load with the new set (each rule has its file's SHA-256) and
 * the number of rejected files. The rules are valid during the call only. */
typedef void (*detect_rules_observer_fn)(void *ctx, const struct rule *const *rules, size_t n,
                                         unsigned rejected);
void detect_set_rules_observer(struct detect *d, detect_rules_observer_fn fn, void *ctx);

/* Evaluates the batch just ingested. is_new[i] is store_ingest_batch()'s
 * ret_new (NULL: all new). Returns the number of matches submitted (>= 0);
 * rule failures are not errors (they are counted); -errno only when the
 * rows cannot be staged (the read transaction cannot start). evs must stay
 * unchanged until it returns. */
int detect_on_batch(struct detect *d, const struct process_event *evs, const bool *is_new,
                    size_t n);

/* {"rules_loaded","rules_rejected","last_load_ms","batches","rows_evaluated",
 *  "matches","timeout_ms","rules":[{"id","severity","enabled","evaluations","matches","errors",
 *  "timeouts","total_us","max_us","quarantined","last_error"}...],
 *  "slowest":[{"id","total_us","mean_us","max_us"}...] (at most 5, slowest first)}
 * A new reference, NULL on OOM. */
json_t *detect_health_json(struct detect *d);

/* Frees the engine; accepts NULL. */
void detect_free(struct detect *d);
static inline void
detect_freep(struct detect **d)
{
	if (*d)
		detect_free(*d);
}

#endif
