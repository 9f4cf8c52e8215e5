#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "publish.h"
#include "timeutil.h"
#include "util.h"

#define JSONL_BUFFER (64u << 10)

/* ---- JSON lines (standalone mode) ---- */

struct output_jsonl {
	struct output base;
	FILE *f;
	bool own; /* f is ours to close (not stdout) */
	char *buf;
};

/* ---- the direct writer ----
 *
 * A snapshot writes one line per process; building a jansson object per
 * line cost about a tenth of a first snapshot. This writes the very bytes
 * process_event_to_json_line() makes (same keys, order, escapes and number
 * formats as json_dumps with JSON_COMPACT | JSON_PRESERVE_ORDER), straight
 * into the stdio buffer. What it does not reproduce byte for byte (non-ASCII
 * text, which jansson validates, and non-finite numbers, which it drops) goes
 * through jansson, so the output never differs. */

static bool
ascii_or_null(const char *s)
{
	if (s == NULL)
		return true;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

static bool
direct_ok(const struct process_event *ev)
{
	const struct process_record *p = &ev->proc;
	const char *strs[] = { p->name,
		               p->executable_path,
		               p->command_line,
		               p->executable_hash,
		               p->user_name,
		               p->cwd,
		               p->tty,
		               p->state,
		               p->parent_name,
		               p->parent_executable_path,
		               p->parent_command_line,
		               p->container_id,
		               p->cgroup,
		               ev->source,
		               ev->modified_fields,
		               ev->reason };

	if (!isfinite(p->cpu_usage))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
		if (!ascii_or_null(strs[i]))
			return false;
	return true;
}

/* A JSON string of ASCII text s, escaped as jansson's dump_string does.
 * Runs of characters that need no escape are written in one call. */
static void
put_str(FILE *f, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *run;

	if (s == NULL) {
		fwrite_unlocked("null", 1, 4, f);
		return;
	}
	putc_unlocked('"', f);
	for (run = s; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		fwrite_unlocked(run, 1, (size_t)(s - run), f);
		run = s + 1;
		putc_unlocked('\\', f);
		switch (c) {
		case '"':
		case '\\':
			putc_unlocked(c, f);
			break;
		case '\b':
			putc_unlocked('b', f);
			break;
		case '\f':
			putc_unlocked('f', f);
			break;
		case '\n':
			putc_unlocked('n', f);
			break;
		case '\r':
			putc_unlocked('r', f);
			break;
		case '\t':
			putc_unlocked('t', f);
			break;
		default:
			fwrite_unlocked("u00", 1, 3, f);
			putc_unlocked(hex[c >> 4], f);
			putc_unlocked(hex[c & 15], f);
		}
	}
	fwrite_unlocked(run, 1, (size_t)(s - run), f);
	putc_unlocked('"', f);
}

/* `,"key":` (the comma unless first); key is a string literal, so its
 * length is known when compiling. */
#define put_key(f, key, first)                                                         \
	((first) ? fwrite_unlocked("\"" key "\":", 1, sizeof("\"" key "\":") - 1, (f)) \
	         : fwrite_unlocked(",\"" key "\":", 1, sizeof(",\"" key "\":") - 1, (f)))

static void
put_i64(FILE *f, int64_t v)
{
	char buf[24], *e = buf + sizeof(buf), *b = e;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do
		*--b = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--b = '-';
	fwrite_unlocked(b, 1, (size_t)(e - b), f);
}

/* A user/group id column: null when unknown (negative). */
static void
put_id(FILE *f, int64_t v)
{
	if (v < 0)
		fputs_unlocked("null", f);
	else
		put_i64(f, v);
}

/* jansson's real format: %.17g, ".0" when it reads as an integer, and the
 * exponent without '+' or leading zeros. */
static void
put_real(FILE *f, double v)
{
	char buf[40], *e;
	int n;

	if (v == 0.0 && !signbit(v)) {
		fputs_unlocked("0.0", f); /* most samples, and every first one */
		return;
	}
	n = snprintf(buf, sizeof(buf), "%.17g", v);

	if (n < 0 || (size_t)n >= sizeof(buf) - 2)
		return;
	if (strchr(buf, '.') == NULL && strchr(buf, 'e') == NULL) {
		buf[n++] = '.';
		buf[n++] = '0';
		buf[n] = '\0';
	}
	if ((e = strchr(buf, 'e')) != NULL) {
		char *start = e + 1, *end = e + 2;

		if (*start == '-')
			start++;
		while (*end == '0')
			end++;
		memmove(start, end, strlen(end) + 1);
	}
	fputs_unlocked(buf, f);
}

static void
put_bool(FILE *f, bool v)
{
	fputs_unlocked(v ? "true" : "false", f);
}

static void
put_process(FILE *f, const struct process_event *ev)
{
	const struct process_record *p = &ev->proc;

	put_key(f, "pid", true);
	put_i64(f, p->pid);
	put_key(f, "ppid", false);
	put_id(f, p->ppid);
	put_key(f, "name", false);
	put_str(f, p->name);
	put_key(f, "executable_path", false);
	put_str(f, p->executable_path);
	put_key(f, "command_line", false);
	put_str(f, p->command_line);
	put_key(f, "start_time", false);
	put_i64(f, (int64_t)p->start_time);
	put_key(f, "cpu_usage", false);
	put_real(f, p->cpu_usage);
	put_key(f, "memory_usage", false);
	put_i64(f, (int64_t)p->memory_usage);
	put_key(f, "executable_hash", false);
	put_str(f, p->executable_hash);
	put_key(f, "user_id", false);
	put_id(f, p->user_id);
	put_key(f, "effective_user_id", false);
	put_id(f, p->effective_user_id);
	put_key(f, "group_id", false);
	put_id(f, p->group_id);
	put_key(f, "user_name", false);
	put_str(f, p->user_name);
	put_key(f, "cwd", false);
	put_str(f, p->cwd);
	put_key(f, "tty", false);
	put_str(f, p->tty);
	put_key(f, "state", false);
	put_str(f, p->state);
	put_key(f, "threads", false);
	put_i64(f, p->threads);
	put_key(f, "accessible", false);
	put_bool(f, p->accessible);
	put_key(f, "file_exists", false);
	put_bool(f, p->file_exists);
	put_key(f, "exe_deleted", false);
	put_bool(f, p->exe_deleted);
	put_key(f, "exe_memfd", false);
	put_bool(f, p->exe_memfd);
	put_key(f, "argv_truncated", false);
	put_bool(f, p->argv_truncated);
	put_key(f, "parent_name", false);
	put_str(f, p->parent_name);
	put_key(f, "parent_executable_path", false);
	put_str(f, p->parent_executable_path);
	put_key(f, "parent_command_line", false);
	put_str(f, p->parent_command_line);
	put_key(f, "container_id", false);
	put_str(f, p->container_id);
	put_key(f, "cgroup", false);
	put_str(f, p->cgroup);
	put_key(f, "event_type", false);
	put_str(f, proc_event_type_to_string(ev->type));
	put_key(f, "collection_time", false);
	put_i64(f, (int64_t)ev->time);
	put_key(f, "missing", false);
	put_i64(f, p->missing);
}

/* RFC 3339 with milliseconds, as time_format_rfc3339_ms() writes it; the
 * date and time of day are formatted once per second (a snapshot's lines
 * share them). */
static void
format_time(uint64_t ms, char ts[40])
{
	static __thread uint64_t last_sec = UINT64_MAX;
	static __thread char last[40];
	uint64_t sec = ms / 1000;
	unsigned frac = (unsigned)(ms % 1000);

	if (sec != last_sec) {
		if (time_format_rfc3339_ms(sec * 1000, last, sizeof(last)) < 0) {
			ts[0] = '\0';
			return;
		}
		last_sec = sec;
	}
	/* "YYYY-MM-DDTHH:MM:SS.000Z": the three digits before the Z. */
	memcpy(ts, last, sizeof(last));
	ts[20] = (char)('0' + frac / 100);
	ts[21] = (char)('0' + frac / 10 % 10);
	ts[22] = (char)('0' + frac % 10);
}

static void
put_event(FILE *f, const struct process_event *ev)
{
	char ts[40];

	format_time(ev->time, ts);
	putc_unlocked('{', f);
	put_key(f, "event", true);
	put_str(f, proc_event_type_to_string(ev->type));
	put_key(f, "time", false);
	put_str(f, ts);
	if (ev->source != NULL) {
		put_key(f, "source", false);
		put_str(f, ev->source);
	}
	if (ev->type == PROC_EV_STOP) {
		put_key(f, "exit_code", false);
		put_i64(f, ev->exit_code);
		put_key(f, "runtime_ms", false);
		put_i64(f, (int64_t)ev->runtime_ms);
	}
	if (ev->modified_fields != NULL) {
		put_key(f, "modified_fields", false);
		put_str(f, ev->modified_fields);
	}
	if (ev->reason != NULL) {
		put_key(f, "reason", false);
		put_str(f, ev->reason);
	}
	put_key(f, "process", false);
	putc_unlocked('{', f);
	put_process(f, ev);
	fputs_unlocked("}}\n", f);
}

static int
jsonl_emit(struct output *o, const struct process_event *ev)
{
	struct output_jsonl *j = (struct output_jsonl *)o;
	_cleanup_free_ char *line = NULL;

	if (direct_ok(ev)) {
		put_event(j->f, ev);
		return ferror_unlocked(j->f) ? (errno ? -errno : -EIO) : 0;
	}
	if ((line = process_event_to_json_line(ev)) == NULL)
		return -ENOMEM;
	if (fputs(line, j->f) == EOF || fputc('\n', j->f) == EOF)
		return errno ? -errno : -EIO;
	return 0;
}

static int
jsonl_flush(struct output *o)
{
	struct output_jsonl *j = (struct output_jsonl *)o;

	if (fflush(j->f) == EOF)
		return errno ? -errno : -EIO;
	return 0;
}

static void
jsonl_close(struct output *o)
{
	struct output_jsonl *j = (struct output_jsonl *)o;

	if (j->f != NULL) {
		fflush(j->f);
		if (j->own)
			fclose(j->f);
	}
	free(j->buf);
	free(j);
}

static const struct output_ops jsonl_ops = {
	.name = "jsonl",
	.emit = jsonl_emit,
	.flush = jsonl_flush,
	.close = jsonl_close,
};

int
output_jsonl_open(const char *path, struct output **ret, struct errbuf *err)
{
	struct output_jsonl *j = calloc(1, sizeof(*j));
	int fd, rc;

	if (j == NULL || (j->buf = malloc(JSONL_BUFFER)) == NULL) {
		free(j);
		return -ENOMEM;
	}
	j->base.ops = &jsonl_ops;
	if (path == NULL || streq(path, "-")) {
		j->f = stdout;
	} else {
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
		if (fd < 0 || (j->f = fdopen(fd, "a")) == NULL) {
			rc = -errno;
			errbuf_set(err, "%s: %s", path, strerror(-rc));
			if (fd >= 0)
				close(fd);
			jsonl_close(&j->base);
			return rc;
		}
		j->own = true;
	}
	setvbuf(j->f, j->buf, _IOFBF, JSONL_BUFFER);
	*ret = &j->base;
	return 0;
}

/* ---- the publisher (managed mode) ---- */

struct output_publish {
	struct output base;
	struct publish *p;
};

static int
publish_emit(struct output *o, const struct process_event *ev)
{
	return publish_event(((struct output_publish *)o)->p, ev);
}

static void
publish_out_close(struct output *o)
{
	struct output_publish *op = (struct output_publish *)o;

	/* Bounded: SPEC §3 gives the whole agent 5 s to stop. */
	publish_close(op->p, 2000);
	free(op);
}

static void
publish_source_stats(struct output *o, uint64_t events, uint64_t drops)
{
	publish_set_source_stats(((struct output_publish *)o)->p, events, drops);
}

static const struct output_ops publish_ops = {
	.name = "publish",
	.emit = publish_emit,
	.close = publish_out_close,
	.source_stats = publish_source_stats,
};

int
output_publish_open(const struct publish_opts *opts, struct output **ret, struct errbuf *err)
{
	struct output_publish *op = calloc(1, sizeof(*op));
	int rc;

	if (op == NULL)
		return -ENOMEM;
	op->base.ops = &publish_ops;
	if ((rc = publish_open(opts, &op->p, err)) < 0) {
		free(op);
		return rc;
	}
	*ret = &op->base;
	return 0;
}
