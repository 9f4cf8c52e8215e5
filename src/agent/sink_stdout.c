/* The stdout sink and the line formats shared with the file sink: JSON lines,
 * one human-readable line (severity in colour on a terminal unless NO_COLOR
 * is set, https://no-color.org), and RFC 4180 CSV. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cleanup.h"
#include "sink.h"
#include "util.h"

#define SINK_LINE_MAX (1024 * 1024)

const char sink_csv_header[] = "alert_id,timestamp,severity,rule_id,rule_name,category,title,"
                               "pid,ppid,process_name,executable_path,command_line,user_id,"
                               "dedup_key\r\n";

int
sink_buf_add(struct sink_buf *b, const char *s, size_t n)
{
	if (n > SINK_LINE_MAX || b->len + n + 1 > SINK_LINE_MAX)
		return -E2BIG;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int
buf_str(struct sink_buf *b, const char *s)
{
	return sink_buf_add(b, s, strlen(s));
}

int
sink_csv_field(struct sink_buf *b, const char *s)
{
	bool guard;
	int r;

	if (s == NULL)
		return 0;
	guard = csv_formula_risk(s);
	if (!guard && strpbrk(s, ",\"\r\n") == NULL)
		return buf_str(b, s);
	if ((r = sink_buf_add(b, guard ? "\"'" : "\"", guard ? 2 : 1)) < 0)
		return r;
	for (const char *p = s; *p != '\0'; p++) {
		/* RFC 4180 2.7: a quote inside a quoted field is doubled. */
		if (*p == '"' && (r = sink_buf_add(b, "\"", 1)) < 0)
			return r;
		if ((r = sink_buf_add(b, p, 1)) < 0)
			return r;
	}
	return sink_buf_add(b, "\"", 1);
}

/* A value of the alert as text for human and CSV output ("" when absent). */
static const char *
field_text(json_t *obj, const char *key, char *num, size_t n)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		(void)snprintf(num, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return num;
	}
	return "";
}

/* Adds s for a terminal: control characters (escape sequences a process can
 * put in its command line) become '?'. */
static int
buf_printable(struct sink_buf *b, const char *s)
{
	int r;

	for (const char *p = s; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		char out = (c < 0x20 || c == 0x7f) ? '?' : *p;

		if ((r = sink_buf_add(b, &out, 1)) < 0)
			return r;
	}
	return 0;
}

static const struct {
	const char *name;
	const char *label;
	const char *color;
} severities[] = {
	{ "info", "INFO", "\033[2m" },
	{ "low", "LOW", "\033[36m" },
	{ "medium", "MEDIUM", "\033[33m" },
	{ "high", "HIGH", "\033[31m" },
	{ "critical", "CRITICAL", "\033[1;31m" },
};

static int
format_human(json_t *a, bool color, struct sink_buf *b)
{
	const char *sev = json_string_value(json_object_get(a, "severity"));
	const char *label = "UNKNOWN", *col = "";
	json_t *proc = json_object_get(a, "process");
	char n1[32], n2[32];
	int r = 0;

	for (size_t i = 0; sev != NULL && i < ARRAY_SIZE(severities); i++)
		if (streq(sev, severities[i].name)) {
			label = severities[i].label;
			col = severities[i].color;
		}
	r |= buf_printable(b, field_text(a, "timestamp", n1, sizeof(n1)));
	r |= buf_str(b, " ");
	if (color && col[0] != '\0')
		r |= buf_str(b, col);
	r |= buf_str(b, label);
	if (color && col[0] != '\0')
		r |= buf_str(b, "\033[0m");
	r |= buf_str(b, " ");
	r |= buf_printable(b, field_text(a, "rule_id", n1, sizeof(n1)));
	r |= buf_str(b, ": ");
	r |= buf_printable(b, field_text(a, "title", n1, sizeof(n1)));
	r |= buf_str(b, " pid=");
	r |= buf_printable(b, field_text(proc, "pid", n1, sizeof(n1)));
	r |= buf_str(b, " exe=");
	r |= buf_printable(b, field_text(proc, "executable_path", n2, sizeof(n2)));
	r |= buf_str(b, " cmd=");
	r |= buf_printable(b, field_text(proc, "command_line", n2, sizeof(n2)));
	r |= buf_str(b, " alert=");
	r |= buf_printable(b, field_text(a, "alert_id", n1, sizeof(n1)));
	r |= buf_str(b, "\n");
	return r < 0 ? -ENOMEM : 0;
}

