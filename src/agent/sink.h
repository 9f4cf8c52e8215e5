/* Alert sinks (SPEC §4): one row of ops per sink type (STYLE.md rule 10).
 *
 * alert.c owns the machinery around a sink (its worker thread, queue, spool,
 * retries and counters); a sink only knows how to deliver one alert, given as
 * the serialized SPEC §6 JSON object. deliver() runs on the sink's own worker
 * thread and nowhere else, so a sink's state needs no lock. Only the sink
 * files include curl.h (STYLE.md rule 8). */
#ifndef DE_AGENT_SINK_H
#define DE_AGENT_SINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "errbuf.h"

/* deliver() result meaning "the receiver refused this alert for good" (a
 * webhook answering 400, an alert too large for the transport): it is counted
 * as rejected and not retried. Any other negative value is retried. */
#define SINK_REJECTED (-EBADMSG)

struct sink_ops {
	enum sink_type type;
	/* Checks sc and creates the sink's state in *ret. Runs before the worker
	 * starts; must not block on the network (connect lazily in deliver).
	 * Returns -EINVAL with the reason in err for a bad configuration. */
	int (*open)(const struct sink_config *sc, void **ret, struct errbuf *err);
	/* Delivers one alert. Returns 0 once the receiver has it, SINK_REJECTED,
	 * or another -errno (retried later) with the reason in err. */
	int (*deliver)(void *state, const char *json, size_t len, struct errbuf *err);
	/* Frees the state; accepts NULL. */
	void (*close)(void *state);
	/* Gives the sink a flag that becomes true when the agent is stopping and
	 * the grace period is over: a delivery that waits (on the network, on a
	 * full pipe) checks it at least every ~100 ms (libcurl: about once a
	 * second) and gives up with -ECANCELED, so stopping stays bounded. */
	void (*set_abort)(void *state, const atomic_bool *abort);
};

extern const struct sink_ops sink_stdout_ops;
extern const struct sink_ops sink_file_ops;
extern const struct sink_ops sink_syslog_ops;
extern const struct sink_ops sink_webhook_ops;

/* Formats an alert (its JSON text) as one output line with its line ending:
 * JSON ("...\n"), human ("<time> <SEVERITY> <rule>: <title> pid=... alert=...\n",
 * the severity in ANSI colour when color is true) or CSV (RFC 4180: CRLF,
 * fields quoted when they hold a comma, quote, CR or LF, quotes doubled; a
 * field that a spreadsheet would take for a formula gets a leading ').
 * Sets *ret (caller frees) and *ret_len. Returns 0, -EINVAL for text that is
 * not an alert object, -ENOMEM. */
int sink_format_line(enum sink_format fmt, const char *json, size_t len, bool color, char **ret,
                     size_t *ret_len);

/* The CSV header line (CRLF-terminated) matching sink_format_line's columns. */
extern const char sink_csv_header[];

/* Appends s to out as one RFC 4180 field (quoted when needed; a value
 * starting with = + - @ TAB or CR that is not a plain number is quoted
 * behind a single quote, OWASP's CSV-injection defence). Returns 0 or
 * -ENOMEM. Exposed for tests. */
struct sink_buf {
	char *p;
	size_t len, cap;
};
int sink_buf_add(struct sink_buf *b, const char *s, size_t n);
int sink_csv_field(struct sink_buf *b, const char *s);

/* TLS files of a syslog (tls://) or webhook (https://) sink (sink_syslog.c,
 * OpenSSL): sink_tls_load() makes ctx (an SSL_CTX) trust sc->ca_file and
 * present sc->client_cert with sc->client_key, checking that the key matches;
 * sink_tls_check() does the same on a throw-away context, to refuse a bad
 * file when the sink opens. Both return 0, or -EINVAL with the file and
 * OpenSSL's reason in err. */
struct ssl_ctx_st;
int sink_tls_load(struct ssl_ctx_st *ctx, const struct sink_config *sc, struct errbuf *err);
int sink_tls_check(const struct sink_config *sc, struct errbuf *err);

/* ---- A sink's delivery machinery (sink_worker.c), driven by alert.c ----
 * Each sink has a worker thread, a bounded queue and a backlog (its on-disk
 * spool under <spool_dir>/<name>/, or a bounded memory ring without one). */
struct sink;

/* Opens the sink of sc (named name: its spool directory) and its spool; the
 * worker is not running yet. Returns -EINVAL with the reason in err for a bad
 * configuration, -ENOMEM. A spool that cannot be opened is logged and the
 * sink runs with the memory backlog. */
int sink_new(const struct sink_config *sc, const char *name, const char *spool_dir,
             struct sink **ret, struct errbuf *err);
/* Starts the worker thread. Returns 0 or -errno with the reason in err. */
int sink_start(struct sink *s, struct errbuf *err);
/* Copies json (the alert whose id is id; NULL or "" for none) into the
 * sink's queue; never blocks on delivery. A full queue is a counted drop
 * (dropped_queue_full). */
void sink_enqueue(struct sink *s, const char *id, const char *json);
/* At start, before sink_start(): when the sink has an on-disk spool and st is
 * not NULL, spools (in order) every alert stored in st after the sink's
 * "delivered through" marker — those it had not finished when the agent was
 * killed — and keeps that marker up to date from then on. A sink without a
 * marker yet (new) starts after the newest stored alert. Returns 0, or -errno
 * (logged; the sink still runs). */
struct store;
int sink_catch_up(struct sink *s, struct store *st);
/* sink_catch_up() for sinks[0..n-1] through one read-only connection to st's
 * database (so the query sandbox never touches st's own connection). Returns
 * 0 or the first -errno (logged; the sinks still run). */
int sink_catch_up_all(struct sink *const *sinks, size_t n, struct store *st);
/* Waits until the queue is empty and the worker idle (and with wait_spool the
 * backlog drained), up to deadline_ms (time_mono_ms). Returns 0 or -ETIMEDOUT. */
int sink_wait_idle(struct sink *s, uint64_t deadline_ms, bool wait_spool);
/* Asks the worker to stop within ALERTS_STOP_TIMEOUT_MS; returns at once. */
void sink_request_stop(struct sink *s);
/* Stops the worker (if running), spools what is still queued, frees. NULL ok. */
void sink_free(struct sink *s);
/* The counters of alert.h's health "sinks" rows (new reference, NULL on OOM). */
json_t *sink_health_json(struct sink *s);
const char *sink_name(const struct sink *s);

#endif
