/* Alerts: build, deduplicate, rate-limit, store, and fan out to the sinks.
 * See alert.h for the contract and docs/alerting.md for the operator view.
 * Each sink's worker, queue, spool and retries live in sink_worker.c;
 * alerts_submit() only copies a raised alert into each sink's queue. */
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
#include "cleanup.h"
#include "crc32c.h"
#include "log.h"
#include "store.h"
#include "timeutil.h"
#include "util.h"

#define DEDUP_BUCKETS 4096u
#define DEDUP_MAX     65536u
#define ALERT_ID_LEN  37u
#define DEDUP_KEY_MAX 320u

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
	struct sink **sinks;
	size_t n_sinks;
};

static bool
is_pow2(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
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
	for (size_t i = 0; i < a->n_sinks; i++)
		sink_enqueue(a->sinks[i], id, text);
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

	for (size_t i = 0; i < a->n_sinks; i++)
		if (sink_wait_idle(a->sinks[i], end, wait_spool) < 0)
			return -ETIMEDOUT;
	return 0;
}

json_t *
alerts_health_json(struct alerts *a)
{
	json_t *o, *arr;

	if ((arr = json_array()) == NULL)
		return NULL;
	for (size_t i = 0; i < a->n_sinks; i++)
		if (json_array_append_new(arr, sink_health_json(a->sinks[i])) < 0) {
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
	/* Ask every worker to stop first so they wind down in parallel. */
	for (size_t i = 0; i < a->n_sinks; i++)
		sink_request_stop(a->sinks[i]);
	for (size_t i = 0; i < a->n_sinks; i++)
		sink_free(a->sinks[i]);
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

/* The sink's name (and spool directory): its type and a hash of its target,
 * stable across restarts while its configuration is; a number is appended
 * when two sinks are configured alike. */
static void
alerts_sink_name(struct alerts *a, const struct sink_config *sc, char *buf, size_t n)
{
	const char *type = sink_type_to_string(sc->type);
	char id[600];
	uint32_t h;

	(void)snprintf(id, sizeof(id), "%s|%s|%s|%s|%d", type, sc->path ? sc->path : "",
	               sc->server ? sc->server : "", sc->url ? sc->url : "", (int)sc->format);
	h = crc32c(0, id, strlen(id));
	(void)snprintf(buf, n, "%s-%08" PRIx32, type, h);
	for (size_t i = 0, k = 2; i < a->n_sinks; i++)
		if (streq(sink_name(a->sinks[i]), buf)) {
			(void)snprintf(buf, n, "%s-%08" PRIx32 "-%zu", type, h, k++);
			i = (size_t)-1;
		}
}

static int
alerts_start_sinks(struct alerts *a, const struct de_config *cfg, struct store *st,
                   const char *spool_dir, struct errbuf *err)
{
	char name[64];
	int r;

	if (spool_dir != NULL && mkdir(spool_dir, 0700) < 0 && errno != EEXIST)
		log_warn("cannot create spool directory %s: %s", spool_dir, strerror(errno));
	if ((a->sinks = calloc(cfg->alerting.n_sinks + 1, sizeof(a->sinks[0]))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->alerting.n_sinks; i++) {
		alerts_sink_name(a, &cfg->alerting.sinks[i], name, sizeof(name));
		r = sink_new(&cfg->alerting.sinks[i], name, spool_dir, &a->sinks[i], err);
		if (r < 0)
			return r;
		a->n_sinks = i + 1;
	}
	/* Alerts stored but still queued when the agent was killed; a failure
	 * is logged and the sinks run anyway. */
	(void)sink_catch_up_all(a->sinks, a->n_sinks, st);
	for (size_t i = 0; i < a->n_sinks; i++)
		if ((r = sink_start(a->sinks[i], err)) < 0)
			return r;
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
	if ((r = alerts_start_sinks(a, cfg, st, spool_dir, err)) < 0)
		return r;
	*ret = TAKE_PTR(a);
	return 0;
}