static int
format_csv(json_t *a, struct sink_buf *b)
{
	static const char *const top[] = { "alert_id",  "timestamp", "severity", "rule_id",
		                           "rule_name", "category",  "title" };
	static const char *const proc_keys[] = { "pid",          "ppid",
		                                 "name",         "executable_path",
		                                 "command_line", "user_id" };
	json_t *proc = json_object_get(a, "process");
	char num[32];
	int r = 0;

	for (size_t i = 0; i < ARRAY_SIZE(top); i++) {
		r |= sink_csv_field(b, field_text(a, top[i], num, sizeof(num)));
		r |= buf_str(b, ",");
	}
	for (size_t i = 0; i < ARRAY_SIZE(proc_keys); i++) {
		r |= sink_csv_field(b, field_text(proc, proc_keys[i], num, sizeof(num)));
		r |= buf_str(b, ",");
	}
	r |= sink_csv_field(b, field_text(a, "dedup_key", num, sizeof(num)));
	r |= buf_str(b, "\r\n");
	return r < 0 ? -ENOMEM : 0;
}

int
sink_format_line(enum sink_format fmt, const char *json, size_t len, bool color, char **ret,
                 size_t *ret_len)
{
	struct sink_buf b = { 0 };
	json_t *a;
	int r;

	if (fmt == SINK_FORMAT_JSON) {
		if ((r = sink_buf_add(&b, json, len)) < 0 || (r = sink_buf_add(&b, "\n", 1)) < 0) {
			free(b.p);
			return r;
		}
		*ret = b.p;
		*ret_len = b.len;
		return 0;
	}
	if ((a = json_loadb(json, len, 0, NULL)) == NULL || !json_is_object(a)) {
		json_decref(a);
		return -EINVAL;
	}
	r = fmt == SINK_FORMAT_CSV ? format_csv(a, &b) : format_human(a, color, &b);
	json_decref(a);
	if (r < 0) {
		free(b.p);
		return r;
	}
	*ret = b.p;
	*ret_len = b.len;
	return 0;
}

struct sink_stdout {
	enum sink_format format;
	bool color;
	bool header_done;
	const atomic_bool *abort;
};

/* Writes to stdout without ever blocking for good: waits (in 100 ms steps,
 * checking the abort flag) until it can take more, then writes at most
 * PIPE_BUF bytes, which a pipe that polls writable takes without blocking. A
 * reader that stopped reading (a paused pager) cannot hang the agent's stop. */
static int
stdout_write(struct sink_stdout *s, const char *p, size_t n)
{
	while (n > 0) {
		struct pollfd pf = { .fd = STDOUT_FILENO, .events = POLLOUT };
		ssize_t k;
		int r;

		if (s->abort != NULL && atomic_load(s->abort))
			return -ECANCELED;
		if ((r = poll(&pf, 1, 100)) < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		if (pf.revents & (POLLERR | POLLNVAL))
			return -EPIPE;
		k = write(STDOUT_FILENO, p, n < PIPE_BUF ? n : PIPE_BUF);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static void
stdout_set_abort(void *state, const atomic_bool *abort)
{
	((struct sink_stdout *)state)->abort = abort;
}

static int
stdout_open(const struct sink_config *sc, void **ret, struct errbuf *err)
{
	struct sink_stdout *s;
	const char *nc = getenv("NO_COLOR");

	(void)err;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->format = sc->format;
	s->color = isatty(STDOUT_FILENO) && isempty(nc);
	*ret = s;
	return 0;
}

static int
stdout_deliver(void *state, const char *json, size_t len, struct errbuf *err)
{
	struct sink_stdout *s = state;
	_cleanup_free_ char *line = NULL;
	size_t n;
	int r;

	if ((r = sink_format_line(s->format, json, len, s->color, &line, &n)) < 0) {
		errbuf_set(err, "cannot format alert: %s", strerror(-r));
		return r == -EINVAL ? SINK_REJECTED : r;
	}
	if (s->format == SINK_FORMAT_CSV && !s->header_done) {
		if ((r = stdout_write(s, sink_csv_header, strlen(sink_csv_header))) < 0)
			goto fail;
		s->header_done = true;
	}
	if ((r = stdout_write(s, line, n)) < 0)
		goto fail;
	return 0;
fail:
	errbuf_set(err, "write to stdout: %s", strerror(-r));
	return r;
}

static void
stdout_close(void *state)
{
	free(state);
}

const struct sink_ops sink_stdout_ops = {
	.type = SINK_STDOUT,
	.open = stdout_open,
	.deliver = stdout_deliver,
	.close = stdout_close,
	.set_abort = stdout_set_abort,
};
