/* Alerts: build, deduplicate, rate-limit, store, and fan out to the sinks.
 * See alert.h for the contract and docs/alerting.md for the operator view.
 *
 * Per sink: a bounded queue filled by alerts_submit() (never blocking: a
 * full queue is a counted drop), a worker thread that delivers in order, and
 * a backlog where alerts wait while the sink is down: the on-disk spool, or a
 * bounded memory ring when no spool directory was given. Once anything waits
 * in the backlog every newer alert goes behind it, so order is kept; the
 * backlog is retried with exponential backoff and acknowledged record by
 * record after each successful delivery. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/alert.h"
#include "agent/sink.h"
#include "agent/spool.h"
#include "cleanup.h"
#include "crc32c.h"
#include "log.h"
#include "store.h"
#include "timeutil.h"
#include "util.h"

#define SINK_QUEUE_MAX   16384u /* alerts waiting for a sink's worker (~16 MiB at most) */
#define SINK_BACKLOG_MAX 4096u  /* memory backlog when there is no spool */
#define SINK_BATCH       256u
#define SINK_DRAIN_CHUNK 256u
#define BACKOFF_MIN_MS   250u
#define BACKOFF_MAX_MS   5000u
#define DEDUP_BUCKETS    4096u
#define DEDUP_MAX        65536u
#define ALERT_ID_LEN     37u
#define DEDUP_KEY_MAX    320u

struct ring {
	char **items;
	size_t head, len, cap;
};

struct sink {
	struct alerts *owner;
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
	/* Owned by the worker thread alone. */
	struct spool *spool;
	struct ring backlog;
	/* Under mu. */
	bool stopping, busy, down, waiting;
	uint64_t stop_deadline, next_try, backoff_ms;
	uint64_t delivered, failed, retried, spooled, rejected;
	uint64_t dropped_queue_full, dropped_spool_full, lost_at_stop;
	uint64_t backlog_depth, spool_bytes, spool_corrupt;
	char last_error[ERRBUF_MAX];
};

struct dedup_entry {
	struct dedup_entry *next;
	uint64_t first_ms;  /* clock time the alert was raised */
	uint64_t timestamp; /* its wall-clock timestamp */
	uint32_t repeat_count;
	char alert_id[ALERT_ID_LEN];
	char key[];
};

struct alerts {
	pthread_mutex_t mu; /* dedup table, token bucket, counters */
	struct store *store;
	char host[256];
	uint64_t window_ms;
	uint32_t per_minute;
	double tokens;
	uint64_t tokens_at;
	alerts_clock_fn clock;
	void *clock_ctx;
	alerts_observer_fn observer;
	void *observer_ctx;
	struct dedup_entry *buckets[DEDUP_BUCKETS];
	size_t n_dedup, prune_at;
	uint64_t raised, duplicates, rate_limited, store_errors, dedup_untracked;
	struct sink *sinks;
	size_t n_sinks;
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

/* Handles one alert taken from the queue (and frees it). */
static void
sink_take(struct sink *s, char *json)
{
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
			free(json);
			return;
		}
	}
	sink_backlog_or_drop(s, json);
	free(json);
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
		sink_drain(s);
		pthread_mutex_lock(&s->mu);
		s->busy = false;
		pthread_cond_broadcast(&s->idle);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- sinks: set-up and tear-down ---- */

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

static void
sink_name(struct alerts *a, struct sink *s, const struct sink_config *sc)
{
	char id[600];
	uint32_t h;

	(void)snprintf(id, sizeof(id), "%s|%s|%s|%s|%d", s->type, sc->path ? sc->path : "",
	               sc->server ? sc->server : "", sc->url ? sc->url : "", (int)sc->format);
	h = crc32c(0, id, strlen(id));
	(void)snprintf(s->name, sizeof(s->name), "%s-%08" PRIx32, s->type, h);
	/* Two identical sinks: keep names (and spools) apart. */
	for (size_t i = 0, k = 2; &a->sinks[i] != s; i++)
		if (streq(a->sinks[i].name, s->name)) {
			(void)snprintf(s->name, sizeof(s->name), "%s-%08" PRIx32 "-%zu", s->type, h,
			               k++);
			i = (size_t)-1;
		}
}

