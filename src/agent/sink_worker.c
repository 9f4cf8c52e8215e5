/* A sink's delivery machinery: its worker thread, bounded queue, backlog
 * (the on-disk spool, or a bounded memory ring when there is none), retries
 * with exponential backoff, and counters. alert.c drives it (sink.h); the
 * sink_*.c files only deliver one alert at a time.
 *
 * Once anything waits in the backlog every newer alert goes behind it, so
 * order is kept; the backlog is retried with backoff and acknowledged record
 * by record after each successful delivery.
 *
 * "Delivered through" marker (at least once across a crash): an alert raised
 * is stored before it is queued, so after a SIGKILL the only alerts a sink can
 * miss are those still in its memory queue. With an on-disk spool and a store,
 * the worker writes the id of each alert it has finished with (delivered,
 * rejected, or safely spooled) to the spool's marker; at the next start
 * sink_catch_up() spools, in order, every stored alert after the marker. The
 * one alert whose delivery completed just before the marker write may arrive
 * twice: at most one duplicate per sink per crash. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/alert.h"
#include "agent/sink.h"
#include "agent/spool.h"
#include "cleanup.h"
#include "log.h"
#include "store.h"
#include "timeutil.h"
#include "util.h"

#define SINK_QUEUE_MAX      16384u /* alerts waiting for a sink's worker (~16 MiB at most) */
#define SINK_BACKLOG_MAX    4096u  /* memory backlog when there is no spool */
#define SINK_BATCH          256u
#define SINK_DRAIN_CHUNK    256u
#define BACKOFF_MIN_MS      250u
#define BACKOFF_MAX_MS      5000u
#define SINK_ABORT_AFTER_MS 500u  /* after the stop deadline */
#define SINK_MARK_SYNC_MS   1000u /* the marker is fdatasync'ed at most this often */
#define CATCH_UP_PAGE       64    /* alerts spooled per sync while catching up */
#define CATCH_UP_TIMEOUT_MS 10000u

struct ring {
	char **items;
	size_t head, len, cap;
};

struct sink {
	const struct sink_ops *ops;
	const char *type;
	void *state;
	char name[64];
	char target[256];
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t wake, idle;
	struct ring queue; /* submit -> worker, under mu */
	atomic_bool abort; /* stop grace over: an in-flight delivery gives up */
	/* Owned by the worker thread alone. */
	struct spool *spool;
	struct ring backlog;
	bool marking;         /* the marker is kept (spool and store) */
	bool mark_dirty;      /* written since the last fdatasync */
	bool mark_failed;     /* a marker write failed (logged once) */
	uint64_t mark_synced; /* time_mono_ms of the last fdatasync */
	/* Under mu. */
	bool stopping, busy, down, waiting;
	uint64_t stop_deadline, next_try, backoff_ms;
	uint64_t delivered, failed, retried, spooled, rejected;
	uint64_t dropped_queue_full, dropped_spool_full, lost_at_stop;
	uint64_t backlog_depth, spool_bytes, spool_corrupt, replayed;
	char last_error[ERRBUF_MAX];
};

static const struct {
	enum sink_type type;
	const char *name;
	const struct sink_ops *ops;
} sink_table[] = {
	{ SINK_STDOUT, "stdout", &sink_stdout_ops },
	{ SINK_FILE, "file", &sink_file_ops },
	{ SINK_SYSLOG, "syslog", &sink_syslog_ops },
	{ SINK_WEBHOOK, "webhook", &sink_webhook_ops },
};

/* ---- rings ---- */

static int
ring_init(struct ring *r, size_t cap)
{
	r->items = calloc(cap, sizeof(r->items[0]));
	r->cap = cap;
	return r->items ? 0 : -ENOMEM;
}

static bool
ring_push(struct ring *r, char *item)
{
	if (r->len == r->cap)
		return false;
	r->items[(r->head + r->len++) % r->cap] = item;
	return true;
}

static char *
ring_pop(struct ring *r)
{
	char *item;

	if (r->len == 0)
		return NULL;
	item = r->items[r->head];
	r->head = (r->head + 1) % r->cap;
	r->len--;
	return item;
}

