/* The event store: the one owner of SQLite (STYLE.md rule 8). Read-write for
 * the agent, read-only for the CLI. WAL journal mode.
 *
 * Tables (SPEC §5 and the seed's storage chapter; docs/store.md documents them):
 *   process_events    history: one row per event (start/stop/modified/suspicious/
 *                     snapshot-first-seen), every process column plus event details
 *   process_instances one row per process instance (pid, start_time): its latest record
 *   processes         VIEW over process_instances; while rules run, a virtual table of
 *                     the same name serving only the rows under evaluation shadows it
 *   live_processes    the current snapshot (rows removed at stop)
 *   alerts, detection_rules, system_info, scan_metadata
 *   collector_state   per-collector high-water WAL sequence (exactly-once ingest)
 *
 * Every function returns 0 (or a positive count) on success and -errno on
 * failure; SQLite errors map to -EIO (-EBUSY for SQLITE_BUSY, -ENOSPC for
 * SQLITE_FULL, -EACCES for SQLITE_READONLY/PERM, -EINVAL for a bad query). */
#ifndef DE_STORE_H
#define DE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errbuf.h"
#include "process.h"

struct store;
struct json_t;

enum store_mode {
	STORE_RW = 0, /* the agent: creates and migrates the schema */
	STORE_RO,     /* the CLI: never writes */
};

/* Opens (RW: creates and configures: WAL, synchronous=NORMAL, schema) the
 * database file at path; ":memory:" gives a private in-memory store (rule
 * validation's sample). Returns 0 and sets *ret; -ENOENT when a RO file does
 * not exist, the operating system's -errno when the file cannot be opened.
 * One store may be shared by threads: its calls are serialized internally. */
int store_open(const char *path, enum store_mode mode, struct store **ret);
/* Closes; accepts NULL. */
void store_close(struct store *s);
static inline void
store_closep(struct store **s)
{
	if (*s)
		store_close(*s);
}

/* Ingests a batch from one collector in ONE transaction together with that
 * collector's high-water sequence: events whose seq is <= the stored
 * high-water are already there and are skipped (exactly once across replays).
 * Events with seq 0 are always inserted (not from a WAL). Updates
 * process_events, process_instances and live_processes. On success returns
 * the number of events inserted and, when ret_new is not NULL, sets
 * ret_new[i] = true for each event that was new (the rest were replays). */
int store_ingest_batch(struct store *s, const char *collector_id, const struct process_event *evs,
                       size_t n, bool *ret_new);

/* The highest sequence stored for a collector (0 when none). */
int store_high_water(struct store *s, const char *collector_id, uint64_t *ret);

/* One alert row, as alert.c builds it (SPEC §6). json is the full alert
 * object (new reference not taken: the store copies what it needs). */
struct store_alert {
	const char *alert_id;
	uint64_t timestamp; /* epoch ms */
	const char *rule_id;
	const char *severity; /* "info".."critical" */
	const char *category;
	const char *dedup_key;
	int32_t pid;
	uint64_t process_start_time;
	uint32_t repeat_count;
	const char *json; /* the SPEC §6 object, serialized */
};
/* Inserts an alert, or when alert_id exists updates repeat_count. */
int store_alert_put(struct store *s, const struct store_alert *a);

/* Deletes rows older than retention_days in small steps (at most max_rows per
 * call) so it never stalls ingest. Returns the number of rows deleted. */
int store_retention_step(struct store *s, uint32_t retention_days, uint32_t max_rows);

/* Row callback of store_query: ncol column names and values (values as
 * text, NULL for SQL NULL; types[i] is 'i' integer, 'r' real, 't' text,
 * 'b' blob, 'n' null). Return non-zero to stop early. */
typedef int (*store_row_cb)(void *ctx, int ncol, const char *const *names,
                            const char *const *values, const char *types);