static int
sink_setup(struct alerts *a, struct sink *s, const struct sink_config *sc, const char *spool_dir,
           struct errbuf *err)
{
	char path[4096];
	int r;

	s->owner = a;
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
	sink_name(a, s, sc);
	sink_describe(sc, s->target, sizeof(s->target));
	if ((r = ring_init(&s->queue, SINK_QUEUE_MAX)) < 0 ||
	    (r = ring_init(&s->backlog, SINK_BACKLOG_MAX)) < 0)
		return r;
	if ((r = s->ops->open(sc, &s->state, err)) < 0) {
		errbuf_prefix(err, "alert sink %s", s->name);
		return r;
	}
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
	char *item;

	if (!s->started)
		return;
	pthread_mutex_lock(&s->mu);
	if (!s->stopping) {
		s->stopping = true;
		s->stop_deadline = time_mono_ms() + ALERTS_STOP_TIMEOUT_MS;
	}
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	s->started = false;
	/* What the worker could not deliver in time waits for the next start. */
	while ((item = ring_pop(&s->queue)) != NULL) {
		sink_backlog_or_drop(s, item);
		free(item);
	}
	if (s->spool == NULL && s->backlog.len > 0) {
		s->lost_at_stop += s->backlog.len;
		log_error("alert sink %s: %zu undelivered alerts lost at stop (no spool)", s->name,
		          s->backlog.len);
	}
}

static void
sink_destroy(struct sink *s)
{
	sink_stop(s);
	if (s->ops != NULL)
		s->ops->close(s->state);
	spool_close(s->spool);
	ring_free(&s->queue);
	ring_free(&s->backlog);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->idle);
}

/* ---- the alert object ---- */

static json_t *
jstr(const char *s)
{
	_cleanup_free_ char *fixed = NULL;

	if (s == NULL)
		return json_null();
	if (utf8_is_valid(s, strlen(s)))
		return json_string(s);
	if ((fixed = utf8_sanitize_dup(s, strlen(s))) == NULL)
		return NULL;
	return json_string(fixed);
}

static json_t *
jtime(uint64_t ms)
{
	char buf[40];

	if (ms == 0 || time_format_rfc3339_ms(ms, buf, sizeof(buf)) < 0)
		return json_null();
	return json_string(buf);
}

static json_t *
jid(int64_t v)
{
	return v < 0 ? json_null() : json_integer(v);
}

