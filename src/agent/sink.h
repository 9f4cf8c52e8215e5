/* Alert sinks (SPEC §4): one row of ops per sink type (STYLE.md rule 10).
 *
 * alert.c owns the machinery around a sink (its worker thread, queue, spool,
 * retries and counters); a sink only knows how to deliver one alert, given as
 * the serialized SPEC §6 JSON object. deliver() runs on the sink's own worker
 * thread and nowhere else, so a sink's state needs no lock. Only the sink
 * files include curl.h (STYLE.md rule 8). */
#ifndef DE_AGENT_SINK_H
#define DE_AGENT_SINK_H

#include <stdbool.h>
#include <stddef.h>

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
};

extern const struct sink_ops sink_stdout_ops;
extern const struct sink_ops sink_file_ops;
extern const struct sink_ops sink_syslog_ops;
extern const struct sink_ops sink_webhook_ops;

/* Formats an alert (its JSON text) as one output line with its line ending:
 * JSON ("...\n"), human ("<time> <SEVERITY> <rule>: <title> pid=... alert=...\n",
 * the severity in ANSI colour when color is true) or CSV (RFC 4180: CRLF,
 * fields quoted when they hold a comma, quote, CR or LF, quotes doubled).
 * Sets *ret (caller frees) and *ret_len. Returns 0, -EINVAL for text that is
 * not an alert object, -ENOMEM. */
int sink_format_line(enum sink_format fmt, const char *json, size_t len, bool color, char **ret,
                     size_t *ret_len);

/* The CSV header line (CRLF-terminated) matching sink_format_line's columns. */
extern const char sink_csv_header[];

/* Appends s to out as one RFC 4180 field (quoted when needed). Returns 0 or
 * -ENOMEM. Exposed for tests. */
struct sink_buf {
	char *p;
	size_t len, cap;
};
int sink_buf_add(struct sink_buf *b, const char *s, size_t n);
int sink_csv_field(struct sink_buf *b, const char *s);

#endif
