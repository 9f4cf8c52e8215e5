#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "publish.h"
#include "util.h"

#define JSONL_BUFFER (64u << 10)

/* ---- JSON lines (standalone mode) ---- */

struct output_jsonl {
	struct output base;
	FILE *f;
	bool own; /* f is ours to close (not stdout) */
	char *buf;
};

static int
jsonl_emit(struct output *o, const struct process_event *ev)
{
	struct output_jsonl *j = (struct output_jsonl *)o;
	_cleanup_free_ char *line = process_event_to_json_line(ev);

	if (line == NULL)
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