static void
ring_free(struct ring *r)
{
	char *item;

	while ((item = ring_pop(r)) != NULL)
		free(item);
	free(r->items);
	r->items = NULL;
}

/* ---- backlog: spool, or memory ring when there is no spool ---- */

static int
backlog_append(struct sink *s, const char *json)
{
	char *copy;

	if (s->spool != NULL)
		return spool_append(s->spool, json, strlen(json));
	if ((copy = strdup(json)) == NULL)
		return -ENOMEM;
	if (!ring_push(&s->backlog, copy)) {
		free(copy);
		return -ENOSPC;
	}
	return 0;
}

static int
backlog_peek(struct sink *s, char **ret, size_t *ret_len)
{
	char *copy;

	if (s->spool != NULL)
		return spool_peek(s->spool, ret, ret_len);
	if (s->backlog.len == 0)
		return 0;
	if ((copy = strdup(s->backlog.items[s->backlog.head])) == NULL)
		return -ENOMEM;
	*ret_len = strlen(copy);
	*ret = copy;
	return 1;
}

static int
backlog_ack(struct sink *s)
{
	if (s->spool != NULL)
		return spool_ack(s->spool);
	free(ring_pop(&s->backlog));
	return 0;
}

/* Publishes the backlog figures for health and flush (caller holds mu). */
static void
backlog_publish(struct sink *s)
{
	if (s->spool != NULL) {
		s->backlog_depth = spool_pending(s->spool);
		s->spool_bytes = spool_bytes(s->spool);
		s->spool_corrupt = spool_corrupt(s->spool);
	} else {
		s->backlog_depth = s->backlog.len;
	}
}

/* ---- worker ---- */

/* The conditions use CLOCK_MONOTONIC (cond_init): wall-clock jumps do not
 * stretch or cut a backoff. */
static void
cond_init(pthread_cond_t *c)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(c, &attr);
	pthread_condattr_destroy(&attr);
}

static void
cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *mu, uint64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	(void)pthread_cond_timedwait(c, mu, &ts);
}

