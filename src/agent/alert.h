/* Alerts (SPEC §6): builds the alert object for a rule match, deduplicates
 * per (rule, process instance) within alerting.dedup_window_s, rate-limits
 * with a token bucket of alerting.max_alerts_per_minute, stores every raised
 * alert (store_alert_put) and fans it out to the configured sinks.
 *
 * Every sink has its own worker thread and bounded in-memory queue, so a slow
 * or dead sink never blocks alerts_submit() or the other sinks. A failed
 * delivery is retried with exponential backoff; while a sink is down its
 * alerts wait, in order, in a bounded on-disk spool (<spool_dir>/<sink-name>/)
 * and are replayed when it returns (also after a restart). Nothing is dropped
 * silently: duplicates, rate-limited alerts and spool overflows are counted
 * and shown by alerts_health_json().
 *
 * Threads: alerts_submit() may be called from one engine thread at a time;
 * alerts_health_json() from any thread. The observer runs on the submitting
 * thread, synchronously, once per raised alert (never for a repeat). */
#ifndef DE_AGENT_ALERT_H
#define DE_AGENT_ALERT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "errbuf.h"
#include "process.h"

struct alerts;
struct store;

/* One row a rule returned, attached to its process. Everything is borrowed
 * for the duration of alerts_submit(); nothing is kept. */
struct alert_match {
	const char *rule_id;
	const char *rule_name;
	const char *severity; /* "info" | "low" | "medium" | "high" | "critical" */
	const char *category;
	const char *description;
	const struct process_record *proc; /* must not be NULL */
	json_t *match;                     /* object: every column the rule selected; may be NULL */
};

/* What alerts_submit() did with a match (all >= 0). */
enum alert_outcome {
	ALERT_RAISED = 0,    /* a new alert: stored, observed, queued to every sink */
	ALERT_DUPLICATE = 1, /* same rule and process instance within the window: repeat_count++ */
	ALERT_RATE_LIMITED = 2 /* over max_alerts_per_minute: counted as dropped, not stored */
};

/* Observer of raised alerts (main wires it to the audit ledger). alert_json is
 * the serialized SPEC §6 object; both strings are valid during the call only. */
typedef void (*alerts_observer_fn)(void *ctx, const char *alert_id, const char *alert_json);

/* Clock used for the dedup window and the rate limit (milliseconds, any
 * monotonic origin). Tests inject one; the default is time_mono_ms(). */
typedef uint64_t (*alerts_clock_fn)(void *ctx);

/* Creates the alert manager from cfg->alerting (copied: cfg may be freed
 * afterwards). st may be NULL (alerts are then not persisted); spool_dir may
 * be NULL (no on-disk spool: a down sink keeps alerts in its memory queue
 * only). Opens every sink and starts its worker; spooled alerts of a previous
 * run are replayed first. On success sets *ret (free with alerts_free).
 * Returns -EINVAL with the sink and reason in err when a sink cannot be
 * configured, -ENOMEM, or -errno. */
int alerts_new(struct alerts **ret, const struct de_config *cfg, struct store *st,
               const char *spool_dir, struct errbuf *err);

/* Submits one match. Returns an enum alert_outcome (>= 0), -EINVAL for a match
 * without rule_id or proc, -ENOMEM. Never blocks on a sink. A store failure
 * is logged and counted (store_errors) and the alert is still delivered. */
int alerts_submit(struct alerts *a, const struct alert_match *m);

/* Sets (or, with fn NULL, clears) the observer. Call before submitting. */
void alerts_set_observer(struct alerts *a, alerts_observer_fn fn, void *ctx);

/* Replaces the clock (tests). Call before submitting. */
void alerts_set_clock(struct alerts *a, alerts_clock_fn fn, void *ctx);

/* Waits up to timeout_ms until every sink's memory queue is empty and, when
 * wait_spool is true, its spool is drained too. Returns 0, or -ETIMEDOUT. */
int alerts_flush(struct alerts *a, uint32_t timeout_ms, bool wait_spool);

/* Counters (new reference; NULL on OOM):
 * {"raised","duplicates","rate_limited","store_errors","dedup_entries",
 *  "dedup_untracked","sinks":[{"name","type","target","state","delivered",
 *  "failed","retried","spooled","queue_depth","spool_depth","spool_bytes",
 *  "dropped","dropped_queue_full","dropped_spool_full","rejected",
 *  "spool_corrupt","last_error"}]} */
json_t *alerts_health_json(struct alerts *a);

/* Stops the workers: each gets up to ALERTS_STOP_TIMEOUT_MS to deliver what
 * is queued; what is left goes to its spool (replayed next start). Accepts NULL. */
void alerts_free(struct alerts *a);
#define ALERTS_STOP_TIMEOUT_MS 2000

static inline void
alerts_freep(struct alerts **a)
{
	alerts_free(*a);
}

/* Builds the SPEC §6 alert object (new reference, NULL on OOM) for a match;
 * exposed for tests and for `daemoneye-cli rules test`. */
json_t *alert_build_json(const struct alert_match *m, const char *alert_id, uint64_t timestamp_ms,
                         const char *host);

/* Formats "rule_id:pid:start_time" (the process instance) into buf.
 * Returns 0 or -ENOSPC. */
int alert_dedup_key(const struct alert_match *m, char *buf, size_t n);

#endif
