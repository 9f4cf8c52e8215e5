/* Where procmond's events go: one small interface, two implementations.
 *
 *   output_jsonl_open()    standalone mode: one SPEC §3 JSON line per event on
 *                          stdout or a file (--output PATH|-)
 *   output_publish_open()  managed mode (DAEMONEYE_BROKER_SOCKET set): the
 *                          write-ahead log, then the agent (publish.h)
 *
 * main.c's loop polls output_fd() when it is >= 0 and calls
 * output_on_readable() when it is readable, so an implementation can own a
 * descriptor (a socket, an eventfd) without a thread of its own. */
#ifndef DE_PROCMOND_OUTPUT_H
#define DE_PROCMOND_OUTPUT_H

#include <stdint.h>

#include "errbuf.h"
#include "process.h"

struct output;

struct output_ops {
	const char *name;
	/* Accepts one event (the output copies what it keeps). 0 or -errno;
	 * -EPIPE means the reader went away for good. */
	int (*emit)(struct output *o, const struct process_event *ev);
	/* Pushes buffered events out (end of a batch). 0 or -errno. */
	int (*flush)(struct output *o);
	/* A descriptor for main's loop, or -1. */
	int (*fd)(struct output *o);
	/* Called when fd() is readable. 0 or -errno (-ESHUTDOWN: stop procmond). */
	int (*on_readable)(struct output *o);
	/* Flushes and frees; accepts a half-built output. */
	void (*close)(struct output *o);
	/* Optional: the event source's counters, for whoever asks for health. */
	void (*source_stats)(struct output *o, uint64_t events, uint64_t drops);
};

/* Every implementation starts with this header. */
struct output {
	const struct output_ops *ops;
};

static inline int
output_emit(struct output *o, const struct process_event *ev)
{
	return o->ops->emit(o, ev);
}

static inline void
output_source_stats(struct output *o, uint64_t events, uint64_t drops)
{
	if (o->ops->source_stats)
		o->ops->source_stats(o, events, drops);
}

static inline int
output_flush(struct output *o)
{
	return o->ops->flush ? o->ops->flush(o) : 0;
}

static inline int
output_fd(struct output *o)
{
	return o->ops->fd ? o->ops->fd(o) : -1;
}

static inline int
output_on_readable(struct output *o)
{
	return o->ops->on_readable ? o->ops->on_readable(o) : 0;
}

static inline void
output_close(struct output *o)
{
	if (o != NULL)
		o->ops->close(o);
}

/* JSON lines to path ("-" or NULL: stdout; a file is appended to, created
 * 0640). Returns 0 and sets *ret, or -errno with the reason in err. */
int output_jsonl_open(const char *path, struct output **ret, struct errbuf *err);

struct publish_opts;
/* Managed mode over publish.h. Returns 0 and sets *ret, or -errno (err says
 * why); -ENOTSUP when this build has no publisher. */
int output_publish_open(const struct publish_opts *opts, struct output **ret, struct errbuf *err);

#endif