static json_t *
alert_process_json(const struct process_record *p)
{
	json_t *o = json_object();
	int r = 0;

	if (o == NULL)
		return NULL;
	r |= json_object_set_new(o, "pid", json_integer(p->pid));
	r |= json_object_set_new(o, "ppid", jid(p->ppid));
	r |= json_object_set_new(o, "name", jstr(p->name));
	r |= json_object_set_new(o, "executable_path", jstr(p->executable_path));
	r |= json_object_set_new(o, "command_line", jstr(p->command_line));
	r |= json_object_set_new(o, "user_id", jid(p->user_id));
	r |= json_object_set_new(o, "start_time", jtime(p->start_time));
	r |= json_object_set_new(o, "executable_hash", jstr(p->executable_hash));
	if (r != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int
alert_dedup_key(const struct alert_match *m, char *buf, size_t n)
{
	int k = snprintf(buf, n, "%s:%" PRId32 ":%" PRIu64, m->rule_id, m->proc->pid,
	                 m->proc->start_time);

	return (k < 0 || (size_t)k >= n) ? -ENOSPC : 0;
}

json_t *
alert_build_json(const struct alert_match *m, const char *alert_id, uint64_t timestamp_ms,
                 const char *host)
{
	const struct process_record *p = m->proc;
	char key[DEDUP_KEY_MAX], title[512];
	json_t *o;
	int r = 0;

	if (alert_dedup_key(m, key, sizeof(key)) < 0 || (o = json_object()) == NULL)
		return NULL;
	if (p->name != NULL)
		(void)snprintf(title, sizeof(title), "%s: %s",
		               m->rule_name ? m->rule_name : m->rule_id, p->name);
	else
		(void)snprintf(title, sizeof(title), "%s: pid %" PRId32,
		               m->rule_name ? m->rule_name : m->rule_id, p->pid);
	r |= json_object_set_new(o, "alert_id", jstr(alert_id));
	r |= json_object_set_new(o, "timestamp", jtime(timestamp_ms));
	r |= json_object_set_new(o, "host", jstr(host));
	r |= json_object_set_new(o, "rule_id", jstr(m->rule_id));
	r |= json_object_set_new(o, "rule_name", jstr(m->rule_name ? m->rule_name : m->rule_id));
	r |= json_object_set_new(o, "severity", jstr(m->severity ? m->severity : "medium"));
	r |= json_object_set_new(o, "category", jstr(m->category));
	r |= json_object_set_new(o, "title", jstr(title));
	r |= json_object_set_new(o, "description", jstr(m->description));
	r |= json_object_set_new(o, "dedup_key", jstr(key));
	r |= json_object_set_new(o, "process", alert_process_json(p));
	r |= json_object_set_new(
	    o, "match", json_is_object(m->match) ? json_deep_copy(m->match) : json_object());
	if (r != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. */
static void
alert_new_id(uint64_t ms, char out[ALERT_ID_LEN])
{
	unsigned char b[16];

	if (getrandom(b + 6, 10, 0) != 10) {
		/* getrandom on Linux >= 3.17 does not fail for 10 bytes once seeded. */
		uint64_t t = time_mono_ns();

		for (int i = 6; i < 16; i++)
			b[i] = (unsigned char)(t >> (8 * (i % 8)));
	}
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (8 * (5 - i)));
	b[6] = (unsigned char)(0x70 | (b[6] & 0x0f));
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
	(void)snprintf(out, ALERT_ID_LEN,
	               "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
	               b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	               b[13], b[14], b[15]);
}

/* ---- dedup table and token bucket (caller holds a->mu) ---- */

static struct dedup_entry **
dedup_slot(struct alerts *a, const char *key)
{
	struct dedup_entry **pp = &a->buckets[crc32c(0, key, strlen(key)) % DEDUP_BUCKETS];

	while (*pp != NULL && !streq((*pp)->key, key))
		pp = &(*pp)->next;
	return pp;
}

static void
dedup_prune(struct alerts *a, uint64_t now)
{
	for (size_t i = 0; i < DEDUP_BUCKETS; i++) {
		struct dedup_entry **pp = &a->buckets[i];

		while (*pp != NULL) {
			struct dedup_entry *e = *pp;

			if (now - e->first_ms >= a->window_ms) {
				*pp = e->next;
				free(e);
				a->n_dedup--;
			} else {
				pp = &e->next;
			}
		}
	}
	a->prune_at = a->n_dedup * 2 > 1024 ? a->n_dedup * 2 : 1024;
}

/* Remembers a raised alert for the window. */
static void
dedup_remember(struct alerts *a, const char *key, const char *id, uint64_t now, uint64_t ts)
{
	struct dedup_entry **pp = dedup_slot(a, key), *e = *pp;

	if (e == NULL) {
		if (a->n_dedup >= a->prune_at)
			dedup_prune(a, now);
		pp = dedup_slot(a, key);
		if (a->n_dedup >= DEDUP_MAX ||
		    (e = calloc(1, sizeof(*e) + strlen(key) + 1)) == NULL) {
			a->dedup_untracked++;
			return;
		}
		memcpy(e->key, key, strlen(key) + 1);
		*pp = e;
		a->n_dedup++;
	}
	e->first_ms = now;
	e->timestamp = ts;
	e->repeat_count = 1;
	de_strlcpy(e->alert_id, id, sizeof(e->alert_id));
}

static bool
rate_take(struct alerts *a, uint64_t now)
{
	double cap = a->per_minute;

	if (a->per_minute == 0)
		return true;
	if (now > a->tokens_at) {
		a->tokens += (double)(now - a->tokens_at) * cap / 60000.0;
		if (a->tokens > cap)
			a->tokens = cap;
	}
	a->tokens_at = now;
	if (a->tokens < 1.0)
		return false;
	a->tokens -= 1.0;
	return true;
}

static uint64_t
default_clock(void *ctx)
{
	(void)ctx;
	return time_mono_ms();
}

/* ---- public ---- */

static void
alerts_store(struct alerts *a, const struct alert_match *m, const char *id, uint64_t ts,
             const char *key, uint32_t repeat, const char *json)
{
	struct store_alert sa = {
		.alert_id = id,
		.timestamp = ts,
		.rule_id = m->rule_id,
		.severity = m->severity ? m->severity : "medium",
		.category = m->category,
		.dedup_key = key,
		.pid = m->proc->pid,
		.process_start_time = m->proc->start_time,
		.repeat_count = repeat,
		.json = json,
	};
	int r;

	if (a->store == NULL)
		return;
	if ((r = store_alert_put(a->store, &sa)) < 0) {
		pthread_mutex_lock(&a->mu);
		a->store_errors++;
		pthread_mutex_unlock(&a->mu);
		log_error("cannot store alert %s: %s", id, strerror(-r));
	}
}

static int
alerts_repeat(struct alerts *a, const struct alert_match *m, const char *id, uint64_t ts,
              const char *key, uint32_t repeat)
{
	_cleanup_free_ char *text = NULL;
	json_t *o;

	if (a->store == NULL)
		return ALERT_DUPLICATE;
	if ((o = alert_build_json(m, id, ts, a->host)) == NULL)
		return -ENOMEM;
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text == NULL)
		return -ENOMEM;
	alerts_store(a, m, id, ts, key, repeat, text);
	return ALERT_DUPLICATE;
}

static void
alerts_fan_out(struct alerts *a, const char *text)
{
	for (size_t i = 0; i < a->n_sinks; i++) {
		struct sink *s = &a->sinks[i];
		char *copy = strdup(text);

		pthread_mutex_lock(&s->mu);
		if (copy == NULL || !ring_push(&s->queue, copy)) {
			free(copy);
			s->dropped_queue_full++;
			if (is_pow2(s->dropped_queue_full))
				log_error("alert sink %s: queue full, %" PRIu64
				          " alerts dropped so far",
				          s->name, s->dropped_queue_full);
		} else if (s->waiting) {
			/* A busy worker takes the queue when it looks next: a
			 * wake-up per alert would only cost context switches. */
			pthread_cond_signal(&s->wake);
		}
		pthread_mutex_unlock(&s->mu);
	}
}

int
alerts_submit(struct alerts *a, const struct alert_match *m)
{
	char key[DEDUP_KEY_MAX], id[ALERT_ID_LEN];
	_cleanup_free_ char *text = NULL;
	struct dedup_entry *e;
	uint64_t now, ts;
	json_t *o;

	if (m == NULL || m->rule_id == NULL || m->proc == NULL)
		return -EINVAL;
	if (alert_dedup_key(m, key, sizeof(key)) < 0)
		return -EINVAL;
	pthread_mutex_lock(&a->mu);
	now = a->clock(a->clock_ctx);
	e = *dedup_slot(a, key);
	if (e != NULL && now - e->first_ms < a->window_ms) {
		uint32_t repeat = ++e->repeat_count;

		ts = e->timestamp;
		de_strlcpy(id, e->alert_id, sizeof(id));
		a->duplicates++;
		pthread_mutex_unlock(&a->mu);
		return alerts_repeat(a, m, id, ts, key, repeat);
	}
	if (!rate_take(a, now)) {
		a->rate_limited++;
		if (is_pow2(a->rate_limited))
			log_warn("alerts over max_alerts_per_minute (%u): %" PRIu64
			         " dropped so far (rule %s)",
			         a->per_minute, a->rate_limited, m->rule_id);
		pthread_mutex_unlock(&a->mu);
		return ALERT_RATE_LIMITED;
	}
	ts = time_now_ms();
	alert_new_id(ts, id);
	dedup_remember(a, key, id, now, ts);
	a->raised++;
	pthread_mutex_unlock(&a->mu);

	if ((o = alert_build_json(m, id, ts, a->host)) == NULL)
		return -ENOMEM;
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text == NULL)
		return -ENOMEM;
	alerts_store(a, m, id, ts, key, 1, text);
	if (a->observer != NULL)
		a->observer(a->observer_ctx, id, text);
	alerts_fan_out(a, text);
	return ALERT_RAISED;
}

void
alerts_set_observer(struct alerts *a, alerts_observer_fn fn, void *ctx)
{
	pthread_mutex_lock(&a->mu);
	a->observer = fn;
	a->observer_ctx = ctx;
	pthread_mutex_unlock(&a->mu);
}

void
alerts_set_clock(struct alerts *a, alerts_clock_fn fn, void *ctx)
{
	pthread_mutex_lock(&a->mu);
	a->clock = fn ? fn : default_clock;
	a->clock_ctx = ctx;
	a->tokens_at = a->clock(a->clock_ctx);
	pthread_mutex_unlock(&a->mu);
}

int
alerts_flush(struct alerts *a, uint32_t timeout_ms, bool wait_spool)
{
	uint64_t end = time_mono_ms() + timeout_ms;

	for (size_t i = 0; i < a->n_sinks; i++) {
		struct sink *s = &a->sinks[i];

		pthread_mutex_lock(&s->mu);
		while (s->queue.len > 0 || s->busy || (wait_spool && s->backlog_depth > 0)) {
			if (time_mono_ms() >= end) {
				pthread_mutex_unlock(&s->mu);
				return -ETIMEDOUT;
			}
			cond_wait_ms(&s->idle, &s->mu, 50);
		}
		pthread_mutex_unlock(&s->mu);
	}
	return 0;
}

static json_t *
sink_health_json(struct sink *s)
{
	uint64_t dropped;
	json_t *o;

	pthread_mutex_lock(&s->mu);
	dropped =
	    s->dropped_queue_full + s->dropped_spool_full + s->lost_at_stop + s->spool_corrupt;
	o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
	              "s:I, s:I, s:b, s:s}",
	              "name", s->name, "type", s->type, "target", s->target, "state",
	              s->stopping ? "stopping"
	              : s->down   ? "down"
	                          : "up",
	              "delivered", (json_int_t)s->delivered, "failed", (json_int_t)s->failed,
	              "retried", (json_int_t)s->retried, "spooled", (json_int_t)s->spooled,
	              "queue_depth", (json_int_t)s->queue.len, "spool_depth",
	              (json_int_t)s->backlog_depth, "spool_bytes", (json_int_t)s->spool_bytes,
	              "dropped", (json_int_t)dropped, "dropped_queue_full",
	              (json_int_t)s->dropped_queue_full, "dropped_spool_full",
	              (json_int_t)s->dropped_spool_full, "rejected", (json_int_t)s->rejected,
	              "spool_corrupt", (json_int_t)s->spool_corrupt, "on_disk_spool",
	              s->spool != NULL, "last_error", s->last_error);
	pthread_mutex_unlock(&s->mu);
	return o;
}