/* Runs a read-only SQL statement under the sandbox (sqlguard: same rules as
 * detection rules, time limit timeout_ms), calling cb for every row.
 * Returns the number of rows, or -EINVAL with the reason in err. */
int store_query(struct store *s, const char *sql, uint32_t timeout_ms, store_row_cb cb, void *ctx,
                struct errbuf *err);

/* Row counts per table, file size, oldest/newest event time: a JSON object
 * (new reference) for `daemoneye-cli stats`. NULL on error. */
struct json_t *store_stats_json(struct store *s);

/* The database file path. */
const char *store_path(const struct store *s);

/* ---- Rule evaluation (detect.c, rule.c) ----------------------------------
 * An evaluation context is a sandboxed connection (sqlguard) to the store's
 * database with a virtual table temp.`processes` that shadows the view and
 * serves only the rows under evaluation, read straight from the caller's
 * events (store-eval.c). For a file database it is a second connection
 * (main read-only, so a rule can never write); for ":memory:" (rule
 * validation's sample database) it shares the store's connection. */
struct store_eval;
struct store_stmt;

/* Opens a context on s (s must outlive it). Returns 0 and sets *ret, or
 * -errno with the reason in err. */
int store_eval_open(struct store *s, struct store_eval **ret, struct errbuf *err);
void store_eval_close(struct store_eval *e);
static inline void
store_eval_closep(struct store_eval **e)
{
	if (*e)
		store_eval_close(*e);
}

/* Compiles a rule (SQLGUARD_RULE: must select pid, only the rule tables).
 * On success *ret owns the statement (store_stmt_free). -EINVAL with the
 * reason in err otherwise. */
int store_eval_prepare(struct store_eval *e, const char *sql, struct store_stmt **ret,
                       struct errbuf *err);
void store_stmt_free(struct store_stmt *st);

/* Replaces the rows of `processes` with copies of evs[idx[0..n-1]] (idx
 * NULL: all n events; the caller may free them at once). Returns 0 or -errno. */
int store_eval_set_rows(struct store_eval *e, const struct process_event *evs, const size_t *idx,
                        size_t n);

/* Like store_eval_set_rows(), but copies nothing (evs[idx] must stay valid
 * and unchanged until store_eval_unstage()) and opens a read transaction that
 * lasts until then: the rule runs in between share one read snapshot of the
 * store instead of starting one each. Returns 0 or -errno (nothing staged
 * then). */
int store_eval_stage(struct store_eval *e, const struct process_event *evs, const size_t *idx,
                     size_t n);
/* Empties `processes` and ends the transaction of store_eval_stage(). */
void store_eval_unstage(struct store_eval *e);

/* Runs a compiled rule under its time limit (0: default 100 ms) and memory
 * budget, calling cb per row. Returns the number of rows; -ETIMEDOUT,
 * -E2BIG (memory or value size) or -EINVAL (runtime error) with the reason
 * in err. The rows already delivered to cb stand. */
int store_eval_run(struct store_eval *e, struct store_stmt *st, uint32_t timeout_ms,
                   store_row_cb cb, void *ctx, struct errbuf *err);

/* ---- Small tables ---------------------------------------------------------- */

/* One row of detection_rules (what the agent loaded; `rules list`). */
struct store_rule {
	const char *id, *name, *description, *severity, *category, *sql, *sha256, *path;
	bool enabled;
};
/* Replaces the detection_rules table with rules[0..n-1] in one transaction. */
int store_rules_replace(struct store *s, const struct store_rule *rules, size_t n);

/* Sets one system_info key (hostname, os, kernel, boot_time, ...). */
int store_system_info_put(struct store *s, const char *key, const char *value);

/* Records one collector scan in scan_metadata. */
int store_scan_put(struct store *s, const char *collector_id, uint64_t time_ms,
                   uint32_t process_count, uint32_t duration_ms);

/* Severity name to rank (info 0 .. critical 4), -1 when unknown. */
int store_severity_rank(const char *severity);

#endif
