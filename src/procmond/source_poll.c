/* The portable last resort: no kernel events at all. main.c's snapshot timer
 * drives everything (lifecycle_snapshot every --interval), so this source has
 * no descriptor and nothing to dispatch; it exists so that every mode goes
 * through the same interface and reports its health the same way. */
#include <errno.h>
#include <stdlib.h>

#include "source.h"

struct source {
	struct source_health health;
};

static int
poll_open(const struct collector_opts *opts, struct source **ret, struct errbuf *err)
{
	struct source *s = calloc(1, sizeof(*s));

	(void)opts;
	(void)err;
	if (s == NULL)
		return -ENOMEM;
	s->health.ok = true;
	*ret = s;
	return 0;
}

static int
poll_fd(struct source *s)
{
	(void)s;
	return -1;
}

static int
poll_dispatch(struct source *s, source_event_cb cb, void *ctx)
{
	(void)s;
	(void)cb;
	(void)ctx;
	return 0;
}

static void
poll_health(struct source *s, struct source_health *ret)
{
	*ret = s->health;
}

static void
poll_close(struct source *s)
{
	free(s);
}

const struct source_ops source_poll_ops = {
	.name = "poll",
	.realtime = false,
	.argv_at_exec = false,
	.open = poll_open,
	.fd = poll_fd,
	.dispatch = poll_dispatch,
	.health = poll_health,
	.close = poll_close,
};