json_t *
alerts_health_json(struct alerts *a)
{
	json_t *o, *arr;

	if ((arr = json_array()) == NULL)
		return NULL;
	for (size_t i = 0; i < a->n_sinks; i++)
		if (json_array_append_new(arr, sink_health_json(&a->sinks[i])) < 0) {
			json_decref(arr);
			return NULL;
		}
	pthread_mutex_lock(&a->mu);
	o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "raised",
	              (json_int_t)a->raised, "duplicates", (json_int_t)a->duplicates,
	              "rate_limited", (json_int_t)a->rate_limited, "store_errors",
	              (json_int_t)a->store_errors, "dedup_entries", (json_int_t)a->n_dedup,
	              "dedup_untracked", (json_int_t)a->dedup_untracked, "dedup_window_s",
	              (json_int_t)(a->window_ms / 1000), "max_alerts_per_minute",
	              (json_int_t)a->per_minute, "sinks", arr);
	pthread_mutex_unlock(&a->mu);
	return o;
}

void
alerts_free(struct alerts *a)
{
	if (a == NULL)
		return;
	/* Stop every worker first so they wind down in parallel, then wait. */
	for (size_t i = 0; i < a->n_sinks; i++) {
		struct sink *s = &a->sinks[i];

		if (!s->started)
			continue;
		pthread_mutex_lock(&s->mu);
		s->stopping = true;
		s->stop_deadline = time_mono_ms() + ALERTS_STOP_TIMEOUT_MS;
		pthread_cond_broadcast(&s->wake);
		pthread_mutex_unlock(&s->mu);
	}
	for (size_t i = 0; i < a->n_sinks; i++)
		sink_destroy(&a->sinks[i]);
	free(a->sinks);
	for (size_t i = 0; i < DEDUP_BUCKETS; i++)
		while (a->buckets[i] != NULL) {
			struct dedup_entry *e = a->buckets[i];

			a->buckets[i] = e->next;
			free(e);
		}
	pthread_mutex_destroy(&a->mu);
	free(a);
}