static bool
is_pow2(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

/* Records a failed delivery and schedules the next try (caller holds mu). */
static void
sink_mark_down(struct sink *s, const struct errbuf *err)
{
	s->failed++;
	s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (s->backoff_ms > BACKOFF_MAX_MS)
		s->backoff_ms = BACKOFF_MAX_MS;
	s->next_try = time_mono_ms() + s->backoff_ms;
	de_strlcpy(s->last_error, err->msg, sizeof(s->last_error));
	if (!s->down)
		log_warn("alert sink %s is down (%s): spooling, retrying with backoff", s->name,
		         err->msg);
	s->down = true;
}

static void
sink_mark_up(struct sink *s)
{
	if (s->down)
		log_info("alert sink %s is delivering again", s->name);
	s->down = false;
	s->backoff_ms = 0;
}

static void
sink_note_rejected(struct sink *s, const struct errbuf *err)
{
	s->rejected++;
	de_strlcpy(s->last_error, err->msg, sizeof(s->last_error));
	log_error("alert sink %s rejected an alert for good (%s); counted as rejected", s->name,
	          err->msg);
}

static void
sink_backlog_or_drop(struct sink *s, const char *json)
{
	int r = backlog_append(s, json);

	pthread_mutex_lock(&s->mu);
	if (r == 0) {
		s->spooled++;
	} else {
		s->dropped_spool_full++;
		if (is_pow2(s->dropped_spool_full))
			log_error("alert sink %s: backlog full or failing (%s), %" PRIu64
			          " alerts dropped so far",
			          s->name, strerror(-r), s->dropped_spool_full);
	}
	backlog_publish(s);
	pthread_mutex_unlock(&s->mu);
}

/* ---- the "delivered through" marker (worker thread) ---- */

/* Records that the sink is done with alert id (delivered, rejected for good,
 * spooled or counted as dropped). */
static void
sink_mark(struct sink *s, const char *id)
{
	int r;

	if (!s->marking || id[0] == '\0')
		return;
	if ((r = spool_mark_write(s->spool, id)) < 0) {
		if (!s->mark_failed)
			log_error("alert sink %s: cannot write its delivered marker: %s", s->name,
			          strerror(-r));
		s->mark_failed = true;
		return;
	}
	s->mark_dirty = true;
}

static void
sink_mark_sync(struct sink *s, bool now)
{
	uint64_t t = time_mono_ms();

	if (!s->mark_dirty || (!now && t - s->mark_synced < SINK_MARK_SYNC_MS))
		return;
	(void)spool_mark_sync(s->spool);
	s->mark_dirty = false;
	s->mark_synced = t;
}

/* A queue item is the alert id, a NUL, then the alert JSON. */
static const char *
item_json(const char *item)
{
	return item + strlen(item) + 1;
}

/* Handles one alert taken from the queue (and frees it). */
static void
sink_take(struct sink *s, char *item)
{
	const char *json = item_json(item);
	struct errbuf err = { { 0 } };
	bool direct;
	int r;

	pthread_mutex_lock(&s->mu);
	direct = s->backlog_depth == 0 && !s->down &&
	         !(s->stopping && time_mono_ms() >= s->stop_deadline);
	pthread_mutex_unlock(&s->mu);
	if (direct) {
		r = s->ops->deliver(s->state, json, strlen(json), &err);
		pthread_mutex_lock(&s->mu);
		if (r == 0)
			s->delivered++;
		else if (r == SINK_REJECTED)
			sink_note_rejected(s, &err);
		else
			sink_mark_down(s, &err);
		pthread_mutex_unlock(&s->mu);
		if (r == 0 || r == SINK_REJECTED) {
			sink_mark(s, item);
			free(item);
			return;
		}
	}
	sink_backlog_or_drop(s, json);
	sink_mark(s, item);
	free(item);
}

/* Delivers from the backlog, oldest first, until it is empty, a delivery
 * fails, or a chunk is done (so new alerts are taken in between). */
static void
sink_drain(struct sink *s)
{
	for (unsigned k = 0; k < SINK_DRAIN_CHUNK; k++) {
		struct errbuf err = { { 0 } };
		_cleanup_free_ char *json = NULL;
		uint64_t now = time_mono_ms();
		size_t len;
		int r;

		pthread_mutex_lock(&s->mu);
		if (s->backlog_depth == 0 || (s->down && now < s->next_try) ||
		    (s->stopping && (s->down || now >= s->stop_deadline))) {
			pthread_mutex_unlock(&s->mu);
			return;
		}
		pthread_mutex_unlock(&s->mu);
		if ((r = backlog_peek(s, &json, &len)) <= 0) {
			pthread_mutex_lock(&s->mu);
			backlog_publish(s);
			if (r < 0) {
				/* Unreadable spool: back off and try again, like a
				 * failed delivery, rather than spin. */
				errbuf_set(&err, "cannot read the spool: %s", strerror(-r));
				sink_mark_down(s, &err);
			} else {
				s->backlog_depth = 0;
			}
			pthread_cond_broadcast(&s->idle);
			pthread_mutex_unlock(&s->mu);
			return;
		}
		r = s->ops->deliver(s->state, json, len, &err);
		pthread_mutex_lock(&s->mu);
		/* Every delivery from the backlog is a retry: the alert waits
		 * there because it, or one before it, could not be delivered. */
		s->retried++;
		if (r == 0 || r == SINK_REJECTED) {
			int a = backlog_ack(s);

			if (r == 0)
				s->delivered++;
			else
				sink_note_rejected(s, &err);
			sink_mark_up(s);
			if (a < 0)
				log_error("alert sink %s: cannot acknowledge in its spool: %s",
				          s->name, strerror(-a));
		} else {
			sink_mark_down(s, &err);
		}
		backlog_publish(s);
		pthread_cond_broadcast(&s->idle);
		pthread_mutex_unlock(&s->mu);
		if (r != 0 && r != SINK_REJECTED)
			return;
	}
}

/* Waits for work (caller holds mu). Returns false when the worker must stop. */
static bool
sink_wait(struct sink *s)
{
	for (;;) {
		uint64_t now = time_mono_ms();
		bool backlog = s->backlog_depth > 0;

		if (s->stopping)
			return s->queue.len > 0 || (backlog && !s->down && now < s->stop_deadline);
		if (s->queue.len > 0 || (backlog && (!s->down || now >= s->next_try)))
			return true;
		s->waiting = true;
		if (backlog)
			cond_wait_ms(&s->wake, &s->mu, s->next_try - now);
		else
			pthread_cond_wait(&s->wake, &s->mu);
		s->waiting = false;
	}
}

static void *
sink_worker(void *arg)
{
	struct sink *s = arg;
	char *batch[SINK_BATCH];

	pthread_mutex_lock(&s->mu);
	while (sink_wait(s)) {
		size_t n = 0;

		while (n < SINK_BATCH && s->queue.len > 0)
			batch[n++] = ring_pop(&s->queue);
		s->busy = true;
		pthread_mutex_unlock(&s->mu);
		for (size_t i = 0; i < n; i++)
			sink_take(s, batch[i]);
		sink_mark_sync(s, false);
		sink_drain(s);
		pthread_mutex_lock(&s->mu);
		s->busy = false;
		pthread_cond_broadcast(&s->idle);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- catch-up from the store at start ---- */

struct catch_up {
	struct sink *s;
	int64_t last_rowid;
	char last_id[SPOOL_MARK_MAX];
	int rows;
};

/* An alert id as alert.c makes them: a lower-case UUID (safe to quote in SQL). */
static bool
alert_id_ok(const char *id)
{
	if (strlen(id) != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? id[i] != '-' : strchr("0123456789abcdef", id[i]) == NULL || id[i] == 0)
			return false;
	}
	return true;
}

/* The first 48 bits of a UUIDv7: its epoch milliseconds. */
static int64_t
alert_id_ms(const char *id)
{
	int64_t ms = 0;

	for (size_t i = 0; i < 13; i++)
		if (id[i] != '-')
			ms = ms * 16 + (id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
	return ms;
}

static int
first_text_cb(void *ctx, int ncol, const char *const *names, const char *const *values,
              const char *types)
{
	(void)names;
	(void)types;
	if (ncol >= 1 && values[0] != NULL)
		de_strlcpy(ctx, values[0], SPOOL_MARK_MAX);
	return 1;
}

static int
first_int_cb(void *ctx, int ncol, const char *const *names, const char *const *values,
             const char *types)
{
	int64_t v;

	(void)names;
	(void)types;
	if (ncol >= 1 && values[0] != NULL && parse_i64(values[0], &v) == 0)
		*(int64_t *)ctx = v;
	return 1;
}

static int
catch_up_cb(void *ctx, int ncol, const char *const *names, const char *const *values,
            const char *types)
{
	struct catch_up *c = ctx;
	int64_t rowid;
	int r;

	(void)names;
	(void)types;
	if (ncol != 3 || values[0] == NULL || values[1] == NULL || values[2] == NULL ||
	    parse_i64(values[0], &rowid) < 0)
		return 1;
	c->last_rowid = rowid;
	c->rows++;
	de_strlcpy(c->last_id, values[1], sizeof(c->last_id));
	r = backlog_append(c->s, values[2]);
	pthread_mutex_lock(&c->s->mu);
	if (r == 0) {
		c->s->spooled++;
		c->s->replayed++;
	} else {
		c->s->dropped_spool_full++;
	}
	pthread_mutex_unlock(&c->s->mu);
	return 0;
}

int
sink_catch_up(struct sink *s, struct store *st)
{
	struct catch_up c = { .s = s };
	struct errbuf err = { { 0 } };
	char mark[SPOOL_MARK_MAX] = "", sql[256];
	int64_t after_ms = 0;
	int r, q;

	if (s->spool == NULL || st == NULL)
		return 0;
	s->marking = true;
	r = spool_mark_read(s->spool, mark, sizeof(mark));
	if (r > 0 && mark[0] != '\0' && !alert_id_ok(mark))
		r = -EBADMSG;
	if (r < 0)
		log_error("alert sink %s: its delivered marker is unreadable (%s): starting after "
		          "the newest stored alert",
		          s->name, strerror(-r));
	if (r <= 0) {
		/* A new sink starts after the newest stored alert: it is not sent
		 * the history, only what is raised from now on. */
		mark[0] = '\0';
		q = store_query(st, "SELECT alert_id FROM alerts ORDER BY rowid DESC LIMIT 1",
		                CATCH_UP_TIMEOUT_MS, first_text_cb, mark, &err);
		if (q < 0) {
			log_error("alert sink %s: cannot read the stored alerts: %s", s->name,
			          err.msg);
			return q;
		}
		if ((r = spool_mark_write(s->spool, mark)) < 0 ||
		    (r = spool_mark_sync(s->spool)) < 0)
			log_error("alert sink %s: cannot write its delivered marker: %s", s->name,
			          strerror(-r));
		return r < 0 ? r : 0;
	}
	if (mark[0] != '\0') {
		(void)snprintf(sql, sizeof(sql), "SELECT rowid FROM alerts WHERE alert_id = '%s'",
		               mark);
		c.last_rowid = -1;
		if ((q = store_query(st, sql, CATCH_UP_TIMEOUT_MS, first_int_cb, &c.last_rowid,
		                     &err)) < 0) {
			log_error("alert sink %s: cannot read the stored alerts: %s", s->name,
			          err.msg);
			return q;
		}
		if (c.last_rowid < 0) {
			/* Trimmed by retention (or lost with the store's last
			 * transaction): replay what is newer than its time. */
			c.last_rowid = 0;
			after_ms = alert_id_ms(mark);
		}
	}
	/* Page by page: the page's spooled copies are synced, then the marker
	 * passes them, so it is never ahead of what is on disk, and a crash in
	 * the middle of this replay repeats at most one page. */
	spool_defer_sync(s->spool, true);
	r = 0;
	do {
		c.rows = 0;
		(void)snprintf(sql, sizeof(sql),
		               "SELECT rowid, alert_id, json FROM alerts WHERE rowid > %" PRId64
		               " AND timestamp > %" PRId64 " ORDER BY rowid LIMIT %d",
		               c.last_rowid, after_ms, CATCH_UP_PAGE);
		q = store_query(st, sql, CATCH_UP_TIMEOUT_MS, catch_up_cb, &c, &err);
		if (c.rows > 0 && (r = spool_sync(s->spool)) == 0)
			r = spool_mark_write(s->spool, c.last_id);
	} while (q >= 0 && r == 0 && c.rows == CATCH_UP_PAGE);
	spool_defer_sync(s->spool, false);
	if (r == 0)
		r = spool_mark_sync(s->spool);
	pthread_mutex_lock(&s->mu);
	backlog_publish(s);
	if (s->replayed > 0)
		log_info("alert sink %s: %" PRIu64 " stored alerts it had not finished before the "
		         "last stop queued again (spool depth %" PRIu64 ")",
		         s->name, s->replayed, s->backlog_depth);
	pthread_mutex_unlock(&s->mu);
	if (q < 0) {
		log_error("alert sink %s: cannot read the stored alerts: %s", s->name, err.msg);
		return q;
	}
	if (r < 0)
		log_error("alert sink %s: cannot write its delivered marker: %s", s->name,
		          strerror(-r));
	return r;
}

int
sink_catch_up_all(struct sink *const *sinks, size_t n, struct store *st)
{
	_cleanup_(store_closep) struct store *ro = NULL;
	bool any = false;
	int r;

	for (size_t i = 0; i < n; i++)
		any = any || sinks[i]->spool != NULL;
	if (!any || st == NULL)
		return 0;
	/* A read-only connection of its own: the sandbox store_query installs
	 * (limits, authorizer) stays off the agent's read-write connection. */
	if ((r = store_open(store_path(st), STORE_RO, &ro)) < 0) {
		log_error("alert sinks: cannot open %s to replay undelivered alerts: %s",
		          store_path(st), strerror(-r));
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		int q = sink_catch_up(sinks[i], ro);

		if (q < 0 && r == 0)
			r = q;
	}
	return r;
}

/* ---- set-up, queueing, health, tear-down ---- */

/* The target for health, without credentials or a query string. */
static void
sink_describe(const struct sink_config *sc, char *buf, size_t n)
{
	const char *t = sc->type == SINK_FILE      ? sc->path
	                : sc->type == SINK_SYSLOG  ? (sc->server ? sc->server : "/dev/log")
	                : sc->type == SINK_WEBHOOK ? sc->url
	                                           : sink_format_to_string(sc->format);
	const char *at, *scheme;

	de_strlcpy(buf, t ? t : "", n);
	if (sc->type != SINK_WEBHOOK || (scheme = strstr(buf, "://")) == NULL)
		return;
	scheme += 3;
	at = strchr(scheme, '@');
	if (at != NULL && at < scheme + strcspn(scheme, "/?#"))
		memmove((char *)scheme, at + 1, strlen(at + 1) + 1);
	buf[strcspn(buf, "?#")] = '\0';
}

static int
sink_setup(struct sink *s, const struct sink_config *sc, const char *name, const char *spool_dir,
           struct errbuf *err)
{
	char path[4096];
	int r;

	s->type = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(sink_table); i++)
		if (sink_table[i].type == sc->type) {
			s->ops = sink_table[i].ops;
			s->type = sink_table[i].name;
		}
	if (s->ops == NULL) {
		errbuf_set(err, "unknown sink type %d", (int)sc->type);
		return -EINVAL;
	}
	de_strlcpy(s->name, name, sizeof(s->name));
	sink_describe(sc, s->target, sizeof(s->target));
	if ((r = ring_init(&s->queue, SINK_QUEUE_MAX)) < 0 ||
	    (r = ring_init(&s->backlog, SINK_BACKLOG_MAX)) < 0)
		return r;
	if ((r = s->ops->open(sc, &s->state, err)) < 0) {
		errbuf_prefix(err, "alert sink %s", s->name);
		return r;
	}
	s->ops->set_abort(s->state, &s->abort);
	/* spool_max_bytes: 0 turns the on-disk spool off for this sink. */
	if (spool_dir != NULL && sc->spool_max_bytes > 0) {
		if (snprintf(path, sizeof(path), "%s/%s", spool_dir, s->name) >= (int)sizeof(path))
			r = -ENAMETOOLONG;
		else
			r = spool_open(path, sc->spool_max_bytes, &s->spool);
		if (r < 0)
			log_warn("alert sink %s: no spool at %s (%s): a down sink keeps at most "
			         "%u alerts in memory",
			         s->name, path, strerror(-r), SINK_BACKLOG_MAX);
	}
	backlog_publish(s);
	if (s->backlog_depth > 0)
		log_info("alert sink %s: %" PRIu64 " spooled alerts to replay", s->name,
		         s->backlog_depth);
	return 0;
}

static void
sink_stop(struct sink *s)
{
	uint64_t deadline, now, wait;
	struct timespec ts;
	char *item;

	if (!s->started)
		return;
	pthread_mutex_lock(&s->mu);
	if (!s->stopping) {
		s->stopping = true;
		s->stop_deadline = time_mono_ms() + ALERTS_STOP_TIMEOUT_MS;
	}
	deadline = s->stop_deadline + SINK_ABORT_AFTER_MS;
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->mu);
	/* A delivery still blocked past the grace period (a receiver that
	 * accepts but never answers) is told to give up; its alert is spooled. */
	clock_gettime(CLOCK_REALTIME, &ts);
	now = time_mono_ms();
	wait = deadline > now ? deadline - now : 0;
	ts.tv_sec += (time_t)(wait / 1000);
	ts.tv_nsec += (long)(wait % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (pthread_timedjoin_np(s->thread, NULL, &ts) != 0) {
		log_warn("alert sink %s: delivery still blocked at stop, aborting it", s->name);
		atomic_store(&s->abort, true);
		pthread_join(s->thread, NULL);
	}
	s->started = false;
	/* What the worker could not deliver in time waits for the next start. */
	while ((item = ring_pop(&s->queue)) != NULL) {
		sink_backlog_or_drop(s, item_json(item));
		sink_mark(s, item);
		free(item);
	}
	sink_mark_sync(s, true);
	if (s->spool == NULL && s->backlog.len > 0) {
		s->lost_at_stop += s->backlog.len;
		log_error("alert sink %s: %zu undelivered alerts lost at stop (no spool)", s->name,
		          s->backlog.len);
	}
}

void
sink_free(struct sink *s)
{
	if (s == NULL)
		return;
	sink_stop(s);
	if (s->ops != NULL)
		s->ops->close(s->state);
	spool_close(s->spool);
	ring_free(&s->queue);
	ring_free(&s->backlog);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->idle);
	free(s);
}

int
sink_new(const struct sink_config *sc, const char *name, const char *spool_dir, struct sink **ret,
         struct errbuf *err)
{
	struct sink *s;
	int r;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	pthread_mutex_init(&s->mu, NULL);
	cond_init(&s->wake);
	cond_init(&s->idle);
	if ((r = sink_setup(s, sc, name, spool_dir, err)) < 0) {
		sink_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

int
sink_start(struct sink *s, struct errbuf *err)
{
	int r = -pthread_create(&s->thread, NULL, sink_worker, s);

	if (r < 0) {
		errbuf_set(err, "cannot start alert sink %s: %s", s->name, strerror(-r));
		return r;
	}
	s->started = true;
	return 0;
}

void
sink_request_stop(struct sink *s)
{
	if (s == NULL || !s->started)
		return;
	pthread_mutex_lock(&s->mu);
	if (!s->stopping) {
		s->stopping = true;
		s->stop_deadline = time_mono_ms() + ALERTS_STOP_TIMEOUT_MS;
	}
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->mu);
}

const char *
sink_name(const struct sink *s)
{
	return s->name;
}

void
sink_enqueue(struct sink *s, const char *id, const char *json)
{
	size_t il = id ? strlen(id) : 0, jl = strlen(json);
	char *copy = malloc(il + 1 + jl + 1);

	if (copy != NULL) {
		if (il > 0)
			memcpy(copy, id, il);
		copy[il] = '\0';
		memcpy(copy + il + 1, json, jl + 1);
	}

	pthread_mutex_lock(&s->mu);
	if (copy == NULL || !ring_push(&s->queue, copy)) {
		free(copy);
		s->dropped_queue_full++;
		if (is_pow2(s->dropped_queue_full))
			log_error("alert sink %s: queue full, %" PRIu64 " alerts dropped so far",
			          s->name, s->dropped_queue_full);
	} else if (s->waiting) {
		/* A busy worker takes the queue when it looks next: a wake-up
		 * per alert would only cost context switches. */
		pthread_cond_signal(&s->wake);
	}
	pthread_mutex_unlock(&s->mu);
}

int
sink_wait_idle(struct sink *s, uint64_t deadline_ms, bool wait_spool)
{
	pthread_mutex_lock(&s->mu);
	while (s->queue.len > 0 || s->busy || (wait_spool && s->backlog_depth > 0)) {
		if (time_mono_ms() >= deadline_ms) {
			pthread_mutex_unlock(&s->mu);
			return -ETIMEDOUT;
		}
		cond_wait_ms(&s->idle, &s->mu, 50);
	}
	pthread_mutex_unlock(&s->mu);
	return 0;
}

json_t *
sink_health_json(struct sink *s)
{
	uint64_t dropped;
	json_t *o;

	pthread_mutex_lock(&s->mu);
	dropped =
	    s->dropped_queue_full + s->dropped_spool_full + s->lost_at_stop + s->spool_corrupt;
	o = json_pack(
	    "{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
	    "s:I, s:I, s:I, s:b, s:s}",
	    "name", s->name, "type", s->type, "target", s->target, "state",
	    s->stopping ? "stopping"
	    : s->down   ? "down"
	                : "up",
	    "delivered", (json_int_t)s->delivered, "failed", (json_int_t)s->failed, "retried",
	    (json_int_t)s->retried, "spooled", (json_int_t)s->spooled, "queue_depth",
	    (json_int_t)s->queue.len, "spool_depth", (json_int_t)s->backlog_depth, "spool_bytes",
	    (json_int_t)s->spool_bytes, "dropped", (json_int_t)dropped, "dropped_queue_full",
	    (json_int_t)s->dropped_queue_full, "dropped_spool_full",
	    (json_int_t)s->dropped_spool_full, "rejected", (json_int_t)s->rejected, "spool_corrupt",
	    (json_int_t)s->spool_corrupt, "replayed", (json_int_t)s->replayed, "on_disk_spool",
	    s->spool != NULL, "last_error", s->last_error);
	pthread_mutex_unlock(&s->mu);
	return o;
}