static int
alerts_start_sinks(struct alerts *a, const struct de_config *cfg, const char *spool_dir,
                   struct errbuf *err)
{
	int r;

	if (spool_dir != NULL && mkdir(spool_dir, 0700) < 0 && errno != EEXIST)
		log_warn("cannot create spool directory %s: %s", spool_dir, strerror(errno));
	if ((a->sinks = calloc(cfg->alerting.n_sinks + 1, sizeof(a->sinks[0]))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->alerting.n_sinks; i++) {
		struct sink *s = &a->sinks[i];

		pthread_mutex_init(&s->mu, NULL);
		cond_init(&s->wake);
		cond_init(&s->idle);
		a->n_sinks = i + 1;
		if ((r = sink_setup(a, s, &cfg->alerting.sinks[i], spool_dir, err)) < 0)
			return r;
	}
	for (size_t i = 0; i < a->n_sinks; i++) {
		if ((r = -pthread_create(&a->sinks[i].thread, NULL, sink_worker, &a->sinks[i])) <
		    0) {
			errbuf_set(err, "cannot start alert sink %s: %s", a->sinks[i].name,
			           strerror(-r));
			return r;
		}
		a->sinks[i].started = true;
	}
	return 0;
}

int
alerts_new(struct alerts **ret, const struct de_config *cfg, struct store *st,
           const char *spool_dir, struct errbuf *err)
{
	_cleanup_(alerts_freep) struct alerts *a = NULL;
	int r;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return -ENOMEM;
	pthread_mutex_init(&a->mu, NULL);
	a->store = st;
	a->window_ms = (uint64_t)cfg->alerting.dedup_window_s * 1000;
	a->per_minute = cfg->alerting.max_alerts_per_minute;
	a->tokens = a->per_minute;
	a->clock = default_clock;
	a->tokens_at = a->clock(NULL);
	a->prune_at = 1024;
	if (gethostname(a->host, sizeof(a->host) - 1) < 0)
		de_strlcpy(a->host, "localhost", sizeof(a->host));
	if ((r = alerts_start_sinks(a, cfg, spool_dir, err)) < 0)
		return r;
	*ret = TAKE_PTR(a);
	return 0;
}
